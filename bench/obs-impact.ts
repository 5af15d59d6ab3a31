/**
 * What observability costs on the hot path: 1,000 three-step workflows (50 in flight) on the
 * embedded store with metrics off, metrics on (the default), and tracing on with a span
 * processor that drops everything (the SDK's work without an exporter's). Median of 3,
 * interleaved. Run: `node --import tsx bench/obs-impact.ts` (noisy on a shared machine).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton } from '../src/index.js';
import { InMemorySpanExporter, SimpleSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';

const inc = (i: unknown) => i;
const doc = { name: 'tp', steps: [
  { id: 'a', kind: 'function', function: 'inc', input: 'input' },
  { id: 'b', kind: 'function', function: 'inc', input: 'steps.a.output' },
  { id: 'c', kind: 'function', function: 'inc', input: 'steps.b.output' },
] };
async function measure(label: string, opts: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'obs-bench-'));
  const b = await Baton.open({ dir, functions: { inc }, concurrency: 64, ...opts });
  const v = await b.register(doc);
  for (let i = 0; i < 50; i++) await b.run(v, { i });
  const N = 1000;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => { while (next < N) { next++; await b.run(v, { i: next }); } }));
  const ms = performance.now() - t0;
  await b.close();
  rmSync(dir, { recursive: true, force: true });
  return { label, stepsPerS: Math.round((N * 3) / (ms / 1000)) };
}
async function main() {
const rows = [];
for (let rep = 0; rep < 3; rep++) {
  rows.push(await measure('metrics off, tracing off', { metrics: false, telemetry: false }));
  rows.push(await measure('metrics on (default), tracing off', { telemetry: false }));
  rows.push(await measure('metrics on, tracing on (noop processor)', { telemetry: { spanProcessor: new NoopSpanProcessor() } }));
}
const by = new Map<string, number[]>();
for (const r of rows) by.set(r.label, [...(by.get(r.label) ?? []), r.stepsPerS]);
for (const [k, v] of by) console.log(k, 'median steps/s', v.sort((a, b) => a - b)[1], v);
}
main().catch((e) => { console.error(e); process.exit(1); });
