/**
 * OpenTelemetry traces. The engine talks to the OTel API only; the SDK is built here, and only
 * when tracing is configured (`Baton.open({ telemetry })`, `telemetry:` in baton.config.yaml,
 * or OTEL_EXPORTER_OTLP_ENDPOINT). Without it the engine holds no `Telemetry` and every hook is
 * one `undefined` check: tracing off costs nothing.
 *
 * Span tree:
 *
 *   baton.run <workflow>            one per run (retries of the run emit it again)
 *   └─ baton.step <key>             one per step attempt, on whichever worker ran it
 *      ├─ chat <model>              one per model call (GenAI semantic conventions)
 *      └─ (http steps send `traceparent`; child runs hang under the step that started them)
 *
 * A run outlives processes (crashes, other workers, waits of days), so its span cannot be an
 * object held open in memory. Instead its ids are chosen at admission and stored with the run
 * (`runs.trace`): steps anywhere become children of that stored context, and whichever process
 * records the run's end emits the run span with those very ids (start = admission time), by
 * handing them to the SDK through the id generator below.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type IdGenerator, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { randomBytes } from 'node:crypto';
import { BatonError } from '../errors.js';
import { decodeRunTrace, encodeRunTrace, formatTraceparent, otlpEndpointOf, telemetryWanted } from './genai.js';

export { decodeRunTrace, encodeRunTrace, formatTraceparent, parseTraceparent, runTraceparent, type RunTrace } from './genai.js';

export interface TelemetryOptions {
  /**
   * OTLP/HTTP endpoint of a collector (Jaeger, Tempo, the OTel Collector), e.g.
   * `http://localhost:4318` (`/v1/traces` is added when missing). Default: OTEL_EXPORTER_OTLP_ENDPOINT.
   */
  otlpEndpoint?: string;
  /** Extra headers for the exporter (a vendor's API key). */
  headers?: Record<string, string>;
  /** `service.name` of the spans. Default `baton`. */
  serviceName?: string;
  /** Where spans go instead of (or besides) OTLP: tests pass a SimpleSpanProcessor over an InMemorySpanExporter. */
  spanProcessor?: SpanProcessor;
}

/** Lets the next span take ids chosen earlier (a run span emitted at the run's end); random otherwise. */
class ChosenIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  next?: { traceId: string; spanId: string };
  generateTraceId(): string {
    return this.next?.traceId ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    // Cleared by the caller once the span is started (the SDK draws the span id before the trace id).
    return this.next?.spanId ?? this.random.generateSpanId();
  }
}

export class Telemetry {
  readonly tracer: Tracer;
  private readonly provider: BasicTracerProvider;
  private readonly ids = new ChosenIdGenerator();

  constructor(opts: TelemetryOptions) {
    const processors: SpanProcessor[] = [];
    if (opts.spanProcessor) processors.push(opts.spanProcessor);
    const endpoint = opts.otlpEndpoint;
    if (endpoint) processors.push(new BatchSpanProcessor(otlpExporter(endpoint, opts.headers)));
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': opts.serviceName ?? 'baton' }),
      idGenerator: this.ids,
      spanProcessors: processors,
    });
    this.tracer = this.provider.getTracer('baton');
  }

  /**
   * Telemetry for these options, or undefined when nothing asks for spans (no processor, no
   * endpoint given or in OTEL_EXPORTER_OTLP_ENDPOINT): then nothing is built at all.
   */
  static from(opts: TelemetryOptions | false | undefined, env: NodeJS.ProcessEnv = process.env): Telemetry | undefined {
    if (!telemetryWanted(opts, env)) return undefined;
    const endpoint = otlpEndpointOf(opts || undefined, env);
    if (endpoint && !/^https?:\/\//.test(endpoint)) {
      throw new BatonError('BATON_CONFIG_INVALID', { detail: `telemetry.otlp_endpoint: "${endpoint}" is not an http(s) URL; give the collector's OTLP/HTTP address, e.g. http://localhost:4318` });
    }
    return new Telemetry({ ...(opts || {}), otlpEndpoint: endpoint, serviceName: (opts || undefined)?.serviceName ?? env.OTEL_SERVICE_NAME });
  }

  /** Ids of a new run span, under the caller's span (`traceparent`) or a parent step's context, else a new trace. */
  newRunTrace(parent?: { traceId: string; spanId: string; sampled: boolean }): string {
    const spanId = randomBytes(8).toString('hex');
    if (parent) return encodeRunTrace({ traceId: parent.traceId, spanId, sampled: parent.sampled, parentSpanId: parent.spanId });
    return encodeRunTrace({ traceId: randomBytes(16).toString('hex'), spanId, sampled: true });
  }

  /** The context whose parent is the run span (stored ids: works on any worker). */
  runContext(stored: string | undefined): Context {
    const t = decodeRunTrace(stored);
    if (!t) return ROOT_CONTEXT;
    return trace.setSpanContext(ROOT_CONTEXT, { traceId: t.traceId, spanId: t.spanId, traceFlags: t.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
  }

  startStep(stored: string | undefined, name: string, attributes: Attributes): Span {
    return this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, this.runContext(stored));
  }

  /** Emits the run span with its stored ids, from admission to `end`. */
  endRun(stored: string | undefined, name: string, start: number, end: number, attributes: Attributes, error?: { code?: string; message?: string }): void {
    const t = decodeRunTrace(stored);
    if (!t || !t.sampled) return;
    const parent = t.parentSpanId
      ? trace.setSpanContext(ROOT_CONTEXT, { traceId: t.traceId, spanId: t.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true })
      : ROOT_CONTEXT;
    // startSpan draws the ids synchronously: nothing else can take them in between.
    this.ids.next = { traceId: t.traceId, spanId: t.spanId };
    let span: Span;
    try {
      span = this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, startTime: start, attributes }, parent);
    } finally {
      this.ids.next = undefined;
    }
    if (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      if (error.code) span.setAttribute('error.type', error.code);
    }
    span.end(end);
  }

  /** Sends what is buffered (the run spans of a short CLI run, before exit). */
  async flush(): Promise<void> {
    await this.provider.forceFlush();
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}

/** The traceparent header value for a span (what `http` steps send). */
export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return formatTraceparent(c.traceId, c.spanId, (c.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED);
}

function otlpExporter(endpoint: string, headers?: Record<string, string>) {
  const url = /\/v1\/traces\/?$/.test(endpoint) ? endpoint : `${endpoint.replace(/\/$/, '')}/v1/traces`;
  return new OTLPTraceExporter({ url, headers });
}
