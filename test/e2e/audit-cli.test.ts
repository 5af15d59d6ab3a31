/**
 * `baton audit verify | export | purge` as separate processes (the built CLI), on every store:
 * an intact store verifies (exit 0); a row edited with raw SQL is named (exit 1); the export
 * writes JSON and HTML; purge removes old runs, keeps anchors, and the store still verifies.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { STORE_KINDS, createTestDatabase, type TestDatabase } from '../helpers/stores.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');
let dir: string;

function baton(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  // The CLI runs from dist/ as an installed package would; built fresh so the audit commands are in it.
  const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('build failed');
  dir = mkdtempSync(join(tmpdir(), 'baton-audit-cli-'));
  writeFileSync(join(dir, 'wf.yaml'), `
name: audited
steps:
  - { id: a, kind: transform, expression: "{ 'n': input.n + 1, 'who': input.who }" }
  - { id: b, kind: transform, needs: [a], expression: "{ 'n': steps.a.output.n * 2 }" }
`);
  writeFileSync(join(dir, 'kyc.yaml'), `
name: kyc
sensitive: [input.ssn]
steps:
  - { id: a, kind: transform, expression: "{ 'tail': $substring(input.ssn, 7) }" }
`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(STORE_KINDS)('baton audit on %s', (k) => {
  let db: TestDatabase | undefined;
  let store = '';
  beforeEach(async () => {
    if (k === 'postgres') {
      db = await createTestDatabase('baton_audit_cli');
      store = db.url;
    } else store = join(dir, `store-${Math.random().toString(36).slice(2)}`);
  });
  afterEach(async () => {
    await db?.drop();
    db = undefined;
  });

  async function raw(sql: string, params: unknown[]): Promise<void> {
    if (k === 'sqlite') {
      const d = new Database(join(store, 'baton.db'));
      d.prepare(sql.replace(/\$\d/g, '?')).run(...params);
      d.close();
      return;
    }
    const c = new pg.Client({ connectionString: store });
    await c.connect();
    await c.query(sql, params);
    await c.end();
  }

  const run = (input: unknown) => {
    const r = baton(['run', 'wf.yaml', '--input', JSON.stringify(input), '--json', '--db', store]);
    expect(r.code).toBe(0);
    return JSON.parse(r.out).run_id as string;
  };

  it('verifies, exports, catches an edited row naming it, and exits 1', async () => {
    const id = run({ n: 1, who: 'ana' });
    run({ n: 2, who: 'bo' });
    let r = baton(['audit', 'verify', '--db', store]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK: 2 runs, \d+ events, 2 anchors verified/);

    r = baton(['audit', 'export', id, '--db', store, '--out', 'r.json', '--html', 'r.html']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/verified/);
    const rep = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(rep).toMatchObject({ run: { id, input: { n: 1, who: 'ana' }, output: { n: 4 } }, workflow: { name: 'audited' }, chain: { verification: { ok: true } } });
    expect(readFileSync(join(dir, 'r.html'), 'utf8')).toContain('<!doctype html>');

    await raw(`UPDATE events SET data = replace(data, 'ana', 'eve') WHERE run_id = $1 AND data LIKE '%ana%'`, [id]);
    r = baton(['audit', 'verify', '--db', store]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^TAMPERED: run ${id}: event \\d+ was altered \\(expected hash [0-9a-f]{64}, found [0-9a-f]{64}\\)`));
    r = baton(['audit', 'verify', id, '--db', store, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out).problem).toMatchObject({ kind: 'altered_event', runId: id });
  });

  it('masks sensitive fields in runs show and the export; --reveal shows them and is recorded; no key: refused', () => {
    const key = { BATON_ENCRYPTION_KEY: Buffer.alloc(32, 3).toString('hex') };
    let r = baton(['run', 'kyc.yaml', '--input', '{"ssn":"123-45-6789"}', '--json', '--db', store], key);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out);
    expect(res.output).toEqual({ tail: '6789' });
    r = baton(['runs', 'show', res.run_id, '--json', '--db', store], key);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('123-45-6789');
    expect(JSON.parse(r.out).run.input).toEqual({ ssn: '***' });
    r = baton(['audit', 'export', res.run_id, '--db', store], key);
    expect(r.out).not.toContain('123-45-6789');
    r = baton(['audit', 'export', res.run_id, '--reveal', '--db', store], key);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.run.input).toEqual({ ssn: '123-45-6789' });
    expect(rep.decisions).toContainEqual(expect.objectContaining({ type: 'audit.revealed', data: expect.objectContaining({ by: expect.stringMatching(/^cli:/) }) }));
    // Without the key: a new run is refused (exit 2, the fix named), nothing is stored.
    r = baton(['run', 'kyc.yaml', '--input', '{"ssn":"987-65-4321"}', '--db', store], { BATON_ENCRYPTION_KEY: '' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/error\[BATON_ENCRYPTION_KEY_MISSING\]: .*BATON_ENCRYPTION_KEY is not set/);
    expect(baton(['audit', 'verify', '--db', store]).out).toMatch(/^OK: 1 run,/);
  });

  it('purges ended runs past a policy (dry run first), keeps their anchors, and still verifies', () => {
    const id = run({ n: 1, who: 'ana' });
    let r = baton(['audit', 'purge', '--db', store, '--days', '0.000001', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`would purge ${id}`);
    expect(r.out).toContain('1 run(s) would be removed (dry run: nothing changed)');
    r = baton(['audit', 'purge', '--db', store, '--days', '0.000001', '--mode', 'archive', '--archive-dir', 'archive']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('1 run(s) removed');
    expect(existsSync(join(dir, 'archive', `${id}.json`))).toBe(true);
    expect(baton(['runs', 'show', id, '--db', store]).code).not.toBe(0);
    r = baton(['audit', 'verify', '--db', store]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK: 0 runs, 0 events, 1 anchor verified/);
    expect(r.out).toContain(`${id}: purged`);
    expect(r.out).toContain('anchor kept');
    expect(baton(['audit', 'purge', '--db', store, '--mode', 'archive']).code).toBe(2);
  });
});
