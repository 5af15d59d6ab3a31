/**
 * `http`: calls any REST service. The body is the step `input` (JSON); the output is
 * `{ status, headers, body }`. Every request carries `Idempotency-Key: runId:stepKey:attempt`
 * so a service can drop the repeat that at-least-once execution may send after a crash. With
 * tracing on, it also carries the attempt span's W3C `traceparent`.
 * 5xx, 408 and 429 answers and network errors are retryable; other 4xx are not.
 */
import { trace } from '@opentelemetry/api';
import { BatonError } from '../errors.js';
import { formatTraceparent } from '../observability/genai.js';
import { Template } from '../expr/expression.js';
import type { HttpStepDoc } from '../spec/types.js';
import type { ExecContext, StepKind } from './kind.js';

const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

export const httpKind: StepKind<HttpStepDoc> = {
  name: 'http',
  recordsStart: true,
  defaultRetry: { maxAttempts: 3 },
  schema: {
    kind: 'http',
    description: 'Calls an HTTP JSON service. Body = the step input; output = { status, headers, body }.',
    required: ['url'],
    properties: {
      url: { type: 'string', minLength: 1, description: 'URL; {{ expr }} parts are expressions (URL-encoded).' },
      method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      query: { type: 'object', additionalProperties: { type: 'string' } },
      response: { enum: ['json', 'text'] },
    },
  },
  prepare(step, ctx) {
    const refs = new Set<string>();
    const template = (src: string, path: string): Template | undefined => {
      try {
        const t = new Template(src, ctx.expressions);
        for (const r of t.stepRefs) refs.add(r);
        return t;
      } catch (e) {
        ctx.problem(path, (e as BatonError).message);
        return undefined;
      }
    };
    const url = template(step.url, 'url');
    const headers = Object.entries(step.headers ?? {}).map(([k, v]) => [k, template(v, `headers.${k}`)] as const);
    const query = Object.entries(step.query ?? {}).map(([k, v]) => [k, template(v, `query.${k}`)] as const);
    const method = step.method ?? 'GET';
    const build = async (x: ExecContext) => {
      const where = `in step ${x.stepId}`;
      const target = new URL(await url!.render(x.scope, `${where}: url`, (v) => encodeURIComponent(String(v))));
      for (const [k, t] of query) target.searchParams.set(k, await t!.render(x.scope, `${where}: query.${k}`));
      const h: Record<string, string> = { accept: 'application/json', 'idempotency-key': x.idempotencyKey };
      for (const [k, t] of headers) h[k.toLowerCase()] = await t!.render(x.scope, `${where}: headers.${k}`);
      let body: string | undefined;
      if (method !== 'GET' && method !== 'HEAD' && x.input !== undefined) {
        body = JSON.stringify(x.input);
        h['content-type'] ??= 'application/json';
      }
      return { target, h, body };
    };
    return {
      stepRefs: refs,
      // The request as sent, less the idempotency key (it names the run and attempt, not the request).
      async request(x) {
        const { target, h, body } = await build(x);
        const { 'idempotency-key': _key, ...rest } = h;
        return { method, url: target.toString(), headers: rest, body, response: step.response ?? 'json' };
      },
      async execute(x) {
        const { target, h, body } = await build(x);
        // Tracing on: the service joins the run's trace under this attempt's span (unless the step sets its own).
        // Added here, not in build(): a replay compares requests without it.
        if (x.span && h.traceparent === undefined) {
          const sc = trace.getSpanContext(x.span);
          if (sc) h.traceparent = formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1);
        }
        const shown = `${target.origin}${target.pathname}`;
        let res: Response;
        try {
          res = await x.services.fetch(target, { method, headers: h, body, signal: x.signal });
        } catch (e) {
          if (x.signal.aborted && x.signal.reason instanceof BatonError) throw x.signal.reason;
          const cause = (e as Error & { cause?: { message?: string } }).cause;
          // An address the egress guard refused is not a network failure: it is final and says why.
          if (e instanceof BatonError) throw e;
          if (cause instanceof BatonError) throw cause;
    // An address the egress guard refused is not a network failure: it is final and says why.
    if (e instanceof BatonError) throw e;
    if (cause instanceof BatonError) throw cause;
          throw new BatonError('BATON_HTTP_NETWORK', { method, url: shown, detail: cause?.message ?? (e as Error).message }, { cause: e });
        }
        const text = await res.text();
        const contentType = res.headers.get('content-type') ?? '';
        if (!res.ok) {
          const retryAfter = res.headers.get('retry-after');
          throw new BatonError(
            'BATON_HTTP_STATUS',
            { method, url: shown, httpStatus: res.status, detail: text.slice(0, 300) || res.statusText, retryAfter: retryAfter ?? undefined },
            { retryable: RETRYABLE_STATUS.has(res.status) },
          );
        }
        let parsed: unknown = text;
        if ((step.response ?? 'json') === 'json') {
          if (text === '') parsed = null;
          else {
            try {
              parsed = JSON.parse(text);
            } catch {
              throw new BatonError('BATON_HTTP_BODY', { method, url: shown, contentType: contentType || 'no content type' });
            }
          }
        }
        return { type: 'done', output: { status: res.status, headers: Object.fromEntries(res.headers), body: parsed } };
      },
    };
  },
};
