/**
 * `npm run bench`: Baton beside the floor on the same machine in one run, median of
 * BENCH_REPS repetitions (default 3), printed as ratios and written to bench/results/latest.json.
 * BENCH_QUICK=1 shrinks the counts for a smoke run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  batonChain, batonFanout, batonThroughput, floorChain, floorFanout, floorThroughput, plainChain, type Sizes,
} from './workloads.js';

const quick = process.env.BENCH_QUICK === '1';
const reps = Number(process.env.BENCH_REPS ?? (quick ? 1 : 3));
const sizes: Sizes = quick
  ? { chainRuns: 30, chainWarmup: 5, throughputRuns: 200, inFlight: 50, fanoutRuns: 5 }
  : { chainRuns: 200, chainWarmup: 20, throughputRuns: 1000, inFlight: 50, fanoutRuns: 15 };

/** Peers measured on this kind of machine (../shared/PEERS.md). */
const PEERS = {
  'LangGraph.js + SqliteSaver': { usPerStep: 504, stepsPerS: 2570, fanoutMs: 22.5 },
  'Mastra + LibSQLStore': { usPerStep: 291, stepsPerS: 3700, fanoutMs: 35.1 },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rows[k] ??= []).push(v);
  for (let r = 0; r < reps; r++) {
    // Interleaved so that machine noise hits both sides alike.
    const fc = floorChain(sizes);
    add('floor.chain.us', fc.usPerStep);
    add('floor.chain.p99', fc.p99Ms);
    const bc = await batonChain(sizes);
    add('baton.chain.us', bc.usPerStep);
    add('baton.chain.p99', bc.p99Ms);
    add('floor.tput.steps', floorThroughput(sizes).stepsPerS);
    const bt = await batonThroughput(sizes);
    add('baton.tput.steps', bt.stepsPerS);
    add('baton.tput.wf', bt.workflowsPerS);
    add('floor.fan.ms', floorFanout(sizes).ms);
    add('baton.fan.ms', (await batonFanout(sizes)).ms);
    add('plain.chain.us', await plainChain(sizes));
    process.stderr.write(`  repetition ${r + 1}/${reps} done\n`);
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
  const chainRatio = m['baton.chain.us'] / m['floor.chain.us'];
  const tputRatio = m['floor.tput.steps'] / m['baton.tput.steps'];
  const fanRatio = m['baton.fan.ms'] / m['floor.fan.ms'];
  const f = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const ok = (b: boolean) => (b ? 'met' : 'MISSED');

  const lines = [
    `Baton benchmark — ${sizes.chainRuns} chains, ${sizes.throughputRuns} workflows at ${sizes.inFlight} in flight, median of ${reps}, Node ${process.version}`,
    '',
    '| workload | Baton | floor (SQLite single-row commits) | Baton / floor | target | LangGraph.js+SqliteSaver | Mastra+LibSQL |',
    '|---|---:|---:|---:|---|---:|---:|',
    `| W1 chain, µs per step | ${f(m['baton.chain.us'])} | ${f(m['floor.chain.us'])} | ${f(chainRatio, 2)}× | ≤ 3× floor: ${ok(chainRatio <= 3)} | ${PEERS['LangGraph.js + SqliteSaver'].usPerStep} | ${PEERS['Mastra + LibSQLStore'].usPerStep} |`,
    `| W1 chain, p99 ms per workflow | ${f(m['baton.chain.p99'], 2)} | ${f(m['floor.chain.p99'], 2)} | ${f(m['baton.chain.p99'] / m['floor.chain.p99'], 2)}× | | 13.8 | 6.2 |`,
    `| W2 throughput, steps/s | ${f(m['baton.tput.steps'], 0)} | ${f(m['floor.tput.steps'], 0)} | ${f(1 / tputRatio, 2)}× | ≥ 20,000: ${ok(m['baton.tput.steps'] >= 20000)} | ${PEERS['LangGraph.js + SqliteSaver'].stepsPerS.toLocaleString('en-US')} | ${PEERS['Mastra + LibSQLStore'].stepsPerS.toLocaleString('en-US')} |`,
    `| W2 throughput, workflows/s | ${f(m['baton.tput.wf'], 0)} | | | | | |`,
    `| W3 100-way fan-out + join, ms | ${f(m['baton.fan.ms'], 2)} | ${f(m['floor.fan.ms'], 2)} | ${f(fanRatio, 2)}× | < 5 ms: ${ok(m['baton.fan.ms'] < 5)} | ${PEERS['LangGraph.js + SqliteSaver'].fanoutMs} | ${PEERS['Mastra + LibSQLStore'].fanoutMs} |`,
    '',
    `Plain async calls (not durable): ${f(m['plain.chain.us'], 2)} µs per step.`,
    `Against the peers on W1: ${f(PEERS['Mastra + LibSQLStore'].usPerStep / m['baton.chain.us'], 1)}× faster than Mastra+LibSQL, ${f(PEERS['LangGraph.js + SqliteSaver'].usPerStep / m['baton.chain.us'], 1)}× faster than LangGraph.js+SqliteSaver (their figures from ../shared/PEERS.md, same machine kind).`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/latest.json', import.meta.url), `${JSON.stringify({ at: new Date().toISOString(), node: process.version, sizes, reps, medians: m, raw: rows }, null, 2)}\n`);
}

await main();
