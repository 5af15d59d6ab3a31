/**
 * The contract between Baton and a model vendor (or a model run in-process). A provider
 * knows one wire protocol and nothing else: no retries, no fallbacks, no breakers, no cost.
 * Those belong to the service runtime (`src/services/`), which wraps every provider the same
 * way, so a provider only has to (1) make one call, (2) report token usage honestly and
 * (3) throw a `ProviderError` that says whether repeating the call may help.
 *
 * Operations: a request names what it wants done. Chat-style vendors do `chat` (and `embed`);
 * inference servers do `infer`; the built-in local models each do one task. A provider throws
 * `BATON_MODEL_UNSUPPORTED` for an operation it lacks.
 */
import { BatonError } from '../errors.js';
import type { JsonSchema } from '../spec/types.js';

export type ModelOperation =
  /** messages (+ system) → text (or JSON when `schema` is set). */
  | 'chat'
  /** input: string | string[] → { embeddings: number[][] } */
  | 'embed'
  /** input: string → { label, confidence, scores: { [label]: probability } } */
  | 'classify'
  /** input: string → { label: 'positive'|'negative'|'neutral', score: -1..1, confidence: 0..1 } */
  | 'sentiment'
  /** input: string → { entities: [{ text, type, start, end }] } */
  | 'entities'
  /** input: string | { query, k? } → { results: [{ id, text, score, source? }] } */
  | 'retrieve'
  /** input: { image: base64 string | data URL } | { path } → { text, confidence } */
  | 'ocr'
  /** input: record (object of numbers) | { record } → { score: 0..1, anomalous: boolean } */
  | 'anomaly'
  /** input: { inputs: { [name]: { shape, datatype, data } } } → { outputs: { [name]: { shape, datatype, data } } } */
  | 'infer';

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface ModelRequest {
  operation: ModelOperation;
  /** chat */
  system?: string;
  /** chat */
  messages?: ChatMessage[];
  /** Every operation but chat. */
  input?: unknown;
  /** chat: the JSON Schema the answer must fill. Providers ask for JSON where the protocol allows; the caller parses, repairs and validates. */
  schema?: JsonSchema;
  maxTokens?: number;
  temperature?: number;
  /** chat: stream the answer (`CallOptions.onDelta` receives the text as it comes). */
  stream?: boolean;
}

export interface ModelUsage {
  /** Input tokens billed at the full price (cached ones excluded). */
  inputTokens: number;
  outputTokens: number;
  /** Input tokens the vendor served from its prompt cache (billed at the cached price). */
  cachedInputTokens: number;
}

export interface ModelResponse {
  /** chat: the answer text; other operations: the structured result described above. */
  output: unknown;
  usage: ModelUsage;
  /** chat: why the model stopped (`stop`, `length`, `tool-calls`, ...), as the vendor said. */
  finishReason?: string;
  /** The model the vendor says answered (may differ from the requested id, e.g. a dated snapshot). */
  model?: string;
}

export interface CallOptions {
  /** Aborted on timeout, hedging loss, cancellation: stop the request and throw. */
  signal: AbortSignal;
  /** `runId:stepKey:attempt[:n]`: sent as Idempotency-Key where the protocol has headers. */
  idempotencyKey: string;
  /** Streaming: called with each text delta. */
  onDelta?: (text: string) => void;
  /**
   * Streaming: the longest silence allowed between two chunks. A stream that stalls longer,
   * errors, or ends without a finish reason is a failure (`BATON_MODEL_STREAM_BROKEN`), never
   * a short answer.
   */
  streamIdleMs?: number;
}

export interface Provider {
  /** The provider name used in config (`openai`, `anthropic`, `local-classifier`, ...). */
  readonly name: string;
  /** What `operation` a model step gets when it names none. */
  readonly defaultOperation: ModelOperation;
  call(request: ModelRequest, options: CallOptions): Promise<ModelResponse>;
  /** Releases workers, sockets, sessions. */
  close?(): Promise<void>;
}

/** What a provider factory gets: the service's settings, its resolved credential, and where relative paths start. */
export interface ProviderSetup {
  /** Service name, for error messages. */
  service: string;
  model: string;
  /** Base URL for network providers. */
  endpoint?: string;
  /** The secret value resolved from the service's credential reference (never logged or stored). */
  credential?: string;
  /** Provider-specific settings from the service's `options`. */
  options: Record<string, unknown>;
  /** Directory of the config file: relative paths in `options` are resolved against it. */
  baseDir: string;
}

export type ProviderFactory = (setup: ProviderSetup) => Provider | Promise<Provider>;

/** Rough token count for providers that do not report one (local models): about 4 characters a token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/**
 * The error for an HTTP answer that is not a success, shared by every network provider so the
 * same status means the same thing whatever the vendor: 429 is rate limiting (with the
 * server's `Retry-After` kept in `details.retryAfterMs`), 408/409/5xx are worth repeating,
 * other 4xx (bad key, bad request) are not.
 */
export function httpStatusError(service: string, status: number, body: string, retryAfter?: string | null): BatonError {
  const detail = summarize(body);
  if (status === 429) {
    const ms = parseRetryAfter(retryAfter);
    return new BatonError('BATON_MODEL_RATE_LIMITED', { service, detail, retryAfter: ms === undefined ? '' : ` (retry after ${ms} ms)`, retryAfterMs: ms });
  }
  const retryable = status === 408 || status === 409 || status >= 500;
  return new BatonError('BATON_MODEL_HTTP', { service, httpStatus: status, detail }, { retryable });
}

/** `Retry-After` as milliseconds: either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return Math.round(secs * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** The first line or so of an error body: vendors put the reason there; HTML pages get their title. */
function summarize(body: string): string {
  const title = /<title>([^<]*)<\/title>/i.exec(body)?.[1];
  if (title) return `an HTML page ("${title.trim()}")`;
  try {
    const j = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (m) return m;
  } catch {
    /* not JSON: fall through to the raw text */
  }
  const t = body.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t || '(empty body)';
}

/**
 * A body that should be JSON, parsed; otherwise `bad` is called with what it was instead (an
 * HTML page with its title, an empty body, the start of the text) so that the error says what
 * the server really sent.
 */
export function parseJsonBody(text: string, bad: (detail: string) => never): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1];
    if (title !== undefined || /^\s*<(!doctype|html)/i.test(text)) return bad(`an HTML page${title ? ` ("${title.trim()}")` : ''} instead of JSON`);
    if (!text.trim()) return bad('an empty body instead of JSON');
    const t = text.replace(/\s+/g, ' ').trim();
    return bad(`a body that is not JSON: ${t.length > 120 ? `${t.slice(0, 120)}…` : t}`);
  }
}
