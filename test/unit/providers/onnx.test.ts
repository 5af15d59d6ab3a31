/**
 * The ONNX provider running real inference (onnxruntime-node, CPU) on logistic-regression
 * models the test builds itself with onnx-proto; expected values are computed by hand from the
 * same weights.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOnnxProvider, onnxProvider } from '../../../src/providers/onnx.js';
import type { CallOptions, Provider, ProviderSetup } from '../../../src/providers/provider.js';
import { DEFAULT_MODEL, referenceLogistic, writeLogisticModel } from '../../fixtures/onnx/make-model.js';
import { failure } from '../../helpers/providers.js';

let dir: string;
const open: Provider[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-onnx-'));
  writeLogisticModel(join(dir, 'models', 'logistic.onnx'));
  writeLogisticModel(join(dir, 'models', 'softmax.onnx'), { activation: 'softmax', inputName: 'features', outputName: 'probs' });
});

afterAll(async () => {
  for (const p of open) await p.close?.();
  rmSync(dir, { recursive: true, force: true });
});

async function provider(options: Record<string, unknown>, over: Partial<ProviderSetup> = {}): Promise<Provider> {
  const p = await onnxProvider({ service: 'fraud', model: 'logistic', options, baseDir: dir, ...over });
  open.push(p);
  return p;
}

function opts(over: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'r:s:1', ...over };
}

/** sigmoid(x·W + b) by hand for the default model: W = [[.5,-1,.25],[-.75,.5,1.5],[2,.125,-.5]], b = [.1,-.2,.3]. */
function byHand(x: [number, number, number]): number[] {
  const s = (z: number) => 1 / (1 + Math.exp(-z));
  return [
    s(0.5 * x[0] - 0.75 * x[1] + 2.0 * x[2] + 0.1),
    s(-1.0 * x[0] + 0.5 * x[1] + 0.125 * x[2] - 0.2),
    s(0.25 * x[0] + 1.5 * x[1] - 0.5 * x[2] + 0.3),
  ];
}

describe('onnx provider: infer', () => {
  it('runs the model and returns sigmoid(x·W + b) for every row of a batch', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    expect(p.name).toBe('onnx');
    expect(p.defaultOperation).toBe('infer');
    const rows: Array<[number, number, number]> = [
      [1, 2, 3],
      [0, 0, 0],
      [-1.5, 0.25, 0.8],
    ];
    const res = await p.call({ operation: 'infer', input: { inputs: { x: { shape: [3, 3], datatype: 'FP32', data: rows.flat() } } } }, opts());
    const out = (res.output as { outputs: Record<string, { shape: number[]; datatype: string; data: number[] }> }).outputs;
    expect(Object.keys(out)).toEqual(['y']);
    expect(out.y.shape).toEqual([3, 3]);
    expect(out.y.datatype).toBe('FP32');
    const expected = rows.flatMap(byHand);
    expect(out.y.data).toHaveLength(9);
    out.y.data.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-5));
    // the by-hand numbers are the reference implementation's numbers
    expect(byHand([1, 2, 3]).map((v, i) => Math.abs(v - referenceLogistic([1, 2, 3])[i]) < 1e-12)).toEqual([true, true, true]);
    expect(res.usage.inputTokens).toBeGreaterThan(0);
  });

  it('defaults the datatype, accepts the array form and nested data, and reuses the session', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    const a = await p.call({ operation: 'infer', input: { inputs: [{ name: 'x', shape: [1, 3], data: [[0.5, -0.5, 1]] }] } }, opts());
    const b = await p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [0.5, -0.5, 1] } } } }, opts());
    expect(a.output).toEqual(b.output);
    const y = (a.output as any).outputs.y.data as number[];
    byHand([0.5, -0.5, 1]).forEach((v, i) => expect(Math.abs(y[i] - v)).toBeLessThan(1e-5));
  });

  it('runs concurrent calls on the one session', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    const xs = Array.from({ length: 8 }, (_, i) => [i, -i / 2, i / 4] as [number, number, number]);
    const all = await Promise.all(xs.map((x) => p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: x } } } }, opts())));
    all.forEach((r, i) => byHand(xs[i]).forEach((v, j) => expect(Math.abs((r.output as any).outputs.y.data[j] - v)).toBeLessThan(1e-5)));
  });
});

describe('onnx provider: classify', () => {
  it('takes the arg-max of the softmax output as the label', async () => {
    const labels = ['low', 'medium', 'high'];
    const p = await provider({ path: 'models/softmax.onnx', labels, operation: 'classify' });
    expect(p.defaultOperation).toBe('classify');
    for (const x of [
      [3, 0, 0],
      [0, 0, 3],
      [-2, 0, 1],
    ]) {
      const expected = referenceLogistic(x, { activation: 'softmax' });
      const best = expected.indexOf(Math.max(...expected));
      const res = await p.call({ operation: 'classify', input: x }, opts());
      const out = res.output as { label: string; confidence: number; scores: Record<string, number> };
      expect(out.label).toBe(labels[best]);
      expect(Math.abs(out.confidence - expected[best])).toBeLessThan(1e-5);
      labels.forEach((l, i) => expect(Math.abs(out.scores[l] - expected[i])).toBeLessThan(1e-5));
      expect(Object.values(out.scores).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    }
  });

  it('names the configured input and output, and checks the label count', async () => {
    const p = await provider({ path: 'models/logistic.onnx', labels: ['a', 'b', 'c'], input_name: 'x', output_name: 'y' });
    const out = (await p.call({ operation: 'classify', input: { features: [1, 2, 3] } }, opts())).output as any;
    const expected = byHand([1, 2, 3]);
    expect(out.label).toBe(['a', 'b', 'c'][expected.indexOf(Math.max(...expected))]);

    const wrong = await provider({ path: 'models/logistic.onnx', labels: ['a', 'b'] });
    const err = await failure(wrong.call({ operation: 'classify', input: [1, 2, 3] }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('3 scores but 2 labels');
  });

  it('is not offered without labels', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    const err = await failure(p.call({ operation: 'classify', input: [1, 2, 3] }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.details).toMatchObject({ provider: 'onnx', operation: 'classify', operations: 'infer' });
  });
});

describe('onnx provider: errors', () => {
  it('a wrong input name names the inputs the model expects', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    const err = await failure(p.call({ operation: 'infer', input: { inputs: { features: { shape: [1, 3], data: [1, 2, 3] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('no input "features"');
    expect(err.message).toContain('the model takes: x FP32 [N, 3]');
  });

  it('a wrong shape or datatype is refused with the expected shape', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    let err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 2], data: [1, 2] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('shape [1, 2] but the model wants [N, 3]');

    err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [3], data: [1, 2, 3] } } } }, opts()));
    expect(err.message).toContain('shape [3] but the model wants [N, 3]');

    err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], datatype: 'INT64', data: [1, 2, 3] } } } }, opts()));
    expect(err.message).toContain('"x" is INT64 but the model wants FP32');

    err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [2, 3], data: [1, 2, 3] } } } }, opts()));
    expect(err.message).toContain('has 3 values but shape [2, 3] needs 6');

    err = await failure(p.call({ operation: 'infer', input: [1, 2, 3] }, opts()));
    expect(err.message).toContain('needs { inputs');
    expect(err.message).toContain('x FP32 [N, 3]');

    const cls = await provider({ path: 'models/logistic.onnx', labels: ['a', 'b', 'c'] });
    err = await failure(cls.call({ operation: 'classify', input: [1, 2] }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('[1, 2] but the model wants [N, 3]');
  });

  it('a missing model file names the resolved path, and a fixed file loads on the next call', async () => {
    const p = await provider({ path: 'models/later.onnx' }, { baseDir: join(dir) });
    const err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain(join(dir, 'models', 'later.onnx'));
    expect(err.message).toContain('not found');

    writeLogisticModel(join(dir, 'models', 'later.onnx'));
    const res = await p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts());
    expect((res.output as any).outputs.y.data).toHaveLength(3);
  });

  it('a file that is not an ONNX model is a local error naming the path', async () => {
    writeFileSync(join(dir, 'garbage.onnx'), 'this is not protobuf');
    const p = await provider({ path: 'garbage.onnx' });
    const err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain(join(dir, 'garbage.onnx'));
  });

  it('an aborted call rejects with the signal reason', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    const ac = new AbortController();
    const reason = new Error('cancelled');
    ac.abort(reason);
    await expect(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts({ signal: ac.signal }))).rejects.toBe(reason);
  });

  it('after close() the session is released and calls fail', async () => {
    const p = await provider({ path: 'models/logistic.onnx' });
    await p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts());
    await p.close?.();
    const err = await failure(p.call({ operation: 'infer', input: { inputs: { x: { shape: [1, 3], data: [1, 2, 3] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('closed');
  });

  it('settings are checked when the provider is made', () => {
    const base = { service: 'fraud', model: 'm', baseDir: dir };
    expect(() => createOnnxProvider({ ...base, options: {} })).toThrow(/options.path/);
    expect(() => createOnnxProvider({ ...base, options: { path: 'a.onnx', labels: [] } })).toThrow(/labels/);
    expect(DEFAULT_MODEL.weights).toHaveLength(3);
  });
});
