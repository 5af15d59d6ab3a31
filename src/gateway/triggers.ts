/**
 * Event-driven starts over HTTP:
 *
 * - `POST /hooks/<path>`: a webhook trigger of a workflow's latest version (a namespaced
 *   workflow listens on `/hooks/<namespace>/<path>`). The RAW body is checked against an HMAC
 *   signature (secret from the env variable the trigger names, header and algorithm from the
 *   trigger; `sha256=<hex>` or bare hex) before anything is parsed or stored. A valid one starts
 *   the workflow with the trigger's `input` over `{ body, headers, query }` (default the body) and,
 *   with `run_id`, a deterministic run id, so a redelivery answers the same run.
 * - `POST /cloudevents`: CloudEvents in structured, binary or batch mode (the `cloudevents` SDK
 *   reads them); each starts every workflow whose `cloudevent` trigger matches, with a run id
 *   derived from the workflow, the event's source and id (see Baton.publish), and is delivered
 *   to waits for `event: <type>` keyed by the event's `subject`.
 *
 * A caller that cannot sign learns nothing: an unknown path, a missing or wrong signature and
 * an unset secret variable all answer the same 401 (BATON_WEBHOOK_REFUSED); the log says which
 * (the variable by name, never a value). Signatures are compared in constant time and never
 * echoed or logged.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { HTTP, type CloudEventV1 } from 'cloudevents';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import { hookPath, triggerRun, type Listening, type TriggerEvent, type WebhookTrigger } from '../engine/triggers.js';
import { BatonError } from '../errors.js';
import type { ApiKeyRecord } from '../store/store.js';
import { rateLimit, requireCap } from './auth.js';
import { checkJsonDepth } from './json-body.js';
import { gatewayLog } from './log.js';
import { eventQuerySchema, responses } from './schemas.js';

export function registerTriggerRoutes(app: FastifyInstance, baton: Baton, o: {
  keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined;
  /** The namespace the request's events go to (undefined: every namespace); see server.ts. */
  eventNamespace: (req: FastifyRequest, action: string) => string | undefined;
}): void {
  /** This gateway's webhooks (path and variable) whose unset secret variable went to stderr. */
  const secretMissingSaid = new Set<string>();
  // Own scope: bodies arrive as raw bytes (the signature covers the exact bytes sent).
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    scope.post('/hooks/*', {
      schema: {
        summary: 'Webhook trigger: an HMAC-signed POST starts the workflow listening on this path.',
        description: 'No API key: the signature is the credential. An unknown path and a missing or wrong signature answer the same 401 problem (BATON_WEBHOOK_REFUSED), so a caller that cannot sign cannot tell which paths exist; the gateway log says which it was. 409 BATON_WEBHOOK_CONFLICT: a signed request to a path two workflows declare.',
        response: responses.triggered,
      },
    }, async (req, reply) => {
      const path = (req.params as { '*': string })['*'];
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const hooks = (await baton.registry.listening()).filter((l): l is Listening<WebhookTrigger> => l.trigger.kind === 'webhook');
      const matching = hooks.filter((l) => hookPath(l) === path);
      const signed = matching.filter((l) => accepts(req, l, path, raw, secretMissingSaid));
      // A caller that cannot sign for this path learns nothing, not even whether it exists: an
      // unknown path gets the answer a failed signature gets, after the same work (one HMAC of
      // the body). Only the log says which it was.
      if (!matching.length) {
        createHmac('sha256', '').update(raw).digest();
        gatewayLog(req, 'info', { path, reason: 'unknown path' }, 'webhook refused: no workflow listens on this path');
      }
      if (!signed.length) throw new BatonError('BATON_WEBHOOK_REFUSED', { path });
      // Registration refuses a path already held (atomically); two workflows holding one anyway
      // (stored by an older Baton, or not through the registry) are refused, not guessed between.
      if (matching.length > 1) throw new BatonError('BATON_WEBHOOK_CONFLICT', { path, workflows: matching.map((l) => l.workflow).join(', ') });
      const hook = signed[0];
      const body = parseBody(raw, req.headers);
      const query = Object.fromEntries(new URL(req.url, 'http://x').searchParams);
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== hook.trigger.webhook.header && k !== 'authorization'));
      const { input, id } = await triggerRun(hook, { body, headers, query }, body ?? {}, undefined);
      const runId = await baton.start(hook.versionId, input, { id, namespace: hook.namespace, traceparent: typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined });
      return reply.code(202).header('location', `/runs/${runId}`).send({ run_id: runId });
    });

    scope.post('/cloudevents', {
      schema: { summary: 'CloudEvents (structured, binary or batch mode): start workflows whose cloudevent trigger matches; wake or buffer waits keyed by subject.', querystring: eventQuerySchema, response: responses.triggered },
    }, async (req, reply) => {
      const k = o.keyOf(req);
      requireCap(k, 'run', 'send events');
      // A key confined to namespaces starts its namespace's (and shared) workflows, in it, and wakes its runs only.
      const namespace = o.eventNamespace(req, 'send CloudEvents');
      const events = readCloudEvents(req.headers, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
      // A batch counts one request per event against the key's rate limit, taken before
      // anything of it is started: the auth hook took the first, as for any request.
      if (k) await rateLimit(baton.store, k, events.length, 1);
      const runs: Array<{ run_id: string; workflow: string; event_id: string }> = [];
      const failed: Array<{ workflow: string; event_id: string; code?: string; detail: string }> = [];
      let delivered = 0;
      let buffered = 0;
      for (const e of events) {
        // The event's own traceparent (extension attribute) wins over the request's header.
        const r = await baton.publish(e, { namespace, traceparent: typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined });
        for (const x of r.runs) runs.push({ run_id: x.runId, workflow: x.workflow, event_id: e.id });
        for (const f of r.failed) failed.push({ workflow: f.workflow, event_id: e.id, code: f.error.code, detail: f.error.message });
        delivered += r.delivered;
        if (r.buffered) buffered++;
      }
      return reply.code(202).send({ events: events.length, runs, failed, delivered, buffered });
    });
  });
}

/**
 * Whether the request is signed for this webhook. Why not goes to the log, never to the caller:
 * a bad signature as a warning (without its value), an unset secret variable as an error that
 * names the variable (the operator's to fix; the caller only hears it was refused).
 */
function accepts(req: FastifyRequest, hook: Listening<WebhookTrigger>, path: string, raw: Buffer, secretMissingSaid: Set<string>): boolean {
  try {
    verifySignature(hook, path, raw, req.headers);
    return true;
  } catch (e) {
    const err = e as BatonError;
    const fields = { path, workflow: hook.workflow, code: err.code };
    if (err.code === 'BATON_WEBHOOK_SECRET_MISSING') {
      // On stderr (a gateway without a logger) once per webhook: unsigned callers must not be
      // able to flood it; a logger's lines are per request, as the access log's are.
      const said = `${path}\0${String(err.details.env)}`;
      const first = !secretMissingSaid.has(said);
      secretMissingSaid.add(said);
      gatewayLog(req, 'error', { ...fields, env: err.details.env }, err.message, first ? err.message : undefined);
    }
    else gatewayLog(req, 'warn', { ...fields, header: hook.trigger.webhook.header, reason: err.details.detail }, 'webhook refused: not signed with its secret');
    return false;
  }
}

/** Exported for the constant-time test (test/reliability/webhook-signature.test.ts). */
export function verifySignature(hook: Listening<WebhookTrigger>, path: string, raw: Buffer, headers: FastifyRequest['headers']): void {
  const { secret, header, algorithm } = hook.trigger.webhook;
  const env = secret.slice('env:'.length);
  const key = process.env[env];
  // The digest first, whatever follows: how long a refusal takes says nothing of why.
  const expected = createHmac(algorithm, key ?? '').update(raw).digest();
  if (key === undefined || key === '') throw new BatonError('BATON_WEBHOOK_SECRET_MISSING', { path, env });
  const params = { path, algorithm, header };
  const given = headers[header];
  const value = Array.isArray(given) ? given[0] : given;
  if (!value) throw new BatonError('BATON_WEBHOOK_SIGNATURE', { ...params, detail: `header ${header} is missing; nothing was started.` });
  // GitHub style `sha256=<hex>`, or the bare hex digest.
  const hex = value.trim().replace(new RegExp(`^${algorithm}=`, 'i'), '');
  const got = /^[0-9a-fA-F]+$/.test(hex) && hex.length % 2 === 0 ? Buffer.from(hex, 'hex') : Buffer.alloc(0);
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
    throw new BatonError('BATON_WEBHOOK_SIGNATURE', { ...params, detail: 'the signature does not match the body; nothing was started.' });
  }
}

/** JSON bodies as values, form bodies as objects, anything else as text. */
function parseBody(raw: Buffer, headers: FastifyRequest['headers']): unknown {
  if (raw.length === 0) return null;
  const text = raw.toString('utf8');
  const type = mediaType(headers);
  if (type === 'application/json' || type.endsWith('+json') || (type === '' && /^\s*[[{"]/.test(text))) {
    checkJsonDepth(text);
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new BatonError('BATON_REQUEST_INVALID', { detail: `the body is not valid JSON (${(e as Error).message}); the signature was valid, nothing was started.` });
    }
  }
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  return text;
}

const REQUIRED = ['specversion', 'id', 'source', 'type'] as const;

function mediaType(headers: FastifyRequest['headers']): string {
  return String(headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** RFC 3339 date-time (the CloudEvents `time` format): the SDK takes any string, even "yesterday". */
function isRfc3339(t: string): boolean {
  return /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(t) && !Number.isNaN(Date.parse(t));
}

/**
 * The CloudEvents of a request, checked: every required attribute present (the SDK would fill a
 * missing id with a random one, which would defeat deduplication), spec version 1.0, and the
 * SDK's own validation.
 */
export function readCloudEvents(headers: FastifyRequest['headers'], raw: Buffer): TriggerEvent[] {
  const type = mediaType(headers);
  const text = raw.toString('utf8');
  const structured = type === 'application/cloudevents+json' || type === 'application/cloudevents-batch+json';
  checkJsonDepth(text); // structured events, or a binary-mode event's JSON data
  const problems: string[] = [];
  if (structured) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new BatonError('BATON_CLOUDEVENT_INVALID', { detail: `the body is not JSON (${(e as Error).message})` });
    }
    const list = type === 'application/cloudevents-batch+json' ? parsed : [parsed];
    if (!Array.isArray(list)) throw new BatonError('BATON_CLOUDEVENT_INVALID', { detail: 'a batch must be a JSON array of events' });
    if (list.length === 0) throw new BatonError('BATON_CLOUDEVENT_INVALID', { detail: 'the batch is empty' });
    list.forEach((ev, i) => {
      const at = type === 'application/cloudevents-batch+json' ? `event [${i}]: ` : '';
      if (!ev || typeof ev !== 'object' || Array.isArray(ev)) return problems.push(`${at}not a JSON object`);
      for (const a of REQUIRED) if (typeof (ev as Record<string, unknown>)[a] !== 'string' || (ev as Record<string, string>)[a] === '') problems.push(`${at}attribute "${a}" is missing or not a non-empty string`);
      // The event's own attribute: a "specversion" key inside its data is the sender's business.
      const v = (ev as Record<string, unknown>).specversion;
      if (typeof v === 'string' && v !== '' && v !== '1.0') problems.push(`${at}only spec version 1.0 is supported (got "${v}")`);
      const t = (ev as Record<string, unknown>).time;
      if (t !== undefined && (typeof t !== 'string' || !isRfc3339(t))) problems.push(`${at}attribute "time" must be an RFC 3339 timestamp, e.g. 2026-01-31T09:00:00Z`);
      return undefined;
    });
  } else {
    for (const a of REQUIRED) if (!headers[`ce-${a}`]) problems.push(`header ce-${a} is missing`);
    const t = headers['ce-time'];
    if (t !== undefined && (typeof t !== 'string' || !isRfc3339(t))) problems.push('header ce-time must be an RFC 3339 timestamp, e.g. 2026-01-31T09:00:00Z');
  }
  if (!problems.length && !structured && headers['ce-specversion'] !== '1.0') problems.push('only spec version 1.0 is supported');
  if (problems.length) throw new BatonError('BATON_CLOUDEVENT_INVALID', { detail: problems.join('; ') });
  let events: Array<CloudEventV1<unknown>>;
  try {
    const r = HTTP.toEvent<unknown>({ headers, body: text });
    events = Array.isArray(r) ? r : [r];
    for (const e of events) (e as unknown as { validate(): boolean }).validate();
  } catch (e) {
    const errs = (e as { errors?: Array<{ instancePath?: string; message?: string }> }).errors;
    const detail = Array.isArray(errs) && errs.length ? errs.map((x) => `${x.instancePath || '(event)'} ${x.message}`).join('; ') : (e as Error).message;
    throw new BatonError('BATON_CLOUDEVENT_INVALID', { detail });
  }
  return events.map((e) => {
    const out: TriggerEvent = { ...(JSON.parse(JSON.stringify(e)) as Record<string, unknown>), id: e.id, type: e.type, source: e.source, subject: e.subject, data: e.data ?? null };
    return out;
  });
}
