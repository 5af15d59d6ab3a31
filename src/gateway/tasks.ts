/**
 * `/tasks`: how external workers of any language join a workflow. A worker long-polls
 * `POST /tasks/poll` for the task types it does, renews its lease with heartbeats while it
 * works, and reports `complete` or `fail`; every report carries the lease token from the poll,
 * so a worker whose lease expired and was given to another cannot finish the task (409, with
 * a reason saying what happened to its lease).
 *
 * Working on tasks needs the `run` capability (operator or admin), reading one `read` (any
 * role; the lease token is only ever in the poll's answer). Keys see only tasks of runs in
 * their namespaces; a task of another namespace is "not found", so ids do not leak.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import type { TaskView } from '../engine/tasks.js';
import type { ApiKeyRecord } from '../store/store.js';
import { requireCap } from './auth.js';
import { responses } from './schemas.js';

const isoTime = { type: ['string', 'null'], format: 'date-time' } as const;

/** A task as the API shows it; `lease_token` only in the poll's answer (it is the worker's fence). */
export const taskSchema = {
  $id: 'Task',
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'leased', 'completed', 'failed', 'cancelled'], description: '`cancelled`: its step stopped waiting (timed out, run cancelled).' },
    input: { description: 'What the worker works on (the step input).' },
    run_id: { type: 'string' },
    step: { type: 'string', description: 'The step key.' },
    attempt: { type: 'integer', description: 'The step attempt that created the task.' },
    attempts: { type: 'integer', description: 'How many times the task was handed out.' },
    namespace: { type: 'string' },
    idempotency_key: { type: 'string', description: '`run:step:attempt`: pass it to systems the worker calls, so repeats are harmless.' },
    worker_id: { type: ['string', 'null'], description: 'Holder (or last holder) of the lease.' },
    lease_token: { type: 'string', description: 'Send it back with heartbeat, complete and fail.' },
    traceparent: { type: 'string', description: "In the poll's answer, when tracing is on: W3C traceparent of the run's span; start your worker's spans under it." },
    lease_ms: { type: 'integer' },
    lease_expires_at: isoTime,
    output: {},
    error: {},
    created_at: isoTime,
    updated_at: isoTime,
  },
  required: ['id', 'type', 'status', 'run_id', 'step', 'attempt', 'attempts', 'namespace'],
} as const;

const ref = (id: string) => ({ $ref: `${id}#` });
const leaseFields = {
  worker_id: { type: 'string', minLength: 1, maxLength: 200 },
  lease_token: { type: 'string', minLength: 1, maxLength: 200 },
} as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 200 } } } as const;

export interface TaskRouteOptions {
  keyOf(req: FastifyRequest): ApiKeyRecord | undefined;
  /** Longest long poll a request may ask for, ms (default 30 s). */
  maxWaitMs?: number;
  /** Aborted when the gateway closes: long polls answer 204 at once. */
  closing?: AbortSignal;
}

export function registerTaskRoutes(app: FastifyInstance, baton: Baton, opts: TaskRouteOptions): void {
  app.addSchema(taskSchema);
  const maxWaitMs = opts.maxWaitMs ?? 30_000;
  const reach = (req: FastifyRequest, action: string, cap: 'run' | 'read' = 'run') => {
    const key = opts.keyOf(req);
    requireCap(key, cap, action);
    return key?.namespaces;
  };

  app.post('/tasks/poll', {
    schema: {
      summary: 'Claims the oldest task of the given types (long poll): 200 with the task and its lease token, or 204 when none came within `wait`.',
      body: {
        type: 'object',
        required: ['types', 'worker_id'],
        additionalProperties: false,
        properties: {
          types: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 200 } },
          worker_id: leaseFields.worker_id,
          lease: { type: 'number', exclusiveMinimum: 0, maximum: 86_400, description: "Seconds the lease lasts without a heartbeat; default the step's `lease`." },
          wait: { type: 'number', minimum: 0, description: 'Seconds to wait for a task (at most 30).' },
        },
      },
      response: { 200: ref('Task'), 204: { type: 'null', description: 'No task within `wait`.' }, ...responses.problems },
    },
  }, async (req, reply) => {
    const b = req.body as { types: string[]; worker_id: string; lease?: number; wait?: number };
    const namespaces = reach(req, 'poll tasks');
    // The client going away stops the wait, so no task is leased to a worker that is gone; the
    // gateway closing stops it too (204: the worker polls again, elsewhere or after a restart).
    const stop = new AbortController();
    const onStop = () => stop.abort();
    reply.raw.once('close', onStop);
    opts.closing?.addEventListener('abort', onStop);
    const t = await baton.tasks.poll({
      types: b.types, workerId: b.worker_id, namespaces, signal: stop.signal,
      leaseMs: b.lease === undefined ? undefined : Math.max(1, Math.round(b.lease * 1000)),
      waitMs: Math.min((b.wait ?? 0) * 1000, maxWaitMs),
    }).finally(() => opts.closing?.removeEventListener('abort', onStop));
    if (!t) return reply.code(204).send();
    return taskBody(t);
  });

  app.post('/tasks/:id/heartbeat', {
    schema: {
      summary: 'Renews the lease for its length from now; 409 when the worker no longer holds it (stop working then).',
      params: idParams,
      body: { type: 'object', required: ['worker_id', 'lease_token'], additionalProperties: false, properties: leaseFields },
      response: { 200: ref('Task'), ...responses.problems },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body as { worker_id: string; lease_token: string };
    return taskBody(await baton.tasks.heartbeat(id, { workerId: b.worker_id, leaseToken: b.lease_token, namespaces: reach(req, 'work on tasks') }));
  });

  app.post('/tasks/:id/complete', {
    schema: {
      summary: "Records the output and wakes the step. 422 when the output breaks the step's output_schema (the task stays leased); 409 when the lease was lost.",
      params: idParams,
      body: { type: 'object', required: ['worker_id', 'lease_token', 'output'], additionalProperties: false, properties: { ...leaseFields, output: {} } },
      response: { 200: ref('Task'), ...responses.problems },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body as { worker_id: string; lease_token: string; output: unknown };
    return taskBody(await baton.tasks.complete(id, { workerId: b.worker_id, leaseToken: b.lease_token, output: b.output, namespaces: reach(req, 'work on tasks') }));
  });

  app.post('/tasks/:id/fail', {
    schema: {
      summary: "Reports a failure. `retryable: true` puts the task back for another attempt while the step's retry policy allows; otherwise the step fails with this error.",
      params: idParams,
      body: {
        type: 'object',
        required: ['worker_id', 'lease_token', 'error'],
        additionalProperties: false,
        properties: {
          ...leaseFields,
          error: {
            type: 'object', required: ['message'], additionalProperties: false,
            properties: { code: { type: 'string', minLength: 1, maxLength: 200 }, message: { type: 'string', maxLength: 10_000 } },
          },
          retryable: { type: 'boolean' },
        },
      },
      response: { 200: ref('Task'), ...responses.problems },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body as { worker_id: string; lease_token: string; error: { code?: string; message: string }; retryable?: boolean };
    return taskBody(await baton.tasks.fail(id, { workerId: b.worker_id, leaseToken: b.lease_token, error: b.error, retryable: b.retryable, namespaces: reach(req, 'work on tasks') }));
  });

  app.get('/tasks/:id', {
    schema: { summary: 'A task: status, attempts, lease holder, output or last error.', params: idParams, response: { 200: ref('Task'), ...responses.problems } },
  }, async (req) => {
    const { id } = req.params as { id: string };
    return taskBody(await baton.tasks.get(id, { namespaces: reach(req, 'read tasks', 'read') }));
  });
}

function taskBody(t: TaskView) {
  return {
    id: t.id, type: t.type, status: t.status, input: t.input ?? null, run_id: t.runId, step: t.stepKey, attempt: t.attempt, attempts: t.attempts,
    namespace: t.namespace, idempotency_key: `${t.runId}:${t.stepKey}:${t.attempt}`, worker_id: t.leaseOwner ?? null,
    ...(t.leaseToken ? { lease_token: t.leaseToken } : {}), ...(t.traceparent ? { traceparent: t.traceparent } : {}), lease_ms: t.leaseMs, lease_expires_at: iso(t.leaseExpiresAt),
    output: t.output ?? null, error: t.error ?? null, created_at: iso(t.createdAt), updated_at: iso(t.updatedAt),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
