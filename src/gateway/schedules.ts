/**
 * Cron schedules over HTTP: `GET /schedules`, `POST /schedules/{id}/pause|resume|trigger`.
 *
 * Scoped like workflows: a key sees the schedules of its namespaces and of the shared default
 * namespace; another team's schedule is "not found" (ids do not leak). Changing one takes the
 * `run` capability (operator, admin) and a key that reaches the schedule's namespace.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import { DEFAULT_NAMESPACE, splitQualified } from '../engine/namespaces.js';
import { BatonError } from '../errors.js';
import type { ApiKeyRecord, ScheduleRecord } from '../store/store.js';
import { reaches, requireCap } from './auth.js';

const isoTime = { type: ['string', 'null'], format: 'date-time' } as const;

export const scheduleSchema = {
  $id: 'Schedule',
  type: 'object',
  properties: {
    id: { type: 'string', description: 'Schedule id: `<name>~<trigger>`, or `<namespace>~<name>~<trigger>`.' },
    workflow: { type: 'string' },
    namespace: { type: 'string' },
    trigger: { type: 'string', description: 'The trigger in the workflow document, e.g. `schedule:0` for triggers[0].' },
    version_id: { type: 'string', description: 'The (latest) version whose runs it starts.' },
    cron: { type: 'string' },
    timezone: { type: 'string' },
    missed: { type: 'string', enum: ['skip', 'once', 'all'] },
    max_catch_up: { type: 'integer' },
    paused: { type: 'boolean' },
    next_fire_at: { ...isoTime, description: 'Null when the expression never fires again.' },
    last_fired_at: isoTime,
    last_run_id: { type: ['string', 'null'] },
    last_error: { description: 'Why the last fire started no run (code, message), else null.' },
  },
  required: ['id', 'workflow', 'namespace', 'trigger', 'version_id', 'cron', 'timezone', 'missed', 'paused', 'next_fire_at'],
} as const;

const ref = (id: string) => ({ $ref: `${id}#` });
const problems = { '4xx': ref('Problem'), '5xx': ref('Problem') };
const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 300 } } } as const;
/** These actions take no fields: a body, if sent, must be empty (`{}`), so a misspelt option is refused, not ignored. */
const noBody = { type: ['object', 'null'], additionalProperties: false, properties: {} } as const;

export function registerScheduleRoutes(app: FastifyInstance, baton: Baton, keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined): void {
  app.addSchema(scheduleSchema);

  const visible = (req: FastifyRequest, s: ScheduleRecord) => s.namespace === DEFAULT_NAMESPACE || reaches(keyOf(req), s.namespace);

  /** A schedule the caller may change: another team's is "not found"; a shared one needs a key reaching default. */
  const changeable = async (req: FastifyRequest, id: string, action: string): Promise<ScheduleRecord> => {
    const key = keyOf(req);
    requireCap(key, 'run', `${action} schedules`);
    const s = await baton.schedules.get(id);
    if (!visible(req, s)) throw new BatonError('BATON_SCHEDULE_NOT_FOUND', { id });
    if (!reaches(key, s.namespace)) throw new BatonError('BATON_FORBIDDEN', { key: key!.id, role: key!.role, action: `${action} schedules in namespace "${s.namespace}"` });
    return s;
  };

  app.get('/schedules', {
    schema: {
      summary: 'Cron schedules the caller can see (its namespaces and the shared default one), with their next and last fires.',
      querystring: { type: 'object', additionalProperties: false, properties: { namespace: { type: 'string' }, workflow: { type: 'string' } } },
      response: { 200: { type: 'array', items: ref('Schedule') }, ...problems },
    },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read schedules');
    const q = req.query as { namespace?: string; workflow?: string };
    return (await baton.schedules.list())
      .filter((s) => visible(req, s) && (q.namespace === undefined || s.namespace === q.namespace) && (q.workflow === undefined || splitQualified(s.workflow).name === q.workflow))
      .map(scheduleBody);
  });

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/schedules/:id/${action}`, {
      schema: {
        summary: action === 'pause' ? 'Stops a schedule firing until resumed.' : 'Resumes a schedule from its next fire after now (fires that fell while paused are not caught up).',
        params: idParam,
        body: noBody,
        response: { 200: ref('Schedule'), ...problems },
      },
    }, async (req) => {
      const { id } = req.params as { id: string };
      await changeable(req, id, action);
      return scheduleBody(await baton.schedules[action](id));
    });
  }

  app.post('/schedules/:id/trigger', {
    schema: {
      summary: 'Fires a schedule once now, outside its cron: starts a run with the trigger\'s input.',
      params: idParam,
      body: noBody,
      response: { 202: ref('RunAccepted'), ...problems },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    await changeable(req, id, 'trigger');
    const runId = await baton.schedules.trigger(id);
    return reply.code(202).header('location', `/runs/${runId}`).send({ run_id: runId, status: 'running' });
  });
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

function scheduleBody(s: ScheduleRecord) {
  return {
    id: s.id, workflow: splitQualified(s.workflow).name, namespace: s.namespace, trigger: s.triggerId, version_id: s.versionId,
    cron: s.cron, timezone: s.timezone, missed: s.missed, max_catch_up: s.maxCatchUp, paused: s.paused,
    next_fire_at: iso(s.nextFireAt), last_fired_at: iso(s.lastFiredAt), last_run_id: s.lastRunId ?? null, last_error: s.lastError ?? null,
  };
}
