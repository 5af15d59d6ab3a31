/**
 * An ONNX model run in-process with onnxruntime-node (config name `onnx`, CPU).
 *
 * Options:
 * - `path` (required): the `.onnx` file, relative to the config file's directory.
 * - `labels`: turns on `classify` (one FP32 input from an array of numbers, arg-max over the
 *   output), with `input_name` / `output_name` (default: the model's first input / output),
 *   `input_shape` (default `[1, n]`) and `softmax` (turn logits into probabilities).
 * - `operation`: the default operation (`infer`).
 *
 * Operations:
 * - `infer`: `{ inputs: { [name]: { shape, datatype?, data } } }` (or the OIP array form); the
 *   datatype defaults to the model's own type for that input, else FP32
 *   → `{ outputs: { [name]: { shape, datatype, data } } }`.
 * - `classify` (with `labels`): like the OIP provider's.
 *
 * The session is created on the first call (so a service whose model is missing does not stop
 * Baton from starting) and reused; `close()` releases it. onnxruntime itself is only loaded then.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { BatonError } from '../errors.js';
import { defaultOp, describe as describeValue, isRecord, throwIfAborted } from './shared.js';
import {
  classifyConfig,
  classifyFeatures,
  classifyScores,
  normalizeTensorInputs,
  product,
  tensorUsage,
  type NamedTensor,
  type Tensor,
  type TensorValue,
} from './tensors.js';
import type { CallOptions, ModelOperation, ModelRequest, ModelResponse, Provider, ProviderFactory, ProviderSetup } from './provider.js';

type Ort = typeof import('onnxruntime-node');

/** OIP datatype → onnxruntime tensor type. */
const TO_ORT: Record<string, OrtTensor.Type> = {
  FP32: 'float32',
  FP64: 'float64',
  FP16: 'float16',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  BOOL: 'bool',
  BYTES: 'string',
};
const FROM_ORT: Record<string, string> = Object.fromEntries(Object.entries(TO_ORT).map(([k, v]) => [v, k]));

export interface OnnxProvider extends Provider {
  /** The loaded session's inputs and outputs (loads the model if needed). */
  describeModel(): Promise<{ inputs: ModelIo[]; outputs: ModelIo[] }>;
}

export interface ModelIo {
  name: string;
  datatype?: string;
  /** Symbolic dimensions (a batch size, say) are strings. */
  shape?: Array<number | string>;
}

export const onnxProvider: ProviderFactory = (setup) => createOnnxProvider(setup);

export function createOnnxProvider(setup: ProviderSetup): OnnxProvider {
  const { service } = setup;
  const opts = setup.options ?? {};
  if (typeof opts.path !== 'string' || !opts.path) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (onnx) needs \`options.path\`: the .onnx model file, relative to the config file` });
  }
  const modelPath = resolve(setup.baseDir, opts.path);
  const classify = classifyConfig(service, 'onnx', opts);
  const operations: ModelOperation[] = classify ? ['infer', 'classify'] : ['infer'];
  const defaultOperation = defaultOp(service, 'onnx', opts.operation, operations);
  const local = (detail: string, cause?: unknown): never => {
    throw new BatonError('BATON_MODEL_LOCAL', { service, detail }, cause === undefined ? {} : { cause });
  };

  let loading: Promise<{ ort: Ort; session: InferenceSession }> | undefined;
  let closed = false;

  function load(): Promise<{ ort: Ort; session: InferenceSession }> {
    if (closed) local(`the provider for ${modelPath} was closed`);
    loading ??= (async () => {
      if (!existsSync(modelPath) || !statSync(modelPath).isFile()) {
        local(`model file not found: ${modelPath} (options.path "${opts.path as string}" resolved against ${setup.baseDir})`);
      }
      let ort: Ort;
      try {
        const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
        ort = mod.InferenceSession ? mod : (mod.default as Ort);
      } catch (err) {
        return local(`cannot load onnxruntime-node: ${errorText(err)}`, err);
      }
      try {
        const session = await ort.InferenceSession.create(modelPath);
        return { ort, session };
      } catch (err) {
        return local(`cannot load the ONNX model ${modelPath}: ${errorText(err)}`, err);
      }
    })();
    // A failed load is not cached: the file may be fixed without restarting.
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  }

  function io(meta: readonly InferenceSession.ValueMetadata[] | undefined, names: readonly string[]): ModelIo[] {
    return names.map((name) => {
      const m = meta?.find((x) => x.name === name);
      if (!m || !m.isTensor) return { name };
      return { name, datatype: FROM_ORT[m.type] ?? m.type, shape: [...m.shape] };
    });
  }

  function signature(ios: ModelIo[]): string {
    return ios.map((i) => `${i.name}${i.datatype ? ` ${i.datatype}` : ''}${i.shape ? ` [${i.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' ? d : '?')).join(', ')}]` : ''}`).join('; ');
  }

  /** Names, types and fixed dimensions against the model, with the expected inputs in every message. */
  function check(tensors: NamedTensor[], inputs: ModelIo[]): void {
    const expected = `the model takes: ${signature(inputs)}`;
    for (const t of tensors) {
      const want = inputs.find((i) => i.name === t.name);
      if (!want) local(`the model has no input "${t.name}"; ${expected}`);
      if (want!.datatype && want!.datatype !== t.datatype) local(`input "${t.name}" is ${t.datatype} but the model wants ${want!.datatype}; ${expected}`);
      const shape = want!.shape;
      if (shape && shape.length > 0) {
        const fits = shape.length === t.shape.length && shape.every((d, i) => typeof d !== 'number' || d < 0 || d === t.shape[i]);
        if (!fits) local(`input "${t.name}" has shape [${t.shape.join(', ')}] but the model wants [${shape.join(', ')}]; ${expected}`);
      }
    }
    const missing = inputs.filter((i) => !tensors.some((t) => t.name === i.name));
    if (missing.length) local(`missing input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m.name}"`).join(', ')}; ${expected}`);
  }

  function toOrt(ort: Ort, t: NamedTensor): OrtTensor {
    const type = TO_ORT[t.datatype];
    if (!type) local(`input "${t.name}" has datatype ${t.datatype}, which onnxruntime does not take`);
    const d = t.data;
    const make = TYPED_ARRAYS[type!];
    if (!make) return local(`input "${t.name}" has datatype ${t.datatype}, which Baton cannot pass to onnxruntime yet`);
    return new ort.Tensor(type as 'float32', make(d) as Float32Array, t.shape);
  }

  function fromOrt(value: unknown, name: string): Tensor {
    const v = value as OrtTensor | undefined;
    if (!v || typeof v !== 'object' || !('dims' in v) || !('type' in v)) local(`output "${name}" is not a tensor (sequences and maps are not supported)`);
    const datatype = FROM_ORT[v!.type] ?? v!.type.toUpperCase();
    const raw = v!.data as ArrayLike<number | bigint | string>;
    let data: TensorValue[];
    if (v!.type === 'bool') data = Array.from(raw as ArrayLike<number>, (x) => x !== 0);
    else if (v!.type === 'string') data = Array.from(raw as ArrayLike<string>);
    else if (v!.type === 'float16') data = Array.from(float16ToNumbers(raw as ArrayLike<number>));
    else data = Array.from(raw as ArrayLike<number | bigint>, (x) => Number(x));
    return { shape: [...v!.dims], datatype, data };
  }

  async function run(feeds: NamedTensor[], signal: AbortSignal): Promise<Record<string, Tensor>> {
    const { ort, session } = await abortable(load(), signal);
    check(feeds, io(session.inputMetadata, session.inputNames));
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const t of feeds) ortFeeds[t.name] = toOrt(ort, t);
    let result: InferenceSession.ReturnType;
    try {
      // onnxruntime cannot stop a run; on abort the caller gets the reason now and the result is dropped.
      result = await abortable(session.run(ortFeeds), signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      return local(`inference failed: ${errorText(err)}; the model takes: ${signature(io(session.inputMetadata, session.inputNames))}`, err);
    }
    const outputs: Record<string, Tensor> = {};
    for (const name of session.outputNames) if (name in result) outputs[name] = fromOrt(result[name], name);
    return outputs;
  }

  return {
    name: 'onnx',
    defaultOperation,

    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      throwIfAborted(options.signal);
      const operation = request.operation ?? defaultOperation;
      if (operation === 'infer') {
        const { session } = await abortable(load(), options.signal);
        const meta = io(session.inputMetadata, session.inputNames);
        if (!isRecord(request.input)) local(`\`infer\` needs { inputs: { [name]: { shape, datatype?, data } } }, got ${describeValue(request.input)}; the model takes: ${signature(meta)}`);
        const feeds = normalizeTensorInputs((request.input as Record<string, unknown>).inputs, {
          defaultDatatype: (name) => meta.find((m) => m.name === name)?.datatype ?? 'FP32',
          fail: (detail) => local(`${detail}; the model takes: ${signature(meta)}`),
        });
        const outputs = await run(feeds, options.signal);
        return { output: { outputs }, usage: tensorUsage(feeds.map((f) => f.data), Object.values(outputs).map((o) => o.data)) };
      }
      if (operation === 'classify' && classify) {
        const features = classifyFeatures(request.input, (detail) => local(detail));
        const { session } = await abortable(load(), options.signal);
        const inputName = classify.inputName ?? session.inputNames[0];
        const shape = classify.inputShape ?? [1, features.length];
        if (product(shape) !== features.length) local(`options.input_shape [${shape.join(', ')}] holds ${product(shape)} values but the input has ${features.length}`);
        const outputs = await run([{ name: inputName, shape, datatype: 'FP32', data: features }], options.signal);
        const outputName = classify.outputName ?? session.outputNames[0];
        const out = outputs[outputName];
        if (!out) local(`the model has no output "${outputName}"; it has ${session.outputNames.join(', ')}`);
        const result = classifyScores(out.data, classify, (detail) => local(detail));
        return { output: result, usage: tensorUsage(features, out.data) };
      }
      throw new BatonError('BATON_MODEL_UNSUPPORTED', { service, provider: 'onnx', operation, operations: operations.join(', ') });
    },

    async describeModel() {
      const { session } = await load();
      return { inputs: io(session.inputMetadata, session.inputNames), outputs: io(session.outputMetadata, session.outputNames) };
    },

    async close(): Promise<void> {
      closed = true;
      const pending = loading;
      loading = undefined;
      if (!pending) return;
      try {
        const { session } = await pending;
        await session.release();
      } catch {
        /* never loaded: nothing to release */
      }
    },
  };
}

/** Resolves or rejects with `p`, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
}

function float16ToNumbers(bits: ArrayLike<number>): number[] {
  return Array.from(bits, (h) => {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    if (e === 0) return s * 2 ** -14 * (f / 1024);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * 2 ** (e - 15) * (1 + f / 1024);
  });
}

/** How the data of each onnxruntime tensor type is built from JSON values (64-bit ints as BigInt, booleans as bytes). */
const TYPED_ARRAYS: Record<string, (d: unknown[]) => ArrayLike<unknown>> = {
  float32: (d) => Float32Array.from(d as number[]),
  float64: (d) => Float64Array.from(d as number[]),
  int8: (d) => Int8Array.from(d as number[]),
  int16: (d) => Int16Array.from(d as number[]),
  int32: (d) => Int32Array.from(d as number[]),
  int64: (d) => BigInt64Array.from(d as number[], (v) => BigInt(v)),
  uint8: (d) => Uint8Array.from(d as number[]),
  uint16: (d) => Uint16Array.from(d as number[]),
  uint32: (d) => Uint32Array.from(d as number[]),
  uint64: (d) => BigUint64Array.from(d as number[], (v) => BigInt(v)),
  bool: (d) => Uint8Array.from(d as Array<number | boolean>, (v) => (v ? 1 : 0)),
  string: (d) => d as string[],
};
