/**
 * The HTTP gateway (`baton serve`): the API through which applications use Baton — register
 * workflow versions, start runs (async 202, or sync waiting up to a timeout), read and control
 * runs, deliver events, health and readiness. Built on Fastify: bodies are checked by JSON
 * Schema before a handler runs, and every error leaves as RFC 9457 problem JSON carrying the
 * Baton error code, so clients branch on `code`, never on message text.
 *
 * This is the gateway's core; OpenAPI docs, live event streams, triggers, API keys and
 * workflows-as-models build on it.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { setMaxListeners } from 'node:events';
import { browserGuard } from './browser-guard.js';
import { parseJsonBody } from './json-body.js';
import { documentGateway } from './openapi.js';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { RUN_ID_PATTERN, type Baton } from '../engine/engine.js';
import { TERMINAL_RUN_STATES, type RunStatus } from '../engine/states.js';
import { BatonError, serializeError } from '../errors.js';
import type { ApiKeyRecord, EventRecord } from '../store/store.js';
import type { Logger } from 'pino';
import { loggedUrl } from '../observability/logger.js';
import { METRICS_CONTENT_TYPE } from '../observability/metrics.js';
import { checkNamespace, DEFAULT_NAMESPACE, qualifiedName, splitQualified } from '../engine/namespaces.js';
import { isDerivedRunId } from '../engine/triggers.js';
import { authenticate, rateLimit, reaches, requireCap } from './auth.js';
import { registerOpenAiRoutes } from './openai-compat.js';
import { callerWorkflowName, registerGovernanceRoutes } from './governance.js';
import { registerScheduleRoutes } from './schedules.js';
import { registerAuditRoutes, wantsReveal, whoIs, type AuditRouteOptions } from './audit.js';
import { present, presentEvents, recordReveal } from '../audit/redaction.js';
import { registerTaskRoutes } from './tasks.js';
import { registerApprovalRoutes } from './approvals.js';
import { eventQuerySchema, responses, SHARED_SCHEMAS } from './schemas.js';
import { gatewayLog, markLogging } from './log.js';
import { registerTriggerRoutes } from './triggers.js';
import { registerConsoleApi } from './console-api.js';
import { BROWSER_PAGE_HEADERS, registerConsole } from './console.js';

export interface GatewayOptions {
  /**
   * `required`: every request but health, readiness and docs needs an API key; `off`: none
   * does (a gateway on a laptop); `auto` (default): required as soon as any key exists.
   */
  auth?: 'auto' | 'required' | 'off';
  /** Largest request body accepted, bytes (default 1 MiB): larger ones get 413. */
  bodyLimit?: number;
  /** Longest a sync start may wait (default 30 s). */
  maxWaitMs?: number;
  /**
   * Structured logs (observability/logger.ts): one JSON line per request (method, path, status,
   * ms, key id — never the key) and errors. Default: none.
   */
  logger?: Logger;
  /** Store-wide retention (baton.config.yaml `retention:`), for `POST /audit/purge`. */
  retention?: AuditRouteOptions['retention'];
  /**
   * Host names the gateway answers to (the Host header, port aside); others get 403. `baton
   * serve` on a loopback address sets the loopback names (DNS rebinding). Default: any.
   */
  allowedHosts?: readonly string[];
}

/** Reachable without a key: probes and documentation. */
const PUBLIC = new Set(['/', '/health', '/ready', '/openapi.json', '/favicon.ico']);

const RUN_STATUSES: RunStatus[] = ['pending', 'queued', 'running', 'waiting', 'paused', 'completed', 'failed', 'cancelled'];

/** Builds the gateway with its OpenAPI document (`/openapi.json`) and browsable docs (`/docs`). */
export async function createGateway(baton: Baton, opts: GatewayOptions = {}): Promise<FastifyInstance> {
  const app = newFastify(opts);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Baton', version: '0.1.0', description: 'Durable AI orchestration: register workflows, start and control runs, follow their events.' },
    },
    // Shared schemas keep their names (Run, Problem…) in components, not def-0, def-1.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (d) => documentGateway((d as { openapiObject: Record<string, unknown> }).openapiObject),
  });
  // The docs page: its own CSP (the UI's static files), not framed by other sites, no sniffing.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // Swagger UI sets a few inline styles, which its own policy would block (a console error).
    transformStaticCSP: (header) => header.replace("style-src 'self' https:", "style-src 'self' https: 'unsafe-inline'"),
    uiHooks: {
      onRequest: (_req, reply, next) => {
        reply.headers(BROWSER_PAGE_HEADERS);
        next();
      },
    },
  });
  buildGateway(baton, opts, app);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await registerConsole(app);
  return app;
}

function newFastify(opts: GatewayOptions): FastifyInstance {
  const ajv = { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } };
  const bodyLimit = opts.bodyLimit ?? 1024 * 1024;
  // Fastify's own request lines would log the query string as is: ours (below) leave values out.
  // A request's `req.log` is the gateway's logger itself, not a child made for every request
  // (one of a redacting pino logger costs some 3 µs a request); the access line names the request.
  // Path parameters (run ids, child runs' `<parent>.<step>.<attempt>` ids, workflow names) may
  // be 200 characters and more: Fastify's default of 100 would answer 414 for runs it started.
  const routerOptions = { maxParamLength: 512 };
  // Errors Fastify meets before routing (a malformed %-escape in the URL) are problem JSON too.
  const frameworkErrors = (err: Error, req: FastifyRequest, reply: FastifyReply) => {
    problem(reply, req, new BatonError('BATON_REQUEST_INVALID', { detail: `the URL cannot be read (${err.message}); escape it properly.` }));
  };
  // A request (headers and body) must arrive within 30 s: Fastify's default (0) switches off
  // Node's, and a client sending a body a byte at a time held its socket forever; thousands
  // of them (webhooks take no key) ran the process out of file descriptors. Answers may take
  // longer (event streams, long polls, sync waits): this bounds only the request's arrival.
  const requestTimeout = 30_000;
  if (opts.logger) return Fastify({ bodyLimit, routerOptions, frameworkErrors, requestTimeout, loggerInstance: opts.logger, logController: new LogController({ disableRequestLogging: true }), childLoggerFactory: (logger) => logger, ajv }) as unknown as FastifyInstance;
  return Fastify({ bodyLimit, routerOptions, frameworkErrors, requestTimeout, logger: false, ajv });
}

export function buildGateway(baton: Baton, opts: GatewayOptions = {}, given?: FastifyInstance): FastifyInstance {
  // Unknown fields are refused, not silently dropped, and types are not coerced: a client
  // that sends the wrong thing hears about it.
  const app = given ?? newFastify(opts);
  const maxWaitMs = opts.maxWaitMs ?? 30_000;
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  // Requests held open (long polls, event streams, sync starts, chat completions) end when the
  // gateway begins to close: the server's close waits for every request in flight, and would
  // otherwise wait out their waits (up to 120 s) before the engine could stop.
  const closing = new AbortController();
  setMaxListeners(0, closing.signal); // one listener for each request held open
  app.addHook('preClose', async () => {
    closing.abort('the gateway is shutting down'); // a replay in flight is cancelled saying so
    baton.wakeWaiters(); // waits given the signal see it now (they do not listen to it)
    // The server's close ends only the keep-alive connections idle when it begins; one whose
    // request ends afterwards would be kept for the keep-alive timeout (72 s) before it closes.
    const reap = setInterval(() => app.server.closeIdleConnections(), 100).unref();
    app.server.once('close', () => clearInterval(reap));
  });

  // YAML documents are accepted as text, by POST /workflows only: elsewhere such a body is 415
  // (a JSON route would otherwise answer "body must be object" to text/plain).
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'], { parseAs: 'string' }, (req, body, done) => {
    if (req.method === 'POST' && req.routeOptions.url === '/workflows') return done(null, body);
    done(new BatonError('BATON_UNSUPPORTED_MEDIA_TYPE', { detail: `${req.method} ${req.routeOptions.url ?? req.url} takes application/json, not ${String(req.headers['content-type']).split(';')[0]}` }), undefined);
  });
  // JSON is parsed here rather than by Fastify's default parser, for three things it does not
  // do: an empty body is no body (many clients send `content-type: application/json` on a
  // body-less POST /runs/{id}/cancel); a `__proto__` or `constructor` key is refused as such,
  // not as "not valid JSON"; and POST /workflows keeps the text, so that a JSON document's
  // problems carry line and column as a YAML one's do.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, text, done) => {
    // A leading byte order mark (some Windows and .NET clients send one) is not part of the JSON.
    const json = (text as string).charCodeAt(0) === 0xfeff ? (text as string).slice(1) : (text as string);
    if (json.trim() === '') return done(null, undefined);
    let body: unknown;
    try {
      body = parseJsonBody(json);
    } catch (e) {
      return done(e instanceof BatonError ? e : new BatonError('BATON_REQUEST_INVALID', { detail: `the body is not valid JSON: ${(e as Error).message}` }), undefined);
    }
    if (req.method === 'POST' && req.routeOptions.url === '/workflows') jsonText.set(req, json);
    done(null, body);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => problem(reply, req, err));

  // Web pages in the user's browser may not drive the gateway (browser-guard.ts), keys or not.
  app.addHook('onRequest', browserGuard(opts.allowedHosts, (reply, req, e) => void problem(reply, req, e)));

  // Who is calling: a key checked on every request (and its rate limit taken), unless auth is off.
  const keys = new WeakMap<FastifyRequest, ApiKeyRecord>();
  const authMode = opts.auth ?? 'auto';
  // 'auto': keys are required once a key has been created, revoked ones included: revoking a
  // leaked last key must not open the gateway to everyone (`--auth off` does that, on purpose).
  // Once on, it stays on for the life of the process: no store read at all.
  let anyKey = { value: false, at: 0 };
  const authOn = async (): Promise<boolean> => {
    if (authMode !== 'auto') return authMode === 'required';
    if (!anyKey.value && Date.now() - anyKey.at > 2000) anyKey = { value: (await baton.store.listApiKeys()).length > 0, at: Date.now() };
    return anyKey.value;
  };
  // With auth off there is nothing to check: no hook at all (each costs every request a promise).
  if (authMode !== 'off') app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    // Webhooks prove who sent them by their HMAC signature, not an API key.
    // The console's static files hold no data: the app signs in with a key for every API call.
    if (PUBLIC.has(path) || path.startsWith('/docs') || path.startsWith('/hooks/') || path === '/console' || path.startsWith('/console/')) return;
    if (!(await authOn())) return;
    const key = await authenticate(baton.store, req.headers.authorization);
    // Every request counts, before its body is read; a CloudEvents batch counts one request per
    // event, the rest taken by its route once it has read the batch (triggers.ts).
    await rateLimit(baton.store, key);
    keys.set(req, key);
  });
  const keyOf = (req: FastifyRequest) => keys.get(req);
  /** A run the caller may see: one of another namespace is "not found", not "forbidden", so ids do not leak. */
  const visibleRun = async (req: FastifyRequest, id: string) => {
    const run = await baton.getRun(id);
    if (!reaches(keyOf(req), run.namespace)) throw new BatonError('BATON_RUN_NOT_FOUND', { runId: id });
    return run;
  };
  if (opts.logger) {
    markLogging(app);
    // One line per request: never the key itself, nor query values (a token in a URL stays out).
    // The line is built here from fields that hold no secret, so it skips pino's path redaction
    // (about 4 µs a line, a fifth of what the HTTP layer costs a request); the scrub of every
    // written line for key- and token-shaped text still applies.
    const log = opts.logger.child({}, { redact: [] });
    app.addHook('onResponse', (req, reply, done) => {
      const runId = (req.params as { id?: string } | undefined)?.id ?? runIds.get(req);
      const fields: Record<string, unknown> = { method: req.method, url: loggedUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 };
      const key = keys.get(req);
      if (key) fields.key_id = key.id;
      if (runId && (req.url.startsWith('/runs') || runIds.has(req))) fields.run_id = runId;
      if (reply.statusCode >= 500) log.error(fields, 'request failed');
      else log.info(fields, 'request');
      done();
    });
  }
  /** Runs started by a request (POST /runs), for its log line. */
  const runIds = new WeakMap<FastifyRequest, string>();
  app.setNotFoundHandler((req, reply) => problem(reply, req, new BatonError('BATON_USAGE', { detail: `No route ${req.method} ${req.url}. See GET / for the routes.` }), 404));

  // Browsers asking for `/` get the console; API clients (Accept: application/json, curl's */*)
  // the index. (Decided here, not in a hook: a hook would run on every request.)
  app.get('/', async (req, reply) => ((req.headers.accept ?? '').includes('text/html') ? reply.redirect('/console/', 302) : ({
    name: 'baton',
    docs: '/docs',
    openapi: '/openapi.json',
    routes: ['GET /health', 'GET /ready', 'GET /metrics', 'GET /workflows', 'POST /workflows', 'GET /workflows/{name}/versions', 'GET /workflows/{name}/history', 'GET /workflows/diff', 'POST /workflows/{name}/promote', 'GET /services', 'POST /services/{name}/status', 'GET /services/{name}/history', 'GET /lineage', 'POST /runs', 'GET /runs', 'GET /runs/{id}', 'GET /runs/{id}/events', 'POST /runs/{id}/pause', 'POST /runs/{id}/resume', 'POST /runs/{id}/cancel', 'POST /runs/{id}/retry', 'POST /runs/{id}/replay', 'POST /runs/{id}/signal', 'GET /runs/{id}/audit', 'GET /runs/{id}/audit.html', 'GET /audit/verify', 'POST /audit/purge', 'POST /events/{name}/{key}', 'POST /tasks/poll', 'POST /tasks/{id}/heartbeat', 'POST /tasks/{id}/complete', 'POST /tasks/{id}/fail', 'GET /tasks/{id}', 'GET /approvals', 'GET /approvals/{id}', 'POST /approvals/{id}', 'POST /hooks/{path}', 'POST /cloudevents', 'GET /schedules', 'POST /schedules/{id}/pause', 'POST /schedules/{id}/resume', 'POST /schedules/{id}/trigger', 'GET /v1/models', 'POST /v1/chat/completions', 'GET /console/'],
  })));
  app.get('/health', async () => ({ status: 'ok' }));
  // Browsers ask for it on every console page: no icon, and no 401 in their console.
  app.get('/favicon.ico', { schema: { hide: true } }, async (_req, reply) => reply.code(204).send());

  // Prometheus scrape target. Behind the API keys like every other read (a `viewer` key is
  // enough); `baton serve --metrics-port` serves it on a separate port without keys instead.
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format 0.0.4). Needs a key with `read` (viewer or above) reaching every namespace (`*`) when auth is on.' } }, async (req, reply) => {
    const key = keyOf(req);
    requireCap(key, 'read', 'read metrics');
    // Labels name the workflows and services of every namespace: a key confined to some may not read them.
    if (key && !key.namespaces.includes('*')) throw new BatonError('BATON_FORBIDDEN', { key: key.id, role: key.role, action: 'read metrics (they cover every namespace; use a key with namespace *)' });
    if (!baton.metrics) throw new BatonError('BATON_USAGE', { detail: 'metrics are off in this engine (opened with metrics: false).' });
    return reply.type(METRICS_CONTENT_TYPE).send(await baton.metrics.text());
  });
  app.get('/ready', async (_req, reply) => {
    try {
      await baton.store.listRuns({ limit: 1 });
      return { status: 'ready', store: baton.store.kind };
    } catch (e) {
      return reply.code(503).send({ status: 'unavailable', detail: (e as Error).message });
    }
  });

  /**
   * The namespace a request acts in: the one it names (which its key must reach), else the
   * key's first namespace, else `default`.
   */
  const namespaceOf = (req: FastifyRequest, asked: string | undefined, action: string): string => {
    const key = keyOf(req);
    const ns = checkNamespace(asked ?? (key && !key.namespaces.includes('*') ? key.namespaces[0] : undefined));
    if (!reaches(key, ns)) throw new BatonError('BATON_FORBIDDEN', { key: key!.id, role: key!.role, action: `${action} in namespace "${ns}"` });
    return ns;
  };
  /**
   * The namespace an event sent by this request goes to (POST /events, POST /cloudevents): the
   * one `?namespace=` names (which the key must reach, as namespaceOf has it), else a key's only
   * namespace; a key of several must name one. Undefined, every namespace: a `*` key, or auth off.
   */
  const eventNamespace = (req: FastifyRequest, action: string): string | undefined => {
    const asked = (req.query as { namespace?: string }).namespace;
    if (asked !== undefined) return namespaceOf(req, asked, action);
    const key = keyOf(req);
    if (!key || key.namespaces.includes('*')) return undefined;
    if (key.namespaces.length > 1) throw new BatonError('BATON_NAMESPACE_REQUIRED', { key: key.id, namespaces: key.namespaces.join(', '), action, example: key.namespaces[0] });
    return key.namespaces[0];
  };
  /** A workflow reference resolved in the caller's namespace; another team's workflow is "not found". */
  const visibleVersion = async (req: FastifyRequest, ref: string, namespace: string): Promise<string> => {
    const versionId = await baton.registry.resolve(ref, namespace);
    const own = splitQualified(versionId).namespace;
    if (own !== DEFAULT_NAMESPACE && !reaches(keyOf(req), own)) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref });
    return versionId;
  };

  app.get('/workflows', {
    schema: {
      summary: 'Registered workflow versions the caller can see: its namespaces and the shared default namespace.',
      querystring: { type: 'object', additionalProperties: false, properties: { name: { type: 'string' }, namespace: { type: 'string' } } },
      response: responses.versions,
    },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read workflows');
    const q = req.query as { name?: string; namespace?: string };
    const versions = await baton.store.listVersions(q.name === undefined ? undefined : qualifiedName(checkNamespace(q.namespace), q.name));
    return versions
      .map((v) => ({ v, ...splitQualified(v.name) }))
      .filter(({ namespace }) => (namespace === DEFAULT_NAMESPACE || reaches(keyOf(req), namespace)) && (q.namespace === undefined || namespace === q.namespace))
      .map(({ v, namespace, name }) => ({ version_id: v.versionId, name, namespace, seq: v.seq, created_at: new Date(v.createdAt).toISOString() }));
  });

  app.post('/workflows', {
    schema: {
      summary: 'Registers a workflow version (JSON or YAML body). Problems come back with line and column.',
      querystring: { type: 'object', additionalProperties: false, properties: { namespace: { type: 'string', description: "Default: the key's first namespace, or default." } } },
      response: responses.registered,
    },
  }, async (req, reply) => {
    requireCap(keyOf(req), 'register', 'register workflows');
    const namespace = namespaceOf(req, (req.query as { namespace?: string }).namespace, 'register workflows');
    // A YAML body is registered from its text, so that problems have line and column. A JSON
    // body is registered as parsed (fast, and as JSON reads it: the last of duplicate keys); only
    // a refused one is read again from its text, for the positions of its problems.
    const json = jsonText.get(req);
    let v: Awaited<ReturnType<Baton['register']>>;
    try {
      v = await baton.register(req.body, typeof req.body === 'string' ? 'request.yaml' : undefined, { namespace });
    } catch (e) {
      if (json === undefined || !(e instanceof BatonError) || e.code !== 'BATON_DOC_INVALID') throw e;
      v = await baton.register(json, 'request.json', { namespace });
    }
    return reply.code(201).send({ version_id: v.versionId, name: splitQualified(v.name).name, namespace, seq: v.seq, warnings: v.warnings });
  });

  app.post('/runs', {
    schema: {
      body: {
        type: 'object',
        required: ['workflow'],
        additionalProperties: false,
        properties: {
          workflow: { type: 'string', minLength: 1, description: 'A workflow name (its latest version), name@staging / name@production (the promoted version) or a version id.' },
          input: {},
          id: { type: 'string', pattern: RUN_ID_PATTERN, description: 'Your id for the run (an idempotency key: starting the same workflow with it again returns that run). URL-safe: letters, digits, _ - . : ~. Not of the form of the ids triggers give their runs (hook_, ce_ or sched_ and 32 hex digits; sched_<12 hex digits>_<fire time>): 400.' },
          namespace: { type: 'string' },
          priority: { type: 'integer' },
          budget: { type: 'number', exclusiveMinimum: 0 },
          wait: { type: 'number', minimum: 0, description: 'Seconds to wait for the run to end (sync start); 0 or absent: answer 202 at once.' },
        },
      },
      response: responses.started,
    },
  }, async (req, reply) => {
    const b = req.body as { workflow: string; input?: unknown; id?: string; namespace?: string; priority?: number; budget?: number; wait?: number };
    requireCap(keyOf(req), 'run', 'start runs');
    if (b.id !== undefined && isDerivedRunId(b.id)) {
      throw new BatonError('BATON_USAGE', { detail: `run id "${b.id}" has the form of the ids Baton gives the runs its triggers start (hook_, ce_ or sched_ and 32 hex digits, or a schedule's sched_<12 hex digits>_<fire time>), which only they may take. Choose another id, or leave it out for a generated one.` });
    }
    // A key's runs go to its first namespace unless it names another it reaches; a namespaced
    // workflow's runs go to the workflow's namespace.
    const asked = b.namespace === undefined ? undefined : namespaceOf(req, b.namespace, 'start runs');
    const versionId = await visibleVersion(req, b.workflow, asked ?? namespaceOf(req, undefined, 'start runs'));
    const own = splitQualified(versionId).namespace;
    const namespace = asked ?? (own !== DEFAULT_NAMESPACE ? own : namespaceOf(req, undefined, 'start runs'));
    // A caller's trace context makes the run span a child of the caller's span (tracing on).
    const id = await baton.start(versionId, b.input ?? {}, { id: b.id, namespace, priority: b.priority, budget: b.budget, traceparent: traceparentOf(req) });
    runIds.set(req, id);
    if (!b.wait) return reply.code(202).header('location', `/runs/${id}`).send({ run_id: id, status: 'running' });
    // Closing: 202 with the run as it is (as at the deadline); it goes on, durable.
    const r = await baton.wait(id, { timeoutMs: Math.min(b.wait * 1000, maxWaitMs), signal: closing.signal });
    return reply.code(TERMINAL_RUN_STATES.has(r.status) ? 200 : 202).header('location', `/runs/${id}`).send(runBody(r));
  });

  app.get('/runs', {
    schema: {
      summary: 'Runs the caller can see, newest first.',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          status: { type: 'string', description: 'Comma-separated statuses.' },
          workflow: { type: 'string' },
          limit: { type: 'string', description: '1 to 1000, default 50.' },
          before: { type: 'string', description: 'Only runs created before this time (ISO 8601 or epoch ms). The next page: `?before=<created_at of the last run>&before_run=<its run_id>`.' },
          before_run: { type: 'string', minLength: 1, description: 'With `before`: the last run of the previous page, so that runs created in the same millisecond are not skipped.' },
        },
      },
      response: responses.runs,
    },
  }, async (req) => {
    const q = req.query as { status?: string; workflow?: string; limit?: string; before?: string; before_run?: string };
    const status = q.status?.split(',') as RunStatus[] | undefined;
    for (const s of status ?? []) if (!RUN_STATUSES.includes(s)) throw new BatonError('BATON_USAGE', { detail: `status "${s}" is not one of ${RUN_STATUSES.join(', ')}.` });
    const limit = q.limit === undefined ? 50 : /^\d{1,4}$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new BatonError('BATON_USAGE', { detail: 'limit must be a whole number from 1 to 1000.' });
    const before = q.before === undefined ? undefined : /^\d+$/.test(q.before) ? Number(q.before) : Date.parse(q.before);
    if (before !== undefined && !Number.isFinite(before)) throw new BatonError('BATON_USAGE', { detail: `before "${q.before}" is not a time: give ISO 8601 (2026-12-06T10:00:00Z) or epoch milliseconds.` });
    if (q.before_run !== undefined && before === undefined) throw new BatonError('BATON_USAGE', { detail: 'before_run goes with before: give both, the created_at and the run_id of the last run of the previous page.' });
    requireCap(keyOf(req), 'read', 'read runs');
    // A plain name means the caller's own workflow of that name if it has one (as POST /runs).
    const workflow = q.workflow === undefined ? undefined : await callerWorkflowName(baton, keyOf(req), q.workflow);
    return (await baton.listRuns({ status, workflow, limit, before, beforeId: q.before_run, namespaces: keyOf(req)?.namespaces })).map(runBody);
  });

  app.get('/runs/:id', {
    schema: {
      summary: 'A run with its steps, their outputs and errors. Sensitive fields are `***`; an admin may ask `?reveal=true` (recorded as an `audit.revealed` event).',
      querystring: { type: 'object', additionalProperties: false, properties: { reveal: { enum: ['true', 'false'] } } },
      response: responses.runWithSteps,
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    requireCap(keyOf(req), 'read', 'read runs');
    const run = await visibleRun(req, id);
    const reveal = wantsReveal(req, keyOf(req));
    if (reveal) await recordReveal(baton, id, whoIs(keyOf(req)), 'GET /runs/{id}');
    const steps = await baton.getSteps(id);
    const v = { reveal };
    return {
      ...runBody({ ...run, output: present(run.output, v) }),
      steps: steps.map((s) => ({ key: s.key, status: s.status, attempt: s.attempt, output: present(s.output, v), error: s.error, started_at: iso(s.startedAt), finished_at: iso(s.finishedAt) })),
    };
  });

  app.get('/runs/:id/events', {
    schema: {
      summary: "A run's events as Server-Sent Events, from the start or after an event id (`?after=` or the `Last-Event-ID` header); ends when the run has ended.",
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
      querystring: { type: 'object', additionalProperties: false, properties: { after: { type: 'string', pattern: '^[0-9]+$' } } },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const q = req.query as { after?: string };
    requireCap(keyOf(req), 'read', 'read runs');
    const header = req.headers['last-event-id'];
    if (header !== undefined && (typeof header !== 'string' || !/^[0-9]+$/.test(header.trim()))) {
      throw new BatonError('BATON_REQUEST_INVALID', { detail: 'header Last-Event-ID must be an event id (digits), as sent in the stream\'s id: lines' });
    }
    // An EventSource opened on ...?after=N keeps that URL and sends the last id it saw on
    // reconnect: the later of the two is where the client is, so nothing is sent twice.
    let last = Math.max(Number(q.after ?? 0), Number(header ?? 0));
    await visibleRun(req, id); // 404 before the stream starts
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': baton run events\n\n');
    let open = true;
    req.raw.on('close', () => (open = false));
    // The gateway closing ends the stream without its `end` event: a client resumes from
    // Last-Event-ID on another gateway (or this one, restarted).
    const stop = () => (open = false);
    closing.signal.addEventListener('abort', stop, { once: true });
    let quiet = 0;
    const send = (raw: EventRecord) => {
      const [e] = presentEvents([raw]);
      res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({ id: e.id, type: e.type, step: e.stepKey ?? null, at: new Date(e.at).toISOString(), data: e.data ?? null })}\n\n`);
      last = e.id;
    };
    // Events are read from the store, so a run executed by any worker of a cluster streams the same.
    while (open) {
      const events = await baton.store.getEvents(id, last);
      for (const e of events) {
        send(e);
      }
      const run = await baton.store.getRun(id);
      if (!run || TERMINAL_RUN_STATES.has(run.status)) {
        // Anything written between the two reads is sent before the end.
        for (const e of await baton.store.getEvents(id, last)) {
          send(e);
        }
        res.write(`event: end\ndata: ${JSON.stringify({ status: run?.status ?? 'unknown' })}\n\n`);
        break;
      }
      quiet = events.length ? 0 : quiet + 1;
      if (quiet > 0 && quiet % 60 === 0) res.write(': keep-alive\n\n');
      await new Promise((r) => setTimeout(r, events.length ? 20 : 250));
    }
    closing.signal.removeEventListener('abort', stop);
    res.end();
  });

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(`/runs/:id/${action}`, { schema: { summary: `${action[0].toUpperCase()}${action.slice(1)}s a run.`, response: responses.run } }, async (req) => {
      const { id } = req.params as { id: string };
      requireCap(keyOf(req), 'run', `${action} runs`);
      await visibleRun(req, id);
      await baton[action](id);
      return runBody(await baton.getRun(id));
    });
  }

  app.post('/runs/:id/retry', {
    schema: {
      summary: 'Retries a failed or cancelled run: what did not finish or failed unhandled runs again (with what depends on it); finished steps keep their outputs. 202: the run is back at work.',
      description: 'With `from`, that step and everything downstream of it run again too, even if they succeeded. Attempt numbers keep counting. 409 BATON_RUN_NOT_RETRYABLE unless the run is failed or cancelled; 400 BATON_RETRY_STEP_UNKNOWN for a `from` the workflow does not have.',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { from: { type: 'string', minLength: 1, description: 'A step id of the workflow: re-run it and everything downstream of it.' } },
      },
      response: responses.retried,
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const b = (req.body ?? {}) as { from?: string };
    const key = keyOf(req);
    requireCap(key, 'run', 'retry runs');
    await visibleRun(req, id);
    const run = await baton.retry(id, { from: b.from, by: key ? `key ${key.id} (${key.name})` : undefined });
    return reply.code(202).header('location', `/runs/${id}`).send(runBody(run));
  });

  // Replays execute in this process (their recordings are here), and answer once the replay run
  // ended. The gateway closing cancels one in flight (a replay run cannot go on without its
  // recordings) and answers 503 BATON_REPLAY_INTERRUPTED, rather than hold the shutdown up to 5 minutes.
  app.post('/runs/:id/replay', {
    schema: {
      summary: "Replays a finished run against a version of its workflow with its recorded model, HTTP and task outputs (nothing is called) and reports where the version's decisions differ.",
      description: 'The replay is a new run `replay_…` (marked `replay_of`, cost 0). `version`: a version id, or the workflow name for its latest (default: the run\'s own version). `from`: keep the recorded outputs of the steps before that one. `live`: call for real the steps whose input has no recording (default: 422 BATON_REPLAY_NO_RECORDING naming the step). 409 BATON_RUN_STATE for a run not finished; 400 BATON_REPLAY_STEP_UNKNOWN / BATON_REPLAY_VERSION; 503 BATON_REPLAY_INTERRUPTED when the gateway shuts down during the replay (the replay run is cancelled; replay again).',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: {
          version: { type: 'string', minLength: 1, description: 'Version id, or workflow name (its latest version).' },
          from: { type: 'string', minLength: 1, description: 'A step id of that version: fork the replay there.' },
          live: { type: 'boolean', description: 'Call for real what has no recording (default false).' },
        },
      },
      response: { 200: { type: 'object', additionalProperties: true, description: 'The replay report (see README, "Replaying a run").' }, ...responses.problems },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = (req.body ?? {}) as { version?: string; from?: string; live?: boolean };
    requireCap(keyOf(req), 'run', 'replay runs');
    await visibleRun(req, id);
    return baton.replay(id, { version: b.version, from: b.from, live: b.live, signal: closing.signal });
  });

  // A signal addressed to one run: wakes its steps waiting for the event, whatever their key.
  app.post('/runs/:id/signal', {
    schema: {
      summary: "Sends a signal to one run: wakes its steps that wait for `event`. 409 when the run has ended or is not waiting for it.",
      body: {
        type: 'object',
        required: ['event'],
        additionalProperties: false,
        properties: { event: { type: 'string', minLength: 1, maxLength: 200 }, payload: {} },
      },
      response: { 200: { type: 'object', properties: { run_id: { type: 'string' }, woken: { type: 'array', items: { type: 'string' } } } }, ...responses.problems },
    },
  }, async (req) => {
    const { id } = req.params as { id: string };
    const b = req.body as { event: string; payload?: unknown };
    requireCap(keyOf(req), 'run', 'signal runs');
    await visibleRun(req, id);
    return baton.signalRun(id, b.event, b.payload ?? null);
  });

  // Cron schedules of registered workflows: list, pause, resume, fire now.
  registerScheduleRoutes(app, baton, keyOf);
  registerGovernanceRoutes(app, baton, keyOf);
  registerAuditRoutes(app, baton, { keyOf, retention: opts.retention });

  // Workflows as models: `POST /v1/chat/completions` with `model: "workflow/<name>"`.
  registerOpenAiRoutes(app, baton, {
    startOptions: (req) => {
      requireCap(keyOf(req), 'run', 'start runs');
      return { traceparent: traceparentOf(req) };
    },
    namespace: (req) => namespaceOf(req, undefined, 'use workflows'),
    reaches: (req, ns) => ns === DEFAULT_NAMESPACE || reaches(keyOf(req), ns),
    closing: closing.signal,
  });

  // External workers of any language: `task` steps handed out by long poll, under leases.
  registerTaskRoutes(app, baton, { keyOf, maxWaitMs, closing: closing.signal });
  registerApprovalRoutes(app, baton, keyOf);

  app.post('/events/:name/:key', {
    schema: {
      summary: 'Delivers an event to the step waiting for it (name + correlation key), or buffers it for a wait with a lookback.',
      description: "Only runs of the event's namespace (`?namespace=`, or the key's) are woken or take it buffered. An `Idempotency-Key` header delivers it once per namespace.",
      querystring: eventQuerySchema,
      response: responses.delivery,
    },
  }, async (req, reply) => {
    const { name, key } = req.params as { name: string; key: string };
    requireCap(keyOf(req), 'run', 'send events');
    // A key confined to namespaces wakes (and buffers for) runs of its namespace only.
    const namespace = eventNamespace(req, 'send events');
    // With an Idempotency-Key, a retried request delivers (or buffers) the event once.
    const idem = req.headers['idempotency-key'];
    const r = await baton.sendEvent(name, key, req.body ?? null, { eventId: typeof idem === 'string' && idem ? idem : undefined, namespace });
    return reply.code(202).send(r);
  });

  // Webhooks (POST /hooks/<path>) and CloudEvents (POST /cloudevents): src/gateway/triggers.ts.
  registerTriggerRoutes(app, baton, { keyOf, eventNamespace });
  registerConsoleApi(app, baton, keyOf);

  return app;
}

/** The caller's W3C trace context, if it sent one (a malformed one is ignored when the run starts). */
export function traceparentOf(req: FastifyRequest): string | undefined {
  const h = req.headers.traceparent;
  return typeof h === 'string' ? h : undefined;
}

function runBody(r: { id: string; versionId: string; workflow: string; status: string; output?: unknown; error?: unknown; createdAt: number; finishedAt?: number; cost: number; namespace: string; replayOf?: string }) {
  return {
    run_id: r.id, workflow: r.workflow, version_id: r.versionId, status: r.status, namespace: r.namespace,
    output: present(r.output ?? null), error: r.error ?? null, cost: r.cost, created_at: iso(r.createdAt), finished_at: iso(r.finishedAt),
    ...(r.replayOf ? { replay_of: r.replayOf } : {}),
  };
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/** The text of JSON request bodies of POST /workflows, for positions in its problems. */
const jsonText = new WeakMap<FastifyRequest, string>();

/**
 * What a schema refusal says: the first few problems, each naming its field, and how many more
 * (every problem of a body with 60,000 unknown fields made a 5 MB answer to a 769 KB request).
 */
function validationDetail(err: Error & { validation?: unknown; validationContext?: string }): string {
  const list = Array.isArray(err.validation) ? (err.validation as Array<{ instancePath?: string; message?: string; params?: { additionalProperty?: string } }>) : undefined;
  if (!list?.length) return err.message;
  const where = err.validationContext ?? 'body';
  const shown = list.slice(0, 5).map((v) => `${where}${v.instancePath ?? ''} ${v.message ?? 'is not valid'}${v.params?.additionalProperty ? ` ("${v.params.additionalProperty}")` : ''}`);
  const more = list.length - shown.length;
  return more > 0 ? `${shown.join(', ')}, and ${more} more problem${more === 1 ? '' : 's'}` : shown.join(', ');
}

/** RFC 9457 problem JSON; a Baton error keeps its code and status, anything else is a 500 without internals. */
export function problem(reply: FastifyReply, req: FastifyRequest, err: Error & { statusCode?: number; code?: string; validation?: unknown }, status?: number): FastifyReply {
  let body: Record<string, unknown>;
  if (err instanceof BatonError) {
    const s = serializeError(err);
    body = { type: `https://baton.dev/errors/${err.code}`, title: err.code, status: status ?? err.status, detail: err.describe(), code: err.code, retryable: err.retryable };
    if (err.problems.length) body.problems = err.problems;
    else if (s.details && Object.keys(s.details).length) body.details = s.details;
  } else if (err.validation || (err.statusCode && err.statusCode < 500)) {
    // Fastify's own 4xx (body schema, malformed JSON, content type, size) as Baton errors.
    const code = err.statusCode === 413 ? 'BATON_REQUEST_TOO_LARGE' : err.statusCode === 415 ? 'BATON_UNSUPPORTED_MEDIA_TYPE' : 'BATON_REQUEST_INVALID';
    return problem(reply, req, new BatonError(code, { detail: validationDetail(err) }));
  } else {
    gatewayLog(req, 'error', { method: req.method, url: loggedUrl(req.url), err: { message: err.message, stack: err.stack } }, 'internal error', `internal error on ${req.method} ${loggedUrl(req.url)}: ${err.stack ?? err.message}`);
    return problem(reply, req, new BatonError('BATON_INTERNAL'));
  }
  if (body.code === 'BATON_RATE_LIMITED') reply.header('retry-after', String(Math.ceil(Number((body.details as { retryAfterMs?: number } | undefined)?.retryAfterMs ?? 1000) / 1000)));
  if (body.code === 'BATON_UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer realm="baton"');
  return reply.code(body.status as number).type('application/problem+json').send({ ...body, instance: req.url });
}
