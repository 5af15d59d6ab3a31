/**
 * Workflows callable as OpenAI models: `GET /v1/models` and `POST /v1/chat/completions` on the
 * gateway, so that any OpenAI client (the official SDKs, LangChain, chat UIs, anything with a
 * "base URL" setting) can call a Baton workflow without knowing Baton exists.
 *
 * Model ids: `workflow/<name>` runs the latest version of a workflow; `workflow/<name>@<hash>`
 * a pinned version; `workflow/<name>@production` (or `@staging`) the version promoted to that stage. A response names the version that actually ran (`model:
 * workflow/<name>@<hash>`), as OpenAI answers `gpt-4o` with a dated model.
 *
 * Input contract — the run's input is:
 *
 *   {
 *     messages: [...],   // the request's `messages`, exactly as sent
 *     text: string,      // the content of the last `user` message ('' when there is none);
 *                        // array content is its text parts joined by newlines
 *     user?: string,     // the request's `user`, when sent
 *     metadata?: object  // the request's `metadata`, when sent
 *   }
 *
 * A workflow's `input:` schema is checked as for any run (a mismatch is a 400 here).
 * The answer's content is the run output when it is a string; for an object with a string
 * `reply`, `text` or `content` field (in that order), that field; otherwise the output's JSON.
 * Sampling parameters (temperature, max_tokens, seed, stop, ...) are accepted and ignored: a
 * workflow decides how it calls its models. Parameters that ask for another kind of answer
 * (tools or functions to call, a forced tool choice, a JSON response format, logprobs) are
 * refused with a 400 naming the parameter: ignoring them would hand the client a plain text
 * answer it did not ask for.
 *
 * Why it is built this way:
 * - A run is durable and outlives the HTTP request. The request waits for it (at most 120 s,
 *   or less with `x-baton-timeout-ms`); a run still going answers 504 with its run id
 *   (also in `x-baton-run-id` and `location`) so the client fetches it later from `/runs/{id}`.
 *   A client that disconnects stops the waiting, never the run; so does the gateway closing,
 *   which answers 503 with the run id (in a stream: an in-stream error).
 * - Errors use OpenAI's shape (`{ error: { message, type, code, param } }`), not the gateway's
 *   RFC 9457 problems, because OpenAI clients only read that shape; `code` keeps the Baton code
 *   so callers can still branch on it. Routes carry their own error handler for this.
 * - Workflow failures (502), timeouts (504) and the gateway closing during a run (503) send
 *   `x-should-retry: false`: the OpenAI SDKs retry 5xx on their own, which here would start
 *   duplicate runs; retries belong to the workflow's own retry policies.
 * - Streaming cannot stream tokens of a multi-step workflow (the answer exists only when the
 *   run ends), so the stream is opened at once (headers and the role chunk flushed), shows
 *   progress as SSE comments (`: step X succeeded`, ignored by clients) and keep-alives, and
 *   sends the final content in small chunks followed by `finish_reason: 'stop'`, the usage
 *   chunk when `stream_options.include_usage`, and `data: [DONE]` — exactly OpenAI's wire format.
 * - Routes are added to the app directly (not in a plugin), so `app.hasRoute` sees them at once.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { newRunId, type Baton, type RunResult, type StartOptions } from '../engine/engine.js';
import type { StepEvent } from '../engine/executor.js';
import { DEFAULT_NAMESPACE, splitQualified } from '../engine/namespaces.js';
import { TERMINAL_RUN_STATES } from '../engine/states.js';
import { BatonError } from '../errors.js';

/** Longest a chat completion waits for its run (a request may lower it with `x-baton-timeout-ms`). */
export const DEFAULT_TIMEOUT_MS = 120_000;
/** Characters per content chunk when streaming the finished answer. */
const CHUNK_CHARS = 20;
/** SSE comment sent this often while a run executes, so proxies keep the stream open. */
const KEEPALIVE_MS = 15_000;
const MODEL_PREFIX = 'workflow/';

interface ChatMessage {
  role: string;
  content?: string | Array<{ type?: string; text?: string }> | null;
  [k: string]: unknown;
}

interface ChatBody {
  model: string;
  messages: ChatMessage[];
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  user?: string;
  metadata?: Record<string, unknown> | null;
  n?: number | null;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** An error answered in OpenAI's shape. */
class OpenAiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
    readonly runId?: string,
  ) {
    super(message);
  }
  body() {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param, ...(this.runId ? { run_id: this.runId } : {}) } };
  }
}

const CHAT_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array' }, { type: 'null' }] },
        },
      },
    },
    stream: { type: ['boolean', 'null'] },
    stream_options: { type: ['object', 'null'], properties: { include_usage: { type: 'boolean' } } },
    user: { type: 'string' },
    metadata: { type: ['object', 'null'] },
    n: { type: ['integer', 'null'] },
  },
} as const;

/**
 * A workflow answers with its output as text: a request for tool calls, a JSON format or
 * logprobs cannot be honoured, and is refused rather than answered with something else.
 */
function refuseOtherAnswers(b: Record<string, unknown>): void {
  const refuse = (param: string, why: string) => {
    throw new OpenAiError(400, 'invalid_request_error', 'unsupported_parameter', `${param} is not supported: ${why}`, param);
  };
  const given = (v: unknown) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
  if (given(b.tools)) refuse('tools', 'a workflow model answers with the run\'s output, never with tool calls. Leave tools out (the workflow calls its own tools).');
  if (given(b.functions)) refuse('functions', 'a workflow model answers with the run\'s output, never with function calls.');
  if (given(b.tool_choice) && b.tool_choice !== 'none' && b.tool_choice !== 'auto') refuse('tool_choice', 'a workflow model makes no tool calls.');
  if (given(b.function_call) && b.function_call !== 'none' && b.function_call !== 'auto') refuse('function_call', 'a workflow model makes no function calls.');
  const format = (b.response_format as { type?: unknown } | undefined)?.type;
  if (given(b.response_format) && format !== 'text') refuse('response_format', 'the workflow\'s output decides the answer (an object output is answered as its JSON); leave response_format out or use { "type": "text" }.');
  if (b.logprobs === true || given(b.top_logprobs)) refuse('logprobs', 'a workflow\'s answer has no token probabilities.');
}

/** How the gateway scopes these routes to the caller (API keys and namespaces). */
export interface OpenAiRouteHooks {
  /** Extra start options per request (and a chance to refuse callers that may not start runs). */
  startOptions?: (req: FastifyRequest) => StartOptions;
  /** The namespace model names are looked up in (its own workflows first, then the shared ones). */
  namespace?: (req: FastifyRequest) => string;
  /** Whether the caller may use a workflow of this namespace. */
  reaches?: (req: FastifyRequest, namespace: string) => boolean;
  /** Aborted when the gateway closes: requests waiting for their run answer 503 at once. */
  closing?: AbortSignal;
}

/**
 * Without hooks, every workflow is visible and runs go to the default namespace. Model ids are
 * `workflow/<name>` for the caller's own and shared workflows, `workflow/<namespace>/<name>`
 * for others it reaches (an admin key).
 */
export function registerOpenAiRoutes(app: FastifyInstance, baton: Baton, hooks: OpenAiRouteHooks = {}): void {
  const errorHandler = (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => sendError(reply, toOpenAiError(err));
  const scope = (req: FastifyRequest) => ({ namespace: hooks.namespace?.(req) ?? DEFAULT_NAMESPACE, reaches: (ns: string) => hooks.reaches?.(req, ns) ?? true });

  app.get('/v1/models', { errorHandler }, async (req) => {
    const { namespace, reaches } = scope(req);
    const versions = await baton.store.listVersions();
    const latest = new Map<string, (typeof versions)[number]>();
    for (const v of versions) {
      const q = splitQualified(v.name);
      if (!reaches(q.namespace)) continue;
      // The caller's own workflows and the shared ones go by their plain name (own first).
      const id = q.namespace === namespace || q.namespace === DEFAULT_NAMESPACE ? q.name : v.name;
      const seen = latest.get(id);
      const better = !seen || (splitQualified(seen.name).namespace === q.namespace ? v.seq > seen.seq : q.namespace === namespace);
      if (better) latest.set(id, v);
    }
    return { object: 'list', data: [...latest].map(([id, v]) => modelEntry(`${MODEL_PREFIX}${id}`, v.createdAt)) };
  });

  // Model ids hold a slash: clients send it encoded (`workflow%2Fname`) or plain.
  const retrieve = async (req: FastifyRequest, id: string) => {
    const v = await resolveModel(baton, id, scope(req));
    const rec = await baton.store.getVersion(v.versionId);
    return modelEntry(id, rec?.createdAt ?? Date.now());
  };
  app.get('/v1/models/:id', { errorHandler }, async (req) => retrieve(req, (req.params as { id: string }).id));
  app.get('/v1/models/workflow/*', { errorHandler }, async (req) => retrieve(req, `${MODEL_PREFIX}${(req.params as { '*': string })['*']}`));

  app.post('/v1/chat/completions', { errorHandler, schema: { body: CHAT_SCHEMA } }, async (req, reply) => {
    const body = req.body as ChatBody;
    if (body.n !== undefined && body.n !== null && body.n !== 1) throw new OpenAiError(400, 'invalid_request_error', 'unsupported_value', 'Only n = 1 is supported: a workflow run gives one answer.', 'n');
    refuseOtherAnswers(req.body as Record<string, unknown>);
    const timeoutMs = requestTimeout(req.headers['x-baton-timeout-ms']);
    const { versionId } = await resolveModel(baton, body.model, scope(req));
    const input: Record<string, unknown> = { messages: body.messages, text: lastUserText(body.messages) };
    if (body.user !== undefined) input.user = body.user;
    if (body.metadata !== undefined && body.metadata !== null) input.metadata = body.metadata;

    // The id is chosen here so that a stream can listen for the run's steps before it starts.
    const runId = newRunId();
    const extra = hooks.startOptions?.(req) ?? {};
    const progress = body.stream ? watchSteps(baton, runId) : undefined;
    try {
      await baton.start(versionId, input, { ...extra, id: runId });
    } catch (e) {
      progress?.stop();
      throw toOpenAiError(e);
    }
    const model = `${MODEL_PREFIX}${versionId}`;
    reply.header('x-baton-run-id', runId);

    if (progress) {
      await streamCompletion(baton, reply, progress, { runId, model, body, timeoutMs, closing: hooks.closing });
      return reply;
    }

    const gone = disconnected(reply.raw);
    const run = await waitForRun(baton, runId, timeoutMs, gone.promise, hooks.closing);
    gone.dispose();
    if (run === undefined) {
      // The client left; the run goes on. Nothing is left to answer.
      reply.hijack();
      reply.raw.end();
      return reply;
    }
    const failure = runFailure(run, timeoutMs, hooks.closing);
    if (failure) return sendError(reply, failure);
    const content = contentOf(run.output);
    return {
      id: `chatcmpl-${run.id}`,
      object: 'chat.completion',
      created: Math.floor(run.createdAt / 1000),
      model,
      system_fingerprint: null,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: await usageOf(baton, run.id, body.messages, content),
      baton: { run_id: run.id, cost: run.cost },
    };
  });
}

// ------------------------------------------------------------------------------------------

/** The run's step events as SSE comments: buffered until the stream opens, then written. */
function watchSteps(baton: Baton, runId: string) {
  let buffered: string[] = [];
  let write: ((s: string) => void) | undefined;
  const onStep = (e: StepEvent) => {
    if (e.runId !== runId || e.status === 'running') return;
    const line = `: step ${e.key} ${e.status}\n\n`;
    if (write) write(line);
    else buffered.push(line);
  };
  baton.on('step', onStep);
  return {
    pipe(w: (s: string) => void) {
      for (const line of buffered) w(line);
      buffered = [];
      write = w;
    },
    stop() {
      baton.off('step', onStep);
      buffered = [];
    },
  };
}

async function streamCompletion(
  baton: Baton,
  reply: FastifyReply,
  progress: ReturnType<typeof watchSteps>,
  o: { runId: string; model: string; body: ChatBody; timeoutMs: number; closing?: AbortSignal },
): Promise<void> {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-baton-run-id': o.runId,
  });
  res.flushHeaders();
  const write = (s: string) => {
    if (!res.destroyed && !res.writableEnded) res.write(s);
  };
  const id = `chatcmpl-${o.runId}`;
  const includeUsage = o.body.stream_options?.include_usage === true;
  let created = Math.floor(Date.now() / 1000);
  try {
    created = Math.floor((await baton.getRun(o.runId)).createdAt / 1000);
  } catch {
    // keep now
  }
  const chunk = (delta: Record<string, unknown>, finish: string | null) => {
    const c: Record<string, unknown> = {
      id, object: 'chat.completion.chunk', created, model: o.model, system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
    if (includeUsage) c.usage = null;
    write(`data: ${JSON.stringify(c)}\n\n`);
  };

  chunk({ role: 'assistant', content: '', refusal: null }, null);
  progress.pipe(write);
  const keepAlive = setInterval(() => write(': keep-alive\n\n'), KEEPALIVE_MS);
  const gone = disconnected(res);
  let run: RunResult | undefined;
  try {
    run = await waitForRun(baton, o.runId, o.timeoutMs, gone.promise, o.closing);
  } catch (e) {
    write(`data: ${JSON.stringify(toOpenAiError(e).body())}\n\n`);
    res.end();
    return;
  } finally {
    progress.stop();
    clearInterval(keepAlive);
    gone.dispose();
  }
  if (run === undefined) {
    res.end();
    return;
  }
  const failure = runFailure(run, o.timeoutMs, o.closing);
  if (failure) {
    // OpenAI's in-stream error: a data event carrying `error`, then the stream ends.
    write(`data: ${JSON.stringify(failure.body())}\n\n`);
    res.end();
    return;
  }
  const content = contentOf(run.output);
  const chars = Array.from(content); // by code point: never split a surrogate pair
  for (let i = 0; i < chars.length; i += CHUNK_CHARS) chunk({ content: chars.slice(i, i + CHUNK_CHARS).join('') }, null);
  chunk({}, 'stop');
  if (includeUsage) {
    const usage = await usageOf(baton, run.id, o.body.messages, content).catch(() => estimateUsage(o.body.messages, content));
    write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: o.model, system_fingerprint: null, choices: [], usage, baton: { run_id: run.id, cost: run.cost } })}\n\n`);
  }
  write('data: [DONE]\n\n');
  res.end();
}

/**
 * Waits for the run to end, the deadline, the gateway to close, or the client to leave (then
 * undefined). Waits in short slices so an abandoned wait does not linger.
 */
async function waitForRun(baton: Baton, runId: string, timeoutMs: number, gone: Promise<void>, closing?: AbortSignal): Promise<RunResult | undefined> {
  const deadline = Date.now() + timeoutMs;
  let left = false;
  void gone.then(() => (left = true));
  const leaving = gone.then(() => undefined);
  for (;;) {
    const slice = Math.max(1, Math.min(1000, deadline - Date.now()));
    const r = await Promise.race([baton.wait(runId, { timeoutMs: slice, signal: closing }), leaving]);
    if (r === undefined || left) return undefined;
    if (TERMINAL_RUN_STATES.has(r.status) || Date.now() >= deadline || closing?.aborted) return r;
  }
}

/** Resolves when the response is closed before it was finished (the client went away). */
function disconnected(res: ServerResponse): { promise: Promise<void>; dispose: () => void } {
  let onClose: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    onClose = () => {
      if (!res.writableFinished) resolve();
    };
    res.on('close', onClose);
  });
  return { promise, dispose: () => res.off('close', onClose) };
}

/** The error to answer for a run that did not complete, or undefined when it did. */
function runFailure(run: RunResult, timeoutMs: number, closing?: AbortSignal): OpenAiError | undefined {
  if (run.status === 'completed') return undefined;
  if (run.status === 'failed' || run.status === 'cancelled') {
    // The engine records an error thrown by a user's function under its own name (`Error`,
    // `TypeError`); clients are promised a Baton code, and a failed step is BATON_STEP_FAILED.
    const recorded = run.error?.code;
    const code = recorded?.startsWith('BATON_') ? recorded : run.status === 'cancelled' ? 'BATON_CANCELLED' : 'BATON_STEP_FAILED';
    const why = run.error?.message ?? run.status;
    return new OpenAiError(502, 'workflow_failed', code, `Workflow run ${run.id} ${run.status}: ${why}`, null, run.id);
  }
  if (closing?.aborted) {
    return new OpenAiError(
      503, 'server_error', 'server_shutting_down',
      `The gateway is shutting down; workflow run ${run.id} is still ${run.status} and goes on. Fetch its result later at GET /runs/${run.id}.`,
      null, run.id,
    );
  }
  return new OpenAiError(
    504, 'timeout', 'workflow_timeout',
    `Workflow run ${run.id} is still ${run.status} after ${timeoutMs} ms. It goes on; fetch its result later at GET /runs/${run.id}.`,
    null, run.id,
  );
}

async function resolveModel(baton: Baton, model: string, scope: { namespace: string; reaches: (ns: string) => boolean }): Promise<{ versionId: string }> {
  const notFound = () => new OpenAiError(404, 'invalid_request_error', 'model_not_found', `The model \`${model}\` does not exist: no such workflow is registered. See GET /v1/models.`, 'model');
  if (!model.startsWith(MODEL_PREFIX) || model.length === MODEL_PREFIX.length) {
    throw new OpenAiError(404, 'invalid_request_error', 'model_not_found', `The model \`${model}\` does not exist. Models here are workflows: \`workflow/<name>\` or \`workflow/<name>@<hash>\`; see GET /v1/models.`, 'model');
  }
  try {
    const versionId = await baton.registry.resolve(model.slice(MODEL_PREFIX.length), scope.namespace);
    // Another team's workflow is "not found", so names do not leak across namespaces.
    if (!scope.reaches(splitQualified(versionId).namespace)) throw notFound();
    return { versionId };
  } catch (e) {
    if (e instanceof BatonError && e.code === 'BATON_WORKFLOW_NOT_FOUND') throw notFound();
    if (e instanceof BatonError && e.code === 'BATON_STAGE_EMPTY') throw new OpenAiError(404, 'invalid_request_error', 'model_not_found', `The model \`${model}\` does not exist: ${e.message}`, 'model');
    throw e;
  }
}

function requestTimeout(header: string | string[] | undefined): number {
  if (header === undefined) return DEFAULT_TIMEOUT_MS;
  const v = Number(Array.isArray(header) ? header[0] : header);
  if (!Number.isFinite(v) || v <= 0) throw new OpenAiError(400, 'invalid_request_error', 'invalid_header', `x-baton-timeout-ms must be a positive number of milliseconds, got ${JSON.stringify(header)}.`);
  return Math.min(v, DEFAULT_TIMEOUT_MS);
}

function messageText(m: ChatMessage): string {
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content)) return m.content.filter((p) => p && typeof p.text === 'string').map((p) => p.text as string).join('\n');
  return '';
}

function lastUserText(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].role === 'user') return messageText(messages[i]);
  return '';
}

/** The assistant message content for a run output. */
export function contentOf(output: unknown): string {
  if (typeof output === 'string') return output;
  if (output === undefined || output === null) return '';
  if (typeof output === 'object' && !Array.isArray(output)) {
    for (const k of ['reply', 'text', 'content']) {
      const v = (output as Record<string, unknown>)[k];
      if (typeof v === 'string') return v;
    }
  }
  return JSON.stringify(output);
}

/** Tokens of the run's recorded model calls; estimated (~4 characters a token) when it made none. */
async function usageOf(baton: Baton, runId: string, messages: ChatMessage[], content: string): Promise<Usage> {
  const calls = await baton.store.getModelCalls(runId);
  if (calls.length === 0) return estimateUsage(messages, content);
  let prompt = 0, completion = 0, cached = 0;
  for (const c of calls) {
    prompt += c.inputTokens;
    completion += c.outputTokens;
    cached += c.cachedTokens;
  }
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

function estimateUsage(messages: ChatMessage[], content: string): Usage {
  const tokens = (s: string) => Math.ceil(s.length / 4);
  const prompt = messages.reduce((n, m) => n + tokens(messageText(m)), 0);
  const completion = tokens(content);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function modelEntry(id: string, createdAt: number) {
  return { id, object: 'model', created: Math.floor(createdAt / 1000), owned_by: 'baton' };
}

function toOpenAiError(e: unknown): OpenAiError {
  if (e instanceof OpenAiError) return e;
  if (e instanceof BatonError) {
    if (e.code === 'BATON_WORKFLOW_NOT_FOUND') return new OpenAiError(404, 'invalid_request_error', 'model_not_found', e.message, 'model');
    if (e.status < 500) return new OpenAiError(e.status === 422 ? 400 : e.status, 'invalid_request_error', e.code, e.describe());
    process.stderr.write(`baton serve: error on an OpenAI-compatible route: ${e.stack ?? e.message}\n`);
    return new OpenAiError(e.status, 'server_error', e.code, e.message);
  }
  const err = e as FastifyError & { validation?: Array<{ instancePath?: string }> };
  if (err?.validation) {
    const path = err.validation[0]?.instancePath?.replace(/^\//, '').split('/')[0];
    return new OpenAiError(400, 'invalid_request_error', 'BATON_REQUEST_INVALID', `Not a valid chat completions request: ${err.message}`, path || null);
  }
  if (typeof err?.statusCode === 'number' && err.statusCode < 500) {
    return new OpenAiError(err.statusCode, 'invalid_request_error', err.statusCode === 413 ? 'BATON_REQUEST_TOO_LARGE' : 'BATON_REQUEST_INVALID', err.message);
  }
  process.stderr.write(`baton serve: internal error on an OpenAI-compatible route: ${(err as Error)?.stack ?? String(e)}\n`);
  return new OpenAiError(500, 'server_error', 'BATON_INTERNAL', 'Internal error; see the server log.');
}

function sendError(reply: FastifyReply, e: OpenAiError): FastifyReply {
  // A run was started: the SDKs retry 5xx themselves, and a repeat would start another run (see
  // the header comment).
  if (e.runId) reply.header('x-baton-run-id', e.runId).header('location', `/runs/${e.runId}`).header('x-should-retry', 'false');
  return reply.code(e.status).type('application/json; charset=utf-8').send(e.body());
}
