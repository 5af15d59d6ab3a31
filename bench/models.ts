/**
 * Model-call benchmarks, run by `npm run bench` after the engine workloads:
 *
 * M1 overhead: the latency Baton adds around one model call. A local OpenAI-compatible server
 *    (the fake vendor) answers instantly; the same call is timed (a) as a plain HTTP request,
 *    (b) through the provider alone (AI SDK, no Baton), (c) through the service runtime
 *    (limits, breaker, ledger record), and (d) as a whole durable run of a one-step workflow
 *    (admission, claim, start record, call record, commit, finish). Baton's added latency =
 *    p50(d) − p50(b); calls alternate between the sides so machine noise hits them alike.
 *
 * M2 cascade: a labelled set of support tickets (bench/data/tickets.json, none of them among
 *    the classifier's training examples) classified three ways: always the expensive service,
 *    only the cheap one, and a cascade (cheap first, escalate when its confidence guard
 *    fails). The cheap service is the real built-in classifier trained from
 *    examples/support/intents.yaml; the expensive one is simulated by the fake vendor as an LLM
 *    that is right 95% of the time (deterministically) at hosted-model prices.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Baton } from '../src/index.js';
import { openaiProvider } from '../src/providers/openai.js';
import { FakeVendor } from '../src/testing/fake-vendor.js';

export interface ModelBench {
  n: number;
  p50: { http: number; provider: number; runtime: number; run: number };
  p99: { http: number; provider: number; runtime: number; run: number };
  addedP50Ms: number;
  runtimeAddedP50Ms: number;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export async function modelOverhead(n: number): Promise<ModelBench> {
  const vendor = await new FakeVendor().start();
  vendor.model('instant', { reply: () => 'ok' });
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-models-'));
  const baton = await Baton.open({
    dir,
    services: { fast: { provider: 'openai', model: 'instant', endpoint: `${vendor.url}/v1`, price: { input_per_mtok: 1, output_per_mtok: 2 } } },
  });
  try {
    const v = await baton.register('{ "name": "one-call", "steps": [{ "id": "ask", "kind": "model", "service": "fast", "prompt": "hello" }] }');
    const provider = await openaiProvider({ service: 'fast', model: 'instant', endpoint: `${vendor.url}/v1`, options: {}, baseDir: '.' });
    const request = { operation: 'chat' as const, messages: [{ role: 'user' as const, content: 'hello' }], maxTokens: 1024 };
    const body = JSON.stringify({ model: 'instant', messages: request.messages, max_tokens: 1024 });
    const sides = {
      http: async () => {
        const res = await fetch(`${vendor.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.json();
      },
      provider: async () => {
        await provider.call(request, { signal: new AbortController().signal, idempotencyKey: 'bench' });
      },
      runtime: async () => {
        await baton.models!.invoke({
          services: ['fast'], strategy: 'fallback', messages: request.messages, repairAttempts: 0,
          run: { id: 'bench', workflow: 'bench', stepKey: 'ask', attempt: 1, idempotencyKey: 'bench' }, signal: new AbortController().signal,
        });
      },
      run: async () => {
        const r = await baton.run(v, {});
        if (r.status !== 'completed') throw new Error(`bench run ${r.status}: ${r.error?.message}`);
      },
    };
    const times: Record<keyof typeof sides, number[]> = { http: [], provider: [], runtime: [], run: [] };
    // Warm-up (JIT, sockets, SDK module graph), then interleaved measurement.
    for (let i = 0; i < 50; i++) for (const f of Object.values(sides)) await f();
    for (let i = 0; i < n; i++) {
      for (const [k, f] of Object.entries(sides) as Array<[keyof typeof sides, () => Promise<void>]>) {
        const t0 = performance.now();
        await f();
        times[k].push(performance.now() - t0);
      }
    }
    const p50 = { http: pct(times.http, 50), provider: pct(times.provider, 50), runtime: pct(times.runtime, 50), run: pct(times.run, 50) };
    const p99 = { http: pct(times.http, 99), provider: pct(times.provider, 99), runtime: pct(times.runtime, 99), run: pct(times.run, 99) };
    return { n, p50, p99, addedP50Ms: p50.run - p50.provider, runtimeAddedP50Ms: p50.runtime - p50.provider };
  } finally {
    await baton.close();
    await vendor.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CascadeBench {
  tickets: number;
  threshold: number;
  expensive: { accuracy: number; cost: number };
  cheap: { accuracy: number; cost: number };
  cascade: { accuracy: number; cost: number; escalated: number };
}

export async function cascade(threshold = 0.8): Promise<CascadeBench> {
  const tickets = JSON.parse(readFileSync(new URL('./data/tickets.json', import.meta.url), 'utf8')) as Array<[string, string]>;
  const truth = new Map(tickets.map(([label, text]) => [text, label]));
  const labels = [...new Set(tickets.map(([l]) => l))];
  const vendor = await new FakeVendor().start();
  // The simulated LLM: right except on every 20th ticket (by a stable hash), where it picks another label.
  vendor.model('big-llm', {
    reply: (req) => {
      const text = [...truth.keys()].find((t) => req.prompt.includes(t)) ?? '';
      const right = truth.get(text) ?? labels[0];
      const wrong = hash(text) % 20 === 0;
      return { label: wrong ? labels[(labels.indexOf(right) + 1) % labels.length] : right, confidence: 0.95 };
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-cascade-'));
  const examples = parse(readFileSync(new URL('../examples/support/intents.yaml', import.meta.url), 'utf8')) as Record<string, string[]>;
  const baton = await Baton.open({
    dir,
    services: {
      'llm-large': { provider: 'openai', model: 'big-llm', endpoint: `${vendor.url}/v1`, price: { input_per_mtok: 2.5, output_per_mtok: 10 } },
      'local-intent': { provider: 'local-classifier', options: { examples }, price: { per_call: 0.000001 } },
    },
  });
  const schema = { type: 'object', required: ['label', 'confidence'], properties: { label: { enum: labels }, confidence: { type: 'number' } } };
  const step = (extra: Record<string, unknown>) => ({
    name: `classify-${Object.keys(extra).join('-') || 'x'}`,
    steps: [{ id: 'label', kind: 'model', input: 'input.text', system: `Classify the support ticket into one of: ${labels.join(', ')}. Answer JSON.`, prompt: 'Ticket: {{ input.text }}', output_schema: schema, ...extra }],
  });
  try {
    const modes = {
      expensive: await baton.register(step({ service: 'llm-large' })),
      cheap: await baton.register(step({ service: 'local-intent', on_error: 'continue' })),
      cascade: await baton.register(step({ service: 'llm-large', fallback: ['local-intent'], strategy: 'cascade', guard: `output.confidence >= ${threshold}` })),
    };
    const out: Record<string, { accuracy: number; cost: number; escalated: number }> = {};
    for (const [mode, v] of Object.entries(modes)) {
      let right = 0;
      let cost = 0;
      let escalated = 0;
      for (const [label, text] of tickets) {
        const r = await baton.run(v, { text });
        if ((r.output as { label?: string } | null)?.label === label) right++;
        cost += r.cost;
        const calls = await baton.store.getModelCalls(r.id);
        if (mode === 'cascade' && calls.some((c) => c.service === 'llm-large')) escalated++;
      }
      out[mode] = { accuracy: right / tickets.length, cost: Math.round(cost * 1e9) / 1e9, escalated };
    }
    return {
      tickets: tickets.length, threshold,
      expensive: { accuracy: out.expensive.accuracy, cost: out.expensive.cost },
      cheap: { accuracy: out.cheap.accuracy, cost: out.cheap.cost },
      cascade: out.cascade,
    };
  } finally {
    await baton.close();
    await vendor.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}
