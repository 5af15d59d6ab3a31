/**
 * Every error a user can cause, in one table. A `BatonError` is only ever built from this
 * table, so each failure has a stable `code`, an HTTP status for the gateway, a `retryable`
 * flag that retry policies read (never the message text), and a message that says what to do.
 *
 * Codes are never reused: a retired code stays in `RETIRED_CODES`.
 * `docs/errors.md` lists the same codes; a test keeps the two in step.
 */

export interface ErrorSpec {
  /** HTTP status the gateway answers with. */
  status: number;
  /** Whether repeating the same operation may succeed. Retry policies read this. */
  retryable: boolean;
  /** Message template; `{name}` is replaced by `params.name`. */
  message: string;
  /** Written to the gateway's log only; callers are answered with this code instead (it tells them less). */
  loggedOnly?: string;
}

export const ERRORS = {
  // --- documents and validation ---------------------------------------------------------
  BATON_DOC_SYNTAX: { status: 400, retryable: false, message: 'The document is not valid YAML or JSON: {detail}' },
  BATON_DOC_INVALID: { status: 400, retryable: false, message: '{detail}' },
  BATON_DOC_NOT_FOUND: { status: 404, retryable: false, message: 'Cannot read workflow file {file}: {detail}. Check the path.' },
  BATON_UNKNOWN_KIND: { status: 400, retryable: false, message: 'Unknown step kind "{kind}". Use one of: {kinds}.' },
  BATON_VERSION_CONFLICT: { status: 409, retryable: false, message: 'Version id {versionId} is already registered for a different document (hash collision). Rename the workflow.' },
  BATON_WORKFLOW_NOT_FOUND: { status: 404, retryable: false, message: 'No workflow version "{ref}" is registered. Register it first or check the name.' },
  BATON_STAGE_EMPTY: { status: 404, retryable: false, message: 'No version of workflow "{name}" is in stage {stage}. Promote one first: `baton workflows promote <version-id> --stage {stage}` (POST /workflows/{name}/promote).' },
  BATON_UNKNOWN_FUNCTION: { status: 400, retryable: false, message: 'Function "{name}" is not registered. Register it with baton.registerFunction() or list its module under `functions:` in baton.config.yaml.' },

  // --- expressions ----------------------------------------------------------------------
  BATON_EXPR_COMPILE: { status: 400, retryable: false, message: 'Expression does not compile: {detail}' },
  BATON_EXPR_EVAL: { status: 422, retryable: false, message: 'Expression {where} failed: {detail}' },
  BATON_EXPR_TIMEOUT: { status: 422, retryable: false, message: 'Expression {where} ran longer than {limitMs} ms. Simplify it or raise expression_timeout.' },
  BATON_EXPR_DEPTH: { status: 422, retryable: false, message: 'Expression {where} nested deeper than {limit} levels (runaway recursion?).' },

  // --- runs and input -------------------------------------------------------------------
  BATON_INPUT_INVALID: { status: 422, retryable: false, message: 'The run input does not match the workflow input schema: {detail}' },
  BATON_INPUT_PARSE: { status: 400, retryable: false, message: 'Cannot read the run input: {detail}' },
  BATON_RUN_NOT_FOUND: { status: 404, retryable: false, message: 'No run with id "{runId}". List runs with `baton runs list`.' },
  BATON_RUN_ID_TAKEN: { status: 409, retryable: false, message: 'Run id "{runId}" is already taken by a run of another workflow or namespace. Choose another id (starting the same workflow again with an id it already has returns that run).' },
  BATON_RUN_STATE: { status: 409, retryable: false, message: 'Run {runId} is {status}; cannot {action}.' },
  BATON_SIGNAL_NO_TARGET: { status: 409, retryable: false, message: 'No step is waiting for {what}. Send it when the run waits, or send it as an event (`POST /events/{name}/{key}`), which is kept for a wait with a `lookback`.' },
  BATON_SCHEDULE_NOT_FOUND: { status: 404, retryable: false, message: 'No schedule with id "{id}". List schedules with `baton schedules list` or GET /schedules.' },
  BATON_RUN_NOT_RETRYABLE: { status: 409, retryable: false, message: 'Run {runId} is {status}; only a failed or cancelled run can be retried.{hint}' },
  BATON_RETRY_STEP_UNKNOWN: { status: 400, retryable: false, message: 'Run {runId} (workflow {workflow}) has no step "{step}"{suggestion}. Retry from one of: {steps}.' },
  BATON_REPLAY_NO_RECORDING: { status: 422, retryable: false, message: 'Replay of run {runId}: step {step} ({kind}) has no recorded answer to reuse: {reason}. A replay calls nothing; replay with --live (live: true) to call it for real.' },
  BATON_REPLAY_STEP_UNKNOWN: { status: 400, retryable: false, message: 'Replay of run {runId}: version {version} has no step "{step}"{suggestion}. Fork from one of: {steps}.' },
  BATON_REPLAY_VERSION: { status: 400, retryable: false, message: 'Version {version} belongs to workflow {workflow}, not {expected}: a run replays against a version of its own workflow (give a version id of {expected}, or its name for the latest).' },
  BATON_REPLAY_NO_WORKER: { status: 409, retryable: false, message: 'A replay runs in the process asked for it, and this one runs no worker (baton serve --no-worker, or an engine opened with worker: false). Ask a gateway that runs a worker, or run `baton runs replay` where the store is reachable. Nothing was started.' },
  BATON_REPLAY_ORPHANED: { status: 409, retryable: false, message: 'Run {runId} is a replay driven by another process (or one that stopped); step {step} is not executed here, so that a replay never calls anything. Replay the original run again.' },
  BATON_REPLAY_INTERRUPTED: { status: 503, retryable: true, message: 'The replay of run {runId} was stopped before it ended: {reason}. Its replay run {replayRunId} was cancelled (nothing more of it runs); replay the run again.' },

  // --- step execution -------------------------------------------------------------------
  BATON_STEP_FAILED: { status: 500, retryable: true, message: 'Step {step} failed: {detail}' },
  BATON_STEP_TIMEOUT: { status: 504, retryable: true, message: 'Step {step} did not finish within {timeoutMs} ms.' },
  BATON_OUTPUT_SCHEMA: { status: 422, retryable: true, message: 'Output of step {step} does not match its output_schema: {detail}' },
  BATON_GUARD_FAILED: { status: 422, retryable: true, message: 'Output of step {step} failed its guard `{guard}`.' },
  BATON_HTTP_STATUS: { status: 502, retryable: false, message: 'HTTP {method} {url} answered {httpStatus}: {detail}' },
  BATON_HTTP_NETWORK: { status: 502, retryable: true, message: 'HTTP {method} {url} failed: {detail}' },
  BATON_EGRESS_DENIED: { status: 403, retryable: false, message: 'Egress to {host} ({address}) is denied: {rule}. Nothing was sent. Allow it under `network:` in baton.config.yaml (allow, allow_loopback, allow_private) if it is meant to be reached.' },
  BATON_HTTP_BODY: { status: 502, retryable: false, message: 'HTTP {method} {url} answered a body that is not JSON ({contentType}). Set `response: text` on the step to accept text.' },
  BATON_MAP_NOT_ARRAY: { status: 422, retryable: false, message: 'map step {step}: `over` must give an array, got {type}.' },
  BATON_CHILD_FAILED: { status: 500, retryable: false, message: 'Child workflow {workflow} (run {childRunId}) {status}: {detail}' },
  BATON_CANCELLED: { status: 409, retryable: false, message: 'Run {runId} was cancelled.' },
  BATON_TASK_FAILED: { status: 500, retryable: false, message: 'Task {taskId} ({type}) failed in worker {workerId}: [{workerCode}] {detail}' },

  // --- external tasks (workers polling /tasks) ------------------------------------------
  BATON_TASK_NOT_FOUND: { status: 404, retryable: false, message: 'No task with id "{taskId}" (or not in a namespace this key reaches).' },
  BATON_TASK_LEASE_LOST: { status: 409, retryable: false, message: 'Task {taskId}: {reason}. Stop working on it: its result is not accepted.' },
  BATON_APPROVAL_NOT_FOUND: { status: 404, retryable: false, message: 'No approval with id "{approvalId}" (or not in a namespace this key reaches). List them with `baton approvals list` or GET /approvals.' },
  BATON_APPROVAL_CLOSED: { status: 409, retryable: false, message: 'Approval {approvalId} is {status}: {reason}. Nothing was changed.' },
  BATON_APPROVAL_NOT_ALLOWED: { status: 403, retryable: false, message: 'Approval {approvalId}: "{who}" (role {role}) may not decide it; it is for {allowed}. Nothing was changed.' },
  BATON_APPROVAL_FORM: { status: 422, retryable: false, message: 'Approval {approvalId}: the answer does not match its form: {detail}. Nothing was changed; send a corrected answer.' },
  BATON_APPROVAL_REJECTED: { status: 422, retryable: false, message: 'Approval {approvalId} of step {step} was rejected by {by}{reason}.' },
  BATON_APPROVAL_EXPIRED: { status: 504, retryable: false, message: 'Approval {approvalId} of step {step}: nobody decided before its deadline ({deadline}).' },

  // --- audit trail and sensitive data ------------------------------------------------------
  BATON_ENCRYPTION_KEY_MISSING: { status: 400, retryable: false, message: 'Workflow {workflow} marks sensitive fields to store encrypted ({fields}), but BATON_ENCRYPTION_KEY is not set. Set it to 32 random bytes, base64 or hex (e.g. `openssl rand -base64 32`), in every worker and gateway, or mark the fields `mode: hash`.' },
  BATON_ENCRYPTION_KEY_INVALID: { status: 500, retryable: false, message: 'BATON_ENCRYPTION_KEY is not 32 bytes in base64 or hex, or is not the key these values were encrypted with. Set the key the store was written with (e.g. from `openssl rand -base64 32`).' },

  // --- models and services ---------------------------------------------------------------
  BATON_SERVICE_UNKNOWN: { status: 400, retryable: false, message: 'No service named "{service}" is configured. Known services: {known}. Declare it under `services:` in baton.config.yaml.' },
  BATON_SERVICE_BLOCKED: { status: 403, retryable: false, message: 'Service "{service}" is blocked by governance{reason}. Use an approved service.' },
  BATON_CREDENTIAL_MISSING: { status: 400, retryable: false, message: 'Service {service} needs its credential from environment variable {env}, which is not set. Export it, or change `credential` in baton.config.yaml.' },
  BATON_MODEL_UNSUPPORTED: { status: 400, retryable: false, message: 'Service {service} ({provider}) cannot do `{operation}`; it does: {operations}.' },
  BATON_MODEL_HTTP: { status: 502, retryable: false, message: 'Service {service} answered HTTP {httpStatus}: {detail}' },
  BATON_MODEL_RATE_LIMITED: { status: 429, retryable: true, message: 'Service {service} is rate limiting (HTTP 429){retryAfter}: {detail}' },
  BATON_MODEL_NETWORK: { status: 502, retryable: true, message: 'Service {service}: cannot reach {endpoint}: {detail}. Is the server running and the endpoint right?' },
  BATON_MODEL_BAD_RESPONSE: { status: 502, retryable: true, message: 'Service {service} answered something that is not a valid {protocol} response: {detail}' },
  BATON_MODEL_STREAM_BROKEN: { status: 502, retryable: true, message: 'Service {service}: the answer stream {detail}. The partial answer was discarded.' },
  BATON_MODEL_TIMEOUT: { status: 504, retryable: true, message: 'Service {service} did not answer within {timeoutMs} ms.' },
  BATON_MODEL_LOCAL: { status: 500, retryable: false, message: 'Service {service}: local model failed: {detail}' },
  BATON_OUTPUT_DEGRADED: { status: 422, retryable: true, message: 'Service {service} gave a degraded answer: {detail}' },
  BATON_CIRCUIT_OPEN: { status: 503, retryable: true, message: 'Service {service} is skipped: its circuit breaker is open after {failures} failures (next probe in {retryInMs} ms).' },
  BATON_ALL_SERVICES_FAILED: { status: 502, retryable: true, message: 'Every service failed: {detail}' },
  BATON_BUDGET_EXCEEDED: { status: 402, retryable: false, message: 'Run {runId} would exceed its budget of {budget} USD (spent {spent}, reserved {reserved}, this call may cost up to {estimate}). Raise the budget or use a cheaper service.' },

  // --- configuration and storage --------------------------------------------------------
  BATON_CONFIG_INVALID: { status: 400, retryable: false, message: 'baton.config.yaml: {detail}' },
  BATON_STORE_OPEN: { status: 500, retryable: false, message: 'Cannot open the store at {path}: {detail}' },
  BATON_STORE_CORRUPT: { status: 500, retryable: false, message: 'The store at {path} is corrupt or not a Baton database ({detail}). Restore it from a backup or point --db elsewhere; nothing was written.' },
  BATON_STORE_BUSY: { status: 503, retryable: true, message: 'The store at {path} is busy or unreachable ({detail}); it was retried before giving up. Check that the database is up, then try again.' },
  BATON_STORE_FULL: { status: 507, retryable: true, message: 'The store at {path} is out of disk space ({detail}); the write was rolled back and nothing recorded was lost. Free space on that disk (or move the store), then try again.' },
  BATON_STORE_SCHEMA_NEWER: { status: 500, retryable: false, message: 'The store at {path} was written by a newer Baton (schema {found} > {supported}). Upgrade Baton.' },
  BATON_BLOB_MISSING: { status: 500, retryable: false, message: 'Blob {hash} referenced by a recorded output is missing from {dir}.' },
  BATON_USAGE: { status: 400, retryable: false, message: '{detail}' },

  // --- the HTTP gateway ---------------------------------------------------------------------
  BATON_REQUEST_INVALID: { status: 400, retryable: false, message: 'The request is not valid: {detail}' },
  BATON_REQUEST_TOO_LARGE: { status: 413, retryable: false, message: 'The request body is larger than the gateway accepts: {detail}' },
  BATON_UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, message: 'The request body has a content type the gateway does not read: {detail}. Send application/json (or YAML for workflows).' },
  BATON_INTERNAL: { status: 500, retryable: true, message: 'Internal error; see the server log.' },
  BATON_UNAUTHENTICATED: { status: 401, retryable: false, message: '{detail} Send `Authorization: Bearer <key>` with a key from `baton keys create`.' },
  BATON_CROSS_ORIGIN: { status: 403, retryable: false, message: 'A web page of another origin ({origin}) may not change anything on this gateway. Call it from a program (no Origin header), or from the console it serves.' },
  BATON_HOST_NOT_ALLOWED: { status: 403, retryable: false, message: 'Host "{host}" is not a name of this gateway (a page reaching it through another name is refused: DNS rebinding). On loopback it answers to localhost, 127.0.0.1 and [::1]; behind a reverse proxy that keeps the public name, start it with --allowed-host <that name>.' },
  BATON_FORBIDDEN: { status: 403, retryable: false, message: 'This key ({key}, role {role}) may not {action}.' },
  BATON_NAMESPACE_REQUIRED: { status: 400, retryable: false, message: 'This key ({key}) reaches several namespaces ({namespaces}) and may {action} in any one of them: say which with ?namespace=<one of them> in the URL (e.g. ?namespace={example}). Nothing was sent.' },
  BATON_CONSOLE_NOT_BUILT: { status: 503, retryable: false, message: 'The web console is not built ({path} is missing). Run `npm run build`, then restart `baton serve`.' },
  BATON_WEBHOOK_REFUSED: { status: 401, retryable: false, message: 'No webhook at /hooks/{path} accepts this request; nothing was started. Check the path (a workflow of a namespace listens on /hooks/<namespace>/<path>) and the signature: the HMAC-SHA256 (or the algorithm the trigger names) of the exact raw body with the webhook\'s shared secret, as hex or `sha256=<hex>`, in header X-Baton-Signature (or the one the trigger names). The gateway\'s log says which of the two was wrong.' },
  BATON_WEBHOOK_CONFLICT: { status: 409, retryable: false, message: 'Webhook path "{path}" is declared by more than one workflow ({workflows}); nothing was started. Give each workflow its own path.' },
  BATON_WEBHOOK_PATH_TAKEN: { status: 409, retryable: false, message: 'Webhook path "{path}" is already declared by workflow {workflow}; {name} was not registered. Give it another path, or first register a version of {workflow} without that trigger.' },
  BATON_WEBHOOK_SIGNATURE: { status: 401, retryable: false, loggedOnly: 'BATON_WEBHOOK_REFUSED', message: 'Webhook "{path}": {detail} Sign the raw body with HMAC-{algorithm} and the shared secret, and send the hex digest (or `{algorithm}=<hex>`) in header {header}.' },
  BATON_WEBHOOK_SECRET_MISSING: { status: 500, retryable: false, loggedOnly: 'BATON_WEBHOOK_REFUSED', message: 'Webhook "{path}" takes its secret from environment variable {env}, which is not set in the gateway\'s environment. Set it and restart `baton serve`; until then every delivery to it is refused with BATON_WEBHOOK_REFUSED (the caller is not told why).' },
  BATON_EVENT_HOP_LIMIT: { status: 422, retryable: false, message: 'CloudEvent {type} would pass through emit steps {hops} times ({where}); the limit is {limit}, so it was not passed on. A workflow whose emit starts itself (or A → B → A) would start runs without end: emit another type, or narrow the trigger with a `source`.' },
  BATON_CLOUDEVENT_INVALID: { status: 400, retryable: false, message: 'Not a valid CloudEvent: {detail}. Send structured mode (Content-Type: application/cloudevents+json), binary mode (ce-specversion, ce-id, ce-type, ce-source headers) or a batch (application/cloudevents-batch+json).' },
  BATON_RATE_LIMITED: { status: 429, retryable: true, message: 'Key {key} made more than {perMinute} requests a minute{counted}; retry after {retryAfterMs} ms.' },
  BATON_RATE_BATCH_TOO_LARGE: { status: 413, retryable: false, message: 'This batch of {events} CloudEvents counts as {events} requests, more than the {perMinute} a minute key {key} may make: it could never pass, so none of it was started. Send batches of at most {perMinute} events, or use a key with a higher limit (`baton keys create --rate <per minute>`).' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Codes that existed once and must never be reused. */
export const RETIRED_CODES: readonly string[] = [
  // A 404 for an unknown webhook path told callers that could not sign which paths exist:
  // unknown paths and failed signatures now answer BATON_WEBHOOK_REFUSED alike.
  'BATON_WEBHOOK_NOT_FOUND',
];

/** One problem in a document, with where it is. */
export interface Problem {
  message: string;
  /** JSON path inside the document, e.g. `steps[2].needs[0]`. */
  path: string;
  file?: string;
  line?: number;
  column?: number;
  severity?: 'error' | 'warning';
}

export interface SerializedError {
  code: string;
  message: string;
  retryable: boolean;
  details?: Record<string, unknown>;
  cause?: SerializedError;
}

export class BatonError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;
  /** For documents: every problem found, each with file:line:column. */
  readonly problems: Problem[];

  constructor(code: ErrorCode, params: Record<string, unknown> = {}, opts: { cause?: unknown; problems?: Problem[]; retryable?: boolean } = {}) {
    const spec: ErrorSpec = ERRORS[code];
    super(format(spec.message, params), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BatonError';
    this.code = code;
    this.status = spec.status;
    this.retryable = opts.retryable ?? spec.retryable;
    this.details = params;
    this.problems = opts.problems ?? [];
  }

  /** The message with every problem on its own `file:line:column: message` line. */
  describe(): string {
    if (this.problems.length === 0) return this.message;
    return this.problems.map(formatProblem).join('\n');
  }
}

export function formatProblem(p: Problem): string {
  const where = p.file ? `${p.file}:${p.line ?? 1}:${p.column ?? 1}` : p.line ? `${p.line}:${p.column ?? 1}` : p.path || '(document)';
  const sev = p.severity === 'warning' ? 'warning: ' : '';
  return `${where}: ${sev}${p.message}${p.path && p.file ? ` (at ${p.path})` : ''}`;
}

function format(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in params ? String(params[k]) : m));
}

/**
 * The one path from any thrown value to the stored/JSON form of a failure.
 * Code from users (functions, HTTP bodies) throws arbitrary things; they keep their own code
 * (`err.code`, else the error's name, e.g. `TypeError`) so that an `on_error` expression can
 * branch on it, with the original chain kept as `cause`. Clients that need a Baton code (the
 * OpenAI-compatible endpoint) map non-`BATON_*` codes to BATON_STEP_FAILED themselves.
 */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (err instanceof BatonError) {
    const out: SerializedError = { code: err.code, message: err.message, retryable: err.retryable };
    const details = plainDetails(err.details);
    if (details) out.details = details;
    if (err.problems.length) out.details = { ...(out.details ?? {}), problems: err.problems };
    if (err.cause !== undefined && depth < 5) out.cause = serializeError(err.cause, depth + 1);
    return out;
  }
  if (err instanceof Error) {
    const anyErr = err as Error & { code?: unknown; retryable?: unknown };
    const out: SerializedError = {
      code: typeof anyErr.code === 'string' ? anyErr.code : err.name || 'Error',
      message: err.message,
      // Errors thrown by user code are retryable unless they say otherwise: the retry
      // policy (default: one attempt) is what limits repeats.
      retryable: typeof anyErr.retryable === 'boolean' ? anyErr.retryable : true,
    };
    if (err.cause !== undefined && depth < 5) out.cause = serializeError(err.cause, depth + 1);
    return out;
  }
  return { code: 'Error', message: typeof err === 'string' ? err : safeString(err), retryable: true };
}

/** Rebuilds a BatonError-like object from its stored form (codes outside the table stay plain). */
export function deserializeError(s: SerializedError): Error & { code: string; retryable: boolean } {
  const e = new Error(s.message, s.cause ? { cause: deserializeError(s.cause) } : undefined) as Error & { code: string; retryable: boolean; details?: unknown };
  e.name = 'BatonError';
  e.code = s.code;
  e.retryable = s.retryable;
  if (s.details) e.details = s.details;
  return e;
}

function plainDetails(d: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  let any = false;
  for (const [k, v] of Object.entries(d)) {
    if (v === undefined || typeof v === 'function') continue;
    out[k] = v;
    any = true;
  }
  return any ? out : undefined;
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function isBatonError(e: unknown): e is BatonError {
  return e instanceof BatonError;
}

/**
 * `e` with every occurrence of `secret` replaced by `[redacted]`: in a BatonError's message and
 * details (rebuilt, its cause dropped: the cause may quote it too), or a plain error's message.
 * For vendors that echo the key they were sent ("Incorrect API key provided: sk-…") in an error
 * that would otherwise be stored, returned by the API and logged.
 */
/** `v` with every occurrence of `secret` in its strings replaced by `[redacted]` (plain data). */
export function scrubSecret(v: unknown, secret: string): unknown {
  if (typeof v === 'string') return v.split(secret).join('[redacted]');
  if (Array.isArray(v)) return v.map((x) => scrubSecret(x, secret));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrubSecret(x, secret)]));
  return v;
}

export function withoutSecret(e: unknown, secret: string | undefined): unknown {
  if (!secret || secret.length < 6) return e;
  const scrub = (v: unknown) => scrubSecret(v, secret);
  if (e instanceof BatonError) {
    if (!JSON.stringify({ m: e.message, d: e.details, p: e.problems, c: String((e as { cause?: unknown }).cause ?? '') }).includes(secret)) return e;
    return new BatonError(e.code, scrub(e.details) as Record<string, unknown>, { retryable: e.retryable, problems: scrub(e.problems) as Problem[] });
  }
  if (e instanceof Error && (e.message.includes(secret) || String((e as { cause?: unknown }).cause ?? '').includes(secret))) {
    const out = new Error(scrub(e.message) as string);
    out.name = e.name;
    return out;
  }
  return e;
}
