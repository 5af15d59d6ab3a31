/**
 * A generic JSON model endpoint (config name `http`): whatever in-house model server answers
 * JSON over HTTP.
 *
 *   {method} {endpoint}{options.path}     body: `input` (chat: `{ system, messages }`)
 *   → output: the parsed body, or the value at `options.output` (a dotted path, `result.label`,
 *     `choices.0.text` or `choices[0].text`)
 *
 * Options:
 * - `method`: POST (default), PUT, PATCH, GET, DELETE. GET and DELETE send no body; an input of
 *   plain values becomes the query string instead.
 * - `path`: appended to the endpoint; `{model}` in it is replaced by the service's model.
 * - `headers`: extra request headers.
 * - `output`: dotted path to the answer inside the body.
 * - `usage`: `{ input_tokens?: path, output_tokens?: path, cached_input_tokens?: path }`, dotted paths
 *   to the token counts in the body; counts not given (or not found) are estimated from the text.
 * - `operation`: what a step that names no operation gets (default `infer`). Every operation is
 *   accepted: the endpoint decides what it does.
 */
import { BatonError } from '../errors.js';
import { defaultOp, describe as describeValue, fetchText, isRecord, stringRecord, throwIfAborted } from './shared.js';
import { estimateTokens, parseJsonBody, type CallOptions, type ModelRequest, type ModelResponse, type Provider, type ProviderFactory, type ProviderSetup } from './provider.js';

export const HTTP_JSON_PROTOCOL = 'JSON (http provider)';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export const httpJsonProvider: ProviderFactory = (setup) => createHttpJsonProvider(setup);

export function createHttpJsonProvider(setup: ProviderSetup): Provider {
  const { service } = setup;
  const opts = setup.options ?? {};
  const config = (detail: string): never => {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (http): ${detail}` });
  };
  if (!setup.endpoint) config('needs an `endpoint`, e.g. http://127.0.0.1:9000');
  const method = opts.method === undefined ? 'POST' : String(opts.method).toUpperCase();
  if (!(METHODS as readonly string[]).includes(method)) config(`\`options.method\` is ${JSON.stringify(opts.method)}; use one of ${METHODS.join(', ')}`);
  if (opts.path !== undefined && typeof opts.path !== 'string') config('`options.path` must be a string');
  const url = joinUrl(setup.endpoint as string, ((opts.path as string | undefined) ?? '').replaceAll('{model}', encodeURIComponent(setup.model)));
  const extraHeaders = stringRecord(service, 'http', 'headers', opts.headers);
  const outputPath = opts.output === undefined ? undefined : typeof opts.output === 'string' ? parsePath(opts.output) : config('`options.output` must be a dotted path like `result.label`');
  const usagePaths: Partial<Record<'input_tokens' | 'output_tokens' | 'cached_input_tokens', (string | number)[]>> = {};
  if (opts.usage !== undefined) {
    if (!isRecord(opts.usage)) config('`options.usage` must be { input_tokens, output_tokens } dotted paths');
    for (const [k, v] of Object.entries(opts.usage as Record<string, unknown>)) {
      if (k !== 'input_tokens' && k !== 'output_tokens' && k !== 'cached_input_tokens') config(`\`options.usage.${k}\` is not known; use input_tokens, output_tokens, cached_input_tokens`);
      if (typeof v !== 'string' || !v) config(`\`options.usage.${k}\` must be a dotted path`);
      usagePaths[k as keyof typeof usagePaths] = parsePath(v as string);
    }
  }
  const defaultOperation = defaultOp(service, 'http', opts.operation);
  const hasBody = method !== 'GET' && method !== 'DELETE';

  return {
    name: 'http',
    defaultOperation,

    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      throwIfAborted(options.signal);
      const operation = request.operation ?? defaultOperation;
      const payload: unknown =
        operation === 'chat' ? { ...(request.system === undefined ? {} : { system: request.system }), messages: request.messages ?? [] } : request.input;

      const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
      if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
      if (setup.credential) headers.authorization = `Bearer ${setup.credential}`;
      let target = url;
      let body: string | undefined;
      if (hasBody) {
        if (payload !== undefined) {
          body = JSON.stringify(payload);
          headers['content-type'] ??= 'application/json';
        }
      } else {
        target = withQuery(url, payload, (detail) => {
          throw new BatonError('BATON_MODEL_UNSUPPORTED', { service, provider: 'http', operation, operations: `any (but not on this input: ${detail})` });
        });
      }

      const text = await fetchText(service, target, { method, headers, body }, options.signal);
      const json = parseBody(service, text);
      let output: unknown = json;
      if (outputPath) {
        output = getPath(json, outputPath);
        if (output === undefined) {
          throw new BatonError('BATON_MODEL_BAD_RESPONSE', {
            service,
            protocol: HTTP_JSON_PROTOCOL,
            detail: `the answer has nothing at \`${opts.output}\` (options.output); its top-level keys are ${isRecord(json) ? Object.keys(json).join(', ') || 'none' : describeValue(json)}`,
          });
        }
      }
      if (operation === 'chat' && typeof output !== 'string') output = JSON.stringify(output);
      if (request.stream && typeof output === 'string' && options.onDelta) options.onDelta(output);

      const sentText = operation === 'chat' ? [request.system ?? '', ...(request.messages ?? []).map((m) => m.content)].join('\n') : (body ?? JSON.stringify(payload) ?? '');
      const count = (path: (string | number)[] | undefined): number | undefined => {
        if (!path) return undefined;
        const v = getPath(json, path);
        return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
      };
      const cached = count(usagePaths.cached_input_tokens) ?? 0;
      const inputTokens = count(usagePaths.input_tokens);
      return {
        output,
        usage: {
          inputTokens: inputTokens === undefined ? estimateTokens(sentText) : Math.max(0, inputTokens - cached),
          outputTokens: count(usagePaths.output_tokens) ?? estimateTokens(typeof output === 'string' ? output : (JSON.stringify(output) ?? '')),
          cachedInputTokens: cached,
        },
      };
    },
  };
}

function parseBody(service: string, text: string): unknown {
  return parseJsonBody(text, (detail) => {
    throw new BatonError('BATON_MODEL_BAD_RESPONSE', { service, protocol: HTTP_JSON_PROTOCOL, detail });
  });
}

/** `a.b[0].c` / `a.b.0.c` → ['a', 'b', 0, 'c']. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.replace(/\[(\d+)\]/g, '.$1').split('.')) {
    if (part === '') continue;
    out.push(/^\d+$/.test(part) ? Number(part) : part);
  }
  return out;
}

export function getPath(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const key of path) {
    if (Array.isArray(v)) v = typeof key === 'number' ? v[key] : undefined;
    else if (isRecord(v)) v = Object.prototype.hasOwnProperty.call(v, key) ? v[String(key)] : undefined;
    else return undefined;
  }
  return v;
}

function joinUrl(endpoint: string, path: string): string {
  if (!path) return endpoint;
  return `${endpoint.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** GET/DELETE: an input of plain values becomes the query string. */
function withQuery(url: string, input: unknown, fail: (detail: string) => never): string {
  if (input === undefined || input === null) return url;
  if (!isRecord(input)) return fail(`a ${'GET/DELETE'} endpoint takes an object of plain values as its query, got ${describeValue(input)}`);
  const u = new URL(url);
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) for (const x of v) u.searchParams.append(k, String(x));
    else if (typeof v !== 'object') u.searchParams.set(k, String(v));
    else return fail(`query parameter "${k}" is ${describeValue(v)}, not a plain value`);
  }
  return u.toString();
}
