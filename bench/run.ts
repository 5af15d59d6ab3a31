/**
 * `npm run bench`: Baton beside the floor (plain single-row SQLite commits, WAL,
 * synchronous=NORMAL, as in the issue and ../shared/PEERS.md) on the same machine in one run, median of BENCH_REPS repetitions
 * (default 3), printed as a table with ratios, targets and peers, and written to
 * bench/results/latest.json. BENCH_QUICK=1 shrinks the counts for a smoke run (and writes no
 * results unless BENCH_WRITE=1).
 *
 * Workloads as in ../shared/PEERS.md: W1 chain (10 sequential steps, one workflow at a time),
 * W2 throughput (1,000 three-step workflows, 50 in flight), W3 100-way fan-out plus a join.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  batonChain, batonFanout, batonThroughput, floorChain, floorFanout, floorThroughput,
  plainChain, plainFanout, plainThroughput, type Sizes,
} from './workloads.js';
import { cascade, modelOverhead, type CascadeBench, type ModelBench } from './models.js';
import { clusterScaling, type ScalingResult } from './cluster.js';
import { gatewayBench, type GatewayBench } from './gateway.js';

const quick = process.env.BENCH_QUICK === '1';
const reps = Math.max(1, Number(process.env.BENCH_REPS ?? (quick ? 1 : 3)) || 1);
const sizes: Sizes = quick
  ? { chainRuns: 30, chainWarmup: 5, throughputRuns: 200, inFlight: 50, fanoutRuns: 5 }
  : { chainRuns: 200, chainWarmup: 20, throughputRuns: 1000, inFlight: 50, fanoutRuns: 15 };

/** Peers measured on this kind of machine (../shared/PEERS.md). */
const PEERS = {
  langgraph: { name: 'LangGraph.js+SqliteSaver', usPerStep: 504, p99Ms: 13.8, stepsPerS: 2570, fanoutMs: 22.5 },
  mastra: { name: 'Mastra+LibSQL', usPerStep: 291, p99Ms: 6.2, stepsPerS: 3700, fanoutMs: 35.1 },
};

/** Targets from the issues. */
const TARGETS = { chainRatio: 3, stepsPerS: 20_000, fanoutMs: 5, modelAddedMs: 1 };

/** An AI gateway measured the same way on this kind of machine (../shared/PEERS.md). */
const PORTKEY_ADDED_MS = 0.66;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const f = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ok = (b: boolean) => (b ? 'met' : 'MISSED');
const times = (x: number) => (x >= 1 ? `${f(x, 1)}× faster` : `${f(1 / x, 1)}× slower`);

/** One pass over every workload; keys are `<side>.<workload>.<unit>`. */
async function pass(z: Sizes, add: (k: string, v: number) => void): Promise<void> {
  // Interleaved so that machine noise hits both sides alike.
  const fc = floorChain(z, 'defaults');
  add('floor.chain.us', fc.usPerStep);
  add('floor.chain.p99', fc.p99Ms);
  const dc = floorChain(z, 'engine');
  add('floordef.chain.us', dc.usPerStep);
  add('floordef.chain.p99', dc.p99Ms);
  const bc = await batonChain(z);
  add('baton.chain.us', bc.usPerStep);
  add('baton.chain.p99', bc.p99Ms);
  const ft = floorThroughput(z, 'defaults');
  add('floor.tput.steps', ft.stepsPerS);
  add('floor.tput.wf', ft.workflowsPerS);
  add('floordef.tput.steps', floorThroughput(z, 'engine').stepsPerS);
  const bt = await batonThroughput(z);
  add('baton.tput.steps', bt.stepsPerS);
  add('baton.tput.wf', bt.workflowsPerS);
  add('floor.fan.ms', floorFanout(z, 'defaults').ms);
  add('floordef.fan.ms', floorFanout(z, 'engine').ms);
  add('baton.fan.ms', (await batonFanout(z)).ms);
  add('plain.chain.us', await plainChain(z));
  add('plain.tput.steps', await plainThroughput(z));
  add('plain.fan.ms', await plainFanout(z));
}

async function main(): Promise<void> {
  const t0 = performance.now();
  // A discarded warm-up pass at small sizes (JIT, file system caches), so that the first
  // repetition is not a cold start; each workload also warms up on its own as PEERS.md says.
  await pass({ chainRuns: 20, chainWarmup: 5, throughputRuns: 200, inFlight: sizes.inFlight, fanoutRuns: 3 }, () => undefined);
  const rows: Record<string, number[]> = {};
  for (let r = 0; r < reps; r++) {
    await pass(sizes, (k, v) => (rows[k] ??= []).push(v));
    process.stderr.write(`  repetition ${r + 1}/${reps} done\n`);
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));

  // Ratios are cost ratios, Baton / floor: 1.0 = as cheap as bare single-row commits.
  const ratio = {
    chain: m['baton.chain.us'] / m['floor.chain.us'],
    chainP99: m['baton.chain.p99'] / m['floor.chain.p99'],
    tput: m['floor.tput.steps'] / m['baton.tput.steps'],
    fan: m['baton.fan.ms'] / m['floor.fan.ms'],
  };
  const met = {
    chain: ratio.chain <= TARGETS.chainRatio,
    tput: m['baton.tput.steps'] >= TARGETS.stepsPerS,
    fan: m['baton.fan.ms'] < TARGETS.fanoutMs,
  };
  const { langgraph: lg, mastra: ma } = PEERS;
  const n0 = (x: number) => f(x, 0);
  const lines = [
    `Baton benchmark — W1 ${sizes.chainRuns} chains of 10 (after ${sizes.chainWarmup} warm-up), W2 ${sizes.throughputRuns} × 3 steps at ${sizes.inFlight} in flight, ` +
      `W3 100-way fan-out (median of ${sizes.fanoutRuns}); median of ${reps} repetition(s); Node ${process.version}${quick ? '; BENCH_QUICK' : ''}`,
    '',
    `| workload | Baton | floor | Baton/floor (cost) | target | | floor without checkpoints | plain async | ${lg.name} | ${ma.name} |`,
    '|---|---:|---:|---:|---|---|---:|---:|---:|---:|',
    `| W1 chain, µs per step | ${f(m['baton.chain.us'])} | ${f(m['floor.chain.us'])} | ${f(ratio.chain, 2)}× | ≤ ${TARGETS.chainRatio}× floor (${n0(TARGETS.chainRatio * m['floor.chain.us'])} µs) | ${ok(met.chain)} | ${f(m['floordef.chain.us'])} | ${f(m['plain.chain.us'], 2)} | ${lg.usPerStep} | ${ma.usPerStep} |`,
    `| W1 chain, p99 ms per workflow | ${f(m['baton.chain.p99'], 2)} | ${f(m['floor.chain.p99'], 2)} | ${f(ratio.chainP99, 2)}× | | | ${f(m['floordef.chain.p99'], 2)} | | ${lg.p99Ms} | ${ma.p99Ms} |`,
    `| W2 throughput, steps/s | ${n0(m['baton.tput.steps'])} | ${n0(m['floor.tput.steps'])} | ${f(ratio.tput, 2)}× | ≥ ${TARGETS.stepsPerS.toLocaleString('en-US')} | ${ok(met.tput)} | ${n0(m['floordef.tput.steps'])} | ${n0(m['plain.tput.steps'])} | ${lg.stepsPerS.toLocaleString('en-US')} | ${ma.stepsPerS.toLocaleString('en-US')} |`,
    `| W2 throughput, workflows/s | ${n0(m['baton.tput.wf'])} | ${n0(m['floor.tput.wf'])} | ${f(ratio.tput, 2)}× | | | ${n0(m['floordef.tput.steps'] / 3)} | ${n0(m['plain.tput.steps'] / 3)} | ${n0(lg.stepsPerS / 3)} | ${n0(ma.stepsPerS / 3)} |`,
    `| W3 100-way fan-out + join, ms | ${f(m['baton.fan.ms'], 2)} | ${f(m['floor.fan.ms'], 2)} | ${f(ratio.fan, 2)}× | < ${TARGETS.fanoutMs} ms | ${ok(met.fan)} | ${f(m['floordef.fan.ms'], 2)} | ${f(m['plain.fan.ms'], 3)} | ${lg.fanoutMs} | ${ma.fanoutMs} |`,
    '',
    'floor = the issue\'s and PEERS.md\'s floor: a fresh better-sqlite3 file in WAL with synchronous=NORMAL (SQLite\'s default checkpointing),',
    `one single-row INSERT transaction per step, sequential (W1: 10 per workflow; W2: ${(sizes.throughputRuns * 3).toLocaleString('en-US')} in all; W3: 101).`,
    '"floor without checkpoints" = the same with wal_autocheckpoint=0 and no checkpoint at all during the measurement: harsher than fair,',
    'since Baton still checkpoints (on a 1 s timer, on the same thread, inside its measured time) rather than inside commits.',
    'Peers: ../shared/PEERS.md, same kind of machine.',
    `Against the peers: W1 ${times(ma.usPerStep / m['baton.chain.us'])} than ${ma.name}, ${times(lg.usPerStep / m['baton.chain.us'])} than ${lg.name}; ` +
      `W2 ${times(m['baton.tput.steps'] / ma.stepsPerS)} / ${times(m['baton.tput.steps'] / lg.stepsPerS)}; W3 ${times(ma.fanoutMs / m['baton.fan.ms'])} / ${times(lg.fanoutMs / m['baton.fan.ms'])}.`,
    `Targets: ${Object.values(met).filter(Boolean).length}/3 met. Total ${f((performance.now() - t0) / 1000, 1)} s.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  const mo = await modelOverhead(quick ? 100 : 400);
  const cascades: CascadeBench[] = [];
  for (const t of [0.5, 0.6, 0.7]) cascades.push(await cascade(t));
  process.stdout.write(`\n${modelLines(mo, cascades).join('\n')}\n`);

  const gw = await gatewayBench(quick ? 2 : 5, quick ? 1 : 3);
  process.stdout.write(`\n${gatewayLines(gw).join('\n')}\n`);

  // Needs the PostgreSQL server of the test suites; skipped (and said) when it is not there.
  let scaling: ScalingResult | undefined;
  try {
    scaling = await clusterScaling(quick ? 300 : 1500);
    process.stdout.write(`\n${scalingLines(scaling).join('\n')}\n`);
  } catch (e) {
    process.stdout.write(`\nC1 cluster scaling skipped: ${(e as Error).message}\n`);
  }
  // A quick smoke run does not overwrite the full results.
  if (quick && process.env.BENCH_WRITE !== '1') return;
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(
    new URL('./results/latest.json', import.meta.url),
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, quick, sizes, reps, targets: TARGETS, met, ratios: ratio, medians: m, raw: rows, peers: PEERS, models: { overhead: mo, cascades }, gateway: gw, scaling }, null, 2)}\n`,
  );
}

function gatewayLines(g: GatewayBench): string[] {
  const ms = (x: number) => f(x, 2);
  return [
    `G1 gateway: a trivial sync run (POST /runs with wait) over loopback HTTP against a \`baton serve\` process, beside the same run in-process; at concurrency ${g.concurrency} (${g.tool}, ${g.seconds} s a side), then one at a time; ${g.rounds} round${g.rounds === 1 ? '' : 's'} alternating the sides, the median round shown`,
    '',
    '| side | runs/s at 50 | p50 ms at 50 | p99 ms at 50 | p50 ms one at a time | p99 ms one at a time |',
    '|---|---:|---:|---:|---:|---:|',
    `| in-process (baton.run) | ${f(g.inProcess.perSecond, 0)} | ${ms(g.inProcess.p50)} | ${ms(g.inProcess.p99)} | ${ms(g.inProcess.sequentialP50)} | ${ms(g.inProcess.sequentialP99)} |`,
    `| HTTP (POST /runs) | ${f(g.http.perSecond, 0)} | ${ms(g.http.p50)} | ${ms(g.http.p99)} | ${ms(g.http.sequentialP50)} | ${ms(g.http.sequentialP99)} |`,
    '',
    `HTTP adds ${ms(g.addedSequentialP50Ms)} ms at p50 one request at a time (target < 1 ms: ${ok(g.addedSequentialP50Ms < 1)}) and ${ms(g.addedP50Ms)} ms at p50 at concurrency ${g.concurrency} (target < 1 ms: ${ok(g.addedP50Ms < 1)}; rounds: ${g.addedP50ByRound.map(ms).join(', ')} ms; the load generator shares the 2 cores).`,
    '',
    `The floor, same load against servers that do no work (bench/http-floor.ts): the least an HTTP layer on them adds at concurrency ${g.concurrency} here.`,
    '',
    '| server | requests/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    `| Node's HTTP server alone | ${f(g.floor.node.perSecond, 0)} | ${ms(g.floor.node.p50)} | ${ms(g.floor.node.p99)} |`,
    `| a Fastify route with the gateway's body schema | ${f(g.floor.fastify.perSecond, 0)} | ${ms(g.floor.fastify.p50)} | ${ms(g.floor.fastify.p99)} |`,
  ];
}

function scalingLines(r: ScalingResult): string[] {
  const one = r.postgres[1];
  const rows = Object.entries(r.postgres).map(([w, v]) => `| PostgreSQL, ${w} worker process${w === '1' ? '' : 'es'} | ${f(v, 0)} | ${f(v / one, 2)}× |`);
  return [
    `C1 cluster scaling: ${r.runs} three-step workflows of no-op steps admitted up front, then drained by \`baton worker\` processes (32 steps in flight each)`,
    '',
    '| configuration | steps/s | vs 1 worker |',
    '|---|---:|---:|',
    ...rows,
    `| embedded SQLite, one process (reference) | ${f(r.sqlite, 0)} | |`,
  ];
}

function modelLines(mo: ModelBench, cascades: CascadeBench[]): string[] {
  const ms = (x: number) => f(x, 3);
  const pctf = (x: number) => `${f(x * 100, 1)}%`;
  const out = [
    `M1 latency around one model call (local OpenAI-compatible fake vendor answering at once; ${mo.n} calls per side, interleaved; p50 / p99 ms)`,
    '',
    '| path | p50 ms | p99 ms |',
    '|---|---:|---:|',
    `| plain HTTP request (fetch) | ${ms(mo.p50.http)} | ${ms(mo.p99.http)} |`,
    `| provider alone (AI SDK openai-compatible, no Baton) | ${ms(mo.p50.provider)} | ${ms(mo.p99.provider)} |`,
    `| Baton service runtime (limits, breaker, call record in the store) | ${ms(mo.p50.runtime)} | ${ms(mo.p99.runtime)} |`,
    `| Baton durable run of a one-step workflow (admit, claim, record, commit, finish) | ${ms(mo.p50.run)} | ${ms(mo.p99.run)} |`,
    '',
    `Baton adds ${ms(mo.addedP50Ms)} ms at p50 for a whole durable run around the call (${ms(mo.runtimeAddedP50Ms)} ms for the service runtime alone); ` +
      `target < ${TARGETS.modelAddedMs} ms: ${ok(mo.addedP50Ms < TARGETS.modelAddedMs)}. Portkey gateway measured here adds ${PORTKEY_ADDED_MS} ms (PEERS.md).`,
    '',
    `M2 cascade on ${cascades[0].tickets} labelled support tickets: cheap = built-in local classifier (real), expensive = simulated LLM right 95% of the time at $2.50/$10 per Mtok`,
    '',
    '| mode | accuracy | cost USD | cost vs always-expensive | escalated |',
    '|---|---:|---:|---:|---:|',
    `| always expensive | ${pctf(cascades[0].expensive.accuracy)} | ${f(cascades[0].expensive.cost, 5)} | 100% | |`,
    `| cheap only | ${pctf(cascades[0].cheap.accuracy)} | ${f(cascades[0].cheap.cost, 5)} | ${pctf(cascades[0].cheap.cost / cascades[0].expensive.cost)} | |`,
  ];
  for (const c of cascades) {
    out.push(`| cascade, guard confidence ≥ ${c.threshold} | ${pctf(c.cascade.accuracy)} | ${f(c.cascade.cost, 5)} | ${pctf(c.cascade.cost / c.expensive.cost)} | ${c.cascade.escalated}/${c.tickets} |`);
  }
  return out;
}

await main();
