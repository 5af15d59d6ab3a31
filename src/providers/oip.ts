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
 * The tensor shape (`{ shape, datatype, data }`) and the `classify` convenience live in
 * `tensors.ts`, shared with the ONNX provider, so both speak the same.
 */
import { BatonError } from '../errors.js';
import {
  parseJsonBody,
  type CallOptions,
  type ModelOperation,
  type ModelRequest,
  type ModelResponse,
  type Provider,
  type ProviderFactory,
  type ProviderSetup,
} from './provider.js';
import { badInput, defaultOp, describe, fetchText, isRecord, stringRecord, throwIfAborted } from './shared.js';
import { OIP_DATATYPES, checkShape, classifyConfig, classifyFeatures, classifyScores, flatten, normalizeTensorInputs, product, tensorUsage, valueFits, type NamedTensor, type Tensor } from './tensors.js';

export const OIP_PROTOCOL = 'Open Inference Protocol (v2)';


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
