/**
 * Gateway benchmark: a trivial workflow started synchronously (`POST /runs` with `wait`) at
 * concurrency 50 over loopback HTTP against a `baton serve` process (wrk drives it when
 * installed, else autocannon from this process: load generator and server never share an event
 * loop), beside the same run
 * started in-process at the same concurrency (`baton.run`, in its own process as well), both on
 * the embedded store, for the same time. The HTTP layer's cost is the difference of the p50
 * latencies.
 */
import autocannon from 'autocannon';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Baton } from '../src/index.js';

const root = join(import.meta.dirname, '..');

interface Side {
  /** At `concurrency`. */
  perSecond: number;
  p50: number;
  p99: number;
  /** One request at a time: what a single request costs, without queueing. */
  sequentialP50: number;
  sequentialP99: number;
}

export interface GatewayBench {
  /** Seconds of load per side and round. */
  seconds: number;
  rounds: number;
  concurrency: number;
  tool: 'wrk' | 'autocannon';
  /** The median round of each side (by p50). */
  inProcess: Side;
  http: Side;
  /** Median over rounds of the p50 difference at `concurrency` (queueing included), and one at a time. */
  addedP50Ms: number;
  addedSequentialP50Ms: number;
  /** Each round's p50 difference at `concurrency`, to show the spread. */
  addedP50ByRound: number[];
  /**
   * The same load against servers that do no work (bench/http-floor.ts): Node's HTTP server
   * alone, and a Fastify route with the gateway's body schema. Their p50 at `concurrency` is
   * the least an HTTP layer on them adds here.
   */
  floor: { node: Load; fastify: Load };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const median = (xs: number[]) => pct(xs, 50);

const TRIVIAL = '{ "name": "trivial", "steps": [{ "id": "a", "kind": "transform", "expression": "input.n + 1" }] }';

/**
 * Rounds alternate the two sides (in-process, then HTTP) for `seconds` each, so that a slow
 * spell of this shared machine falls on both rather than on one; the figures are medians.
 */
export async function gatewayBench(seconds: number, rounds: number, concurrency = 50): Promise<GatewayBench> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-gw-'));
  const server = spawn(process.execPath, [join(root, 'bin/baton.js'), 'serve', '--db', dir, '--port', '0', '--auth', 'off', '--concurrency', '256'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await announced(server, /baton serve: (http:\/\/\S+) /, 'baton serve');
    const reg = await fetch(`${url}/workflows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: TRIVIAL });
    if (reg.status !== 201) throw new Error(`gateway bench: registering answered ${reg.status}`);
    const body = JSON.stringify({ workflow: 'trivial', input: { n: 1 }, wait: 10 });
    // wrk (C, one thread) when installed: autocannon is JavaScript and on 2 cores competes with
    // the server for CPU, which then measures the load generator as much as the gateway.
    const wrk = existsSync('/usr/bin/wrk');
    const loadAt = async (at: string, s: number): Promise<Load> => wrk
      ? wrkLoad(`${at}/runs`, body, concurrency, s, dir)
      : toLoad(await autocannon({ url: `${at}/runs`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: concurrency, duration: s }));
    const load = (s: number) => loadAt(url, s);
    await load(1); // warm-up
    const ins: Side[] = [];
    const https: Side[] = [];
    for (let i = 0; i < rounds; i++) {
      ins.push(await inProcessSide(seconds, concurrency));
      const r = await load(seconds);
      // One at a time, timed here with sub-millisecond resolution (autocannon reports whole ms).
      const seq: number[] = [];
      for (let j = 0; j < SEQUENTIAL; j++) {
        const t = performance.now();
        const res = await fetch(`${url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.arrayBuffer();
        seq.push(performance.now() - t);
      }
      https.push({ perSecond: r.perSecond, p50: r.p50, p99: r.p99, sequentialP50: pct(seq, 50), sequentialP99: pct(seq, 99) });
    }
    const floor = { node: await floorLoad('node', loadAt, seconds), fastify: await floorLoad('fastify', loadAt, seconds) };
    const mid = (sides: Side[]) => [...sides].sort((a, b) => a.p50 - b.p50)[Math.floor((sides.length - 1) / 2)];
    const added = ins.map((s, i) => https[i].p50 - s.p50);
    return {
      seconds, rounds, concurrency, tool: wrk ? 'wrk' : 'autocannon', inProcess: mid(ins), http: mid(https),
      addedP50Ms: median(added), addedSequentialP50Ms: median(ins.map((s, i) => https[i].sequentialP50 - s.sequentialP50)), addedP50ByRound: added, floor,
    };
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs timed one at a time per round and side. */
const SEQUENTIAL = 1000;

export interface Load {
  perSecond: number;
  p50: number;
  p99: number;
}

function toLoad(r: autocannon.Result): Load {
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`gateway bench: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
  return { perSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
}

function wrkLoad(url: string, body: string, connections: number, seconds: number, dir: string): Load {
  const script = join(dir, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`);
  const r = spawnSync('/usr/bin/wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(r.stdout);
    if (!m) throw new Error(`wrk output without ${label}: ${r.stdout}`);
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  if (/Non-2xx/.test(r.stdout)) throw new Error(`gateway bench: non-2xx answers under load: ${r.stdout}`);
  return { perSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)![1]), p50: ms('50%'), p99: ms('99%') };
}

/**
 * The first match of `re` (its group 1) in a child's stdout; rejects if the child exits first.
 * Output after it (a server's log, a line a request) is read and dropped, as a log shipper
 * would, at no cost to this process.
 */
function announced(child: ChildProcess, re: RegExp, name: string): Promise<string> {
  return new Promise((res, rej) => {
    let out = '';
    let found = false;
    child.stdout!.on('data', (d: Buffer) => {
      if (found) return;
      out += d.toString();
      const m = re.exec(out);
      if (m) (found = true), res(m[1]);
    });
    child.on('exit', (c) => rej(new Error(`${name} exited ${c}`)));
  });
}

/** Ends a child process and waits for it (at once if it has already exited: a failed start must not hang the bench). */
async function stop(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit');
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** `load` against a do-nothing server of bench/http-floor.ts, in a process of its own, after a second of warm-up. */
async function floorLoad(kind: 'node' | 'fastify', load: (url: string, seconds: number) => Promise<Load>, seconds: number): Promise<Load> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'http-floor.ts'), kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await announced(child, /listening (http:\/\/\S+)/, `http-floor ${kind}`);
    await load(url, 1);
    return await load(url, seconds);
  } finally {
    await stop(child);
  }
}

/** The same runs started in-process, in a child process of its own (like the server). */
async function inProcessSide(seconds: number, concurrency: number): Promise<Side> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--in-process', String(seconds), String(concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`gateway bench: in-process side exited ${code}`);
  return JSON.parse(out) as Side;
}

async function runInProcess(seconds: number, concurrency: number): Promise<Side> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-gw-'));
  const baton = await Baton.open({ dir, concurrency: 256 });
  try {
    const v = await baton.register(TRIVIAL);
    // In-process: `concurrency` callers, each starting and awaiting runs back to back for
    // `seconds` (after a second of warm-up, as the HTTP side gets).
    const drive = async (ms: number, lat?: number[]) => {
      const until = performance.now() + ms;
      let n = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const s = performance.now();
          await baton.run(v, { n: n++ });
          lat?.push(performance.now() - s);
        }
      }));
      return n;
    };
    await drive(1000);
    const lat: number[] = [];
    const t0 = performance.now();
    const n = await drive(seconds * 1000, lat);
    const perSecond = n / ((performance.now() - t0) / 1000);
    const seq: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t = performance.now();
      await baton.run(v, { n: i });
      seq.push(performance.now() - t);
    }
    return { perSecond, p50: pct(lat, 50), p99: pct(lat, 99), sequentialP50: pct(seq, 50), sequentialP99: pct(seq, 99) };
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--in-process') {
  runInProcess(Number(process.argv[3]), Number(process.argv[4])).then((r) => process.stdout.write(JSON.stringify(r)), (e) => {
    console.error(e);
    process.exit(1);
  });
}
