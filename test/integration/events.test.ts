/**
 * Events with lookback (buffered deliveries consumed by waits that arm later), CloudEvent
 * publication by `emit` steps, and cloudevent triggers — on every store.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Baton, BatonOptions } from '../../src/index.js';
import { MAX_EVENT_HOPS } from '../../src/steps/emit.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

/** A function step that blocks until the test releases it: the run cannot reach its wait before. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let entered!: () => void;
  const reached = new Promise<void>((r) => (entered = r));
  return { fn: async (i: unknown) => { entered(); await opened; return i; }, open: () => open(), reached };
}

describe.each(STORE_KINDS)('on %s', (k) => {
  const suite = engineSuite(k, 'baton-events-');
  const baton = (opts: BatonOptions = {}): Promise<Baton> => suite.baton(opts);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  describe('event inbox with lookback', () => {
    const flow = (lookback: string) => `
name: lb
steps:
  - { id: gate, kind: function, function: gate }
  - { id: paid, kind: wait, event: payment, key: "input.order", lookback: ${lookback}, needs: [gate] }
`;

    it('buffers an event that arrives before the wait and the wait takes it when it arms', async () => {
      const g = gate();
      const b = await baton({ functions: { gate: g.fn } });
      const id = await b.start(await b.register(flow('30s')), { order: 'o-1' });
      await g.reached;
      expect(await b.sendEvent('payment', 'o-1', { amount: 5 })).toEqual({ delivered: 0, buffered: true });
      g.open();
      const r = await b.wait(id, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual({ amount: 5 });
      const types = (await b.getEvents(id)).map((e) => e.type);
      expect(types).toContain('signal.received');
    });

    it('does not take a buffered event older than its lookback', async () => {
      const g = gate();
      const b = await baton({ functions: { gate: g.fn } });
      const id = await b.start(await b.register(flow('100ms')), { order: 'o-2' });
      await g.reached;
      expect((await b.sendEvent('payment', 'o-2', { n: 'old' })).buffered).toBe(true);
      await sleep(400); // the event is now 4x older than the lookback
      g.open();
      for (let i = 0; i < 500 && (await b.getRun(id)).status !== 'waiting'; i++) await sleep(20);
      expect((await b.getRun(id)).status).toBe('waiting');
      expect(await b.sendEvent('payment', 'o-2', { n: 'new' })).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(id, { timeoutMs: 20_000 })).output).toEqual({ n: 'new' });
    });

    it('a wait without lookback ignores buffered events', async () => {
      const g = gate();
      const b = await baton({ functions: { gate: g.fn } });
      const v = await b.register(`
name: nolb
steps:
  - { id: gate, kind: function, function: gate }
  - { id: paid, kind: wait, event: payment, key: "input.order", needs: [gate] }
`);
      const id = await b.start(v, { order: 'o-3' });
      await g.reached;
      await b.sendEvent('payment', 'o-3', { n: 1 });
      g.open();
      for (let i = 0; i < 500 && (await b.getRun(id)).status !== 'waiting'; i++) await sleep(20);
      expect((await b.getRun(id)).status).toBe('waiting');
      await b.sendEvent('payment', 'o-3', { n: 2 });
      expect((await b.wait(id, { timeoutMs: 20_000 })).output).toEqual({ n: 2 });
    });

    it('two quick events for one key feed two successive waits, in order', async () => {
      const g = gate();
      const b = await baton({ functions: { gate: g.fn } });
      const v = await b.register(`
name: twice
steps:
  - { id: gate, kind: function, function: gate }
  - { id: first, kind: wait, event: tick, key: "input.k", lookback: 1m, needs: [gate] }
  - { id: second, kind: wait, event: tick, key: "input.k", lookback: 1m, needs: [first] }
  - { id: out, kind: transform, expression: "[steps.first.output.n, steps.second.output.n]" }
`);
      const id = await b.start(v, { k: 'x' });
      await g.reached;
      expect((await b.sendEvent('tick', 'x', { n: 1 })).buffered).toBe(true);
      expect((await b.sendEvent('tick', 'x', { n: 2 })).buffered).toBe(true);
      g.open();
      const r = await b.wait(id, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toEqual([1, 2]);
    });

    it('one event wakes one waiter; an event id delivered twice changes nothing the second time', async () => {
      const b = await baton();
      const v = await b.register(`
name: one
steps:
  - { id: w, kind: wait, event: go, key: "'same'" }
`);
      const a = await b.start(v, {});
      const c = await b.start(v, {});
      for (let i = 0; i < 500 && ((await b.getRun(a)).status !== 'waiting' || (await b.getRun(c)).status !== 'waiting'); i++) await sleep(20);
      expect(await b.sendEvent('go', 'same', { n: 1 }, { eventId: 'e-1' })).toEqual({ delivered: 1, buffered: false });
      expect(await b.sendEvent('go', 'same', { n: 1 }, { eventId: 'e-1' })).toEqual({ delivered: 0, buffered: false, duplicate: true });
      const first = await Promise.race([b.wait(a), b.wait(c)]);
      expect(first.output).toEqual({ n: 1 });
      const other = first.id === a ? c : a;
      expect((await b.getRun(other)).status).toBe('waiting');
      expect(await b.sendEvent('go', 'same', { n: 2 }, { eventId: 'e-2' })).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(other, { timeoutMs: 20_000 })).output).toEqual({ n: 2 });
    });

    it('many parallel deliveries and arms from two engines: every event taken exactly once', async () => {
      const N = 40;
      const b1 = await baton();
      const b2 = await baton();
      const v = await b1.register(`
name: race
steps:
  - { id: nap, kind: wait, until: "input.at" }
  - { id: w, kind: wait, event: tick, key: "'shared'", lookback: 5m, needs: [nap] }
`);
      // Run i arms its wait at about t0 + 8i ms and event i is sent at about the same instant
      // from the other engine: deliveries race arms throughout (some find a waiter, some are
      // buffered and must be taken by a later arm).
      const t0 = Date.now() + 300;
      const ids = await Promise.all(Array.from({ length: N }, (_, i) => (i % 2 ? b1 : b2).start(v, { at: t0 + 8 * i })));
      const results = await Promise.all(Array.from({ length: N }, (_, i) => new Promise<{ delivered: number; buffered: boolean }>((res, rej) => {
        setTimeout(() => (i % 2 ? b2 : b1).sendEvent('tick', 'shared', { n: i }).then(res, rej), Math.max(0, t0 + 8 * i + (i % 4) * 15 - Date.now()));
      })));
      expect(results.every((r) => r.delivered + (r.buffered ? 1 : 0) === 1)).toBe(true);
      const outs: number[] = [];
      for (const id of ids) {
        const r = await b1.wait(id, { timeoutMs: 15_000 });
        expect(r.status).toBe('completed');
        outs.push((r.output as { n: number }).n);
      }
      // Each event taken once (no duplicates), none lost (all N runs got one).
      expect([...outs].sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, i) => i));
    });
  });

  describe('emit and cloudevent triggers', () => {
    /** A workflow that echoes its input, started by CloudEvents of `type` (`extra`: more of the trigger). */
    const listener = (name: string, type: string, extra = '') => `
name: ${name}
triggers:
  - cloudevent: { type: ${type} }${extra}
steps:
  - { id: x, kind: transform, expression: "input" }
`;
    const consumer = `
name: consumer
triggers:
  - cloudevent: { type: order.created }
    input: "{ 'order': data.order, 'via': event.source }"
steps:
  - { id: got, kind: transform, expression: "input" }
`;

    it('an emit step publishes with its commit: one run of the matching workflow, none of others', async () => {
      const b = await baton();
      await b.register(consumer);
      await b.register(`
name: other
triggers:
  - cloudevent: { type: order.deleted }
steps:
  - { id: x, kind: transform, expression: "1" }
`);
      const producer = await b.register(`
name: producer
steps:
  - { id: announce, kind: emit, type: order.created, data: "{ 'order': input.order }" }
`);
      const r = await b.run(producer, { order: 'A-1' }, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(r.output).toMatchObject({ specversion: '1.0', id: `${r.id}/announce`, type: 'order.created', source: 'baton://producer', data: { order: 'A-1' } });
      const emitted = (await b.getEvents(r.id)).filter((e) => e.type === 'event.emitted');
      expect(emitted).toHaveLength(1);
      expect(emitted[0]).toMatchObject({ stepKey: 'announce', data: { id: `${r.id}/announce`, type: 'order.created' } });
      const runs = await b.listRuns({ workflow: 'consumer' });
      expect(runs).toHaveLength(1);
      expect(await b.listRuns({ workflow: 'other' })).toHaveLength(0);
      expect((await b.wait(runs[0].id, { timeoutMs: 20_000 })).output).toEqual({ order: 'A-1', via: 'baton://producer' });
      // Dispatched again (a crash between dispatch and marking it done, or two sweepers): same run.
      const again = await b.publish(r.output as never, { namespace: 'default' });
      expect(again.runs.map((x) => x.runId)).toEqual([runs[0].id]);
      expect(await b.listRuns({ workflow: 'consumer' })).toHaveLength(1);
    });

    it('an emit step that fails publishes nothing, however often it was executed', async () => {
      const b = await baton();
      await b.register(consumer);
      // The guard fails every attempt: executed three times, never committed as succeeded.
      const producer = await b.register(`
name: failing_producer
steps:
  - id: announce
    kind: emit
    type: order.created
    data: "{ 'order': input.order }"
    guard: "false"
    retry: { max_attempts: 3, initial_delay: 10ms }
`);
      const r = await b.run(producer, { order: 'F-1' }, { timeoutMs: 20_000 });
      expect(r.status).toBe('failed');
      expect((await b.getEvents(r.id)).filter((e) => e.type === 'step.failed')).toHaveLength(3);
      expect((await b.getEvents(r.id)).filter((e) => e.type === 'event.emitted')).toHaveLength(0);
      expect(await b.listRuns({ workflow: 'consumer' })).toHaveLength(0);
    });

    it('a workflow refusing the event (input schema) is recorded in the emitting run; others still start', async () => {
      const b = await baton();
      await b.register(consumer);
      await b.register(`
name: picky
input: { type: object, required: [sku], properties: { sku: { type: string } } }
triggers:
  - cloudevent: { type: order.created }
steps:
  - { id: x, kind: transform, expression: "input" }
`);
      const producer = await b.register(`
name: producer3
steps:
  - { id: announce, kind: emit, type: order.created, data: "{ 'order': input.order }" }
`);
      const r = await b.run(producer, { order: 'C-3' }, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      expect(await b.listRuns({ workflow: 'consumer' })).toHaveLength(1);
      expect(await b.listRuns({ workflow: 'picky' })).toHaveLength(0);
      const und = (await b.getEvents(r.id)).filter((e) => e.type === 'event.undelivered');
      expect(und).toHaveLength(1);
      expect(und[0].data).toMatchObject({ failed: [{ workflow: 'picky', error: { code: 'BATON_INPUT_INVALID' } }] });
    });

    it('an emitted event with a subject wakes the wait keyed by it, or is buffered for its lookback', async () => {
      const b = await baton();
      const waiter = await b.register(`
name: waiter
steps:
  - { id: paid, kind: wait, event: order.paid, key: "input.order", lookback: 1m }
`);
      const payer = await b.register(`
name: payer
steps:
  - { id: pay, kind: emit, type: order.paid, subject: "input.order", data: "{ 'amount': input.amount }" }
`);
      // Before any wait: buffered, then taken by a wait arming within its lookback.
      const early = await b.run(payer, { order: 'P-1', amount: 3 }, { timeoutMs: 20_000 });
      expect(early.output).toMatchObject({ type: 'order.paid', subject: 'P-1' });
      expect((await b.run(waiter, { order: 'P-1' }, { timeoutMs: 20_000 })).output).toEqual({ amount: 3 });
      // While a wait is parked: woken directly.
      const w = await b.start(waiter, { order: 'P-2' });
      for (let i = 0; i < 500 && (await b.getRun(w)).status !== 'waiting'; i++) await sleep(20);
      expect((await b.run(payer, { order: 'P-2', amount: 4 }, { timeoutMs: 20_000 })).status).toBe('completed');
      expect((await b.wait(w, { timeoutMs: 20_000 })).output).toEqual({ amount: 4 });
      const got = (await b.getEvents(w)).find((e) => e.type === 'signal.received');
      expect(got?.data).toMatchObject({ event: 'order.paid', key: 'P-2' });
    });

    it('an emit with a sink POSTs the CloudEvent (structured or binary), retrying a failing sink with the same id', async () => {
      const got: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
      let failures = 1;
      const server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          got.push({ headers: req.headers, body });
          if (failures-- > 0) res.writeHead(503).end('busy');
          else res.writeHead(202).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
      try {
        const b = await baton();
        await b.register(consumer);
        const v = await b.register(`
name: sinky
steps:
  - { id: out, kind: emit, type: order.created, subject: "input.order", data: "{ 'order': input.order }", sink: "${url}", retry: { max_attempts: 3, initial_delay: 10ms } }
  - { id: bin, kind: emit, type: order.audit, data: "{ 'order': input.order }", sink: "${url}", sink_mode: binary, needs: [out] }
`);
        const r = await b.run(v, { order: 'S-9' }, { timeoutMs: 20_000 });
        expect(r.status).toBe('completed');
        // First attempt refused (503), the retry delivered: same event id both times.
        expect(got).toHaveLength(3);
        const [a1, a2, bin] = got;
        expect(a1.headers['content-type']).toMatch(/application\/cloudevents\+json/);
        expect(JSON.parse(a1.body).id).toBe(`${r.id}/out`);
        expect(JSON.parse(a2.body)).toMatchObject({ id: `${r.id}/out`, type: 'order.created', subject: 'S-9', data: { order: 'S-9' } });
        expect(bin.headers).toMatchObject({ 'ce-id': `${r.id}/bin`, 'ce-type': 'order.audit', 'ce-specversion': '1.0', 'content-type': 'application/json' });
        expect(JSON.parse(bin.body)).toEqual({ order: 'S-9' });
        // Published once to triggers despite two attempts.
        expect(await b.listRuns({ workflow: 'consumer' })).toHaveLength(1);
      } finally {
        server.close();
      }
    });

    it('an emit starts workflows of its own namespace and the default one, not another team', async () => {
      const b = await baton();
      await b.register(listener('shared_listener', 'team.ping'));
      await b.register(listener('a_listener', 'team.ping'), undefined, { namespace: 'team-a' });
      await b.register(listener('b_listener', 'team.ping'), undefined, { namespace: 'team-b' });
      const p = await b.register(`
name: pinger
steps:
  - { id: ping, kind: emit, type: team.ping, data: "{ 'hello': 1 }" }
`, undefined, { namespace: 'team-a' });
      const r = await b.run(p, {}, { timeoutMs: 20_000 });
      expect(r.status).toBe('completed');
      const runs = (await b.listRuns()).filter((x) => x.workflow !== 'team-a/pinger');
      expect(runs.map((x) => x.workflow).sort()).toEqual(['shared_listener', 'team-a/a_listener']);
      expect(runs.every((x) => x.namespace === 'team-a')).toBe(true);
      expect(await b.listRuns({ workflow: 'team-b/b_listener' })).toHaveLength(0);
    });

    it("a shared workflow's trigger started by one event in two namespaces starts a run in each (derived or run_id ids alike); again in one, nothing new", async () => {
      const b = await baton();
      await b.register(listener('shared_derived', 'team.relay'));
      await b.register(listener('shared_keyed', 'team.relay', '\n    run_id: "data.order"'));
      const e = { id: 'R-1', type: 'team.relay', source: '/upstream', data: { order: 'O-9' } };
      const a = await b.publish(e, { namespace: 'team-a' });
      const c = await b.publish(e, { namespace: 'team-b' });
      const d = await b.publish(e); // every namespace: the shared workflows run in default
      for (const r of [a, c, d]) {
        expect(r.failed).toEqual([]);
        expect(r.runs.map((x) => x.workflow).sort()).toEqual(['shared_derived', 'shared_keyed']);
      }
      const namespaces = async (r: typeof a) => Promise.all(r.runs.map(async (x) => (await b.getRun(x.runId)).namespace));
      expect([await namespaces(a), await namespaces(c), await namespaces(d)]).toEqual([['team-a', 'team-a'], ['team-b', 'team-b'], ['default', 'default']]);
      expect((await b.publish(e, { namespace: 'team-a' })).runs.map((x) => x.runId).sort()).toEqual(a.runs.map((x) => x.runId).sort());
      expect(await b.listRuns()).toHaveLength(6);
    });

    it('a workflow whose emit starts itself is warned of at registration and stopped by the hop limit', async () => {
      const b = await baton();
      const v = await b.register(`
name: loop
triggers:
  - cloudevent: { type: loop.tick }
steps:
  - { id: again, kind: emit, type: loop.tick, data: "input" }
`);
      expect(v.warnings).toEqual([expect.objectContaining({ path: 'steps[0].type', severity: 'warning', message: expect.stringContaining('own trigger') })]);
      const first = await b.publish({ id: 'L-1', type: 'loop.tick', source: '/test', data: { n: 1 } });
      expect(first.runs).toHaveLength(1);
      // The event that started the first run came from outside (0 hops): 16 emits pass it on,
      // the runs they start make 17, and the 17th run's emit fails instead of starting an 18th.
      const failed = await until(async () => (await b.listRuns({ workflow: 'loop', status: ['failed'] }))[0], 'the run whose emit hit the limit');
      expect(failed.error).toMatchObject({ code: 'BATON_EVENT_HOP_LIMIT' });
      await sleep(500);
      const runs = await b.listRuns({ workflow: 'loop', limit: 100 });
      expect(runs).toHaveLength(MAX_EVENT_HOPS + 1);
      expect(runs.filter((r) => r.status === 'completed')).toHaveLength(MAX_EVENT_HOPS);
      const hops = await Promise.all(runs.filter((r) => r.status === 'completed').map(async (r) => ((await b.getRun(r.id)).output as { batonhops: number }).batonhops));
      expect(hops.sort((x, y) => x - y)).toEqual(Array.from({ length: MAX_EVENT_HOPS }, (_, i) => i + 1));
      // An event arriving already past the limit (relayed back by a sink) starts nothing, visibly.
      const late = await b.publish({ id: 'L-2', type: 'loop.tick', source: '/relay', data: {}, batonhops: MAX_EVENT_HOPS + 1 });
      expect(late.runs).toEqual([]);
      expect(late.failed).toEqual([{ workflow: 'loop', error: expect.objectContaining({ code: 'BATON_EVENT_HOP_LIMIT' }) }]);
    });

    it('an emitted event reaches waits of its own namespace only, buffered ones included; events from outside reach every namespace', async () => {
      const b = await baton();
      const waiter = `
name: waiter
steps:
  - { id: paid, kind: wait, event: order.paid, key: "input.order", lookback: 1m }
`;
      const payer = `
name: payer
steps:
  - { id: pay, kind: emit, type: order.paid, subject: "input.order", data: "{ 'from': input.team }" }
`;
      const waitA = await b.register(waiter, undefined, { namespace: 'team-a' });
      const waitB = await b.register(waiter, undefined, { namespace: 'team-b' });
      const payA = await b.register(payer, undefined, { namespace: 'team-a' });
      const payB = await b.register(payer, undefined, { namespace: 'team-b' });
      const parked = async (id: string) => {
        for (let i = 0; i < 500 && (await b.getRun(id)).status !== 'waiting'; i++) await sleep(20);
        expect((await b.getRun(id)).status).toBe('waiting');
      };
      // A parked team-a wait is not woken by team-b's emit: the event is buffered for team-b.
      const a1 = await b.start(waitA, { order: 'N-1' });
      await parked(a1);
      expect((await b.run(payB, { order: 'N-1', team: 'b' }, { timeoutMs: 20_000 })).status).toBe('completed');
      await sleep(300);
      expect((await b.getRun(a1)).status).toBe('waiting');
      // ... a team-b wait arming later takes it by its lookback, and team-a's own emit wakes team-a's.
      expect((await b.run(waitB, { order: 'N-1' }, { timeoutMs: 20_000 })).output).toEqual({ from: 'b' });
      expect((await b.run(payA, { order: 'N-1', team: 'a' }, { timeoutMs: 20_000 })).status).toBe('completed');
      expect((await b.wait(a1, { timeoutMs: 20_000 })).output).toEqual({ from: 'a' });
      // Buffered by team-b's emit: a team-a wait arming within the lookback does not take it.
      expect((await b.run(payB, { order: 'N-2', team: 'b' }, { timeoutMs: 20_000 })).status).toBe('completed');
      const a2 = await b.start(waitA, { order: 'N-2' });
      await parked(a2);
      // An event from outside (POST /events, the SDK) reaches every namespace, parked or buffered.
      expect(await b.sendEvent('order.paid', 'N-2', { from: 'outside' })).toEqual({ delivered: 1, buffered: false });
      expect((await b.wait(a2, { timeoutMs: 20_000 })).output).toEqual({ from: 'outside' });
      expect((await b.sendEvent('order.paid', 'N-3', { from: 'outside' })).buffered).toBe(true);
      expect((await b.run(waitA, { order: 'N-3' }, { timeoutMs: 20_000 })).output).toEqual({ from: 'outside' });
      // The SDK can scope an event to one namespace, as an emit is.
      expect((await b.sendEvent('order.paid', 'N-4', { from: 'sdk' }, { namespace: 'team-b' })).buffered).toBe(true);
      const a4 = await b.start(waitA, { order: 'N-4' });
      await parked(a4);
      expect((await b.run(waitB, { order: 'N-4' }, { timeoutMs: 20_000 })).output).toEqual({ from: 'sdk' });
    });
  });
});
