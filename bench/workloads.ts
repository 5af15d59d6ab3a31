/**
 * The three workloads of ../shared/PEERS.md, run on Baton and on the floor (plain single-row
 * SQLite commits with the same settings: WAL, synchronous=NORMAL). Steps are no-op functions,
 * so the figures are orchestration and persistence cost only.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton } from '../src/index.js';

export interface Sizes {
  chainRuns: number;
  chainWarmup: number;
  throughputRuns: number;
  inFlight: number;
  fanoutRuns: number;
}

export interface ChainResult { usPerStep: number; p99Ms: number }
export interface ThroughputResult { workflowsPerS: number; stepsPerS: number }
export interface FanoutResult { ms: number }

const inc = (p: unknown) => ({ n: ((p as { n?: number })?.n ?? 0) + 1 });

function chainDoc(name: string, length: number) {
  return {
    name,
    steps: Array.from({ length }, (_, i) => ({ id: `s${i}`, kind: 'function' as const, function: 'inc', input: i === 0 ? 'input' : `steps.s${i - 1}.output` })),
  };
}

function fanoutDoc() {
  const ids = Array.from({ length: 100 }, (_, i) => `f${i}`);
  return {
    name: 'fanout',
    steps: [
      ...ids.map((id) => ({ id, kind: 'function' as const, function: 'inc', input: 'input' })),
      { id: 'join', kind: 'function' as const, function: 'inc', input: 'input', needs: ids },
    ],
  };
}

async function withBaton<T>(fn: (b: Baton) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  const b = await Baton.open({ dir, functions: { inc }, concurrency: 64 });
  try {
    return await fn(b);
  } finally {
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// ------------------------------------------------------------------ Baton

export function batonChain(z: Sizes): Promise<ChainResult> {
  return withBaton(async (b) => {
    const v = await b.register(chainDoc('chain', 10));
    for (let i = 0; i < z.chainWarmup; i++) await b.run(v, { n: 0 });
    const times: number[] = [];
    for (let i = 0; i < z.chainRuns; i++) {
      const t = performance.now();
      const r = await b.run(v, { n: 0 });
      times.push(performance.now() - t);
      if (r.status !== 'completed' || (r.output as { n: number }).n !== 10) throw new Error(`chain run ended ${r.status}`);
    }
    const mean = times.reduce((a, x) => a + x, 0) / times.length;
    return { usPerStep: (mean * 1000) / 10, p99Ms: percentile(times, 99) };
  });
}

export function batonThroughput(z: Sizes): Promise<ThroughputResult> {
  return withBaton(async (b) => {
    const v = await b.register(chainDoc('three', 3));
    for (let i = 0; i < 50; i++) await b.run(v, { n: 0 });
    const t = performance.now();
    let started = 0;
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      const next = (): void => {
        if (started >= z.throughputRuns) return;
        started++;
        b.run(v, { n: 0 }).then((r) => {
          if (r.status !== 'completed') return reject(new Error(`run ended ${r.status}`));
          if (++done === z.throughputRuns) resolve();
          else next();
        }, reject);
      };
      for (let i = 0; i < z.inFlight; i++) next();
    });
    const s = (performance.now() - t) / 1000;
    return { workflowsPerS: z.throughputRuns / s, stepsPerS: (z.throughputRuns * 3) / s };
  });
}

export function batonFanout(z: Sizes): Promise<FanoutResult> {
  return withBaton(async (b) => {
    const v = await b.register(fanoutDoc());
    for (let i = 0; i < 5; i++) await b.run(v, { n: 0 });
    const times: number[] = [];
    for (let i = 0; i < z.fanoutRuns; i++) {
      const t = performance.now();
      const r = await b.run(v, { n: 0 });
      times.push(performance.now() - t);
      if (r.status !== 'completed') throw new Error(`fan-out run ended ${r.status}`);
    }
    return { ms: percentile(times, 50) };
  });
}

// ------------------------------------------------------------------ floor

/**
 * How the floor's database is set up. `engine`: the engine's own settings (WAL,
 * synchronous=NORMAL, wal_autocheckpoint=0: the engine checkpoints on a timer, off the step
 * path, so neither side pays a checkpoint inside the timed loop). `defaults`: the library's
 * default automatic checkpoint every 1,000 WAL pages, as in ../shared/PEERS.md's floor row.
 */
export type FloorMode = 'engine' | 'defaults';

/** A fresh file database with one table of step records. */
function floorDb(mode: FloorMode): { insert: (runId: string, step: number, out: string) => void; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'baton-floor-'));
  const db = new Database(join(dir, 'floor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  if (mode === 'engine') db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE step_results (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, step INTEGER NOT NULL, output TEXT)');
  const stmt = db.prepare('INSERT INTO step_results (run_id, step, output) VALUES (?, ?, ?)');
  const tx = db.transaction((r: string, s: number, o: string) => stmt.run(r, s, o));
  return {
    insert: (r, s, o) => tx.immediate(r, s, o),
    done: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One single-row commit per step, sequentially, timed per 10-step "workflow". */
export function floorChain(z: Sizes, mode: FloorMode): ChainResult {
  const f = floorDb(mode);
  try {
    const wf = (i: number) => {
      let n = 0;
      for (let s = 0; s < 10; s++) f.insert(`run${i}`, s, JSON.stringify({ n: ++n }));
    };
    for (let i = 0; i < z.chainWarmup; i++) wf(i);
    const times: number[] = [];
    for (let i = 0; i < z.chainRuns; i++) {
      const t = performance.now();
      wf(i);
      times.push(performance.now() - t);
    }
    const mean = times.reduce((a, x) => a + x, 0) / times.length;
    return { usPerStep: (mean * 1000) / 10, p99Ms: percentile(times, 99) };
  } finally {
    f.done();
  }
}

/** The same number of single-row commits as the throughput workload's steps. */
export function floorThroughput(z: Sizes, mode: FloorMode): ThroughputResult {
  const f = floorDb(mode);
  try {
    const t = performance.now();
    for (let i = 0; i < z.throughputRuns; i++) for (let s = 0; s < 3; s++) f.insert(`run${i}`, s, '{"n":1}');
    const s = (performance.now() - t) / 1000;
    return { workflowsPerS: z.throughputRuns / s, stepsPerS: (z.throughputRuns * 3) / s };
  } finally {
    f.done();
  }
}

/** 101 single-row commits (100 branches and the join), median over runs after 5 warm-up. */
export function floorFanout(z: Sizes, mode: FloorMode): FanoutResult {
  const f = floorDb(mode);
  try {
    const times: number[] = [];
    for (let i = 0; i < z.fanoutRuns + 5; i++) {
      const t = performance.now();
      for (let s = 0; s < 101; s++) f.insert(`run${i}`, s, '{"n":1}');
      if (i >= 5) times.push(performance.now() - t);
    }
    return { ms: percentile(times, 50) };
  } finally {
    f.done();
  }
}

/** Plain async calls, not durable: what orchestration in memory costs (W1 shape, µs per step). */
export async function plainChain(z: Sizes): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < z.chainRuns; i++) {
    let p: unknown = { n: 0 };
    for (let s = 0; s < 10; s++) p = await Promise.resolve(inc(p));
  }
  return ((performance.now() - t) * 1000) / (z.chainRuns * 10);
}

/** W2 shape without persistence: 3 awaited calls per workflow, `inFlight` at once (steps/s). */
export async function plainThroughput(z: Sizes): Promise<number> {
  const wf = async () => {
    let p: unknown = { n: 0 };
    for (let s = 0; s < 3; s++) p = await Promise.resolve(inc(p));
    return p;
  };
  const t = performance.now();
  let started = 0;
  const lane = async () => {
    while (started < z.throughputRuns) {
      started++;
      await wf();
    }
  };
  await Promise.all(Array.from({ length: z.inFlight }, lane));
  return (z.throughputRuns * 3) / ((performance.now() - t) / 1000);
}

/** W3 shape without persistence: 100 calls at once, then a join (ms, median). */
export async function plainFanout(z: Sizes): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < z.fanoutRuns + 5; i++) {
    const t = performance.now();
    const outs = await Promise.all(Array.from({ length: 100 }, () => Promise.resolve(inc({ n: 0 }))));
    inc({ n: outs.length });
    if (i >= 5) times.push(performance.now() - t);
  }
  return percentile(times, 50);
}
