/**
 * What the AI-SDK-based providers (`openai`, `anthropic`) share: one chat call (plain or
 * streamed) through `generateText` / `streamText`, the usage mapping, and the mapping of
 * everything that can go wrong onto exactly one typed Baton error.
 *
 * The SDK never retries here (`maxRetries: 0`): the service runtime above decides.
 *
 * Each call gets its own `fetch` wrapper (`CallTrace`) so the error mapping knows facts the
 * SDK's errors blur: whether the request reached the server at all (network vs. protocol),
 * what status and content type came back, and when the answer started (the stream idle clock).
 */
import {
  APICallError,
  EmptyResponseBodyError,
  InvalidResponseDataError,
  JSONParseError,
  NoContentGeneratedError,
  NoOutputGeneratedError,
  Output,
  TypeValidationError,
  generateText,
  streamText,
  type LanguageModel,
  type LanguageModelUsage,
  type ModelMessage,
} from 'ai';
import { BatonError } from '../errors.js';
import type { CallOptions, ModelRequest, ModelResponse, ModelUsage } from './provider.js';
import { httpStatusError } from './provider.js';

export interface SdkContext {
  /** Service name, for messages. */
  service: string;
  /** Base URL, for network errors. */
  endpoint: string;
  /** Protocol name for BATON_MODEL_BAD_RESPONSE, e.g. `OpenAI chat completions`. */
  protocol: string;
}

type FetchFn = typeof globalThis.fetch;

/** What one call's fetch saw. */
export class CallTrace {
  /** fetch itself threw (no HTTP answer): DNS, refused, reset before headers. */
  fetchError: unknown = undefined;
  status: number | undefined = undefined;
  contentType = '';
  private listeners: Array<() => void> = [];

  readonly fetch: FetchFn = async (input, init) => {
    try {
      const res = await globalThis.fetch(input, init);
      this.status = res.status;
      this.contentType = (res.headers.get('content-type') ?? '').toLowerCase();
      for (const l of this.listeners) l();
      return res;
    } catch (err) {
      this.fetchError = err;
      throw err;
    }
  };

  /** Called once the response headers arrived. */
  onResponse(listener: () => void): void {
    this.listeners.push(listener);
  }

  get responded(): boolean {
    return this.status !== undefined;
  }
}

/** AI SDK usage → Baton usage: `inputTokens` excludes cache reads (cache writes stay in: billed at least in full). */
export function mapUsage(u: LanguageModelUsage | undefined): ModelUsage {
  if (!u) return { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 };
  const cached = u.inputTokenDetails?.cacheReadTokens ?? u.cachedInputTokens ?? 0;
  const total = u.inputTokens;
  const input = total !== undefined ? Math.max(0, total - cached) : (u.inputTokenDetails?.noCacheTokens ?? 0);
  return { inputTokens: input, outputTokens: u.outputTokens ?? 0, cachedInputTokens: cached };
}

/** The messages of a chat request in the SDK's form (a string `input` is taken as the one user message). */
export function toMessages(request: ModelRequest): ModelMessage[] {
  if (request.messages && request.messages.length > 0) {
    return request.messages.map((m) => ({ role: m.role, content: m.content }));
  }
  if (typeof request.input === 'string') return [{ role: 'user', content: request.input }];
  return [];
}

/**
 * Output spec that asks for JSON (response_format json_schema / the vendor's equivalent) but
 * gives the raw text back unparsed: the caller parses, repairs and validates.
 */
function rawJsonOutput(schema: unknown, withSchema: boolean) {
  const base = Output.text();
  const jsonSchema = schema && typeof schema === 'object' ? (schema as Record<string, unknown>) : { type: 'object' };
  return {
    ...base,
    name: 'object',
    // The LanguageModelV3 responseFormat shape: the JSON Schema goes to the vendor as-is.
    responseFormat: Promise.resolve(
      withSchema ? { type: 'json' as const, schema: jsonSchema as never, name: 'response' } : { type: 'json' as const },
    ),
  };
}

export interface ChatCallSettings {
  ctx: SdkContext;
  model: LanguageModel;
  trace: CallTrace;
  /** Provider options passed to the SDK (e.g. structured output mode). */
  providerOptions?: Record<string, Record<string, unknown>>;
  /** false: ask for JSON without sending the schema (servers that only know `json_object`). Default true. */
  sendSchema?: boolean;
}

/** One chat call through the AI SDK, plain or streamed. */
export async function runChat(settings: ChatCallSettings, request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
  return request.stream ? runStream(settings, request, options) : runGenerate(settings, request, options);
}

function common(settings: ChatCallSettings, request: ModelRequest, options: CallOptions) {
  return {
    model: settings.model,
    system: request.system,
    messages: toMessages(request),
    maxOutputTokens: request.maxTokens,
    temperature: request.temperature,
    maxRetries: 0,
    headers: { 'Idempotency-Key': options.idempotencyKey },
    ...(request.schema !== undefined ? { output: rawJsonOutput(request.schema, settings.sendSchema !== false) } : {}),
    ...(settings.providerOptions ? { providerOptions: settings.providerOptions as never } : {}),
  };
}

async function runGenerate(settings: ChatCallSettings, request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
  const { ctx, trace } = settings;
  throwIfAborted(options.signal);
  try {
    const result = await generateText({ ...common(settings, request, options), abortSignal: options.signal });
    return {
      output: result.text,
      usage: mapUsage(result.usage),
      finishReason: result.rawFinishReason ?? result.finishReason,
      model: result.response.modelId,
    };
  } catch (err) {
    throw toBatonError(err, ctx, trace, options.signal);
  }
}

async function runStream(settings: ChatCallSettings, request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
  const { ctx, trace } = settings;
  throwIfAborted(options.signal);
  const idleMs = options.streamIdleMs ?? 30_000;
  const local = new AbortController();
  const signal = AbortSignal.any([options.signal, local.signal]);
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      local.abort(new Error(`stream idle for ${idleMs} ms`));
    }, idleMs);
  };
  // The idle clock starts when the answer starts (headers in); before that the caller's timeout rules.
  trace.onResponse(arm);

  let text = '';
  let sawText = false;
  let finish: { finishReason: string; rawFinishReason: string | undefined; usage: LanguageModelUsage } | undefined;
  let modelId: string | undefined;
  let failure: unknown;
  let aborted = false;
  try {
    const result = streamText({
      ...common(settings, request, options),
      abortSignal: signal,
      // Errors arrive as `error` parts below; the default handler would log them.
      onError: () => {},
    });
    for await (const part of result.fullStream) {
      if (trace.responded) arm();
      switch (part.type) {
        case 'text-delta':
          if (part.text) {
            sawText = true;
            text += part.text;
            options.onDelta?.(part.text);
          }
          break;
        case 'finish-step':
          modelId = part.response.modelId;
          break;
        case 'finish':
          finish = { finishReason: part.finishReason, rawFinishReason: part.rawFinishReason, usage: part.totalUsage };
          break;
        case 'error':
          failure ??= part.error;
          break;
        case 'abort':
          aborted = true;
          break;
        default:
          break;
      }
    }
  } catch (err) {
    failure ??= err;
  } finally {
    if (timer) clearTimeout(timer);
    if (!signal.aborted) local.abort();
  }

  if (options.signal.aborted) throw options.signal.reason;
  if (stalled) {
    throw new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: `stalled: no chunk for ${idleMs} ms${sawText ? ' after a partial answer' : ''}` });
  }
  if (failure !== undefined) throw toBatonError(failure, ctx, trace, options.signal, true);
  if (aborted) {
    throw new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: 'was aborted' });
  }
  if (trace.status !== undefined && trace.status < 300 && !isEventStream(trace.contentType)) {
    throw badResponse(ctx, `the stream answered ${describeType(trace.contentType)}, not text/event-stream`);
  }
  if (!finish || finish.rawFinishReason === undefined || finish.finishReason === 'error') {
    throw new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: 'ended without a finish reason' });
  }
  return {
    output: text,
    usage: mapUsage(finish.usage),
    finishReason: finish.rawFinishReason,
    model: modelId,
  };
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

function isEventStream(ct: string): boolean {
  return ct.includes('text/event-stream');
}

function isJson(ct: string): boolean {
  return ct.includes('json');
}

function describeType(ct: string): string {
  return ct ? ct.split(';')[0] : 'no content type';
}

function badResponse(ctx: SdkContext, detail: string): BatonError {
  const short = detail.length > 240 ? `${detail.slice(0, 240)}…` : detail;
  return new BatonError('BATON_MODEL_BAD_RESPONSE', { service: ctx.service, protocol: ctx.protocol, detail: short });
}

const DROPPED_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_BODY_TIMEOUT', 'ECONNABORTED']);

/** The connection dropped (as opposed to the bytes being wrong). */
function isDropped(err: unknown): boolean {
  let cur: unknown = err;
  const seen = new Set<unknown>();
  while (cur instanceof Error && !seen.has(cur)) {
    seen.add(cur);
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && DROPPED_CODES.has(code)) return true;
    if (cur.message === 'terminated') return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

function message(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The deepest cause's message, for network errors (`connect ECONNREFUSED 127.0.0.1:9`). */
function rootMessage(err: unknown): string {
  let cur: unknown = err;
  const seen = new Set<unknown>();
  let last = message(err);
  while (cur instanceof Error && !seen.has(cur)) {
    seen.add(cur);
    last = cur.message || last;
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && !last.includes(code)) last = `${last} (${code})`;
    cur = (cur as { cause?: unknown }).cause;
  }
  return last;
}

function isParseError(err: unknown): boolean {
  let cur: unknown = err;
  const seen = new Set<unknown>();
  while (cur && !seen.has(cur)) {
    seen.add(cur);
    if (JSONParseError.isInstance(cur) || TypeValidationError.isInstance(cur) || InvalidResponseDataError.isInstance(cur)) return true;
    if (cur instanceof Error && /JSON parsing failed|Type validation failed|Invalid JSON/i.test(cur.message)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Any failure of one SDK call → exactly one Baton error (or the caller's abort reason, unchanged).
 * `streaming`: the failure happened while reading an answer stream.
 */
export function toBatonError(err: unknown, ctx: SdkContext, trace: CallTrace, signal: AbortSignal, streaming = false): unknown {
  if (signal.aborted) return signal.reason;
  if (err instanceof BatonError) return err;

  // No HTTP answer at all: the server is unreachable.
  if (trace.fetchError !== undefined && !trace.responded) {
    return new BatonError('BATON_MODEL_NETWORK', { service: ctx.service, endpoint: ctx.endpoint, detail: rootMessage(trace.fetchError) });
  }

  // An HTTP answer that is not a success. (The Anthropic SDK also dresses an error event at the
  // start of a 200 stream up as a 500/529 APICallError: the trace tells the two apart.)
  const httpOk = trace.status !== undefined && trace.status >= 200 && trace.status < 300;
  if (APICallError.isInstance(err) && !httpOk && err.statusCode !== undefined && (err.statusCode < 200 || err.statusCode >= 300)) {
    const retryAfter = err.responseHeaders?.['retry-after'] ?? null;
    return httpStatusError(ctx.service, err.statusCode, err.responseBody ?? err.message, retryAfter);
  }
  if (trace.status !== undefined && (trace.status < 200 || trace.status >= 300)) {
    return httpStatusError(ctx.service, trace.status, message(err));
  }

  // A success status whose body is not the protocol.
  if (trace.responded) {
    const ct = trace.contentType;
    if (!isJson(ct) && !isEventStream(ct)) {
      const wanted = streaming ? 'an event stream' : 'JSON';
      return badResponse(ctx, `HTTP ${trace.status} with ${describeType(ct)} instead of ${wanted}${bodyHint(err)}`);
    }
    if (!streaming && !isEventStream(ct) && isDropped(err)) {
      // The body started and the connection dropped: a cut answer, like a cut stream.
      return new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: `broke off while the response body was read: ${rootMessage(err)}` });
    }
    if (isParseError(err) && !(streaming && /ended without a finish reason/i.test(message(err)))) {
      return badResponse(ctx, message(err).split('\n')[0] + parseDetail(err));
    }
    if (streaming || isEventStream(ct)) {
      if (NoOutputGeneratedError.isInstance(err) || /finish/i.test(message(err))) {
        return new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: 'ended without a finish reason' });
      }
      return new BatonError('BATON_MODEL_STREAM_BROKEN', { service: ctx.service, detail: `broke off: ${rootMessage(err)}` });
    }
    if (APICallError.isInstance(err) || EmptyResponseBodyError.isInstance(err) || NoContentGeneratedError.isInstance(err)) {
      return badResponse(ctx, rootMessage(err));
    }
  }

  // Connection errors the SDK wrapped without us seeing fetch fail (should not happen, but be safe).
  if (APICallError.isInstance(err) && err.statusCode === undefined && /cannot connect/i.test(err.message)) {
    return new BatonError('BATON_MODEL_NETWORK', { service: ctx.service, endpoint: ctx.endpoint, detail: rootMessage(err) });
  }
  if (APICallError.isInstance(err) || isParseError(err)) {
    return badResponse(ctx, rootMessage(err));
  }
  // Anything else is a bug or a misuse (invalid prompt, ...): surface it as it is.
  return err;
}

function bodyHint(err: unknown): string {
  const body = APICallError.isInstance(err) ? err.responseBody : undefined;
  const title = body ? /<title>([^<]*)<\/title>/i.exec(body)?.[1] : undefined;
  return title ? ` (an HTML page: "${title.trim()}")` : '';
}

function parseDetail(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message && cause.message !== message(err)) return `: ${cause.message.split('\n')[0]}`;
  return '';
}
