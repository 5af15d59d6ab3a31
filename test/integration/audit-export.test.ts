/**
 * Audit export, sensitive fields and retention through the real gateway (a listening socket,
 * fetch) on every store: the report holds the version, input, steps, model calls, costs,
 * decisions and chain; the HTML escapes what runs produced; sensitive values never reach a
 * row in clear (checked with raw SQL), still flow to downstream steps, are `***` to readers and
 * revealed only to an admin who asks, on the record; retention removes old runs and keeps
 * their anchors so the store still verifies.
 */
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Baton, BatonOptions } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import type { ProviderFactory } from '../../src/providers/provider.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { purgeExpired } from '../../src/audit/retention.js';
import { verifyStore } from '../../src/audit/verify.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const SSN = '123-45-6789';
const DOCNO = 'P-99887766';

const KYC = `
name: kyc
sensitive:
  - input.customer.ssn
  - { path: steps.lookup.output.document_number, mode: mask }
  - { path: steps.lookup.output.pin, mode: hash }
steps:
  - { id: lookup, kind: transform, expression: "{ 'document_number': '${DOCNO}', 'pin': '4321', 'name': input.customer.name }" }
  - id: check
    kind: transform
    needs: [lookup]
    expression: "{ 'ssn_ok': $length(input.customer.ssn) = 11 and $substring(input.customer.ssn, 7) = '6789', 'doc': steps.lookup.output.document_number, 'doc_ok': steps.lookup.output.document_number = '${DOCNO}' }"
`;

const SCRIPTY = `
name: scripty
steps:
  - { id: ask, kind: model, service: llm, prompt: "hello {{ input.who }}" }
  - { id: echo, kind: transform, needs: [ask], expression: "{ 'html': input.who, 'answer': steps.ask.output }" }
`;

const model: ProviderFactory = () => ({
  name: 'm',
  defaultOperation: 'chat',
  async call() {
    return { output: 'hi there', usage: { inputTokens: 12, outputTokens: 3, cachedInputTokens: 0 } };
  },
});

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-audit-x-');
  let app: FastifyInstance | undefined;
  const saved = process.env.BATON_ENCRYPTION_KEY;
  beforeEach(() => {
    process.env.BATON_ENCRYPTION_KEY = KEY;
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    if (saved === undefined) delete process.env.BATON_ENCRYPTION_KEY;
    else process.env.BATON_ENCRYPTION_KEY = saved;
  });

  async function serve(opts: BatonOptions = {}, auth: 'off' | 'required' = 'off'): Promise<{ b: Baton; url: string }> {
    const b = await suite.baton(opts);
    app = buildGateway(b, { auth });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { b, url };
  }

  /** Every text column of every row of the store, as someone reading the database would. */
  async function dump(b: Baton): Promise<string> {
    const tables = ['runs', 'steps', 'events'];
    if (b.store.kind === 'sqlite') {
      const db = new Database(join(suite.dir, 'baton.db'), { readonly: true });
      try {
        return tables.map((t) => JSON.stringify(db.prepare(`SELECT * FROM ${t}`).all())).join('\n');
      } finally {
        db.close();
      }
    }
    const c = new pg.Client({ connectionString: (b.store as unknown as { config: { connectionString: string } }).config.connectionString });
    await c.connect();
    try {
      const out: string[] = [];
      for (const t of tables) out.push(JSON.stringify((await c.query(`SELECT * FROM ${t}`)).rows));
      return out.join('\n');
    } finally {
      await c.end();
    }
  }

  it('exports a run: version, input, steps, model calls with cost, chain; the HTML escapes a <script> the run produced', async () => {
    const { b, url } = await serve({ providers: { m: model }, services: { llm: { provider: 'm', model: 'tiny', version: '2026-01', price: { input_per_mtok: 1, output_per_mtok: 2 } } } });
    const v = await b.register(SCRIPTY);
    const r = await b.run(v, { who: '<script>alert(1)</script>' });
    expect(r.status).toBe('completed');
    const res = await fetch(`${url}/runs/${r.id}/audit`);
    expect(res.status).toBe(200);
    const rep = await res.json();
    expect(rep).toMatchObject({
      format: 'baton.audit/v1',
      run: { id: r.id, status: 'completed', input: { who: '<script>alert(1)</script>' } },
      workflow: { name: 'scripty', version_id: v.versionId, hash: v.hash, document: { name: 'scripty' } },
      model_calls: [{ step: 'ask', service: 'llm', provider: 'm', model: 'tiny', version: '2026-01', input_tokens: 12, output_tokens: 3, outcome: 'ok' }],
      chain: { verification: { ok: true } },
    });
    expect(rep.steps.map((s: { key: string; status: string }) => [s.key, s.status])).toEqual([['ask', 'succeeded'], ['echo', 'succeeded']]);
    expect(rep.cost.total_usd).toBeGreaterThan(0);
    expect(rep.cost.total_usd).toBeCloseTo(12 / 1e6 + 6 / 1e6, 12);
    expect(rep.events.every((e: { hash: string }) => /^[0-9a-f]{64}$/.test(e.hash))).toBe(true);
    expect(rep.chain.head).toBe(rep.events.at(-1).hash);
    expect(rep.chain.anchors).toHaveLength(1);

    const html = await fetch(`${url}/runs/${r.id}/audit.html`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await html.text();
    expect(page).not.toContain('<script>');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).not.toMatch(/<link|src=|https?:\/\/(?!www\.w3)/);
    expect(page).toContain('verified');

    // An unknown run is a 404 problem.
    expect((await fetch(`${url}/runs/run_nope/audit`)).status).toBe(404);

    // A deeply nested input (6 KB, 3,000 levels) no longer makes a page of ~90 MB: deep values
    // are shown on one line, and long ones cut (the JSON export has them whole).
    const deep = JSON.parse(`${'['.repeat(3000)}1${']'.repeat(3000)}`) as unknown;
    const plain = await b.register('name: plain\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
    const d = await b.run(plain, { deep, long: 'y'.repeat(400_000) });
    const deepPage = await (await fetch(`${url}/runs/${d.id}/audit.html`)).text();
    expect(deepPage.length).toBeLessThan(2_000_000);
    expect(deepPage).toContain('the JSON export has it whole');
    expect((await (await fetch(`${url}/runs/${d.id}/audit`)).json()).run.input.long).toHaveLength(400_000);
  });

  it('stores sensitive fields encrypted or hashed, computes with the real values, masks them for readers, reveals them to an admin on the record', async () => {
    const { b, url } = await serve({}, 'required');
    const admin = await createApiKey(b.store, { name: 'root', role: 'admin', namespaces: ['*'] });
    const viewer = await createApiKey(b.store, { name: 'eve', role: 'viewer', namespaces: ['*'] });
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    await b.register(KYC);
    const r = await b.run('kyc', { customer: { name: 'Ada', ssn: SSN } });
    expect(r.status).toBe('completed');
    // Downstream steps saw the real values (and the run output, not declared sensitive, holds the comparison).
    expect(r.output).toMatchObject({ ssn_ok: true, doc_ok: true });

    const rows = await dump(b);
    expect(rows).not.toContain(SSN);
    // The pin as a JSON string (stored rows hold JSON text, so quoted, maybe escaped): a bare
    // 4321 may well occur in a timestamp or a ciphertext.
    expect(rows).not.toMatch(/\\*"4321\\*"/);
    expect(rows).toContain('$baton_sealed');
    expect(rows).toContain('$baton_hashed');
    // `check` copied the document number into its own output (not declared): only that copy is in clear.
    expect(rows.split(DOCNO).length - 1).toBeLessThanOrEqual(3);

    const masked = await (await fetch(`${url}/runs/${r.id}`, as(viewer.key))).json();
    const lookup = masked.steps.find((s: { key: string }) => s.key === 'lookup');
    expect(lookup.output).toEqual({ document_number: '***', pin: '***', name: 'Ada' });
    expect(JSON.stringify(masked)).not.toContain('$baton_sealed');

    // Only an admin may reveal; the viewer's attempt is refused and records nothing.
    expect((await fetch(`${url}/runs/${r.id}?reveal=true`, as(viewer.key))).status).toBe(403);
    expect((await b.getEvents(r.id)).some((e) => e.type === 'audit.revealed')).toBe(false);
    const shown = await (await fetch(`${url}/runs/${r.id}?reveal=true`, as(admin.key))).json();
    expect(shown.steps.find((s: { key: string }) => s.key === 'lookup').output).toMatchObject({ document_number: DOCNO, pin: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    const revealed = (await b.getEvents(r.id)).filter((e) => e.type === 'audit.revealed');
    expect(revealed).toHaveLength(1);
    expect(revealed[0].data).toMatchObject({ by: expect.stringContaining(admin.record.id), via: 'GET /runs/{id}' });

    // The export is masked for the viewer too, and the reveal is in its decisions and chain.
    const rep = await (await fetch(`${url}/runs/${r.id}/audit`, as(viewer.key))).json();
    expect(rep.run.input).toEqual({ customer: { name: 'Ada', ssn: '***' } });
    expect(JSON.stringify(rep)).not.toContain(SSN);
    expect(rep.decisions.map((d: { type: string }) => d.type)).toContain('audit.revealed');
    expect(rep.chain.verification.ok).toBe(true);
    // The event stream is masked as well.
    const sse = await (await fetch(`${url}/runs/${r.id}/events`, as(viewer.key))).text();
    expect(sse).not.toContain(SSN);
    expect(sse).toContain('***');
  });

  it('decrypts for the engine: a step run by another engine after a restart computes with the real value', async () => {
    const b1 = await suite.baton();
    await b1.register(`
name: kyc-wait
sensitive: [input.customer.ssn, steps.lookup.output.document_number]
steps:
  - { id: lookup, kind: transform, expression: "{ 'document_number': input.customer.doc }" }
  - { id: approval, kind: wait, event: approve, key: "input.customer.name", timeout: 1h, needs: [lookup] }
  - { id: check, kind: transform, needs: [approval], expression: "{ 'tail': $substring(input.customer.ssn, 7), 'doc_tail': $substring(steps.lookup.output.document_number, 2) }" }
`);
    const id = await b1.start('kyc-wait', { customer: { name: 'Ada', ssn: SSN, doc: DOCNO } });
    await until(async () => (await b1.getRun(id)).status === 'waiting', 'the run to wait');
    expect((await b1.getRun(id)).status).toBe('waiting');
    await b1.close();
    // Another engine (as another process would) loads the run from the store: sealed input and output.
    const b2 = await suite.baton();
    expect((await b2.sendEvent('approve', 'Ada', { ok: true })).delivered).toBe(1);
    const r = await b2.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual({ tail: '6789', doc_tail: '99887766' });
    expect(await dump(b2)).not.toContain(SSN);
  });

  it('seals the answers of a service marked sensitive_output, still passing them downstream', async () => {
    const { b, url } = await serve({
      providers: { m: () => ({ name: 'm', defaultOperation: 'chat', async call() { return { output: 'the secret answer', usage: { inputTokens: 1, outputTokens: 1, cachedInputTokens: 0 } }; } }) },
      services: { vault: { provider: 'm', sensitive_output: true } },
    });
    await b.register(`
name: vaulted
steps:
  - { id: ask, kind: model, service: vault, prompt: "tell me" }
  - { id: len, kind: transform, needs: [ask], expression: "$length(steps.ask.output)" }
`);
    const r = await b.run('vaulted', {});
    expect(r.status).toBe('completed');
    expect(r.output).toBe('the secret answer'.length);
    expect(await dump(b)).not.toContain('the secret answer');
    const body = await (await fetch(`${url}/runs/${r.id}`)).json();
    expect(body.steps.find((s: { key: string }) => s.key === 'ask').output).toBe('***');
  });

  it('keeps the sensitive output of a child run sealed in the parent, while the parent steps use it', async () => {
    const b = await suite.baton();
    await b.register(`
name: child-secret
sensitive: [output.token, steps.mint.output.token]
steps:
  - { id: mint, kind: transform, expression: "{ 'token': 'tok-' & input.who & '-5555' }" }
output: "steps.mint.output"
`);
    await b.register(`
name: parent-of-secret
steps:
  - { id: kid, kind: workflow, workflow: child-secret, input: "{ 'who': input.who }" }
  - { id: use, kind: transform, needs: [kid], expression: "{ 'len': $length(steps.kid.output.token) }" }
`);
    const r = await b.run('parent-of-secret', { who: 'zed' });
    expect(r.status).toBe('completed');
    expect(r.output).toEqual({ len: 'tok-zed-5555'.length });
    expect(await dump(b)).not.toContain('tok-zed-5555');
  });

  it('refuses to start a run of a workflow with mask fields when no key is set, storing nothing', async () => {
    const b = await suite.baton();
    await b.register(KYC);
    delete process.env.BATON_ENCRYPTION_KEY;
    await expect(b.start('kyc', { customer: { name: 'Ada', ssn: SSN } })).rejects.toMatchObject({ code: 'BATON_ENCRYPTION_KEY_MISSING' });
    expect(await b.listRuns()).toHaveLength(0);
  });

  it('purges and archives runs past their retention, keeping anchors: the store still verifies', async () => {
    const { b, url } = await serve();
    await b.register(`
name: short
retention: { days: 1, mode: archive }
steps:
  - { id: a, kind: transform, expression: "input" }
`);
    await b.register(`
name: kept
steps:
  - { id: a, kind: transform, expression: "input" }
`);
    const old = await b.run('short', { n: 1 });
    const other = await b.run('kept', { n: 2 });
    const later = Date.now() + 2 * 86_400_000;
    const archiveDir = join(suite.dir, 'archive');
    // A dry run lists, changes nothing.
    const dry = await purgeExpired(b, { now: later, archiveDir, dryRun: true });
    expect(dry.candidates.map((c) => c.runId)).toEqual([old.id]);
    expect(await b.store.getRun(old.id)).toBeDefined();
    // Over the API: the default policy (days) catches the run of a workflow without its own.
    const res = await fetch(`${url}/audit/purge`, { method: 'POST', body: JSON.stringify({ dry_run: true, days: 0.5 }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect((await res.json()).candidates).toHaveLength(0); // both ended just now

    const done = await purgeExpired(b, { now: later, archiveDir });
    expect(done.purged).toEqual([old.id]);
    expect(await b.store.getRun(old.id)).toBeUndefined();
    expect(await b.store.auditEvents(old.id)).toEqual([]);
    const file = join(archiveDir, `${old.id}.json`);
    expect(existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ run: { id: old.id }, chain: { verification: { ok: true } } });
    expect(await b.store.getRun(other.id)).toBeDefined();

    const report = await verifyStore(b.store);
    expect(report.ok).toBe(true);
    expect(report.purged).toEqual([expect.objectContaining({ runId: old.id, mode: 'archive' })]);
    expect(report.anchors).toBe(2);
    const api = await fetch(`${url}/audit/verify?run=${old.id}`);
    expect(api.status).toBe(200);
    expect((await api.json()).purged).toHaveLength(1);
    expect((await fetch(`${url}/audit/verify`)).status).toBe(200);
  });

  it.runIf(k === 'sqlite')('deletes the blobs of purged runs that no remaining row refers to', async () => {
    const b = await suite.baton();
    await b.register(`
name: big
retention: { days: 1 }
limits: { inline_output_bytes: 64 }
steps:
  - { id: a, kind: transform, expression: "{ 'text': input.text }" }
`);
    const mine = 'x'.repeat(500);
    const shared = 'y'.repeat(500);
    const old = await b.run('big', { text: mine });
    const old2 = await b.run('big', { text: shared });
    const blobFiles = () => (b.blobs as unknown as { dir: string }).dir;
    const { readdirSync } = await import('node:fs');
    const count = () => readdirSync(blobFiles(), { recursive: true }).filter((f) => !String(f).includes('.tmp') && String(f).length > 10).length;
    const before = count();
    // Input and output are the same JSON, so one blob each (content-addressed).
    expect(before).toBe(2);
    const later = Date.now() + 2 * 86_400_000;
    // A newer run (not expired) shares old2's content: its blobs stay.
    await b.register(`
name: big-kept
limits: { inline_output_bytes: 64 }
steps:
  - { id: a, kind: transform, expression: "{ 'text': input.text }" }
`);
    await b.run('big-kept', { text: shared });
    const r = await purgeExpired(b, { now: later });
    expect(r.purged.sort()).toEqual([old.id, old2.id].sort());
    expect(r.blobsDeleted).toBe(1);
    const kept = (await b.store.listRuns())[0];
    expect((await b.getRun(kept.id)).input).toEqual({ text: shared });
    expect(count()).toBe(1);
  });

  it('a worker applies retention on its own sweep (BatonOptions.retention)', async () => {
    const b = await suite.baton({ leaseMs: 300, retention: { policy: { days: 1e-9, mode: 'purge' }, everyMs: 50 } });
    await b.register(`
name: brief
steps:
  - { id: a, kind: transform, expression: "input" }
`);
    const r = await b.run('brief', { n: 1 });
    for (let i = 0; i < 800 && (await b.store.getRun(r.id)); i++) await new Promise((res) => setTimeout(res, 25));
    expect(await b.store.getRun(r.id)).toBeUndefined();
    expect((await b.store.listPurged()).map((p) => p.runId)).toEqual([r.id]);
    expect((await verifyStore(b.store)).ok).toBe(true);
  });

  it('answers 409 naming the altered event when the store was tampered with, and requires admin', async () => {
    const { b, url } = await serve({}, 'required');
    const admin = await createApiKey(b.store, { name: 'root', role: 'admin', namespaces: ['*'] });
    const viewer = await createApiKey(b.store, { name: 'eve', role: 'viewer', namespaces: ['*'] });
    await b.register(`
name: t
steps:
  - { id: a, kind: transform, expression: "{ 'x': input.x }" }
`);
    const r = await b.run('t', { x: 'original' });
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    expect((await fetch(`${url}/audit/verify`, as(viewer.key))).status).toBe(403);
    expect((await fetch(`${url}/audit/verify`, as(admin.key))).status).toBe(200);
    const row = (await b.store.auditEvents(r.id)).find((e) => e.dataText?.includes('original'))!;
    const sql = 'UPDATE events SET data = $1 WHERE run_id = $2 AND seq = $3';
    const args = [row.dataText!.replace('original', 'changed'), r.id, row.seq];
    if (b.store.kind === 'sqlite') {
      const db = new Database(join(suite.dir, 'baton.db'));
      db.prepare(sql.replace(/\$\d/g, '?')).run(...args);
      db.close();
    } else {
      const c = new pg.Client({ connectionString: (b.store as unknown as { config: { connectionString: string } }).config.connectionString });
      await c.connect();
      await c.query(sql, args);
      await c.end();
    }
    const res = await fetch(`${url}/audit/verify?run=${r.id}`, as(admin.key));
    expect(res.status).toBe(409);
    expect((await res.json()).problem).toMatchObject({ kind: 'altered_event', runId: r.id, seq: row.seq });
  });
});
