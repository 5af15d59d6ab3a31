/**
 * Processes opening one new embedded store at the same moment (a `baton worker` and a client,
 * say) migrate it once between them: before the fix each read schema version 0 and the later
 * ones failed with "table … already exists".
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';

const root = resolve(import.meta.dirname, '../..');
let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('six processes opening a new store at once all open it, and it is migrated once', async () => {
  dir = mkdtempSync(join(tmpdir(), 'baton-migrate-'));
  const db = join(dir, 'baton.db');
  const go = join(dir, 'go');
  // Each child is ready (modules loaded), then spins until the go file exists, so that all open at once.
  const child = `
    import { existsSync } from 'node:fs';
    import { SqliteStore } from ${JSON.stringify(join(root, 'src/store/sqlite/sqlite-store.ts'))};
    process.stdout.write('ready\\n');
    while (!existsSync(${JSON.stringify(go)})) {}
    try { const s = new SqliteStore(${JSON.stringify(db)}); await s.close(); console.log('opened'); }
    catch (e) { console.log('failed: ' + e.message); process.exitCode = 1; }
  `;
  const script = join(dir, 'open.mts');
  writeFileSync(script, child);
  const procs = Array.from({ length: 6 }, () => spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }));
  const outputs = procs.map((p) => {
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return { ready: new Promise<void>((r) => p.stdout!.on('data', () => out.includes('ready') && r())), done: new Promise<string>((r) => p.on('exit', () => r(out))) };
  });
  await Promise.all(outputs.map((o) => o.ready));
  writeFileSync(go, '');
  const results = await Promise.all(outputs.map((o) => o.done));
  expect(results.map((o) => o.trim().split('\n').pop())).toEqual(Array(6).fill('opened'));
  const check = new Database(db, { readonly: true });
  try {
    expect((check.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value).toBe(String(SQLITE_MIGRATIONS.length));
  } finally {
    check.close();
  }
}, 60_000);
