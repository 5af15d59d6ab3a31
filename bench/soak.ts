/**
 * Soak test: a `baton serve --no-worker` gateway and N `baton worker` processes on one fresh
 * PostgreSQL database (created here, dropped at the end), driven over loopback at a sustained
 * rate of asynchronous `POST /runs` (202) with a mix of workflows: a trivial transform, parallel
 * branches joined, and a model step against the fake vendor with scripted faults (503s and
 * garbage answers, survived through retries and a fallback service).
 *
 * Every `sampleSec` it records: runs accepted and completed, HTTP accept latency p50/p99,
 * start→end latency p50/p99 (runs.created_at → finished_at, from the store), and the RSS of
 * every process (/proc/<pid>/status VmRSS). At the end it checks, from the store, that every
 * accepted run completed, no run exists that was not accepted, and — for runs long enough to
 * tell (≥ 3 min) — that RSS grows by less than `maxGrowthMbPerMin` over the last 2/3 of the
 * samples (least-squares slope; the first third is warm-up: JIT, pools, caches).
 *
 *   npm run soak                                  # 10 minutes at 100 runs/s, 2 workers
 *   npm run soak -- --duration 60s --rate 20      # short
 *   npm run soak -- --rate 200 --workers 4
 *
 * Writes bench/results/soak-<date>.json and prints a table.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { FakeVendor } from '../src/testing/fake-vendor.js';
import { parseDuration } from '../src/util/duration.js';
import { createTestDatabase } from '../test/helpers/stores.js';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin/baton.js');

export interface SoakOptions {
  durationMs: number;
  /** Runs started per second (open loop: sent on schedule whatever the answers' latency). */
  rate: number;
  workers: number;
  sampleSec: number;
  /** Requests in flight at most (beyond it a tick's sends are skipped and counted as `shed`). */
  maxInFlight: number;
  /** Memory-flat bound over the last 2/3 of the samples, MB per minute of RSS growth. */
  maxGrowthMbPerMin: number;
  /** How long to wait after the last send for every accepted run to end. */
  drainMs: number;
  /** Share of the primary model service's calls answered with a fault. */
  faultRate: number;
  out?: string;
  quiet?: boolean;
}

export interface SoakSample {
  t: number;
  accepted: number;
  completed: number;
  failed: number;
  throughputPerSec: number;
  acceptP50Ms: number;
  acceptP99Ms: number;
  runP50Ms: number;
  runP99Ms: number;
  rssMb: Record<string, number>;
  driverHeapMb: number;
}

export interface SoakResult {
  startedAt: string;
  options: SoakOptions;
  load: { loadavg: number[]; cpus: number };
  sent: number;
  accepted: number;
  rejected: number;
  shed: number;
  httpErrors: Record<string, number>;
  completed: number;
  failed: number;
  notEnded: number;
  unknownRuns: number;
  modelCalls: { primary: number; backup: number; faultsServed: number };
  samples: SoakSample[];
  overall: { throughputPerSec: number; acceptP50Ms: number; acceptP99Ms: number; runP50Ms: number; runP99Ms: number };
  memory: Record<string, { firstMb: number; lastMb: number; maxMb: number; slopeMbPerMin: number }>;
  memoryChecked: boolean;
  problems: string[];
  ok: boolean;
}

export const SOAK_DEFAULTS: SoakOptions = { durationMs: 600_000, rate: 100, workers: 2, sampleSec: 10, maxInFlight: 256, maxGrowthMbPerMin: 3, drainMs: 120_000, faultRate: 0.05 };

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : 0;
  } catch {
    return 0;
  }
}

const WORKFLOWS = [
  { name: 'soak-trivial', steps: [{ id: 'a', kind: 'transform', expression: 'input.n + 1' }] },
  {
    name: 'soak-parallel',
    steps: [
      { id: 'x', kind: 'transform', expression: 'input.n * 2' },
      { id: 'y', kind: 'transform', expression: 'input.n * 3' },
      { id: 'z', kind: 'transform', expression: '$string(input.n)' },
      { id: 'join', kind: 'transform', expression: '{ "sum": steps.x.output + steps.y.output, "s": steps.z.output }' },
    ],
  },
  {
    name: 'soak-model',
    steps: [
      { id: 'ask', kind: 'model', service: 'primary', fallback: ['backup'], prompt: 'Summarise ticket {{ input.n }}' },
      { id: 'wrap', kind: 'transform', expression: '{ "n": input.n, "answer": steps.ask.output }' },
    ],
  },
];

/** Spawns a baton process; resolves once `ready` matches its output. */
function start(args: string[], ready: RegExp, cwd: string): Promise<{ proc: ChildProcess; match: RegExpExecArray; log: () => string }> {
  return new Promise((res, rej) => {
    const proc = spawn(process.execPath, [bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const on = (d: Buffer) => {
      // Keep only the tail: at info level the processes log a line per run.
      out = (out + d.toString()).slice(-20_000);
      const m = ready.exec(out);
      if (m && !done) {
        done = true;
        res({ proc, match: m, log: () => out });
      }
    };
    proc.stdout!.on('data', on);
    proc.stderr!.on('data', on);
    proc.on('exit', (code) => {
      if (!done) rej(new Error(`baton ${args[0]} exited ${code} before it was ready:\n${out}`));
    });
  });
}

export async function soak(partial: Partial<SoakOptions> = {}): Promise<SoakResult> {
  const o: SoakOptions = { ...SOAK_DEFAULTS, ...partial };
  const say = (s: string) => {
    if (!o.quiet) process.stderr.write(`${s}\n`);
  };
  if (!existsSync(join(root, 'dist/cli/main.js'))) spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  const os = await import('node:os');
  const startedAt = new Date().toISOString();
  const db = await createTestDatabase('baton_soak');
  const dir = mkdtempSync(join(tmpdir(), 'baton-soak-'));
  // Seeded random for the fault share, so that two soaks serve the same fault pattern.
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const vendor = await new FakeVendor({ random }).start();
  vendor.model('*', { latencyMs: 5 });
  vendor.faultRate('gpt-soak', '503', o.faultRate / 2);
  vendor.faultRate('gpt-soak', 'malformed', o.faultRate / 2);
  writeFileSync(join(dir, 'baton.config.yaml'), `services:
  primary:
    provider: openai
    model: gpt-soak
    endpoint: ${vendor.url}/v1
    retry: { max_attempts: 2, initial_delay: 20ms }
    timeout: 10s
  backup:
    provider: anthropic
    model: claude-soak
    endpoint: ${vendor.url}/v1
    credential: { env: BATON_SOAK_BACKUP_KEY }
    timeout: 10s
`);
  // The backup's key, passed by environment as in production (the fake vendor wants one, any one).
  process.env.BATON_SOAK_BACKUP_KEY ??= 'soak-backup-key';
  const procs: Array<{ name: string; proc: ChildProcess; log: () => string }> = [];
  const sql = new pg.Client({ connectionString: db.url });
  const problems: string[] = [];
  // Ctrl-C ends the soak early but still drains, reports and cleans up (processes, database).
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const common = ['--db', db.url, '--config', join(dir, 'baton.config.yaml'), '--log-level', 'warn'];
    // The gateway first: it creates the schema (workers opening a blank database at once would race on migrations).
    const gw = await start(['serve', ...common, '--no-worker', '--port', '0', '--auth', 'off'], /baton serve: (http:\/\/\S+) /, dir);
    procs.push({ name: 'gateway', proc: gw.proc, log: gw.log });
    const url = gw.match[1];
    for (let i = 0; i < o.workers; i++) {
      const w = await start(['worker', ...common, '--concurrency', '32'], /baton worker w_\S+/, dir);
      procs.push({ name: `worker${i + 1}`, proc: w.proc, log: w.log });
    }
    for (const p of procs) {
      p.proc.on('exit', (code, signal) => problems.push(`${p.name} exited during the soak (${code ?? signal}): ${p.log().slice(-2000)}`));
    }
    await sql.connect();
    for (const wf of WORKFLOWS) {
      const r = await fetch(`${url}/workflows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wf) });
      if (r.status !== 201) throw new Error(`soak: registering ${wf.name} answered ${r.status}: ${await r.text()}`);
    }
    say(`soak: gateway ${url}, ${o.workers} workers on ${db.url.replace(/\/\/[^@]*@/, '//')}, ${o.rate} runs/s for ${o.durationMs / 1000}s`);

    const accepted = new Set<string>();
    const httpErrors: Record<string, number> = {};
    let sent = 0;
    let rejected = 0;
    let shed = 0;
    let inFlight = 0;
    let windowAccept: number[] = [];
    const allAccept: number[] = [];
    const send = async (n: number) => {
      sent++;
      inFlight++;
      const wf = WORKFLOWS[n % WORKFLOWS.length].name;
      const t = performance.now();
      try {
        const r = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflow: wf, input: { n } }) });
        const body = (await r.json()) as { run_id?: string };
        const ms = performance.now() - t;
        if (r.status === 202 && body.run_id) {
          accepted.add(body.run_id);
          windowAccept.push(ms);
          allAccept.push(ms);
        } else {
          rejected++;
          httpErrors[String(r.status)] = (httpErrors[String(r.status)] ?? 0) + 1;
        }
      } catch (e) {
        rejected++;
        const k = (e as Error).message.slice(0, 60);
        httpErrors[k] = (httpErrors[k] ?? 0) + 1;
      } finally {
        inFlight--;
      }
    };

    const samples: SoakSample[] = [];
    const t0 = Date.now();
    let lastSampleAt = t0;
    let completedSoFar = 0;
    let failedSoFar = 0;
    const sample = async () => {
      const now = Date.now();
      const r = await sql.query<{ ms: string; status: string }>(`SELECT finished_at - created_at AS ms, status FROM runs WHERE status IN ('completed', 'failed') AND finished_at > $1 AND finished_at <= $2`, [lastSampleAt, now]);
      const runMs = r.rows.filter((x) => x.status === 'completed').map((x) => Number(x.ms));
      failedSoFar += r.rows.length - runMs.length;
      completedSoFar += runMs.length;
      const rss: Record<string, number> = {};
      for (const p of procs) rss[p.name] = rssMb(p.proc.pid);
      const s: SoakSample = {
        t: Math.round((now - t0) / 1000),
        accepted: accepted.size,
        completed: completedSoFar,
        failed: failedSoFar,
        throughputPerSec: Math.round((runMs.length / ((now - lastSampleAt) / 1000)) * 10) / 10,
        acceptP50Ms: Math.round(pct(windowAccept, 50) * 10) / 10,
        acceptP99Ms: Math.round(pct(windowAccept, 99) * 10) / 10,
        runP50Ms: pct(runMs, 50),
        runP99Ms: pct(runMs, 99),
        rssMb: rss,
        driverHeapMb: Math.round(process.memoryUsage().heapUsed / 104857.6) / 10,
      };
      samples.push(s);
      windowAccept = [];
      lastSampleAt = now;
      say(`  t=${String(s.t).padStart(4)}s accepted ${s.accepted} completed ${s.completed} failed ${s.failed} ${s.throughputPerSec}/s accept p50/p99 ${s.acceptP50Ms}/${s.acceptP99Ms} ms run p50/p99 ${s.runP50Ms}/${s.runP99Ms} ms RSS ${Object.entries(rss).map(([k, v]) => `${k} ${v}`).join(', ')} MB`);
    };

    // Open loop: every 50 ms, send what the rate owes since the start (so a slow tick catches up).
    let n = 0;
    let nextSample = t0 + o.sampleSec * 1000;
    const pending = new Set<Promise<void>>();
    while (Date.now() - t0 < o.durationMs && problems.length === 0 && !interrupted) {
      const owed = Math.floor(((Date.now() - t0) / 1000) * o.rate) - n;
      for (let i = 0; i < owed; i++) {
        n++;
        if (inFlight >= o.maxInFlight) {
          shed++;
          continue;
        }
        const p = send(n);
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      if (Date.now() >= nextSample) {
        await sample();
        nextSample += o.sampleSec * 1000;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(pending);
    // Drain: every accepted run must end.
    const ids = [...accepted];
    const drainEnd = Date.now() + o.drainMs;
    for (;;) {
      const r = await sql.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM runs WHERE id = ANY($1) AND status NOT IN ('completed', 'failed', 'cancelled')`, [ids]);
      if (r.rows[0].n === 0 || Date.now() > drainEnd || problems.length || interrupted) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    await sample();

    const counts = await sql.query<{ status: string; n: number }>(`SELECT status, COUNT(*)::int AS n FROM runs WHERE id = ANY($1) GROUP BY status`, [ids]);
    const by = Object.fromEntries(counts.rows.map((r) => [r.status, r.n])) as Record<string, number>;
    const total = await sql.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM runs`);
    const unknownRuns = total.rows[0].n - ids.length;
    // Every run's result recorded exactly once: no step with two succeeded events.
    const dup = await sql.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM (SELECT run_id, step_key FROM events WHERE type = 'step.succeeded' GROUP BY run_id, step_key HAVING COUNT(*) > 1) d`);
    const all = await sql.query<{ ms: string }>(`SELECT finished_at - created_at AS ms FROM runs WHERE status = 'completed'`);
    const runAll = all.rows.map((x) => Number(x.ms));
    const completed = by.completed ?? 0;
    const failed = by.failed ?? 0;
    const notEnded = ids.length - completed - failed - (by.cancelled ?? 0);
    if (completed !== ids.length) problems.push(`${ids.length - completed} accepted runs did not complete (${JSON.stringify(by)})`);
    if (unknownRuns !== 0) problems.push(`${unknownRuns} runs in the store were never accepted`);
    if (dup.rows[0].n !== 0) problems.push(`${dup.rows[0].n} steps recorded succeeded more than once`);
    if (rejected !== 0) problems.push(`${rejected} requests were not accepted: ${JSON.stringify(httpErrors)}`);

    const memory: SoakResult['memory'] = {};
    const tail = samples.slice(Math.floor(samples.length / 3));
    const memoryChecked = o.durationMs >= 180_000 && tail.length >= 4;
    for (const p of procs) {
      const ys = samples.map((s) => s.rssMb[p.name]);
      const tys = tail.map((s) => s.rssMb[p.name]);
      const sl = Math.round(slope(tail.map((s) => s.t / 60), tys) * 100) / 100;
      memory[p.name] = { firstMb: ys[0] ?? 0, lastMb: ys[ys.length - 1] ?? 0, maxMb: Math.max(...ys), slopeMbPerMin: sl };
      if (memoryChecked && sl > o.maxGrowthMbPerMin) problems.push(`${p.name} RSS grows ${sl} MB/min over the last 2/3 of the soak (bound ${o.maxGrowthMbPerMin})`);
    }
    const secs = o.durationMs / 1000;
    const result: SoakResult = {
      startedAt,
      options: o,
      load: { loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100), cpus: os.cpus().length },
      sent,
      accepted: ids.length,
      rejected,
      shed,
      httpErrors,
      completed,
      failed,
      notEnded,
      unknownRuns,
      modelCalls: { primary: vendor.calls('gpt-soak'), backup: vendor.calls('claude-soak'), faultsServed: vendor.requests().filter((r) => r.fault).length },
      samples,
      overall: { throughputPerSec: Math.round((completed / secs) * 10) / 10, acceptP50Ms: Math.round(pct(allAccept, 50) * 10) / 10, acceptP99Ms: Math.round(pct(allAccept, 99) * 10) / 10, runP50Ms: pct(runAll, 50), runP99Ms: pct(runAll, 99) },
      memory,
      memoryChecked,
      problems,
      ok: problems.length === 0,
    };
    if (o.out) {
      mkdirSync(resolve(o.out, '..'), { recursive: true });
      writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
    }
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const p of procs) {
      p.proc.removeAllListeners('exit');
      p.proc.kill('SIGTERM');
    }
    await Promise.all(procs.map((p) => new Promise((res) => (p.proc.exitCode !== null || p.proc.signalCode !== null ? res(null) : p.proc.once('exit', res)))));
    await sql.end().catch(() => undefined);
    await vendor.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function printSoak(r: SoakResult): string {
  const lines = [
    `soak ${r.startedAt}: ${r.options.durationMs / 1000}s at ${r.options.rate} runs/s, ${r.options.workers} workers on PostgreSQL (load average ${r.load.loadavg.join(' ')} on ${r.load.cpus} cores)`,
    `sent ${r.sent}, accepted ${r.accepted}, rejected ${r.rejected}, shed ${r.shed}; completed ${r.completed}, failed ${r.failed}, not ended ${r.notEnded}, unknown ${r.unknownRuns}`,
    `model calls: primary ${r.modelCalls.primary}, backup ${r.modelCalls.backup}, faults served ${r.modelCalls.faultsServed}`,
    `overall: ${r.overall.throughputPerSec} runs/s; accept p50/p99 ${r.overall.acceptP50Ms}/${r.overall.acceptP99Ms} ms; start→end p50/p99 ${r.overall.runP50Ms}/${r.overall.runP99Ms} ms`,
    '',
    '   t(s)  accepted completed   runs/s  accept p50/p99 ms   run p50/p99 ms   RSS MB',
    ...r.samples.map((s) => `${String(s.t).padStart(7)} ${String(s.accepted).padStart(9)} ${String(s.completed).padStart(9)} ${String(s.throughputPerSec).padStart(8)} ${`${s.acceptP50Ms}/${s.acceptP99Ms}`.padStart(19)} ${`${s.runP50Ms}/${s.runP99Ms}`.padStart(16)}   ${Object.entries(s.rssMb).map(([k, v]) => `${k} ${v}`).join(', ')}`),
    '',
    'memory (RSS MB): ' + Object.entries(r.memory).map(([k, m]) => `${k} ${m.firstMb}→${m.lastMb} (max ${m.maxMb}, ${m.slopeMbPerMin} MB/min over the last 2/3)`).join('; ') + (r.memoryChecked ? '' : ' [too short to judge a leak: not checked]'),
    r.ok ? `OK: every accepted run completed, nothing duplicated${r.memoryChecked ? ', memory flat' : ''}` : `PROBLEMS:\n  ${r.problems.join('\n  ')}`,
  ];
  return lines.join('\n');
}

function cli(argv: string[]): Partial<SoakOptions> {
  const o: Partial<SoakOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    const need = () => {
      if (v === undefined) throw new Error(`soak: ${a} needs a value`);
      i++;
      return v;
    };
    if (a === '--duration') o.durationMs = parseDuration(need(), '--duration');
    else if (a === '--rate') o.rate = Number(need());
    else if (a === '--workers') o.workers = Number(need());
    else if (a === '--sample') o.sampleSec = parseDuration(need(), '--sample') / 1000;
    else if (a === '--max-growth') o.maxGrowthMbPerMin = Number(need());
    else if (a === '--fault-rate') o.faultRate = Number(need());
    else if (a === '--out') o.out = need();
    else throw new Error(`soak: unknown argument ${a} (use --duration 10m --rate 100 --workers 2 --sample 10s --max-growth 3 --fault-rate 0.05 --out file.json)`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = cli(process.argv.slice(2));
  opts.out ??= join(root, `bench/results/soak-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
  const r = await soak(opts);
  console.log(printSoak(r));
  console.log(`written: ${opts.out}`);
  process.exit(r.ok ? 0 : 1);
}
