import { readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Baton, type BatonOptions } from '../../src/index.js';
import { BatonError } from '../../src/errors.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';


// Every test runs on each store: the embedded SQLite file and a fresh PostgreSQL database.
describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-engine-');
  /** An engine on this test's store (each call opens another, like another process). */
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // SQLite's own file, blobs and locks; PostgreSQL has its own such tests in test/store/postgres.test.ts.
  const sqliteOnly: typeof it = ((name: string, fn: () => Promise<void>) => (k === 'sqlite' ? it(name, fn) : undefined)) as typeof it;

  describe('engine', () => {
    it('runs independent steps in parallel without being told', async () => {
      const spans: Record<string, [number, number]> = {};
      const slow = async (input: unknown, ctx: { stepId: string }) => {
        const t0 = Date.now();
        await sleep(150);
        spans[ctx.stepId] = [t0, Date.now()];
        return input;
      };
      const b = await baton({ functions: { slow } });
      const v = await b.register(`
name: par
steps:
  - { id: a, kind: function, function: slow, input: "1" }
  - { id: b, kind: function, function: slow, input: "2" }
  - { id: c, kind: function, function: slow, input: "3" }
  - { id: join, kind: transform, expression: "steps.a.output + steps.b.output + steps.c.output" }
`);
      const r = await b.run(v);
      expect(r.status).toBe('completed');
      expect(r.output).toBe(6);
      // In parallel: every step started before any of them ended (overlap, not wall time, so a
      // busy machine cannot fail it).
      const starts = Object.values(spans).map((s) => s[0]);
      const ends = Object.values(spans).map((s) => s[1]);
      expect(Math.max(...starts)).toBeLessThan(Math.min(...ends));
    });

    it('skips a step whose condition is false and whatever depends only on it', async () => {
      const b = await baton();
      const v = await b.register(`
name: skip
steps:
  - { id: gate, kind: transform, expression: "input.go", when: "input.go = true" }
  - { id: only_gate, kind: transform, expression: "'ran'", needs: [gate] }
  - { id: after_only, kind: transform, expression: "steps.only_gate.output" }
  - { id: other, kind: transform, expression: "'other'" }
  - { id: mixed, kind: transform, expression: "[steps.gate.output, steps.other.output]" }
`);
      const r = await b.run(v, { go: false });
      expect(r.status).toBe('completed');
      const st = Object.fromEntries((await b.getSteps(r.id)).map((s) => [s.key, s.status]));
      expect(st).toEqual({ gate: 'skipped', only_gate: 'skipped', after_only: 'skipped', other: 'succeeded', mixed: 'succeeded' });
      // JSONata drops the missing (skipped) value from the array.
      expect(r.output).toEqual({ after_only: null, mixed: ['other'] });
      const r2 = await b.run(v, { go: true });
      expect(r2.output).toEqual({ after_only: 'ran', mixed: [true, 'other'] });
    });

    it('retries with backoff, records every attempt, and honours on_error', async () => {
      let calls = 0;
      const flaky = (_: unknown, ctx: { attempt: number }) => {
        calls++;
        if (ctx.attempt < 3) throw new Error(`try ${ctx.attempt} failed`);
        return { ok: ctx.attempt };
      };
      const fatal = () => {
        throw Object.assign(new Error('bad request'), { retryable: false });
      };
      const b = await baton({ functions: { flaky, fatal } });
      const v = await b.register(`
name: retry
steps:
  - { id: f, kind: function, function: flaky, retry: { max_attempts: 3, initial_delay: 20ms, jitter: 0 } }
  - { id: g, kind: function, function: fatal, retry: { max_attempts: 5 }, on_error: { continue: "{ 'fallback': error.code }" } }
  - { id: h, kind: transform, expression: "[steps.f.output.ok, steps.g.output.fallback, steps.g.status]" }
`);
      const t0 = Date.now();
      const r = await b.run(v);
      expect(r.status).toBe('completed');
      expect(r.output).toEqual([3, 'Error', 'failed']);
      expect(calls).toBe(3);
      // Backoff 20 ms then 40 ms before attempts 2 and 3.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
      const events = await b.getEvents(r.id);
      const fFails = events.filter((e) => e.stepKey === 'f' && e.type === 'step.failed');
      expect(fFails.map((e) => (e.data as { attempt: number }).attempt)).toEqual([1, 2]);
      expect(fFails.map((e) => (e.data as { retry_in_ms: number }).retry_in_ms)).toEqual([20, 40]);
      // A non-retryable error is not retried despite max_attempts 5.
      expect(events.filter((e) => e.stepKey === 'g' && e.type === 'step.failed').length).toBe(1);
    });

    it('fails the run with the step error when on_error is fail, and cancels the rest', async () => {
      const b = await baton({ functions: { boom: () => { throw new Error('kaput'); }, slow: () => sleep(300).then(() => 1) } });
      const v = await b.register(`
name: failing
steps:
  - { id: boom, kind: function, function: boom }
  - { id: slow, kind: function, function: slow }
  - { id: after, kind: transform, expression: "steps.boom.output" }
`);
      const r = await b.run(v);
      expect(r.status).toBe('failed');
      expect(r.error).toMatchObject({ message: 'step boom: kaput', details: { step: 'boom' } });
      const st = Object.fromEntries((await b.getSteps(r.id)).map((s) => [s.key, s.status]));
      expect(st.boom).toBe('failed');
      expect(st.after).toBe('cancelled');
    });

    it('routes an error to a handler step that runs only then', async () => {
      const b = await baton({ functions: { boom: () => { throw new Error('kaput'); } } });
      const v = await b.register(`
name: route
steps:
  - { id: risky, kind: function, function: boom, on_error: { route: handle } }
  - { id: next, kind: transform, expression: "'never'", needs: [risky] }
  - { id: handle, kind: transform, expression: "'handled: ' & steps.risky.error.message" }
  - { id: unused_handler, kind: transform, expression: "'no'" }
  - { id: fine, kind: transform, expression: "'ok'", on_error: { route: unused_handler } }
`);
      const r = await b.run(v);
      expect(r.status).toBe('completed');
      const st = Object.fromEntries((await b.getSteps(r.id)).map((s) => [s.key, s.status]));
      expect(st).toMatchObject({ risky: 'failed', next: 'skipped', handle: 'succeeded', fine: 'succeeded' });
      expect(st.unused_handler).toBe('pending');
      expect(r.output).toMatchObject({ handle: 'handled: kaput' });
    });

    it('enforces per-step timeouts and output schemas', async () => {
      const b = await baton({
        functions: {
          hang: (_: unknown, ctx: { signal: AbortSignal }) => new Promise((_r, rej) => ctx.signal.addEventListener('abort', () => rej(new Error('aborted')))),
          wrong: () => ({ label: 42 }),
        },
      });
      const v = await b.register(`
name: limits
steps:
  - { id: hang, kind: function, function: hang, timeout: 50ms, on_error: continue }
  - id: wrong
    kind: function
    function: wrong
    output_schema: { type: object, required: [label], properties: { label: { type: string } } }
    on_error: { continue: "error" }
  - { id: out, kind: transform, expression: "[steps.hang.error.code, steps.wrong.output.code, steps.wrong.output.message]" }
`);
      const r = await b.run(v);
      expect(r.output).toEqual(['BATON_STEP_TIMEOUT', 'BATON_OUTPUT_SCHEMA', expect.stringMatching(/\/label must be string/)]);
    });

    it('fails a guard like any other degraded output', async () => {
      const b = await baton({ functions: { unsure: () => ({ label: 'x', confidence: 0.4 }) } });
      const v = await b.register(`
name: guard
steps:
  - { id: m, kind: function, function: unsure, guard: "output.confidence >= 0.7" }
`);
      const r = await b.run(v);
      expect(r.status).toBe('failed');
      expect(r.error?.cause?.code).toBe('BATON_GUARD_FAILED');
    });

    it('maps over an array with a concurrency limit and keeps item order', async () => {
      let inFlight = 0;
      let peak = 0;
      const work = async (x: unknown) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await sleep(5 + Math.random() * 20);
        inFlight--;
        return (x as number) * 10;
      };
      const b = await baton({ functions: { work } });
      const v = await b.register(`
name: mapper
steps:
  - id: m
    kind: map
    over: "input.items"
    concurrency: 3
    step: { kind: function, function: work, input: "item" }
  - { id: empty, kind: map, over: "[]", step: { kind: transform, expression: "item" } }
`);
      const items = Array.from({ length: 20 }, (_, i) => i);
      const r = await b.run(v, { items });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ m: items.map((i) => i * 10), empty: [] });
      expect(peak).toBe(3);
    });

    it('fails a map when an item fails for good, and the map on_error applies', async () => {
      const b = await baton({ functions: { pick: (x: unknown) => { if (x === 3) throw new Error('three'); return x; } } });
      const v = await b.register(`
name: mapfail
steps:
  - { id: m, kind: map, over: "[1,2,3,4,5,6]", concurrency: 2, step: { kind: function, function: pick, input: "item" }, on_error: { continue: "'map failed'" } }
`);
      const r = await b.run(v);
      expect(r.status).toBe('completed');
      expect(r.output).toBe('map failed');
      const steps = await b.getSteps(r.id);
      expect(steps.find((s) => s.key === 'm[2]')?.status).toBe('failed');
    });

    it('runs a child workflow and returns its output', async () => {
      writeFileSync(join(suite.dir, 'child.yaml'), 'name: child\nsteps:\n  - { id: double, kind: transform, expression: "input.n * 2" }\n');
      writeFileSync(join(suite.dir, 'parent.yaml'), `name: parent
steps:
  - { id: kid, kind: workflow, workflow: ./child.yaml, input: "{ 'n': input.n }" }
  - { id: plus, kind: transform, expression: "steps.kid.output + 1" }
`);
      const b = await baton();
      const v = await b.registerFile(join(suite.dir, 'parent.yaml'));
      expect(JSON.parse(v.document).steps[0].workflow).toMatch(/^child@[0-9a-f]{16}$/);
      const r = await b.run(v, { n: 20 });
      expect(r.status).toBe('completed');
      expect(r.output).toBe(41);
      const kid = (await b.listRuns({ workflow: 'child' }))[0];
      expect(kid.parentRunId).toBe(r.id);
    });

    it('runs a child workflow for each item of a map, and fails the map with a failed child', async () => {
      // Each item waits for its child run; the child's end wakes it with its item kept (it was
      // replaced: the item ran again from nothing and waited for a child that had ended).
      const b = await baton();
      await b.register('name: kid\nsteps:\n  - { id: a, kind: transform, expression: "input.n = 3 ? $error(\'no three\') : input.n * 2" }\n');
      const ok = await b.register(`name: fan\nsteps:\n  - { id: m, kind: map, over: "input.ns", step: { kind: workflow, workflow: kid, input: "{ 'n': item }" } }\n`);
      const r = await b.run(ok, { ns: [1, 2, 4] }, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual([2, 4, 8]);
      const bad = await b.run(ok, { ns: [1, 3] }, { timeoutMs: 20_000 });
      expect(bad.status).toBe('failed');
      expect(JSON.stringify(bad.error)).toContain('no three');
    });

    it('pins a child workflow named by name to its version at registration', async () => {
      const b = await baton();
      await expect(b.register('name: p0\nsteps:\n  - { id: k, kind: workflow, workflow: nobody }\n')).rejects.toMatchObject({ code: 'BATON_WORKFLOW_NOT_FOUND' });
      const c1 = await b.register('name: kid\nsteps:\n  - { id: v, kind: transform, expression: "1" }\n');
      const parent = await b.register('name: p1\nsteps:\n  - { id: k, kind: workflow, workflow: kid }\n');
      expect(JSON.parse(parent.document).steps[0].workflow).toBe(c1.versionId);
      await b.register('name: kid\nsteps:\n  - { id: v, kind: transform, expression: "2" }\n');
      expect((await b.run(parent)).output).toBe(1);
    });

    it('sleeps until a time given by an expression', async () => {
      const b = await baton();
      const v = await b.register(`
name: until
steps:
  - { id: nap, kind: wait, until: "input.at" }
  - { id: bad, kind: wait, until: "'not a time'", on_error: { continue: "error.code" } }
`);
      const at = Date.now() + 150;
      const r = await b.run(v, { at: new Date(at).toISOString() });
      expect(r.status).toBe('completed');
      const nap = (await b.getSteps(r.id)).find((s) => s.key === 'nap')!;
      expect(nap.finishedAt!).toBeGreaterThanOrEqual(at);
      expect((r.output as { bad: string }).bad).toBe('BATON_EXPR_EVAL');
    });

    it('keeps a durable timer across a restart', async () => {
      const b1 = await baton();
      const v = await b1.register(`
name: sleeper
steps:
  - { id: nap, kind: wait, duration: 300ms }
  - { id: after, kind: transform, expression: "'awake'", needs: [nap] }
`);
      const id = await b1.start(v);
      await sleep(50);
      await b1.close();
      const t0 = Date.now();
      const b2 = await baton();
      const r = await b2.wait(id);
      expect(r.status).toBe('completed');
      expect(r.output).toBe('awake');
      const nap = (await b2.getSteps(id)).find((s) => s.key === 'nap')!;
      expect(nap.finishedAt! - r.createdAt).toBeGreaterThanOrEqual(300);
      // Picked up by the new engine, not left until the 30 s lease of the closed one ran out
      // (a wide bound: opening an engine on a busy machine takes its time).
      expect(Date.now() - t0).toBeLessThan(10_000);
    });

    it('waits for an external event matched by its correlation key', async () => {
      const b = await baton();
      const v = await b.register(`
name: evt
steps:
  - { id: paid, kind: wait, event: payment.received, key: "input.order" }
  - { id: done, kind: transform, expression: "'paid ' & $string(steps.paid.output.amount)" }
`);
      const id = await b.start(v, { order: 'o-7' });
      await until(async () => (await b.getRun(id)).status === 'waiting', 'the run to wait');
      // Nobody waits for o-8: buffered (for a wait with a lookback), not refused.
      expect(await b.sendEvent('payment.received', 'o-8', { amount: 1 })).toEqual({ delivered: 0, buffered: true });
      expect(await b.sendEvent('payment.received', 'o-7', { amount: 42 })).toEqual({ delivered: 1, buffered: false });
      const r = await b.wait(id);
      expect(r.output).toBe('paid 42');
    });

    it('times out an event wait', async () => {
      const b = await baton();
      const v = await b.register(`
name: evt_timeout
steps:
  - { id: paid, kind: wait, event: never.comes, timeout: 100ms, on_error: { continue: "'gave up'" } }
`);
      const r = await b.run(v);
      expect(r.output).toBe('gave up');
    });

    it('pauses, resumes and cancels runs', async () => {
      const gate: Array<() => void> = [];
      const b = await baton({ functions: { hold: () => new Promise<number>((res) => gate.push(() => res(1))) } });
      const v = await b.register(`
name: ctl
steps:
  - { id: first, kind: function, function: hold }
  - { id: second, kind: transform, expression: "steps.first.output + 1" }
`);
      const id = await b.start(v);
      while (gate.length === 0) await sleep(5);
      await b.pause(id);
      gate.shift()!();
      // The attempt in flight finished and was recorded; its successor was not run.
      const statuses = async () => Object.fromEntries((await b.getSteps(id)).map((s) => [s.key, s.status]));
      await until(async () => (await statuses()).first === 'succeeded', 'the attempt in flight to be recorded');
      await sleep(100);
      expect(await statuses()).toEqual({ first: 'succeeded', second: 'scheduled' });
      expect((await b.getRun(id)).status).toBe('paused');
      await expect(b.pause(id)).rejects.toMatchObject({ code: 'BATON_RUN_STATE' });
      await b.resume(id);
      expect((await b.wait(id)).output).toBe(2);

      const id2 = await b.start(v);
      while (gate.length === 0) await sleep(5);
      await b.cancel(id2);
      const r2 = await b.getRun(id2);
      expect(r2.status).toBe('cancelled');
      gate.shift()!();
      await sleep(50);
      expect((await b.getSteps(id2)).every((s) => s.status === 'cancelled')).toBe(true);
      await expect(b.cancel(id2)).rejects.toMatchObject({ code: 'BATON_RUN_STATE', message: `Run ${id2} is cancelled; cannot cancel it.` });
    });

    sqliteOnly('passes a 50 MB document through a workflow by reference', async () => {
      const big = 'x'.repeat(50 * 1024 * 1024);
      const b = await baton({ functions: { make: () => ({ doc: big }), measure: (i: unknown) => ({ length: (i as { doc: string }).doc.length }) } });
      const v = await b.register(`
name: big
steps:
  - { id: make, kind: function, function: make }
  - { id: measure, kind: function, function: measure, input: "steps.make.output" }
`);
      const r = await b.run(v);
      expect(r.output).toEqual({ length: big.length });
      const db = new Database(join(suite.dir, 'baton.db'), { readonly: true });
      const row = db.prepare(`SELECT length(output) AS n, output FROM steps WHERE run_id = ? AND key = 'make'`).get(r.id) as { n: number; output: string };
      db.close();
      expect(row.n).toBeLessThan(200);
      expect(JSON.parse(row.output)).toMatchObject({ $baton_blob: expect.stringMatching(/^sha256:/) });
      // Read through the API, the step's output is the document, not the reference.
      expect(((await b.getSteps(r.id)).find((s) => s.key === 'make')!.output as { doc: string }).doc.length).toBe(big.length);
      const blobDirs = readdirSync(join(suite.dir, 'blobs'));
      expect(blobDirs.length).toBeGreaterThan(0);
    });

    it('calls HTTP services with an idempotency key and retries 5xx', async () => {
      let hits = 0;
      const seen: string[] = [];
      const server: Server = createServer((req, res) => {
        hits++;
        seen.push(String(req.headers['idempotency-key']));
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          if (hits === 1) {
            res.writeHead(503).end('busy');
            return;
          }
          if (req.url?.startsWith('/html')) {
            res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ got: JSON.parse(body), path: req.url }));
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      try {
        const b = await baton();
        const v = await b.register(`
name: web
steps:
  - id: call
    kind: http
    method: POST
    url: "http://127.0.0.1:${port}/score/{{ input.id }}"
    input: "{ 'amount': input.amount }"
    retry: { max_attempts: 3, initial_delay: 10ms }
  - id: html
    kind: http
    url: "http://127.0.0.1:${port}/html"
    needs: [call]
    on_error: { continue: "error.code" }
output: "{ 'call': steps.call.output, 'html': steps.html.output }"
`);
        const r = await b.run(v, { id: 'a b', amount: 5 });
        expect(r.status).toBe('completed');
        expect(r.output).toMatchObject({ call: { status: 200, body: { got: { amount: 5 }, path: '/score/a%20b' } }, html: 'BATON_HTTP_BODY' });
        expect(seen[0]).toBe(`${r.id}:call:1`);
        expect(seen[1]).toBe(`${r.id}:call:2`);
      } finally {
        server.close();
      }
    });

    it('refuses an input that breaks the input schema, and stores nothing', async () => {
      const b = await baton();
      const v = await b.register(`
name: typed
input: { type: object, required: [amount], properties: { amount: { type: number, minimum: 0 } } }
steps:
  - { id: a, kind: transform, expression: "input.amount" }
`);
      await expect(b.start(v, { amount: -1 })).rejects.toMatchObject({ code: 'BATON_INPUT_INVALID', message: expect.stringMatching(/\/amount must be >= 0/) });
      expect(await b.listRuns()).toEqual([]);
    });

    it('fails a run clearly when an expression fails at run time', async () => {
      const b = await baton();
      const v = await b.register(`
name: badexpr
steps:
  - { id: a, kind: transform, expression: "input.text + 1" }
`);
      const r = await b.run(v, { text: 'abc' });
      expect(r.status).toBe('failed');
      expect(r.error?.cause).toMatchObject({ code: 'BATON_EXPR_EVAL', message: expect.stringMatching(/in step a: expression failed/) });
    });

    it('gives stable version ids: same content same id, different content different id', async () => {
      const b = await baton();
      const a1 = await b.register('name: v\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
      const a2 = await b.register('# a comment\nname: v\nsteps:\n  - kind: transform\n    id: a\n    expression: "1"\n');
      const a3 = await b.register('name: v\nsteps:\n  - { id: a, kind: transform, expression: "2" }\n');
      expect(a1.versionId).toBe(a2.versionId);
      expect(a3.versionId).not.toBe(a1.versionId);
      expect(a1.versionId).toMatch(/^v@[0-9a-f]{16}$/);
      expect([a1.seq, a3.seq]).toEqual([1, 2]);
      // A run stays pinned to the version it started on.
      const r = await b.run(a1);
      expect(r.versionId).toBe(a1.versionId);
      expect(r.output).toBe(1);
    });

    it('treats starting the same run id twice as one run', async () => {
      const b = await baton();
      const v = await b.register('name: once\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
      await b.start(v, {}, { id: 'fixed-id' });
      await b.start(v, {}, { id: 'fixed-id' });
      await b.wait('fixed-id');
      expect((await b.listRuns()).length).toBe(1);
    });

    sqliteOnly('reports a corrupt store without touching it', async () => {
      const file = join(suite.dir, 'baton.db');
      writeFileSync(file, 'this is not a database, just text that happens to be here '.repeat(100));
      const before = readFileSync(file);
      await expect(Baton.open({ dir: suite.dir })).rejects.toMatchObject({ code: 'BATON_STORE_CORRUPT' });
      expect(readFileSync(file).equals(before)).toBe(true);
    });

    sqliteOnly('reports a store locked by another process clearly', async () => {
      const b = await baton();
      const v = await b.register('name: lock\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
      const holder = new Database(join(suite.dir, 'baton.db'));
      holder.exec('BEGIN IMMEDIATE');
      try {
        const { SqliteStore } = await import('../../src/store/sqlite/sqlite-store.js');
        const s = new SqliteStore(join(suite.dir, 'baton.db'), { busyTimeoutMs: 50 });
        await expect(s.putVersion({ versionId: 'x@1', name: 'x', hash: '1', document: '{}' })).rejects.toMatchObject({ code: 'BATON_STORE_BUSY' });
        await s.close();
      } finally {
        holder.exec('ROLLBACK');
        holder.close();
      }
      expect((await b.run(v)).status).toBe('completed');
    });

    sqliteOnly('refuses a store written by a newer Baton', async () => {
      const b = await baton();
      await b.close();
      const db = new Database(join(suite.dir, 'baton.db'));
      db.prepare(`UPDATE meta SET value = '999' WHERE key = 'schema_version'`).run();
      db.close();
      await expect(Baton.open({ dir: suite.dir })).rejects.toMatchObject({ code: 'BATON_STORE_SCHEMA_NEWER' });
    });

    it('names unknown run ids and workflows', async () => {
      const b = await baton();
      await expect(b.getRun('run_nope')).rejects.toMatchObject({ code: 'BATON_RUN_NOT_FOUND' });
      await expect(b.start('no-such-workflow')).rejects.toBeInstanceOf(BatonError);
    });
  });

  describe('fairness and concurrency keys', () => {
    it('runs one run at a time per concurrency key, in order, while other keys run in parallel', async () => {
      const spans: Array<{ run: string; customer: string; start: number; end: number }> = [];
      // The first acme run is held until the test has seen the queue (and globex run past it).
      let releaseFirst = () => {};
      const first = new Promise<void>((r) => (releaseFirst = r));
      let held = false;
      const work = async (input: unknown, ctx: { runId: string }) => {
        const start = Date.now();
        const customer = (input as { customer: string }).customer;
        if (customer === 'acme' && !held) {
          held = true;
          await first;
        }
        await sleep(20);
        spans.push({ run: ctx.runId, customer, start, end: Date.now() });
        return 'ok';
      };
      const b = await baton({ functions: { work } });
      const v = await b.register(`
name: per-customer
concurrency: { key: input.customer }
steps:
  - { id: w, kind: function, function: work, input: input }
`);
      const ids: string[] = [];
      for (const c of ['acme', 'acme', 'globex', 'acme']) ids.push(await b.start(v, { customer: c }));
      expect((await b.getRun(ids[1])).status).toBe('queued');
      await until(async () => spans.some((s) => s.customer === 'globex'), 'globex to run while acme waits');
      releaseFirst();
      const done = await Promise.all(ids.map((id) => b.wait(id, { timeoutMs: 10_000 })));
      expect(done.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
      const acme = spans.filter((s) => s.customer === 'acme').sort((x, y) => x.start - y.start);
      expect(acme.map((s) => s.run)).toEqual([ids[0], ids[1], ids[3]]);
      for (let i = 1; i < acme.length; i++) expect(acme[i].start).toBeGreaterThanOrEqual(acme[i - 1].end);
      // globex did not wait for acme's queue.
      const globex = spans.find((s) => s.customer === 'globex')!;
      expect(globex.start).toBeLessThan(acme[1].start);
      expect((await b.getEvents(ids[1])).map((e) => e.type)).toContain('run.dequeued');
    });

    it('does not let a flooded namespace starve another', async () => {
      const order: string[] = [];
      const note = async (input: unknown) => {
        order.push((input as { tag: string }).tag);
        await sleep(2);
        return null;
      };
      // Runs are admitted by a process without a worker, then one worker (4 at a time) drains them.
      const client = await baton({ worker: false, functions: { note } });
      const v = await client.register('{ "name": "fair", "steps": [{ "id": "n", "kind": "function", "function": "note", "input": "input" }] }');
      const flood = [];
      for (let i = 0; i < 300; i++) flood.push(await client.start(v, { tag: `a${i}` }, { namespace: 'tenant-a' }));
      const quiet = [];
      for (let i = 0; i < 3; i++) quiet.push(await client.start(v, { tag: `b${i}` }, { namespace: 'tenant-b' }));
      const worker = await baton({ functions: { note }, concurrency: 4 });
      await Promise.all([...flood, ...quiet].map((id) => worker.wait(id, { timeoutMs: 30_000 })));
      expect(order).toHaveLength(303);
      // tenant-b's three runs are served within the first few claims, not after tenant-a's 300.
      const lastB = Math.max(...['b0', 'b1', 'b2'].map((t) => order.indexOf(t)));
      expect(lastB).toBeLessThan(20);
    });
  });
});
