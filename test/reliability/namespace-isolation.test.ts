/**
 * Namespace isolation over real HTTP, for EVERY route of the gateway. The route list comes from
 * the gateway itself (Fastify's onRoute): a route added without a row in ROUTES below fails the
 * first test, so new routes get classified (and covered) before they ship.
 *
 * team-a owns workflows (one with a schedule, one with an approval, one with a task), runs, an
 * approval and a task. A team-b ADMIN key (the strongest key confined to team-b) calls every
 * route with team-a's ids: it gets 403/404 (or a list without team-a's things), and the store
 * is the same afterwards.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { buildGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';

const root = resolve(import.meta.dirname, '../..');
const REFUND = readFileSync(resolve(root, 'examples/approvals/refund.yaml'), 'utf8');
const RISKY = JSON.parse(readFileSync(resolve(root, 'examples/approvals/risky.json'), 'utf8')) as Record<string, unknown>;
const TASKS = readFileSync(resolve(root, 'examples/tasks/workflow.yaml'), 'utf8');
const REPORT = `
name: report
triggers:
  - schedule: { cron: "0 9 * * 1-5" }
    input: '{ "day": $substring(scheduled_at, 0, 10) }'
steps:
  - { id: echo, kind: transform, expression: "input" }
`;

const WAITER = `
name: waiter
steps:
  - { id: paid, kind: wait, event: paid, key: "input.order", lookback: 1m }
`;
/** A CloudEvent (binary mode) for team-a's waiting run: type paid, subject A-1. */
const PAID = { 'ce-specversion': '1.0', 'ce-id': 'p-1', 'ce-source': '/team-b', 'ce-type': 'paid', 'ce-subject': 'A-1' };

/** What team-a's ids are, for filling in a route's parameters. */
interface Ids { run: string; approvalRun: string; taskRun: string; approval: string; task: string; schedule: string; version: string; workflow: string; shared: string }
/** `statuses`: what this call must get instead of its class's usual answer. */
type Call = { method: string; path: string; body?: unknown; headers?: Record<string, string>; statuses?: number[] };
/**
 * deny: 403/404 for team-b; hidden: 2xx (or 4xx) but nothing of team-a in the answer;
 * star: a store-wide route that needs a key with namespace `*` (403 for team-b);
 * public: no key needed, no namespaced data; signature: authenticated by HMAC, not by key.
 */
type Class = { cls: 'deny' | 'hidden' | 'star'; calls: (i: Ids) => Call[] } | { cls: 'public' | 'signature' };

const ROUTES: Record<string, Class> = {
  'GET /': { cls: 'public' },
  'GET /health': { cls: 'public' },
  'GET /favicon.ico': { cls: 'public' },
  'GET /ready': { cls: 'public' },
  'GET /metrics': { cls: 'star', calls: () => [{ method: 'GET', path: '/metrics' }] },
  'GET /workflows': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/workflows' }, { method: 'GET', path: '/workflows?namespace=team-a' }, { method: 'GET', path: '/workflows?namespace=team-a&name=report' }] },
  'POST /workflows': { cls: 'deny', calls: () => [{ method: 'POST', path: '/workflows?namespace=team-a', body: { name: 'report', steps: [{ id: 'x', kind: 'transform', expression: '1' }] } }] },
  'GET /workflows/:name/versions': { cls: 'deny', calls: () => [{ method: 'GET', path: '/workflows/report/versions?namespace=team-a' }, { method: 'GET', path: '/workflows/report/versions' }] },
  'GET /workflows/:name/history': { cls: 'deny', calls: () => [{ method: 'GET', path: '/workflows/report/history?namespace=team-a' }, { method: 'GET', path: '/workflows/report/history' }] },
  'GET /workflows/diff': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/workflows/diff?a=${encodeURIComponent(i.version)}&b=${encodeURIComponent(i.version)}` }, { method: 'GET', path: '/workflows/diff?a=report&b=report&namespace=team-a' }] },
  'POST /workflows/:name/promote': { cls: 'deny', calls: (i) => [
    { method: 'POST', path: '/workflows/report/promote?namespace=team-a', body: { version: i.version, stage: 'production' } },
    // The shared catalogue's stages are everyone's: a key confined to team-b may not move them.
    { method: 'POST', path: '/workflows/echo/promote', body: { version: i.shared, stage: 'production' }, statuses: [403] },
  ] },
  'GET /services': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/services' }] },
  'POST /services/:name/status': { cls: 'star', calls: () => [{ method: 'POST', path: '/services/fake/status', body: { status: 'blocked', reason: 'team-b says so' } }] },
  'GET /services/:name/history': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/services/fake/history' }] },
  'GET /lineage': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/lineage?service=fake' }] },
  'POST /runs': { cls: 'deny', calls: (i) => [
    { method: 'POST', path: '/runs', body: { workflow: 'team-a/report', input: {} } }, { method: 'POST', path: '/runs', body: { workflow: i.version, input: {} } }, { method: 'POST', path: '/runs', body: { workflow: 'report', namespace: 'team-a', input: {} } },
    // A shared workflow started with team-a's run id: the id is taken (409), the run not shown.
    { method: 'POST', path: '/runs', body: { workflow: 'echo', id: i.run, wait: 5 }, statuses: [409] },
  ] },
  'GET /runs': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/runs' }, { method: 'GET', path: '/runs?workflow=team-a/report' }] },
  'GET /runs/:id': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/runs/${i.run}` }, { method: 'GET', path: `/runs/${i.run}?reveal=true` }] },
  'GET /runs/:id/events': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/runs/${i.run}/events` }] },
  'POST /runs/:id/pause': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.approvalRun}/pause` }] },
  'POST /runs/:id/resume': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.approvalRun}/resume` }] },
  'POST /runs/:id/cancel': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.approvalRun}/cancel` }, { method: 'POST', path: `/runs/${i.taskRun}/cancel` }] },
  'POST /runs/:id/retry': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.run}/retry`, body: {} }] },
  'POST /runs/:id/replay': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.run}/replay`, body: {} }] },
  'POST /runs/:id/signal': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/runs/${i.approvalRun}/signal`, body: { event: 'x' } }] },
  'GET /runs/:id/audit': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/runs/${i.run}/audit` }] },
  'GET /runs/:id/audit.html': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/runs/${i.run}/audit.html` }] },
  'GET /audit/verify': { cls: 'star', calls: (i) => [{ method: 'GET', path: '/audit/verify' }, { method: 'GET', path: `/audit/verify?run=${i.run}` }] },
  'POST /audit/purge': { cls: 'star', calls: () => [{ method: 'POST', path: '/audit/purge', body: { days: 0.000001 } }] },
  // Events go to the key's namespace: team-b's own reaches none of team-a's waiting run.
  'POST /events/:name/:key': { cls: 'deny', calls: () => [{ method: 'POST', path: '/events/paid/A-1?namespace=team-a', body: {} }, { method: 'POST', path: '/events/paid/A-1', body: {}, statuses: [202] }] },
  'POST /tasks/poll': { cls: 'hidden', calls: () => [{ method: 'POST', path: '/tasks/poll', body: { types: ['score'], worker_id: 'intruder' } }] },
  'GET /tasks/:id': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/tasks/${i.task}` }] },
  'POST /tasks/:id/heartbeat': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/tasks/${i.task}/heartbeat`, body: { worker_id: 'w', lease_token: 'x' } }] },
  'POST /tasks/:id/complete': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/tasks/${i.task}/complete`, body: { worker_id: 'w', lease_token: 'x', output: { score: 1 } } }] },
  'POST /tasks/:id/fail': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/tasks/${i.task}/fail`, body: { worker_id: 'w', lease_token: 'x', error: { code: 'X', message: 'no' } } }] },
  'GET /approvals': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/approvals' }] },
  'GET /approvals/:id': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/approvals/${i.approval}` }] },
  'POST /approvals/:id': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/approvals/${i.approval}`, body: { decision: 'approve' } }] },
  'POST /hooks/*': { cls: 'signature' },
  'POST /cloudevents': { cls: 'deny', calls: () => [
    { method: 'POST', path: '/cloudevents?namespace=team-a', body: {}, headers: PAID },
    { method: 'POST', path: '/cloudevents', body: {}, headers: PAID, statuses: [202] },
  ] },
  'GET /schedules': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/schedules' }, { method: 'GET', path: '/schedules?namespace=team-a' }] },
  'POST /schedules/:id/pause': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/schedules/${encodeURIComponent(i.schedule)}/pause` }] },
  'POST /schedules/:id/resume': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/schedules/${encodeURIComponent(i.schedule)}/resume` }] },
  'POST /schedules/:id/trigger': { cls: 'deny', calls: (i) => [{ method: 'POST', path: `/schedules/${encodeURIComponent(i.schedule)}/trigger` }] },
  'GET /v1/models': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/v1/models' }] },
  'GET /v1/models/:id': { cls: 'deny', calls: () => [{ method: 'GET', path: `/v1/models/${encodeURIComponent('workflow/team-a/report')}` }] },
  'GET /v1/models/workflow/*': { cls: 'deny', calls: () => [{ method: 'GET', path: '/v1/models/workflow/team-a/report' }] },
  'POST /v1/chat/completions': { cls: 'deny', calls: () => [{ method: 'POST', path: '/v1/chat/completions', body: { model: 'workflow/team-a/report', messages: [{ role: 'user', content: 'hi' }] } }] },
  'GET /console-api/whoami': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/console-api/whoami' }] },
  'GET /console-api/versions/:versionId': { cls: 'deny', calls: (i) => [{ method: 'GET', path: `/console-api/versions/${encodeURIComponent(i.version)}` }] },
  'GET /console-api/costs': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/console-api/costs' }, { method: 'GET', path: '/console-api/costs?by=workflow' }] },
  'GET /console-api/services': { cls: 'hidden', calls: () => [{ method: 'GET', path: '/console-api/services' }] },
};

describe.each(STORE_KINDS)('namespace isolation on every route (%s)', (k) => {
  const suite = engineSuite(k, 'baton-isolation-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function setup() {
    const b = await suite.baton();
    const teamB = (await createApiKey(b.store, { name: 'b-admin', role: 'admin', namespaces: ['team-b'] })).key;
    const teamA = (await createApiKey(b.store, { name: 'a-admin', role: 'admin', namespaces: ['team-a'] })).key;
    const routes: string[] = [];
    app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } } });
    app.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
    });
    buildGateway(b, { auth: 'required' }, app);
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const call = async (key: string, c: Call) => {
      const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...c.headers };
      if (c.body !== undefined) headers['content-type'] = 'application/json';
      const ac = new AbortController();
      const res = await fetch(`${base}${c.path}`, { method: c.method, headers, body: c.body === undefined ? undefined : JSON.stringify(c.body), signal: ac.signal });
      // An SSE stream that did start is read for a moment only.
      const text = res.headers.get('content-type')?.startsWith('text/event-stream') ? (ac.abort(), 'stream') : await res.text();
      return { status: res.status, text };
    };
    return { b, teamA, teamB, routes, call };
  }

  it('every route is classified, and a team-b admin reaches nothing of team-a', async () => {
    const { b, teamA, teamB, routes, call } = await setup();
    // A route without a row fails here: classify it in ROUTES (and so test it).
    expect([...new Set(routes)].filter((r) => !(r in ROUTES)), 'unclassified routes').toEqual([]);
    expect(Object.keys(ROUTES).filter((r) => !routes.includes(r)), 'rows for routes that no longer exist').toEqual([]);

    const shared = (await b.register('{ "name": "echo", "steps": [{ "id": "a", "kind": "transform", "expression": "input" }] }')).versionId;
    const report = (await b.register(REPORT, undefined, { namespace: 'team-a' })).versionId;
    const refund = (await b.register(REFUND, undefined, { namespace: 'team-a' })).versionId;
    const tasks = (await b.register(TASKS, undefined, { namespace: 'team-a' })).versionId;
    const run = await b.start(report, {}, { namespace: 'team-a' });
    await b.wait(run, { timeoutMs: 20_000 });
    const approvalRun = await b.start(refund, RISKY, { namespace: 'team-a' });
    const taskRun = await b.start(tasks, { review: 'fine' }, { namespace: 'team-a' });
    const waitingRun = await b.start(await b.register(WAITER, undefined, { namespace: 'team-a' }), { order: 'A-1' });
    await until(async () => (await b.getRun(waitingRun)).status === 'waiting', 'the waiting run');
    const approval = await until(async () => (await b.store.listApprovals()).find((a) => a.runId === approvalRun), 'the approval');
    const task = await until(teamATask, 'the task');
    async function teamATask() {
      // Without a store listing, team-a's own key polls the task (leases it) and gives it back by id.
      const r = await call(teamA, { method: 'POST', path: '/tasks/poll', body: { types: ['score'], worker_id: 'a-worker', lease: 600 } });
      return r.status === 200 ? (JSON.parse(r.text) as { id: string; run_id: string }) : undefined;
    }
    const schedule = (await b.store.listSchedules()).find((s) => s.id.startsWith('team-a~report'))!;
    const ids: Ids = { run, approvalRun, taskRun, approval: approval.id, task: (task as { id: string }).id, schedule: schedule.id, version: report, workflow: 'report', shared };

    const snapshot = async () => JSON.stringify({
      runs: await Promise.all([run, approvalRun, taskRun, waitingRun].map(async (id) => {
        const r = await b.store.getRun(id);
        return [id, r?.status, r?.namespace, (await b.store.getEvents(id)).length, (await b.store.getSteps(id)).map((s) => [s.key, s.status, s.attempt])];
      })),
      runCount: (await b.store.listRuns({ limit: 1000 })).length,
      approvals: (await b.store.listApprovals()).map((a) => [a.id, a.status]),
      task: await b.store.getTask(ids.task).then((t) => [t?.status, t?.attempts, t?.leaseToken]),
      schedules: (await b.store.listSchedules()).map((s) => [s.id, s.paused, s.lastRunId ?? null]),
      versions: (await b.store.listVersions()).map((v) => v.versionId),
      stages: [await b.stageHistory('echo'), await b.stageHistory('team-a/report')].map((h) => h.length),
    });
    const before = await snapshot();
    const secretsOfA = [run, approvalRun, taskRun, waitingRun, approval.id, ids.task, 'team-a'];

    const failures: string[] = [];
    for (const [route, c] of Object.entries(ROUTES)) {
      if (!('calls' in c)) continue;
      for (const req of c.calls(ids)) {
        const r = await call(teamB, req);
        const label = `${route} → ${req.method} ${req.path}: ${r.status} ${r.text.slice(0, 160)}`;
        if (r.status >= 500) failures.push(`5xx ${label}`);
        if (req.statuses) {
          if (!req.statuses.includes(r.status)) failures.push(`not ${req.statuses.join('/')}: ${label}`);
          if (secretsOfA.some((s) => r.text.includes(s) && !req.path.includes(s) && !JSON.stringify(req.body ?? '').includes(s))) failures.push(`team-a data in the answer: ${label}`);
        } else if (c.cls === 'deny' && r.status !== 403 && r.status !== 404) failures.push(`not denied: ${label}`);
        if (c.cls === 'star' && r.status !== 403) failures.push(`store-wide route not refused: ${label}`);
        if (c.cls === 'hidden' && secretsOfA.some((s) => r.text.includes(s))) failures.push(`team-a data visible: ${label}`);
      }
    }
    expect(failures).toEqual([]);
    // Nothing team-b asked for changed anything.
    expect(await snapshot()).toBe(before);
    // And team-a's own key does see its run (the ids are real, the denials are not for nothing).
    expect((await call(teamA, { method: 'GET', path: `/runs/${run}` })).status).toBe(200);
    expect((await call(teamA, { method: 'GET', path: `/approvals/${approval.id}` })).status).toBe(200);
    // A name is looked up in the caller's namespace first, as POST /runs does.
    expect(JSON.parse((await call(teamA, { method: 'GET', path: '/workflows/report/versions' })).text).map((v: { version_id: string }) => v.version_id)).toEqual([report]);
  });
});
