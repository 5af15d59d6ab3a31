/**
 * Scaling benchmark: throughput of 1, 2 and 4 worker processes (`baton worker`) sharing one
 * PostgreSQL database, and of the embedded SQLite engine for reference, in one run.
 *
 * Each configuration gets a fresh database with N three-step workflows of no-op steps admitted
 * up front and held paused; the workers start and go idle; then one statement releases every
 * run (and NOTIFYs the workers) and the clock runs until the last run has completed.
 * Steps/s = 3N / seconds. The machine has 2 cores shared by the workers and PostgreSQL, so
 * the scaling ratio says how much of the work is the engine's (which more processes spread)
 * and how much the database's (which they share).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { Baton } from '../src/index.js';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { createTestDatabase } from '../test/helpers/stores.js';

const root = resolve(import.meta.dirname, '..');

export interface ScalingResult {
  runs: number;
  sqlite: number;
  postgres: Record<number, number>;
}

export async function clusterScaling(runs: number, workerCounts = [1, 2, 4]): Promise<ScalingResult> {
  const out: ScalingResult = { runs, sqlite: await sqliteReference(runs), postgres: {} };
  for (const w of workerCounts) out.postgres[w] = await postgresThroughput(runs, w);
  return out;
}

async function sqliteReference(runs: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-scale-'));
  const { noop } = (await import(new URL('./cluster/functions.mjs', import.meta.url).href)) as { noop: (i: unknown) => Promise<unknown> };
  const baton = await Baton.open({ dir, functions: { noop }, concurrency: 32 });
  try {
    const v = await baton.registerFile(join(root, 'bench/cluster/three.yaml'));
    const t0 = performance.now();
    const ids = [];
    for (let i = 0; i < runs; i++) ids.push(await baton.start(v, { i }));
    await Promise.all(ids.map((id) => baton.wait(id)));
    return (runs * 3) / ((performance.now() - t0) / 1000);
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresThroughput(runs: number, workers: number): Promise<number> {
  const db = await createTestDatabase('baton_scale');
  const dir = mkdtempSync(join(tmpdir(), 'baton-scale-'));
  writeFileSync(join(dir, 'baton.config.yaml'), `functions:\n  - ${join(root, 'bench/cluster/functions.mjs')}\n`);
  const procs: ChildProcess[] = [];
  const { noop } = (await import(new URL('./cluster/functions.mjs', import.meta.url).href)) as { noop: (i: unknown) => Promise<unknown> };
  const client = await Baton.open({ store: await PostgresStore.open(db.url), worker: false, dir, functions: { noop } });
  const sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  try {
    const v = await client.registerFile(join(root, 'bench/cluster/three.yaml'));
    const ids = [];
    for (let i = 0; i < runs; i++) ids.push(await client.start(v, { i }));
    await sql.query(`UPDATE runs SET status = 'paused'`);
    // Workers start and go idle (nothing is claimable while every run is paused).
    await Promise.all(Array.from({ length: workers }, () => new Promise<void>((ready, fail) => {
      const p = spawn(process.execPath, [join(root, 'bin/baton.js'), 'worker', '--db', db.url, '--config', join(dir, 'baton.config.yaml'), '--concurrency', '32'], { stdio: ['ignore', 'ignore', 'pipe'] });
      procs.push(p);
      p.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('baton worker w_')) ready();
      });
      p.on('exit', (code) => fail(new Error(`worker exited with ${code}`)));
    })));
    const t0 = performance.now();
    await sql.query(`UPDATE runs SET status = 'running' WHERE status = 'paused'; SELECT pg_notify('baton_work', '')`);
    for (;;) {
      const r = await sql.query(`SELECT COUNT(*)::int AS n FROM runs WHERE status = 'completed'`);
      if (r.rows[0].n >= runs) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    return (runs * 3) / ((performance.now() - t0) / 1000);
  } finally {
    for (const p of procs) {
      p.removeAllListeners('exit');
      p.kill('SIGTERM');
    }
    await Promise.all(procs.map((p) => new Promise((res) => (p.exitCode !== null ? res(null) : p.once('exit', res)))));
    await sql.end();
    await client.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
