/**
 * Tensors as Baton passes them between steps and inference backends (the Open Inference
 * Protocol's JSON form, row-major flat data), and the `classify` convenience built on them;
 * shared by the OIP and ONNX providers.
 */
import { estimateTokens, type ModelResponse } from './provider.js';
import { BatonError } from '../errors.js';
import { describe, isRecord } from './shared.js';

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

// --- tensors ---------------------------------------------------------------------------------------

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

export function valueFits(datatype: string, v: unknown): boolean {
  if (datatype === 'BYTES') return typeof v === 'string';
  if (datatype === 'BOOL') return typeof v === 'boolean' || v === 0 || v === 1;
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  if (datatype.startsWith('FP')) return true;
  return Number.isInteger(v) && (!datatype.startsWith('UINT') || v >= 0);
}

// --- classify --------------------------------------------------------------------------------

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

/** Inference servers bill no tokens; like the local models, report the rough size of what went each way. */
export function tensorUsage(inputs: unknown, outputs: unknown): ModelResponse['usage'] {
  return { inputTokens: estimateTokens(JSON.stringify(inputs) ?? ''), outputTokens: estimateTokens(JSON.stringify(outputs) ?? ''), cachedInputTokens: 0 };
}
