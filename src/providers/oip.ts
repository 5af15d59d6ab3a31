/**
 * The Open Inference Protocol (KServe v2, Triton, Seldon MLServer, TorchServe's v2 API):
 *
 *   POST {endpoint}/v2/models/{model}[/versions/{version}]/infer
 *        { id?, parameters?, inputs: [{ name, shape, datatype, data, parameters? }], outputs? }
 *   →    { model_name, model_version?, id?, parameters?, outputs: [{ name, shape, datatype, data }] }
 *   GET  {endpoint}/v2/models/{model}[/versions/{version}]/ready   → 200 when ready
 *
 * Operations:
 * - `infer` (default): input `{ inputs: { [name]: { shape, datatype, data } } }` or the protocol's
 *   own array form `{ inputs: [{ name, shape, datatype, data }] }` (plus optional `parameters`,
 *   `outputs`, `id`) → `{ outputs: { [name]: { shape, datatype, data } }, model_name, model_version }`.
 * - `classify` (only when `options.labels` is set): input is an array of numbers sent as one
 *   FP32 tensor `options.input_name` (default `input`) of shape `[1, n]` (or `options.input_shape`);
 *   the output `options.output_name` (default: the first one) holds one score per label →
 *   `{ label, confidence, scores }` (arg-max; `options.softmax: true` turns logits into probabilities).
 *
 * Options: `model_version`, `labels`, `input_name`, `output_name`, `input_shape`, `softmax`,
 * `operation` (the default operation), `headers` (extra request headers).
 *
 * The tensor helpers at the bottom are shared with the ONNX provider, so both speak the same
 * tensor shape (`{ shape, datatype, data }`) and the same `classify` convenience.
 */
import { BatonError } from '../errors.js';
import {
  estimateTokens,
  httpStatusError,
  parseJsonBody,
  type CallOptions,
  type ModelOperation,
  type ModelRequest,
  type ModelResponse,
  type Provider,
  type ProviderFactory,
  type ProviderSetup,
} from './provider.js';

export const OIP_PROTOCOL = 'Open Inference Protocol (v2)';

/** Every datatype the protocol defines. */
export const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];

export type TensorValue = number | boolean | string;

/** One named tensor as Baton passes it around: row-major flat data. */
export interface Tensor {
  shape: number[];
  datatype: string;
  data: TensorValue[];
}

export interface NamedTensor extends Tensor {
  name: string;
  parameters?: Record<string, unknown>;
}

/** An OIP provider also answers readiness probes. */
export interface OipProvider extends Provider {
  /** `GET /v2/models/{model}[/versions/{v}]/ready`: true on 2xx; false on any other status or when unreachable. */
  ready(signal?: AbortSignal): Promise<boolean>;
}

export const oipProvider: ProviderFactory = (setup) => createOipProvider(setup);

export function createOipProvider(setup: ProviderSetup): OipProvider {
  const { service } = setup;
  const opts = setup.options ?? {};
  if (!setup.endpoint) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (oip) needs an \`endpoint\`, e.g. http://127.0.0.1:8000` });
  }
  const endpoint = setup.endpoint.replace(/\/+$/, '');
  const version = opts.model_version === undefined || opts.model_version === null || opts.model_version === '' ? undefined : String(opts.model_version);
  const modelPath = `/v2/models/${encodeURIComponent(setup.model)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
  const classify = classifyConfig(service, 'oip', opts);
  const operations: ModelOperation[] = classify ? ['infer', 'classify'] : ['infer'];
  const defaultOperation = defaultOp(service, 'oip', opts.operation, operations);
  const extraHeaders = stringRecord(service, 'oip', 'headers', opts.headers);

  function headers(options: CallOptions | undefined, json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...extraHeaders };
    if (json) h['content-type'] = 'application/json';
    if (options?.idempotencyKey) h['idempotency-key'] = options.idempotencyKey;
    if (setup.credential) h.authorization = `Bearer ${setup.credential}`;
    return h;
  }

  async function infer(body: Record<string, unknown>, options: CallOptions): Promise<InferAnswer> {
    const url = `${endpoint}${modelPath}/infer`;
    const text = await fetchText(service, url, { method: 'POST', headers: headers(options, true), body: JSON.stringify(body) }, options.signal);
    return parseInferAnswer(service, text);
  }

  return {
    name: 'oip',
    defaultOperation,

    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      throwIfAborted(options.signal);
      const operation = request.operation ?? defaultOperation;
      if (operation === 'infer') {
        const body = inferBody(service, request.input, options.idempotencyKey, operations);
        const answer = await infer(body, options);
        const outputs: Record<string, Tensor> = {};
        for (const o of answer.outputs) outputs[o.name] = { shape: o.shape, datatype: o.datatype, data: o.data };
        return {
          output: { outputs, model_name: answer.model_name, model_version: answer.model_version ?? version ?? '' },
          usage: tensorUsage(body.inputs, answer.outputs),
          model: answer.model_name,
        };
      }
      if (operation === 'classify' && classify) {
        const features = classifyFeatures(request.input, (detail) => badInput(service, 'oip', 'classify', operations, detail));
        const shape = classify.inputShape ?? [1, features.length];
        if (product(shape) !== features.length) {
          badInput(service, 'oip', 'classify', operations, `options.input_shape [${shape.join(', ')}] holds ${product(shape)} values but the input has ${features.length}`);
        }
        const body: Record<string, unknown> = {
          id: options.idempotencyKey,
          inputs: [{ name: classify.inputName ?? 'input', shape, datatype: 'FP32', data: features }],
        };
        if (classify.outputName) body.outputs = [{ name: classify.outputName }];
        const answer = await infer(body, options);
        const out = classify.outputName ? answer.outputs.find((o) => o.name === classify.outputName) : answer.outputs[0];
        if (!out) {
          throw new BatonError(
            'BATON_MODEL_BAD_RESPONSE',
            { service, protocol: OIP_PROTOCOL, detail: `no output named "${classify.outputName}" (got ${answer.outputs.map((o) => o.name).join(', ') || 'none'})` },
            { retryable: false },
          );
        }
        const result = classifyScores(out.data, classify, (detail) => {
          throw new BatonError('BATON_MODEL_BAD_RESPONSE', { service, protocol: OIP_PROTOCOL, detail }, { retryable: false });
        });
        return { output: result, usage: tensorUsage(features, out.data), model: answer.model_name };
      }
      throw new BatonError('BATON_MODEL_UNSUPPORTED', { service, provider: 'oip', operation, operations: operations.join(', ') });
    },

    async ready(signal?: AbortSignal): Promise<boolean> {
      try {
        const res = await fetch(`${endpoint}${modelPath}/ready`, { method: 'GET', headers: headers(undefined, false), signal });
        await res.body?.cancel().catch(() => undefined);
        return res.ok;
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        return false;
      }
    },
  };
}

// --- the wire ---------------------------------------------------------------------------------

interface InferAnswer {
  model_name: string;
  model_version?: string;
  outputs: NamedTensor[];
}

/** The request body for `infer`: the protocol's array form, whichever form the caller used. */
function inferBody(service: string, input: unknown, idempotencyKey: string, operations: readonly ModelOperation[]): Record<string, unknown> & { inputs: NamedTensor[] } {
  const fail = (detail: string) => badInput(service, 'oip', 'infer', operations, detail);
  if (!isRecord(input)) fail(`\`infer\` needs { inputs: { [name]: { shape, datatype, data } } }, got ${describe(input)}`);
  const inputs = normalizeTensorInputs((input as Record<string, unknown>).inputs, { defaultDatatype: 'FP32', fail });
  const body: Record<string, unknown> & { inputs: NamedTensor[] } = { id: idempotencyKey, inputs };
  const src = input as Record<string, unknown>;
  if (typeof src.id === 'string') body.id = src.id;
  if (isRecord(src.parameters)) body.parameters = src.parameters;
  if (src.outputs !== undefined) {
    if (!Array.isArray(src.outputs)) fail('`outputs` must be an array of output names or { name, parameters? }');
    body.outputs = (src.outputs as unknown[]).map((o) => {
      if (typeof o === 'string') return { name: o };
      if (isRecord(o) && typeof o.name === 'string') return o;
      return fail('`outputs` must be an array of output names or { name, parameters? }');
    });
  }
  return body;
}

/** Checks an infer answer the way a strict client would: every output complete and consistent. */
export function parseInferAnswer(service: string, text: string): InferAnswer {
  const bad = (detail: string): never => {
    throw new BatonError('BATON_MODEL_BAD_RESPONSE', { service, protocol: OIP_PROTOCOL, detail });
  };
  const json = parseJsonBody(text, bad);
  if (!isRecord(json)) return bad(`expected a JSON object, got ${describe(json)}`);
  if (!Array.isArray(json.outputs)) return bad('the answer has no `outputs` array');
  const outputs: NamedTensor[] = json.outputs.map((o: unknown, i: number) => {
    if (!isRecord(o)) return bad(`outputs[${i}] is not an object`);
    if (typeof o.name !== 'string' || !o.name) return bad(`outputs[${i}] has no \`name\``);
    const where = `output "${o.name}"`;
    if (typeof o.datatype !== 'string' || !(OIP_DATATYPES as readonly string[]).includes(o.datatype)) {
      return bad(`${where} has datatype ${JSON.stringify(o.datatype)}; expected one of ${OIP_DATATYPES.join(', ')}`);
    }
    const shape = checkShape(o.shape);
    if (!shape) return bad(`${where} has shape ${JSON.stringify(o.shape)}; expected an array of non-negative integers`);
    if (o.data === undefined && isRecord(o.parameters) && o.parameters.binary_data_size !== undefined) {
      return bad(`${where} came as binary data (Triton's binary extension), which Baton does not read`);
    }
    if (!Array.isArray(o.data)) return bad(`${where} has no \`data\` array`);
    const data = flatten(o.data);
    if (data.length !== product(shape)) {
      return bad(`${where} has ${data.length} values but shape [${shape.join(', ')}] needs ${product(shape)}`);
    }
    const wrong = data.findIndex((v) => !valueFits(o.datatype as string, v));
    if (wrong >= 0) return bad(`${where} (${o.datatype}) has ${JSON.stringify(data[wrong])} at index ${wrong}`);
    return { name: o.name, shape, datatype: o.datatype, data };
  });
  if (typeof json.model_name !== 'string') return bad('the answer has no `model_name`');
  const answer: InferAnswer = { model_name: json.model_name, outputs };
  if (json.model_version !== undefined && json.model_version !== null) answer.model_version = String(json.model_version);
  return answer;
}

/**
 * One `fetch` that either resolves with the body of a 2xx answer or throws exactly one typed
 * error: the signal's reason when aborted, BATON_MODEL_NETWORK when the server cannot be
 * reached, the shared HTTP status error otherwise.
 */
export async function fetchText(service: string, url: string, init: RequestInit, signal: AbortSignal): Promise<string> {
  throwIfAborted(signal);
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw networkError(service, url, err);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw networkError(service, url, err);
  }
  throwIfAborted(signal);
  if (!res.ok) throw httpStatusError(service, res.status, text, res.headers.get('retry-after'));
  return text;
}

export function networkError(service: string, url: string, err: unknown): BatonError {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code;
  const msg = cause?.message ?? (err instanceof Error ? err.message : String(err));
  const detail = code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  let endpoint = url;
  try {
    const u = new URL(url);
    endpoint = `${u.protocol}//${u.host}`;
  } catch {
    /* keep the raw url */
  }
  return new BatonError('BATON_MODEL_NETWORK', { service, endpoint, detail }, { cause: err });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}


// --- tensors (shared with the ONNX provider) ---------------------------------------------------

/**
 * `{ [name]: { shape, datatype, data } }` or `[{ name, shape, datatype, data }]` → the array form,
 * flat data, shape defaulting to `[data.length]`, datatype to `defaultDatatype` (which may depend on the name).
 */
export function normalizeTensorInputs(
  inputs: unknown,
  how: { defaultDatatype: string | ((name: string) => string); fail: (detail: string) => never },
): NamedTensor[] {
  const { fail } = how;
  let entries: Array<[string, unknown]>;
  if (Array.isArray(inputs)) {
    entries = inputs.map((t, i) => {
      if (!isRecord(t) || typeof t.name !== 'string' || !t.name) return fail(`inputs[${i}] needs a \`name\``);
      return [t.name, t];
    });
  } else if (isRecord(inputs)) {
    entries = Object.entries(inputs);
  } else {
    return fail(`\`inputs\` must be { [name]: { shape, datatype, data } } or [{ name, shape, datatype, data }], got ${describe(inputs)}`);
  }
  if (entries.length === 0) return fail('`inputs` is empty');
  return entries.map(([name, t]) => {
    if (!isRecord(t)) return fail(`input "${name}" must be { shape, datatype, data }, got ${describe(t)}`);
    if (!Array.isArray(t.data)) return fail(`input "${name}" has no \`data\` array`);
    const data = flatten(t.data);
    const shape = t.shape === undefined ? [data.length] : checkShape(t.shape);
    if (!shape) return fail(`input "${name}" has shape ${JSON.stringify(t.shape)}; expected an array of non-negative integers`);
    const dflt = typeof how.defaultDatatype === 'function' ? how.defaultDatatype(name) : how.defaultDatatype;
    const datatype = t.datatype === undefined ? dflt : typeof t.datatype === 'string' ? t.datatype.toUpperCase() : fail(`input "${name}" has datatype ${JSON.stringify(t.datatype)}`);
    if (!(OIP_DATATYPES as readonly string[]).includes(datatype)) return fail(`input "${name}" has datatype ${datatype}; use one of ${OIP_DATATYPES.join(', ')}`);
    if (data.length !== product(shape)) return fail(`input "${name}" has ${data.length} values but shape [${shape.join(', ')}] needs ${product(shape)}`);
    const wrong = data.findIndex((v) => !valueFits(datatype, v));
    if (wrong >= 0) return fail(`input "${name}" (${datatype}) has ${JSON.stringify(data[wrong])} at index ${wrong}`);
    const out: NamedTensor = { name, shape, datatype, data };
    if (isRecord(t.parameters)) out.parameters = t.parameters;
    return out;
  });
}

export function checkShape(shape: unknown): number[] | undefined {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) return undefined;
  return shape as number[];
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Row-major flattening of nested arrays (the protocol allows either). */
export function flatten(data: unknown[]): TensorValue[] {
  const out: TensorValue[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else out.push(v as TensorValue);
  };
  walk(data);
  return out;
}

function valueFits(datatype: string, v: unknown): boolean {
  if (datatype === 'BYTES') return typeof v === 'string';
  if (datatype === 'BOOL') return typeof v === 'boolean' || v === 0 || v === 1;
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  if (datatype.startsWith('FP')) return true;
  return Number.isInteger(v) && (!datatype.startsWith('UINT') || v >= 0);
}

// --- classify (shared with the ONNX provider) -----------------------------------------------

export interface ClassifyConfig {
  labels: string[];
  inputName?: string;
  outputName?: string;
  inputShape?: number[];
  softmax: boolean;
}

/** The `classify` settings, or undefined when `options.labels` is not set. Bad settings are config errors. */
export function classifyConfig(service: string, provider: string, opts: Record<string, unknown>): ClassifyConfig | undefined {
  if (opts.labels === undefined || opts.labels === null) return undefined;
  const bad = (detail: string): never => {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (${provider}): ${detail}` });
  };
  if (!Array.isArray(opts.labels) || opts.labels.length === 0 || !opts.labels.every((l) => typeof l === 'string' && l)) {
    bad('`options.labels` must be a non-empty list of label names');
  }
  const cfg: ClassifyConfig = { labels: opts.labels as string[], softmax: opts.softmax === true };
  if (opts.input_name !== undefined) cfg.inputName = typeof opts.input_name === 'string' && opts.input_name ? opts.input_name : bad('`options.input_name` must be a string');
  if (opts.output_name !== undefined) cfg.outputName = typeof opts.output_name === 'string' && opts.output_name ? opts.output_name : bad('`options.output_name` must be a string');
  if (opts.input_shape !== undefined) cfg.inputShape = checkShape(opts.input_shape) ?? bad('`options.input_shape` must be a list of non-negative integers');
  return cfg;
}

/** `classify` input: an array of numbers (or `{ features: [...] }` / `{ input: [...] }`). */
export function classifyFeatures(input: unknown, fail: (detail: string) => never): number[] {
  const v = isRecord(input) ? (input.features ?? input.input) : input;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    return fail(`\`classify\` needs an array of numbers (the model's features), got ${describe(input)}`);
  }
  return v as number[];
}

/** Arg-max over one score per label. */
export function classifyScores(
  data: readonly TensorValue[],
  cfg: ClassifyConfig,
  fail: (detail: string) => never,
): { label: string; confidence: number; scores: Record<string, number> } {
  if (data.length !== cfg.labels.length) {
    return fail(`the model gave ${data.length} scores but ${cfg.labels.length} labels are configured (${cfg.labels.join(', ')})`);
  }
  let values = data.map((v) => (typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : NaN));
  if (values.some((v) => !Number.isFinite(v))) return fail('the model gave scores that are not numbers');
  if (cfg.softmax) {
    const max = Math.max(...values);
    const e = values.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, x) => a + x, 0);
    values = e.map((x) => x / sum);
  }
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  const scores: Record<string, number> = {};
  cfg.labels.forEach((l, i) => (scores[l] = values[i]));
  return { label: cfg.labels[best], confidence: values[best], scores };
}

// --- small things ---------------------------------------------------------------------------

const ALL_OPERATIONS: readonly ModelOperation[] = ['chat', 'embed', 'classify', 'sentiment', 'entities', 'retrieve', 'ocr', 'anomaly', 'infer'];

/** `options.operation` checked against what the provider does; `infer` when unset. */
export function defaultOp(service: string, provider: string, value: unknown, operations: readonly ModelOperation[] = ALL_OPERATIONS): ModelOperation {
  if (value === undefined || value === null) return operations.includes('infer') ? 'infer' : operations[0];
  if (typeof value !== 'string' || !operations.includes(value as ModelOperation)) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (${provider}): \`options.operation\` is ${JSON.stringify(value)}; use one of ${operations.join(', ')}` });
  }
  return value as ModelOperation;
}

export function stringRecord(service: string, provider: string, key: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string' || typeof v === 'number')) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (${provider}): \`options.${key}\` must map names to strings` });
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

/**
 * A request Baton cannot even send (the step's input has the wrong form). Not retryable: the
 * same input fails the same way. The errors table has no input code for models, so this is
 * BATON_MODEL_UNSUPPORTED with the reason in place of the operation.
 */
export function badInput(service: string, provider: string, operation: ModelOperation, operations: readonly ModelOperation[], detail: string): never {
  throw new BatonError('BATON_MODEL_UNSUPPORTED', { service, provider, operation, operations: `${operations.join(', ')} (but not on this input: ${detail})`, input: detail });
}

/** Inference servers bill no tokens; like the local models, report the rough size of what went each way. */
export function tensorUsage(inputs: unknown, outputs: unknown): ModelResponse['usage'] {
  return { inputTokens: estimateTokens(JSON.stringify(inputs) ?? ''), outputTokens: estimateTokens(JSON.stringify(outputs) ?? ''), cachedInputTokens: 0 };
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

