/**
 * The cluster chaos test: N worker processes (`baton worker --db postgres://…`) run many
 * workflows of mixed shapes (chains, fan-out + join over a map, durable timers, retried
 * failures) while a loop SIGKILLs a random worker every few seconds and starts a new one, and
 * PostgreSQL itself is restarted once mid-run. At the end every run must have completed with
 * the right output, every step's result must be recorded exactly once, and no timer may have
 * fired twice.
 *
 * Used by `test/chaos/chaos.test.ts` (short form, in CI) and `npm run chaos` (long form).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { Baton } from '../../src/index.js';
import type { StepFunction } from '../../src/steps/kind.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');

export interface ChaosOptions {
  runs: number;
  workers: number;
  /** Pause between kills, ms (a random value in this range). */
  killEvery: [number, number];
  restartPostgres: boolean;
  /** Admin connection (creates and drops the test database). */
  adminUrl: string;
  timeoutMs: number;
  log: (line: string) => void;
}

export interface ChaosReport {
  runs: number;
  completed: number;
  wrongOutputs: string[];
  notCompleted: string[];
  duplicateResults: string[];
  timersFiredTwice: string[];
  kills: number;
  postgresRestarted: boolean;
  seconds: number;
}

/** What each shape must output for input n. */
const EXPECTED: Record<string, (n: number) => unknown> = {
  'chaos-chain': (n) => n + 5,
  'chaos-fanout': (n) => 204 + (n + 1) + (2 * n + 1),
  'chaos-timer': (n) => n + 2,
  'chaos-flaky': (n) => n * 10,
};

export async function chaos(o: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const dbName = `baton_chaos_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: o.adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const url = new URL(o.adminUrl);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const dir = mkdtempSync(join(tmpdir(), 'baton-chaos-'));
  writeFileSync(join(dir, 'baton.config.yaml'), `functions:\n  - ${join(root, 'test/chaos/functions.mjs')}\n`);

  const workers = new Set<ChildProcess>();
  let kills = 0;
  let restarted = false;
  let stopping = false;
  const startWorker = () => {
    const p = spawn(process.execPath, [bin, 'worker', '--db', dbUrl, '--config', join(dir, 'baton.config.yaml'), '--concurrency', '16'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BATON_LEASE_MS: '3000' },
    });
    p.stderr!.on('data', () => undefined);
    workers.add(p);
    p.on('exit', () => workers.delete(p));
  };

  // Runs are admitted by a client without a worker, as an API server would.
  const functions = (await import(pathToFileURL(join(root, 'test/chaos/functions.mjs')).href)) as Record<string, StepFunction>;
  const client = await Baton.open({ store: await PostgresStore.open(dbUrl), worker: false, dir, functions });
  const report: ChaosReport = { runs: o.runs, completed: 0, wrongOutputs: [], notCompleted: [], duplicateResults: [], timersFiredTwice: [], kills: 0, postgresRestarted: false, seconds: 0 };
  try {
    const versions = [];
    for (const f of readdirSync(join(root, 'test/chaos/workflows')).sort()) versions.push(await client.registerFile(join(root, 'test/chaos/workflows', f)));
    const started: Array<{ id: string; workflow: string; n: number }> = [];
    for (let i = 0; i < o.runs; i++) {
      const v = versions[i % versions.length];
      started.push({ id: await client.start(v, { n: i }), workflow: v.name, n: i });
    }
    o.log(`admitted ${o.runs} runs; starting ${o.workers} workers`);
    for (let i = 0; i < o.workers; i++) startWorker();

    const chaosLoop = (async () => {
      while (!stopping) {
        await sleep(o.killEvery[0] + Math.random() * (o.killEvery[1] - o.killEvery[0]));
        if (stopping) break;
        const victims = [...workers];
        const victim = victims[Math.floor(Math.random() * victims.length)];
        if (victim) {
          victim.kill('SIGKILL');
          kills++;
          startWorker();
        }
        if (o.restartPostgres && !restarted && (await countDone(client)) >= o.runs * 0.3) {
          restarted = true;
          o.log('restarting PostgreSQL');
          const r = spawnSync('pg_ctlcluster', ['15', 'main', 'restart'], { stdio: 'ignore' });
          if (r.status !== 0) throw new Error('pg_ctlcluster 15 main restart failed');
        }
      }
    })();

    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      const done = await countDone(client).catch(() => -1);
      if (done >= o.runs || Date.now() > deadline) break;
      await sleep(500);
    }
    stopping = true;
    await chaosLoop;

    for (const s of started) {
      const r = await client.getRun(s.id);
      if (r.status !== 'completed') report.notCompleted.push(`${s.id} (${s.workflow}) ${r.status}${r.error ? `: ${r.error.message}` : ''}`);
      else {
        report.completed++;
        if (JSON.stringify(r.output) !== JSON.stringify(EXPECTED[s.workflow](s.n))) report.wrongOutputs.push(`${s.id} (${s.workflow}, n=${s.n}): ${JSON.stringify(r.output)}`);
      }
    }
    // Exactly once, checked in the database itself.
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    try {
      const dup = await db.query(`SELECT run_id, step_key, COUNT(*) AS n FROM events WHERE type = 'step.succeeded' GROUP BY 1, 2 HAVING COUNT(*) > 1`);
      report.duplicateResults = dup.rows.map((r) => `${r.run_id}/${r.step_key} ×${r.n}`);
      const missing = await db.query(`SELECT s.run_id, s.key FROM steps s WHERE s.status = 'succeeded'
                                        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.run_id = s.run_id AND e.step_key = s.key AND e.type = 'step.succeeded')`);
      report.duplicateResults.push(...missing.rows.map((r) => `${r.run_id}/${r.key} recorded without its event`));
      const timers = await db.query(`SELECT e.run_id, COUNT(*) AS n FROM events e JOIN runs r ON r.id = e.run_id
                                     WHERE r.workflow = 'chaos-timer' AND e.step_key = 'nap' AND e.type IN ('step.succeeded', 'step.resumed') GROUP BY 1 HAVING COUNT(*) > 1`);
      report.timersFiredTwice = timers.rows.map((r) => `${r.run_id} ×${r.n}`);
    } finally {
      await db.end();
    }
  } finally {
    stopping = true;
    await Promise.all([...workers].map((p) => new Promise<void>((res) => {
      p.once('exit', () => res());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    })));
    await client.close();
    const a = new pg.Client({ connectionString: o.adminUrl });
    await a.connect();
    await a.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [dbName]);
    await a.query(`DROP DATABASE IF EXISTS ${dbName}`);
    await a.end();
    rmSync(dir, { recursive: true, force: true });
  }
  report.kills = kills;
  report.postgresRestarted = restarted;
  report.seconds = Math.round((Date.now() - t0) / 100) / 10;
  return report;
}

async function countDone(client: Baton): Promise<number> {
  const runs = await client.store.listRuns({ status: ['completed', 'failed', 'cancelled'], limit: 1_000_000 });
  return runs.length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `npm run chaos`: the long form. */
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.env.CHAOS_RUNS ?? 2000);
  chaos({
    runs, workers: 4, killEvery: [2000, 5000], restartPostgres: true,
    adminUrl: process.env.BATON_TEST_PG_ADMIN ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    timeoutMs: 30 * 60_000, log: (l) => console.log(l),
  }).then((r) => {
    console.log(JSON.stringify(r, null, 2));
    const ok = r.completed === r.runs && !r.wrongOutputs.length && !r.duplicateResults.length && !r.timersFiredTwice.length;
    console.log(ok ? 'chaos: PASS' : 'chaos: FAIL');
    process.exit(ok ? 0 : 1);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
