/**
 * The schedules API over real HTTP: an embedded engine on SQLite, the gateway on 127.0.0.1
 * with API keys of different roles and namespaces. The scheduler's clock is frozen, so only
 * `trigger` starts runs here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';
import { createGateway } from '../../src/gateway/server.js';
import { createApiKey } from '../../src/gateway/auth.js';

let dir: string;
let baton: Baton;
let app: FastifyInstance;
let base: string;
const keys: Record<string, string> = {};

const flow = (name: string) => `
name: ${name}
triggers:
  - schedule: { cron: "0 9 * * 1-5", timezone: Europe/Paris }
    input: '{ "day": $substring(scheduled_at, 0, 10) }'
steps:
  - { id: echo, kind: transform, expression: "input" }
`;

async function call(method: string, path: string, key?: string) {
  const res = await fetch(`${base}${path}`, { method, headers: key ? { authorization: `Bearer ${keys[key]}` } : {} });
  return { status: res.status, type: res.headers.get('content-type') ?? '', location: res.headers.get('location'), body: (await res.json()) as any };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'baton-sched-gw-'));
  const frozen = Date.parse('2026-03-02T07:00:00.000Z'); // a Monday, 08:00 in Paris
  baton = await Baton.open({ dir, pollIntervalMs: 20, schedules: { now: () => frozen } });
  await baton.register(flow('nightly'));
  await baton.register(flow('report'), undefined, { namespace: 'team-a' });
  await baton.register(flow('secret'), undefined, { namespace: 'team-b' });
  for (const [name, role, namespaces] of [['admin', 'admin', ['*']], ['opA', 'operator', ['team-a']], ['viewA', 'viewer', ['team-a']]] as const) {
    keys[name] = (await createApiKey(baton.store, { name, role, namespaces: [...namespaces] })).key;
  }
  app = await createGateway(baton);
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await app?.close();
  await baton?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('schedules over HTTP', () => {
  it('lists the schedules a key can see: its namespaces and the shared default one', async () => {
    const all = await call('GET', '/schedules', 'admin');
    expect(all.status).toBe(200);
    expect(all.body.map((s: { id: string }) => s.id)).toEqual(['nightly~schedule:0', 'team-a~report~schedule:0', 'team-b~secret~schedule:0']);
    expect(all.body[0]).toEqual({
      id: 'nightly~schedule:0', workflow: 'nightly', namespace: 'default', trigger: 'schedule:0', version_id: expect.stringMatching(/^nightly@/),
      cron: '0 9 * * 1-5', timezone: 'Europe/Paris', missed: 'once', max_catch_up: 100, paused: false,
      next_fire_at: '2026-03-02T08:00:00.000Z', last_fired_at: null, last_run_id: null, last_error: null,
    });
    const a = await call('GET', '/schedules', 'viewA');
    expect(a.body.map((s: { id: string }) => s.id)).toEqual(['nightly~schedule:0', 'team-a~report~schedule:0']);
    expect((await call('GET', '/schedules?namespace=team-a', 'viewA')).body.map((s: { workflow: string }) => s.workflow)).toEqual(['report']);
    expect((await call('GET', '/schedules')).status).toBe(401);
  });

  it('pauses and resumes with an operator key of the schedule\'s namespace', async () => {
    const p = await call('POST', '/schedules/team-a~report~schedule:0/pause', 'opA');
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ id: 'team-a~report~schedule:0', paused: true });
    // No fields to set: an unknown one is refused (400), not ignored; an empty object is fine.
    for (const [body, status] of [['{"from":"now"}', 400], ['{}', 200]] as const) {
      const res = await fetch(`${base}/schedules/team-a~report~schedule:0/resume`, { method: 'POST', headers: { authorization: `Bearer ${keys.opA}`, 'content-type': 'application/json' }, body });
      expect(res.status).toBe(status);
      if (status === 400) expect(await res.json()).toMatchObject({ code: 'BATON_REQUEST_INVALID' });
      else await baton.schedules.pause('team-a~report~schedule:0');
    }
    const r = await call('POST', '/schedules/team-a~report~schedule:0/resume', 'opA');
    expect(r.body).toMatchObject({ paused: false, next_fire_at: '2026-03-02T08:00:00.000Z' });
  });

  it('refuses: unknown id and another team\'s schedule 404, a viewer or a key without the namespace 403; nothing changes', async () => {
    for (const [path, key, status, code] of [
      ['/schedules/nope~schedule:0/pause', 'admin', 404, 'BATON_SCHEDULE_NOT_FOUND'],
      ['/schedules/team-b~secret~schedule:0/pause', 'opA', 404, 'BATON_SCHEDULE_NOT_FOUND'],
      ['/schedules/team-b~secret~schedule:0/trigger', 'opA', 404, 'BATON_SCHEDULE_NOT_FOUND'],
      ['/schedules/team-a~report~schedule:0/pause', 'viewA', 403, 'BATON_FORBIDDEN'],
      ['/schedules/nightly~schedule:0/pause', 'opA', 403, 'BATON_FORBIDDEN'],
    ] as const) {
      const res = await call('POST', path, key);
      expect(res.status, path).toBe(status);
      expect(res.type).toMatch(/application\/problem\+json/);
      expect(res.body).toMatchObject({ code, status });
    }
    expect((await call('GET', '/schedules', 'admin')).body.every((s: { paused: boolean; last_run_id: string | null }) => !s.paused && s.last_run_id === null)).toBe(true);
  });

  it('triggers a fire now: 202 with the run, which runs in the workflow\'s namespace', async () => {
    const t = await call('POST', '/schedules/team-a~report~schedule:0/trigger', 'opA');
    expect(t.status).toBe(202);
    expect(t.location).toBe(`/runs/${t.body.run_id}`);
    const run = await baton.wait(t.body.run_id, { timeoutMs: 10_000 });
    expect(run).toMatchObject({ status: 'completed', namespace: 'team-a', output: { day: '2026-03-02' } });
    expect((await call('GET', `/runs/${t.body.run_id}`, 'viewA')).status).toBe(200);
    const [, report] = (await call('GET', '/schedules', 'viewA')).body;
    expect(report).toMatchObject({ last_run_id: t.body.run_id, last_fired_at: '2026-03-02T07:00:00.000Z' });
  });

  it('describes the routes in the OpenAPI document', async () => {
    const doc = (await call('GET', '/openapi.json')).body;
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/schedules', '/schedules/{id}/pause', '/schedules/{id}/resume', '/schedules/{id}/trigger']));
    expect(doc.components.schemas.Schedule).toBeDefined();
  });
});
