/**
 * Replaying recorded runs (`baton.replay`), on every store: a model step answered by the fake
 * vendor over a real socket, HTTP steps against a local server that counts its calls, and a
 * transform that decides. A replay must call neither (unless live) and must name what the new
 * version decides differently.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { BatonError } from '../../src/errors.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';
import { countingServer, triage } from '../helpers/replay.js';

describe.each(STORE_KINDS)('replay on %s', (k) => {
  const suite = engineSuite(k, 'baton-replay-');
  let vendor: FakeVendor;
  let srv: Awaited<ReturnType<typeof countingServer>>;
  beforeEach(async () => {
    vendor = await new FakeVendor().start();
    vendor.model('gpt-x', { reply: () => ({ label: 'billing', score: 0.9 }) });
    srv = await countingServer();
  });
  afterEach(async () => {
    await vendor.close();
    await srv.close();
  });
  const open = (): Promise<Baton> => suite.baton({ services: { llm: { provider: 'openai', model: 'gpt-x', endpoint: `${vendor.url}/v1` } } });

  /** Records one run and forgets the calls it made. */
  async function recorded(b: Baton) {
    const v1 = await b.register(triage(srv.url));
    const run = await b.run(v1, { customer: 'c42', text: 'charged twice' });
    expect(run.status).toBe('completed');
    expect(run.output).toEqual({ decision: { escalate: true, label: 'billing' }, paged: true });
    expect(vendor.calls()).toBe(1);
    expect(srv.calls).toEqual(['GET /customers/c42', 'POST /page']);
    vendor.log.length = 0;
    srv.calls.length = 0;
    return { v1, run };
  }

  it('replays against the same version: every step the same, no model or HTTP call, the replay run marked and free', async () => {
    const b = await open();
    const { run } = await recorded(b);
    const report = await b.replay(run.id);
    expect(report.status).toBe('completed');
    expect(report.steps.map((s) => [s.step, s.change, s.source])).toEqual([
      ['lookup', 'same', 'recorded'], ['classify', 'same', 'recorded'], ['decide', 'same', 'evaluated'], ['page', 'same', 'recorded'],
    ]);
    expect(report.output.change).toBe('same');
    expect(report.summary).toMatchObject({ same: 4, differs: 0, live_calls: 0 });
    expect(report.summary_line).toBe('4 steps same; output same');
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);

    const replay = await b.getRun(report.replay_run_id);
    expect(replay.id).toMatch(/^replay_/);
    expect(replay.replayOf).toBe(run.id);
    expect(replay.namespace).toBe(run.namespace);
    expect(replay.cost).toBe(0);
    expect(await b.store.getModelCalls(replay.id)).toEqual([]);
    expect((await b.listRuns({ limit: 10 })).find((r) => r.id === replay.id)?.replayOf).toBe(run.id);
    expect((await b.getEvents(replay.id)).find((e) => e.type === 'run.replay_of')?.data).toEqual({ replay_of: run.id, from: null, live: false });
  });

  it('replays against a version with a changed threshold: the decision differs and the report names it, still without calls', async () => {
    const b = await open();
    const { run } = await recorded(b);
    const v2 = await b.register(triage(srv.url, { threshold: 0.95 }));
    const report = await b.replay(run.id, { version: v2.versionId });
    expect(report.version_after).toBe(v2.versionId);
    expect(report.steps.map((s) => [s.step, s.change])).toEqual([['lookup', 'same'], ['classify', 'same'], ['decide', 'differs'], ['page', 'skipped_now']]);
    const decide = report.steps.find((s) => s.step === 'decide')!;
    expect(decide.diff).toEqual([{ path: '/escalate', before: true, after: false }]);
    expect(report.output.change).toBe('differs');
    expect(report.summary_line).toBe('2 steps same, 1 differs (decide), 1 skipped now (page); output differs');
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);
    // By name: the latest version.
    expect((await b.replay(run.id, { version: 'triage' })).version_after).toBe(v2.versionId);
  });

  it('names new and removed steps', async () => {
    const b = await open();
    const { run } = await recorded(b);
    // page removed, note added.
    const doc = triage(srv.url)
      .replace(/  - id: page[\s\S]*?input: "steps.classify.output"\n/, `  - { id: note, kind: transform, expression: "'seen ' & steps.decide.output.label" }\n`)
      .replace(/^output: .*$/m, `output: 'steps.note.output'`);
    const v4 = await b.register(doc);
    const report = await b.replay(run.id, { version: v4.versionId });
    expect(report.steps.map((s) => [s.step, s.change])).toEqual([['lookup', 'same'], ['classify', 'same'], ['decide', 'same'], ['note', 'new'], ['page', 'removed']]);
    expect(report.summary_line).toBe('3 steps same, 1 new (note), 1 removed (page); output differs');
    expect(report.output).toMatchObject({ change: 'differs', after: 'seen billing' });
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);
  });

  it('forks from a mid step: steps before it are copied as recorded, it and what follows are replayed', async () => {
    const b = await open();
    const { run } = await recorded(b);
    const v2 = await b.register(triage(srv.url, { threshold: 0.95 }));
    const report = await b.replay(run.id, { version: v2.versionId, from: 'decide' });
    expect(report.from).toBe('decide');
    expect(report.steps.map((s) => [s.step, s.change, s.source ?? null])).toEqual([
      ['lookup', 'same', 'copied'], ['classify', 'same', 'copied'], ['decide', 'differs', 'evaluated'], ['page', 'skipped_now', null],
    ]);
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);
  });

  it('a model step whose input changed has no recording: a clear error naming it (no call); live calls the vendor once', async () => {
    const b = await open();
    const { run } = await recorded(b);
    const v3 = await b.register(triage(srv.url, { prompt: 'Classify this ticket' }));
    const err = await b.replay(run.id, { version: v3.versionId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatonError);
    expect((err as BatonError).code).toBe('BATON_REPLAY_NO_RECORDING');
    expect((err as BatonError).message).toMatch(/step classify \(model\) has no recorded answer to reuse: its input differs from the recorded one.*--live/);
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);

    const live = await b.replay(run.id, { version: v3.versionId, live: true });
    expect(live.status).toBe('completed');
    expect(live.steps.map((s) => [s.step, s.change, s.source])).toEqual([
      ['lookup', 'same', 'recorded'], ['classify', 'same', 'live'], ['decide', 'same', 'evaluated'], ['page', 'same', 'recorded'],
    ]);
    expect(live.summary.live_calls).toBe(1);
    expect(vendor.calls()).toBe(1);
    expect(srv.calls).toEqual([]);
  });

  it('refuses unknown runs, versions and steps, and unfinished runs, with nothing stored', async () => {
    const b = await open();
    const { run } = await recorded(b);
    const other = await b.register('name: other\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: BatonError) => `${e.code}: ${e.message}`);
    expect(await code(b.replay('run_nope'))).toMatch(/^BATON_RUN_NOT_FOUND/);
    expect(await code(b.replay(run.id, { version: 'triage@0000000000000000' }))).toMatch(/^BATON_WORKFLOW_NOT_FOUND/);
    expect(await code(b.replay(run.id, { version: other.versionId }))).toMatch(/^BATON_REPLAY_VERSION: .*belongs to workflow other, not triage/);
    expect(await code(b.replay(run.id, { from: 'decde' }))).toMatch(/^BATON_REPLAY_STEP_UNKNOWN: .*no step "decde" \(did you mean "decide"\?\)\. Fork from one of: lookup, classify, decide, page/);
    const waiting = await b.register('name: waits\nsteps:\n  - { id: w, kind: wait, event: never, key: "1" }\n');
    const pending = await b.start(waiting, {});
    expect(await code(b.replay(pending))).toMatch(/^BATON_RUN_STATE/);
    // An engine without a worker (an API-only gateway) cannot drive one, and says so.
    const apiOnly = await suite.baton({ worker: false, services: { llm: { provider: 'openai', model: 'gpt-x', endpoint: `${vendor.url}/v1` } } });
    expect(await code(apiOnly.replay(run.id))).toMatch(/^BATON_REPLAY_NO_WORKER: .*runs no worker/);
    // Nothing was started by the refusals.
    expect((await b.listRuns({ limit: 50 })).filter((r) => r.replayOf)).toEqual([]);
    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);
  });

  it('an engine closed during a replay cancels the replay run, saying why; the caller gets BATON_REPLAY_INTERRUPTED', async () => {
    const b = await open();
    const v = await b.register('name: hold\nsteps:\n  - { id: w, kind: wait, event: go, key: "input.k" }\n');
    const id = await b.start(v, { k: 'x' });
    await until(async () => (await b.getRun(id)).status === 'waiting' || undefined, 'the run waiting');
    await b.cancel(id, 'to replay it');
    // Cancelled while it waited, the run has no recorded answer for its wait: a live replay waits.
    const replaying = b.replay(id, { live: true });
    replaying.catch(() => undefined); // awaited below
    const waiting = await until(async () => (await b.listRuns({ workflow: 'hold' })).find((r) => r.replayOf === id && r.status === 'waiting'), 'the replay run waiting');
    await b.close();
    await expect(replaying).rejects.toMatchObject({ code: 'BATON_REPLAY_INTERRUPTED' });
    // Its recordings were in the closed engine only: the run is ended, not left waiting.
    const again = await open();
    expect((await again.getRun(waiting.id)).status).toBe('cancelled');
    expect((await again.getEvents(waiting.id)).find((e) => e.type === 'run.cancelled')?.data).toMatchObject({ reason: 'the process driving the replay closed its engine' });
  });

  it('a replay run claimed by a worker that does not drive it is refused there, and calls nothing', async () => {
    const b = await open();
    const { v1, run } = await recorded(b);
    // Admitted as a replay by another process that then went away: no process holds its recordings.
    const id = await b.start(v1, run.input, { id: 'replay_orphan', replay: { of: run.id, live: false } });
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('failed');
    expect(r.error?.cause?.code ?? r.error?.code).toBe('BATON_REPLAY_ORPHANED');
    expect(srv.calls).toEqual([]);
    expect(vendor.calls()).toBe(0);
  });

  it('replays waits, map items, emitted events (sink included) and functions from the record: no wait, no call, nothing published', async () => {
    let fnCalls = 0;
    const b = await suite.baton({ functions: { total: (i: unknown) => (fnCalls++, (i as Array<{ body: { tier: string } }>).length) } });
    const v = await b.register(`
name: orders
steps:
  - { id: approved, kind: wait, event: approve, key: "input.order", timeout: 1h }
  - id: tiers
    kind: map
    over: "input.customers"
    step: { kind: http, url: "${srv.url}/customers/{{ item }}" }
  - { id: count, kind: function, function: total, input: "steps.tiers.output" }
  - { id: notify, kind: emit, type: com.example.counted, subject: "input.order", sink: "${srv.url}/sink", data: "{ 'n': steps.count.output, 'by': steps.approved.output.by }" }
  - { id: big, kind: transform, expression: "steps.count.output > 1" }
`);
    const id = await b.start(v, { order: 'o1', customers: ['a', 'b', 'c'] });
    await until(async () => (await b.getRun(id)).status === 'waiting', 'the run to wait');
    await b.signalRun(id, 'approve', { by: 'ana' });
    const run = await b.wait(id, { timeoutMs: 20_000 });
    expect(run.status).toBe('completed');
    expect(srv.calls.filter((c) => c.startsWith('GET /customers/'))).toHaveLength(3);
    expect(srv.calls).toContain('POST /sink');
    expect(fnCalls).toBe(1);
    srv.calls.length = 0;

    const report = await b.replay(run.id);
    expect(report.status).toBe('completed');
    expect(report.steps.map((s) => [s.step, s.change, s.source])).toEqual([
      ['approved', 'same', 'recorded'], ['tiers', 'same', 'evaluated'], ['count', 'same', 'recorded'], ['notify', 'same', 'recorded'], ['big', 'same', 'evaluated'],
    ]);
    expect(report.output.change).toBe('same');
    expect(srv.calls).toEqual([]);
    expect(fnCalls).toBe(1);
    // Nothing was published by the replay: no emitted event in its history, nothing in the outbox.
    expect((await b.getEvents(report.replay_run_id)).filter((e) => e.type === 'event.emitted')).toEqual([]);
    expect((await b.store.pendingOutbox(Date.now() + 60_000, 100)).filter((r) => r.runId === report.replay_run_id)).toEqual([]);
  });

  it('a step that failed in the recorded run fails again the same way, without a call, and its on_error applies with the new logic', async () => {
    const b = await open();
    const doc = (fallback: string) => `
name: charge
steps:
  - { id: charge, kind: http, method: POST, url: "${srv.url}/reject", input: "input", on_error: { continue: "${fallback}" } }
  - { id: next, kind: transform, expression: "steps.charge.output" }
`;
    const v1 = await b.register(doc("{ 'declined': error.code }"));
    const run = await b.run(v1, { amount: 5 });
    expect(run.status).toBe('completed');
    expect(run.output).toEqual({ declined: 'BATON_HTTP_STATUS' });
    expect(srv.calls).toEqual(['POST /reject']);
    srv.calls.length = 0;
    const v2 = await b.register(doc("{ 'declined': error.code, 'retry_later': true }"));
    const report = await b.replay(run.id, { version: v2.versionId });
    expect(report.steps.map((s) => [s.step, s.change, s.source])).toEqual([['charge', 'differs', 'recorded'], ['next', 'differs', 'evaluated']]);
    expect(report.steps[0].after).toMatchObject({ status: 'failed', output: { declined: 'BATON_HTTP_STATUS', retry_later: true }, error: { code: 'BATON_HTTP_STATUS' } });
    expect(report.steps[0].diff).toEqual([{ path: '/retry_later', before: null, after: true }]);
    expect(srv.calls).toEqual([]);
  });

  describe('POST /runs/{id}/replay over a real socket', () => {
    let app: FastifyInstance | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    it('answers the report (operator role, namespace checked), problems for bad requests, and calls nothing', async () => {
      const b = await open();
      app = buildGateway(b, { auth: 'required' });
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      const v1 = await b.register(triage(srv.url));
      const run = await b.run(v1, { customer: 'c7', text: 'refund please' }, { namespace: 'team-b' });
      expect(run.status).toBe('completed');
      const v2 = await b.register(triage(srv.url, { threshold: 0.95 }));
      vendor.log.length = 0;
      srv.calls.length = 0;
      const operatorB = await createApiKey(b.store, { name: 'ob', role: 'operator', namespaces: ['team-b'] });
      const viewerB = await createApiKey(b.store, { name: 'vb', role: 'viewer', namespaces: ['team-b'] });
      const operatorA = await createApiKey(b.store, { name: 'oa', role: 'operator', namespaces: ['team-a'] });
      const replay = (key: string, body: unknown, id = run.id) =>
        fetch(`${url}/runs/${id}/replay`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` } });

      expect((await replay(viewerB.key, {})).status).toBe(403);
      expect((await replay(operatorA.key, {})).status).toBe(404);
      const typo = await replay(operatorB.key, { version: v2.versionId, from: 'pagee' });
      expect(typo.status).toBe(400);
      expect(typo.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(((await typo.json()) as { detail: string }).detail).toMatch(/no step "pagee" \(did you mean "page"\?\)/);
      expect((await replay(operatorB.key, { version: 'nope' })).status).toBe(404);
      expect((await replay(operatorB.key, { bogus: 1 })).status).toBe(400);
      expect((await b.listRuns({ limit: 50 })).filter((r) => r.replayOf)).toEqual([]);

      const res = await replay(operatorB.key, { version: v2.versionId });
      expect(res.status).toBe(200);
      const report = (await res.json()) as { replay_run_id: string; steps: Array<{ step: string; change: string }>; summary_line: string };
      expect(report.steps.map((s) => `${s.step}:${s.change}`)).toEqual(['lookup:same', 'classify:same', 'decide:differs', 'page:skipped_now']);
      expect(report.summary_line).toContain('1 differs (decide)');
      expect(vendor.calls()).toBe(0);
      expect(srv.calls).toEqual([]);

      // The replay run is listed as one, in the run's namespace.
      const listed = (await (await fetch(`${url}/runs`, { headers: { authorization: `Bearer ${operatorB.key}` } })).json()) as Array<{ run_id: string; replay_of?: string; cost: number }>;
      expect(listed.find((r) => r.run_id === report.replay_run_id)).toMatchObject({ replay_of: run.id, cost: 0 });
      expect(listed.find((r) => r.run_id === run.id)?.replay_of).toBeUndefined();

      // A changed model input: 422 naming the step, nothing called.
      const v3 = await b.register(triage(srv.url, { prompt: 'Classify this ticket' }));
      const missing = await replay(operatorB.key, { version: v3.versionId });
      expect(missing.status).toBe(422);
      const p = (await missing.json()) as { code: string; detail: string };
      expect(p.code).toBe('BATON_REPLAY_NO_RECORDING');
      expect(p.detail).toMatch(/step classify \(model\)/);
      expect(vendor.calls()).toBe(0);
    });
  });
});
