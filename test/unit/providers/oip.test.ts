/**
 * The Open Inference Protocol provider against a small local server that speaks OIP v2 the way
 * Triton does: it checks every request tensor against the model's config, computes real
 * outputs, and can be told to fail in each way a real server fails.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createOipProvider, oipProvider, type OipProvider } from '../../../src/providers/oip.js';
import type { CallOptions, ModelRequest, ProviderSetup } from '../../../src/providers/provider.js';
import { referenceLogistic } from '../../fixtures/onnx/make-model.js';
import { failure } from '../../helpers/providers.js';

// --- the server ---------------------------------------------------------------------------------

type Mode = 'ok' | 'error400' | '503' | '429' | 'html' | 'bad-length' | 'no-outputs' | 'bad-datatype' | 'hang';

interface ModelConfig {
  versions: string[];
  inputs: Record<string, { datatype: string; shape: number[] }>;
  outputs: string[];
  run(inputs: Record<string, number[]>): Record<string, { datatype: string; shape: number[]; data: number[] }>;
}

const MODELS: Record<string, ModelConfig> = {
  add_sub: {
    versions: ['1', '2'],
    inputs: { INPUT0: { datatype: 'INT32', shape: [1, 4] }, INPUT1: { datatype: 'INT32', shape: [1, 4] } },
    outputs: ['OUTPUT0', 'OUTPUT1'],
    run: (x) => ({
      OUTPUT0: { datatype: 'INT32', shape: [1, 4], data: x.INPUT0.map((v, i) => v + x.INPUT1[i]) },
      OUTPUT1: { datatype: 'INT32', shape: [1, 4], data: x.INPUT0.map((v, i) => v - x.INPUT1[i]) },
    }),
  },
  scorer: {
    versions: ['3'],
    inputs: { features: { datatype: 'FP32', shape: [1, 3] } },
    outputs: ['probs', 'count'],
    run: (x) => ({
      probs: { datatype: 'FP32', shape: [1, 3], data: referenceLogistic(x.features) },
      count: { datatype: 'INT64', shape: [1], data: [3] },
    }),
  },
};

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: any;
}

const state = { mode: 'ok' as Mode, scorerReady: true, requests: [] as Recorded[] };
let server: Server;
let endpoint: string;

function send(res: import('node:http').ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/html' : 'application/json', ...headers });
  res.end(text);
}

/** What Triton checks before it runs a model; the first problem is the 400 error. */
function validate(cfg: ModelConfig, body: any): string | undefined {
  if (typeof body !== 'object' || body === null || !Array.isArray(body.inputs)) return 'Unable to parse \'inputs\': attempt to access non-existent object member \'inputs\'';
  for (const t of body.inputs) {
    const want = cfg.inputs[t?.name];
    if (!want) return `unexpected inference input '${t?.name}' for model`;
    if (t.datatype !== want.datatype) return `unexpected datatype ${t.datatype} for inference input '${t.name}', expecting ${want.datatype}`;
    if (!Array.isArray(t.shape) || t.shape.join(',') !== want.shape.join(',')) return `unexpected shape for input '${t.name}' for model. Expected [${want.shape.join(',')}], got [${t.shape}]`;
    if (!Array.isArray(t.data) || t.data.flat(Infinity).length !== want.shape.reduce((a, b) => a * b, 1)) return `unexpected number of elements for input '${t.name}'`;
  }
  for (const name of Object.keys(cfg.inputs)) {
    if (!body.inputs.some((t: any) => t.name === name)) return `expected ${Object.keys(cfg.inputs).length} inputs but got ${body.inputs.length} inputs for model`;
  }
  if (body.outputs !== undefined) {
    for (const o of body.outputs) if (!cfg.outputs.includes(o?.name)) return `unexpected inference output '${o?.name}' for model`;
  }
  return undefined;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        return send(res, 400, { error: 'failed to parse the request JSON buffer' });
      }
      state.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const m = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/(infer|ready)$/.exec(req.url ?? '');
      if (!m) return send(res, 404, { error: 'Not Found' });
      const [, name, version, action] = m;
      const cfg = MODELS[decodeURIComponent(name)];
      if (!cfg || (version && !cfg.versions.includes(version))) {
        return send(res, 400, { error: `Request for unknown model: '${name}'${version ? ` version ${version}` : ''} is not found` });
      }
      if (action === 'ready') {
        if (req.method !== 'GET') return send(res, 405, { error: 'method not allowed' });
        return res.writeHead(name === 'scorer' && !state.scorerReady ? 400 : 200).end();
      }
      if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });
      switch (state.mode) {
        case 'hang':
          return; // never answers
        case '503':
          return send(res, 503, { error: 'Server not ready: model is loading' });
        case '429':
          return send(res, 429, { error: 'too many requests' }, { 'retry-after': '7' });
        case 'html':
          return send(res, 200, '<!doctype html><html><head><title>Gateway Login</title></head><body>sign in</body></html>');
        case 'error400':
          return send(res, 400, { error: 'inference request rejected by the test' });
        default:
      }
      const problem = validate(cfg, body);
      if (problem) return send(res, 400, { error: problem });
      const inputs: Record<string, number[]> = {};
      for (const t of body.inputs) inputs[t.name] = t.data.flat(Infinity);
      const computed = cfg.run(inputs);
      const wanted: string[] = body.outputs ? body.outputs.map((o: any) => o.name) : cfg.outputs;
      let outputs: any[] = wanted.map((n) => ({ name: n, ...computed[n] }));
      if (state.mode === 'bad-length') outputs = outputs.map((o) => ({ ...o, data: o.data.slice(1) }));
      if (state.mode === 'bad-datatype') outputs = outputs.map((o) => ({ ...o, datatype: 'FLOAT' }));
      const answer: any = { model_name: name, model_version: version ?? cfg.versions[cfg.versions.length - 1], outputs };
      if (body.id !== undefined) answer.id = body.id;
      if (state.mode === 'no-outputs') delete answer.outputs;
      send(res, 200, answer);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

afterEach(() => {
  state.mode = 'ok';
  state.scorerReady = true;
  state.requests = [];
});

// --- helpers --------------------------------------------------------------------------------------

function setup(over: Partial<ProviderSetup> = {}): ProviderSetup {
  return { service: 'triton', model: 'add_sub', endpoint, credential: 's3cret', options: {}, baseDir: '/tmp', ...over };
}

function opts(over: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'run1:score:1', ...over };
}

const addSubInput = {
  inputs: {
    INPUT0: { shape: [1, 4], datatype: 'INT32', data: [1, 2, 3, 4] },
    INPUT1: { shape: [1, 4], datatype: 'INT32', data: [10, 20, 30, 40] },
  },
};

const CLASSIFY = { labels: ['cat', 'dog', 'bird'], input_name: 'features', output_name: 'probs' };

// --- tests ----------------------------------------------------------------------------------------

describe('oip provider: infer', () => {
  it('maps the named-tensor input to the protocol array form and the answer back to named outputs', async () => {
    const p = await oipProvider(setup());
    expect(p.name).toBe('oip');
    expect(p.defaultOperation).toBe('infer');
    const res = await p.call({ operation: 'infer', input: addSubInput }, opts());
    expect(res.output).toEqual({
      outputs: {
        OUTPUT0: { shape: [1, 4], datatype: 'INT32', data: [11, 22, 33, 44] },
        OUTPUT1: { shape: [1, 4], datatype: 'INT32', data: [-9, -18, -27, -36] },
      },
      model_name: 'add_sub',
      model_version: '2',
    });
    expect(res.model).toBe('add_sub');
    expect(res.usage.inputTokens).toBeGreaterThan(0);
    expect(res.usage.outputTokens).toBeGreaterThan(0);
    expect(res.usage.cachedInputTokens).toBe(0);

    expect(state.requests).toHaveLength(1);
    const req = state.requests[0];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/v2/models/add_sub/infer');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe('Bearer s3cret');
    expect(req.headers['idempotency-key']).toBe('run1:score:1');
    expect(req.body).toEqual({
      id: 'run1:score:1',
      inputs: [
        { name: 'INPUT0', shape: [1, 4], datatype: 'INT32', data: [1, 2, 3, 4] },
        { name: 'INPUT1', shape: [1, 4], datatype: 'INT32', data: [10, 20, 30, 40] },
      ],
    });
  });

  it('accepts the protocol array form with nested data, requested outputs, parameters and a model version', async () => {
    const p = await oipProvider(setup({ credential: undefined, options: { model_version: 1 } }));
    const res = await p.call(
      {
        operation: 'infer',
        input: {
          id: 'my-id',
          parameters: { priority: 1 },
          inputs: [
            { name: 'INPUT0', shape: [1, 4], datatype: 'INT32', data: [[5, 6, 7, 8]] },
            { name: 'INPUT1', shape: [1, 4], datatype: 'INT32', data: [1, 1, 1, 1] },
          ],
          outputs: ['OUTPUT1'],
        },
      },
      opts(),
    );
    expect(res.output).toEqual({ outputs: { OUTPUT1: { shape: [1, 4], datatype: 'INT32', data: [4, 5, 6, 7] } }, model_name: 'add_sub', model_version: '1' });
    const req = state.requests[0];
    expect(req.url).toBe('/v2/models/add_sub/versions/1/infer');
    expect(req.headers.authorization).toBeUndefined();
    expect(req.body.id).toBe('my-id');
    expect(req.body.parameters).toEqual({ priority: 1 });
    expect(req.body.outputs).toEqual([{ name: 'OUTPUT1' }]);
    expect(req.body.inputs[0].data).toEqual([5, 6, 7, 8]);
  });

  it('uses the default operation when the request names none', async () => {
    const p = await oipProvider(setup());
    const res = await p.call({ input: addSubInput } as unknown as ModelRequest, opts());
    expect((res.output as any).outputs.OUTPUT0.data).toEqual([11, 22, 33, 44]);
  });
});

describe('oip provider: classify', () => {
  it('sends one FP32 tensor and takes the arg-max of the output as the label', async () => {
    const p = await oipProvider(setup({ model: 'scorer', options: CLASSIFY }));
    const x = [0.2, -1.0, 0.7];
    const expected = referenceLogistic(x);
    const res = await p.call({ operation: 'classify', input: x }, opts());
    const out = res.output as { label: string; confidence: number; scores: Record<string, number> };
    const best = expected.indexOf(Math.max(...expected));
    expect(out.label).toBe(CLASSIFY.labels[best]);
    expect(out.confidence).toBeCloseTo(expected[best], 10);
    expect(out.scores.cat).toBeCloseTo(expected[0], 10);
    expect(out.scores.dog).toBeCloseTo(expected[1], 10);
    expect(out.scores.bird).toBeCloseTo(expected[2], 10);
    expect(res.model).toBe('scorer');
    expect(state.requests[0].body.inputs).toEqual([{ name: 'features', shape: [1, 3], datatype: 'FP32', data: x }]);
    expect(state.requests[0].body.outputs).toEqual([{ name: 'probs' }]);
  });

  it('picks a different label for a different input, and softmax normalises the scores', async () => {
    const p = await oipProvider(setup({ model: 'scorer', options: { ...CLASSIFY, softmax: true } }));
    const a = (await p.call({ operation: 'classify', input: [3, 0, 0] }, opts())).output as any;
    const b = (await p.call({ operation: 'classify', input: [0, 3, 0] }, opts())).output as any;
    expect(a.label).not.toBe(b.label);
    for (const r of [a, b]) {
      const sum = Object.values(r.scores as Record<string, number>).reduce((s, v) => s + v, 0);
      expect(sum).toBeCloseTo(1, 10);
    }
  });

  it('is only offered when labels are configured', async () => {
    const p = await oipProvider(setup());
    const err = await failure(p.call({ operation: 'classify', input: [1, 2, 3] }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.details.operations).toBe('infer');
    expect(state.requests).toHaveLength(0);
  });

  it('reports a label count that does not match the model output', async () => {
    const p = await oipProvider(setup({ model: 'scorer', options: { ...CLASSIFY, labels: ['a', 'b'] } }));
    const err = await failure(p.call({ operation: 'classify', input: [1, 2, 3] }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('3 scores but 2 labels');
  });

  it('rejects input that is not a list of numbers without calling the server', async () => {
    const p = await oipProvider(setup({ model: 'scorer', options: CLASSIFY }));
    const err = await failure(p.call({ operation: 'classify', input: 'a cat' }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('array of numbers');
    expect(state.requests).toHaveLength(0);
  });
});

describe('oip provider: readiness', () => {
  it('is ready when the server says 200, not ready otherwise', async () => {
    const p = createOipProvider(setup({ model: 'scorer' }));
    expect(await p.ready()).toBe(true);
    expect(state.requests[0]).toMatchObject({ method: 'GET', url: '/v2/models/scorer/ready' });
    expect(state.requests[0].headers.authorization).toBe('Bearer s3cret');
    state.scorerReady = false;
    expect(await p.ready()).toBe(false);
    expect(await createOipProvider(setup({ model: 'nope' })).ready()).toBe(false);
    expect(await createOipProvider(setup({ options: { model_version: '2' } })).ready()).toBe(true);
    expect(state.requests.at(-1)?.url).toBe('/v2/models/add_sub/versions/2/ready');
  });

  it('is not ready when nothing listens', async () => {
    const p = (await oipProvider(setup({ endpoint: await deadEndpoint() }))) as OipProvider;
    expect(await p.ready()).toBe(false);
  });
});

describe('oip provider: errors', () => {
  it('a 400 with an {"error"} body is a non-retryable HTTP error carrying the server message', async () => {
    const p = await oipProvider(setup());
    const bad = { inputs: { ...addSubInput.inputs, INPUT1: { shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] } } };
    const err = await failure(p.call({ operation: 'infer', input: bad }, opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.details.httpStatus).toBe(400);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("unexpected datatype FP32 for inference input 'INPUT1', expecting INT32");

    state.mode = 'error400';
    const err2 = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err2.message).toContain('inference request rejected by the test');
  });

  it('an unknown model version is the server 400', async () => {
    const p = await oipProvider(setup({ options: { model_version: '9' } }));
    const err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.message).toContain('version 9 is not found');
  });

  it('503 is a retryable HTTP error, 429 is rate limiting with the Retry-After kept', async () => {
    const p = await oipProvider(setup());
    state.mode = '503';
    const err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_HTTP');
    expect(err.details.httpStatus).toBe(503);
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('model is loading');

    state.mode = '429';
    const err2 = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err2.code).toBe('BATON_MODEL_RATE_LIMITED');
    expect(err2.details.retryAfterMs).toBe(7000);
  });

  it('an HTML page is a bad response that names the protocol', async () => {
    const p = await oipProvider(setup());
    state.mode = 'html';
    const err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.details.protocol).toBe('Open Inference Protocol (v2)');
    expect(err.message).toContain('Open Inference Protocol (v2)');
    expect(err.message).toContain('Gateway Login');
  });

  it('outputs whose data does not fill the shape, an unknown datatype, or no outputs are bad responses', async () => {
    const p = await oipProvider(setup());
    state.mode = 'bad-length';
    let err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toMatch(/output "OUTPUT0" has 3 values but shape \[1, 4\] needs 4/);

    state.mode = 'bad-datatype';
    err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('"FLOAT"');

    state.mode = 'no-outputs';
    err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_BAD_RESPONSE');
    expect(err.message).toContain('no `outputs` array');
  });

  it('connection refused is a retryable network error naming the endpoint', async () => {
    const dead = await deadEndpoint();
    const p = await oipProvider(setup({ endpoint: dead }));
    const err = await failure(p.call({ operation: 'infer', input: addSubInput }, opts()));
    expect(err.code).toBe('BATON_MODEL_NETWORK');
    expect(err.retryable).toBe(true);
    expect(err.details.endpoint).toBe(dead);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('an abort rejects promptly with the signal reason', async () => {
    const p = await oipProvider(setup());
    state.mode = 'hang';
    const ac = new AbortController();
    const reason = new Error('hedge lost');
    const started = Date.now();
    setTimeout(() => ac.abort(reason), 50);
    await expect(p.call({ operation: 'infer', input: addSubInput }, opts({ signal: ac.signal }))).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    // already aborted: no request at all
    state.requests = [];
    await expect(p.call({ operation: 'infer', input: addSubInput }, opts({ signal: ac.signal }))).rejects.toBe(reason);
    expect(state.requests).toHaveLength(0);
  });

  it('operations it lacks and malformed infer input are refused without a request', async () => {
    const p = await oipProvider(setup());
    let err = await failure(p.call({ operation: 'chat', messages: [{ role: 'user', content: 'hi' }] }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.details).toMatchObject({ service: 'triton', provider: 'oip', operation: 'chat' });
    err = await failure(p.call({ operation: 'infer', input: { inputs: { INPUT0: { shape: [2, 4], data: [1, 2] } } } }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.message).toContain('has 2 values but shape [2, 4] needs 8');
    err = await failure(p.call({ operation: 'infer', input: [1, 2, 3] }, opts()));
    expect(err.message).toContain('needs { inputs');
    expect(state.requests).toHaveLength(0);
  });

  it('a missing endpoint or bad labels are configuration errors', async () => {
    expect(() => createOipProvider(setup({ endpoint: undefined }))).toThrow(/needs an `endpoint`/);
    expect(() => createOipProvider(setup({ options: { labels: 'cat' } }))).toThrow(/labels/);
    expect(() => createOipProvider(setup({ options: { operation: 'chat' } }))).toThrow(/options.operation/);
  });
});

/** A port that was just free: connecting to it is refused. */
async function deadEndpoint(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}
