/**
 * Secrets never appear: a model service's credential (env var), a webhook's HMAC secret and the
 * caller's API key are used for real (a fake vendor over a socket that checks the key and, in
 * one model, ECHOES it in its error), and then searched for, as plain text, in everything Baton
 * keeps or says: every row of every table (raw SQL on SQLite and PostgreSQL), every file under
 * the store's folder, the gateway's answers (runs, steps, SSE events, workflows, services,
 * audit export, console API), the pino log lines and the process's stdout/stderr.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';
import { createGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, createTestDatabase, type TestDatabase } from '../helpers/stores.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

// Plain random strings (no sk-/bk_ prefix the log scrubber knows): a leak cannot hide behind a pattern.
const VENDOR_KEY = `vk${randomBytes(16).toString('hex')}`;
const HOOK_SECRET = `hs${randomBytes(16).toString('hex')}`;

const WF = `
name: chat
triggers:
  - webhook: { path: chat/in, secret: env:BATON_TEST_HOOK_SECRET }
    input: "{ 'text': body.text }"
steps:
  - id: answer
    kind: model
    service: good
    prompt: "{{ input.text }}"
`;
const PARROT_WF = `
name: parrot
steps:
  - id: answer
    kind: model
    service: parrot
    prompt: "hello"
`;
const ECHO_WF = `
name: echo
steps:
  - id: answer
    kind: model
    service: leaky
    prompt: "hello"
`;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe.each(STORE_KINDS)('secrets never appear (%s)', (kind) => {
  let dir = '';
  let db: TestDatabase | undefined;
  let vendor: FakeVendor;
  let b: Baton | undefined;
  let app: FastifyInstance | undefined;
  const written: string[] = [];
  let restore: () => void = () => {};
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-secrets-'));
    if (kind === 'postgres') db = await createTestDatabase();
    vendor = await new FakeVendor({ apiKey: VENDOR_KEY }).start();
    process.env.BATON_TEST_VENDOR_KEY = VENDOR_KEY;
    process.env.BATON_TEST_HOOK_SECRET = HOOK_SECRET;
    // The console: whatever the process writes while the test runs.
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((c: string | Uint8Array, ...r: unknown[]) => (written.push(String(c)), out(c as never, ...(r as []))) as never);
    process.stderr.write = ((c: string | Uint8Array, ...r: unknown[]) => (written.push(String(c)), err(c as never, ...(r as []))) as never);
    restore = () => {
      process.stdout.write = out;
      process.stderr.write = err;
    };
  });
  afterEach(async () => {
    restore();
    await app?.close();
    await b?.close();
    await vendor.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
    app = undefined;
    b = undefined;
    db = undefined;
    delete process.env.BATON_TEST_VENDOR_KEY;
    delete process.env.BATON_TEST_HOOK_SECRET;
  });

  it('credential, webhook secret and API key appear in no row, file, answer, log line or console output', async () => {
    vendor.model('m-good', { reply: (r) => `answer to ${r.prompt.slice(0, 20)}` });
    vendor.model('m-leaky', {});
    // And one that repeats it in a successful answer.
    vendor.model('m-parrot', { reply: () => `your key is ${VENDOR_KEY}, keep it safe` });
    // A broken vendor that repeats the key it was sent, in its error body.
    vendor.fault('m-leaky', { kind: '401', message: `Incorrect API key provided: ${VENDOR_KEY}` });
    let store;
    if (db) {
      const { PostgresStore } = await import('../../src/store/postgres/postgres-store.js');
      store = await PostgresStore.open(db.url, { poolSize: 4 });
    }
    b = await Baton.open({
      dir, store, pollIntervalMs: 20,
      services: {
        good: { provider: 'openai', model: 'm-good', endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_VENDOR_KEY' },
        leaky: { provider: 'openai', model: 'm-leaky', endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_VENDOR_KEY', retry: { max_attempts: 1 } },
        parrot: { provider: 'openai', model: 'm-parrot', endpoint: `${vendor.url}/v1`, credential: 'env:BATON_TEST_VENDOR_KEY' },
      },
    });
    const admin = await createApiKey(b.store, { name: 'root', role: 'admin', namespaces: ['*'] });
    const API_KEY = admin.key;
    const logLines: string[] = [];
    const logger = createLogger({ level: 'debug', stream: new Writable({ write(c, _e, cb) { logLines.push(String(c)); cb(); } }) });
    app = await createGateway(b, { logger });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const auth = { authorization: `Bearer ${API_KEY}` };
    const answers: string[] = [];
    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`, { headers: auth });
      const text = await res.text();
      answers.push(`${path} ${res.status} ${text}`);
      return { status: res.status, text };
    };
    const post = async (path: string, body: unknown, headers: Record<string, string> = auth) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      answers.push(`${path} ${res.status} ${text}`);
      return { status: res.status, text };
    };

    expect((await post('/workflows', (await import('yaml')).parse(WF))).status).toBe(201);
    expect((await post('/workflows', (await import('yaml')).parse(ECHO_WF))).status).toBe(201);
    expect((await post('/workflows', (await import('yaml')).parse(PARROT_WF))).status).toBe(201);
    // A run through the gateway (sync), one through the signed webhook, one that the vendor fails.
    const ok = JSON.parse((await post('/runs', { workflow: 'chat', input: { text: 'hi there' }, wait: 20 })).text) as { run_id: string; status: string };
    expect(ok.status).toBe('completed');
    const raw = JSON.stringify({ text: 'from the hook' });
    const sig = createHmac('sha256', HOOK_SECRET).update(raw).digest('hex');
    const hook = await fetch(`${base}/hooks/chat/in`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-baton-signature': `sha256=${sig}`, 'x-hub-signature-256': `sha256=${sig}` }, body: raw });
    answers.push(await hook.text());
    expect(hook.status).toBeLessThan(300);
    const bad = await fetch(`${base}/hooks/chat/in`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-baton-signature': 'sha256=00', 'x-hub-signature-256': 'sha256=00' }, body: raw });
    answers.push(await bad.text());
    expect(bad.status).toBe(401);
    const leak = JSON.parse((await post('/runs', { workflow: 'echo', input: {}, wait: 20 })).text) as { run_id: string; status: string };
    expect(leak.status).toBe('failed');
    const parrot = JSON.parse((await post('/runs', { workflow: 'parrot', input: {}, wait: 20 })).text) as { status: string; output: unknown };
    expect(parrot.status).toBe('completed');
    expect(JSON.stringify(parrot.output)).toContain('your key is [redacted], keep it safe');
    // The vendor really did get (and echo) the key: the search below is not vacuous.
    expect(vendor.lastRequest('m-good')?.headers.authorization).toBe(`Bearer ${VENDOR_KEY}`);
    await b.wait((await b.listRuns({ limit: 10 })).map((r) => r.id)[0], { timeoutMs: 20_000 });
    for (const r of await b.listRuns({ limit: 10 })) await b.wait(r.id, { timeoutMs: 20_000 });

    // Everything the API says about them.
    await get('/runs');
    for (const r of await b.listRuns({ limit: 10 })) {
      await get(`/runs/${r.id}`);
      await get(`/runs/${r.id}/events`);
      await get(`/runs/${r.id}/audit`);
      await get(`/runs/${r.id}/audit.html`);
    }
    for (const p of ['/workflows', '/services', '/services/good/history', '/lineage?service=good', '/approvals', '/schedules', '/console-api/whoami', '/console-api/costs', '/console-api/services', '/audit/verify', '/metrics', '/v1/models']) await get(p);
    expect(answers.join('\n')).toContain('Incorrect API key provided'); // the echo reached Baton…
    // The key's secret part is everything after `bk_<id>_`: base64url, so it may hold `_` itself
    // (splitting on `_` once gave a needle of one letter, found by chance everywhere).
    const keySecret = API_KEY.slice('bk_'.length + 12 + 1);
    expect(keySecret).toHaveLength(32);
    const leaksIn = (what: string, text: string) => [VENDOR_KEY, HOOK_SECRET, API_KEY, keySecret].filter((s) => text.includes(s)).map((s) => `${what} contains ${s.slice(0, 6)}…`);

    // Every row of every table, read raw.
    let rows = '';
    if (kind === 'sqlite') {
      const sql = new Database(join(dir, 'baton.db'), { readonly: true });
      for (const { name } of sql.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>) {
        for (const row of sql.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
          rows += `${name}: ${Object.values(row).map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v))).join(' | ')}\n`;
        }
      }
      sql.close();
    } else {
      const c = new pg.Client({ connectionString: db!.url });
      await c.connect();
      const tables = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
      for (const { table_name } of tables.rows as Array<{ table_name: string }>) {
        const r = await c.query(`SELECT * FROM "${table_name}"`);
        for (const row of r.rows as Array<Record<string, unknown>>) rows += `${table_name}: ${JSON.stringify(row, (_k, v) => (v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : typeof v === 'bigint' ? String(v) : v))}\n`;
      }
      await c.end();
    }
    expect(rows).toContain('Incorrect API key provided'); // the failed step's error is stored
    const files = filesUnder(dir).map((f) => [f, readFileSync(f).toString('latin1')] as const);

    const failures = [
      ...leaksIn('a table row', rows),
      ...files.flatMap(([f, t]) => leaksIn(`file ${f}`, t)),
      ...leaksIn('an API answer', answers.join('\n')),
      ...leaksIn('a log line', logLines.join('')),
      ...leaksIn('the console', written.join('')),
    ];
    expect(failures).toEqual([]);
    expect(logLines.length).toBeGreaterThan(5);
  });
});
