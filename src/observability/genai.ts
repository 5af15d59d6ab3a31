/**
 * Light helpers of the tracing hooks (GenAI attribute values, W3C trace context, the stored run
 * context), kept apart from telemetry.ts so that the engine loads the OpenTelemetry SDK only
 * when tracing is on (see Baton.open): this module imports nothing.
 */
import type { TelemetryOptions } from './telemetry.js';

/** What the GenAI conventions call the operation (`gen_ai.operation.name`). */
const GENAI_OPERATION: Record<string, string> = { chat: 'chat', embed: 'embeddings', embeddings: 'embeddings' };
/** `gen_ai.provider.name` for Baton's provider names (others pass through). */
const GENAI_PROVIDER: Record<string, string> = { openai: 'openai', anthropic: 'anthropic', 'ai-sdk': 'ai_sdk' };

export function genAiOperation(op: string): string {
  return GENAI_OPERATION[op] ?? op;
}

export function genAiProvider(provider: string): string {
  return GENAI_PROVIDER[provider] ?? provider;
}

/** The OTLP endpoint: the option, else the standard OTel environment variables. */
export function otlpEndpointOf(opts: TelemetryOptions | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return opts?.otlpEndpoint ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? undefined;
}

/**
 * Whether anything asks for spans: a span processor, or an OTLP endpoint (option or
 * environment). `false` turns it off, and so does OTEL_SDK_DISABLED=true for an endpoint that
 * only the environment gave.
 */
export function telemetryWanted(opts: TelemetryOptions | false | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (opts === false) return false;
  if (opts?.spanProcessor || opts?.otlpEndpoint) return true;
  return env.OTEL_SDK_DISABLED?.toLowerCase() !== 'true' && Boolean(otlpEndpointOf(opts, env));
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a W3C `traceparent` header; undefined when absent or malformed (a bad header is ignored, as the spec says). */
export function parseTraceparent(h: unknown): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (typeof h !== 'string') return undefined;
  const m = TRACEPARENT.exec(h.trim().toLowerCase());
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return undefined;
  return { traceId: m[1], spanId: m[2], sampled: (parseInt(m[3], 16) & 1) === 1 };
}

export function formatTraceparent(traceId: string, spanId: string, sampled = true): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** A run's stored trace context: its span's ids, and the span it hangs under (a caller's, a parent step's). */
export interface RunTrace {
  traceId: string;
  spanId: string;
  sampled: boolean;
  /** Span id of the parent, in the same trace; absent for a root run span. */
  parentSpanId?: string;
}

/** Stored form: the run span's traceparent, then the parent's span id (`runs.trace`). */
export function encodeRunTrace(t: RunTrace): string {
  const tp = formatTraceparent(t.traceId, t.spanId, t.sampled);
  return t.parentSpanId ? `${tp} ${t.parentSpanId}` : tp;
}

export function decodeRunTrace(s: string | undefined): RunTrace | undefined {
  if (!s) return undefined;
  const [tp, parent] = s.split(' ');
  const p = parseTraceparent(tp);
  if (!p) return undefined;
  return parent && /^[0-9a-f]{16}$/.test(parent) ? { ...p, parentSpanId: parent } : p;
}

/** The traceparent of a stored run context (what external workers get with a task). */
export function runTraceparent(stored: string | undefined): string | undefined {
  const t = decodeRunTrace(stored);
  return t && formatTraceparent(t.traceId, t.spanId, t.sampled);
}

