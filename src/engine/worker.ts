/**
 * A worker runs claimed steps, at most `concurrency` at a time. Work reaches it two ways:
 * steps its own commits scheduled (handed over in memory, already claimed in the same
 * transaction, so the common path costs no extra write), and steps claimed from the store by
 * polling (runs started elsewhere, timers that came due, work of dead workers).
 *
 * Liveness: the worker row carries a lease renewed by a heartbeat. A worker whose lease
 * expired, or (same host) whose process is gone, loses its claims to the others.
 */
import { SoonestTimer } from '../util/soonest-timer.js';
import { hostname } from 'node:os';
import type { Store, WorkerInfo } from '../store/store.js';
import type { Work } from './executor.js';

export interface WorkerOptions {
  concurrency: number;
  pollIntervalMs: number;
  leaseMs: number;
}

export interface WorkerHost {
  readonly store: Store;
  /** Runs one attempt; resolves with what it made ready. Never rejects. */
  runWork(w: Work): Promise<{ ready: Work[]; later: Array<{ work: Work; dueAt: number }>; poke: boolean }>;
  /** Finalises runs left idle by a crash between their last step and their end. */
  finishIdleRuns(): Promise<void>;
  /** Periodic housekeeping on each heartbeat (undispatched emitted events). */
  sweep?(): Promise<void>;
  onError(e: unknown, where: string): void;
}

const HOST = hostname();

export class Worker {
  readonly info: WorkerInfo;
  private readonly queue: Work[] = [];
  private inflight = 0;
  private stopped = false;
  private readonly pollTimer = new SoonestTimer(() => void this.poll());
  private polling = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly host: WorkerHost, readonly id: string, private readonly opts: WorkerOptions) {
    this.info = { id, pid: process.pid, host: HOST, startedAt: Date.now() };
  }

  private unlisten: (() => Promise<void>) | undefined;

  async start(): Promise<void> {
    await this.host.store.registerWorker(this.info, this.opts.leaseMs);
    // Stores that can push (PostgreSQL NOTIFY) wake an idle worker at once; polling remains the safety net.
    if (this.host.store.listen) this.unlisten = await this.host.store.listen(() => this.poke());
    await this.reap();
    await this.host.finishIdleRuns();
    this.heartbeatTimer = setInterval(() => {
      this.host.store.heartbeat(this.id, this.opts.leaseMs).then(() => this.reap()).then(() => this.host.sweep?.()).catch((e) => this.host.onError(e, 'heartbeat'));
    }, Math.max(50, Math.floor(this.opts.leaseMs / 3)));
    this.heartbeatTimer.unref();
    this.schedulePoll(0);
  }

  /** Hands over steps this worker already holds (stopping: kept by nobody, their claims go back at unregister). */
  push(works: Work[]): void {
    if (works.length === 0 || this.stopped) return;
    for (const w of works) this.queue.push(w);
    this.pump();
  }

  /** Holds a step until its due time (short retries, short sleeps). */
  later(work: Work, dueAt: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.push([work]);
    }, Math.max(0, dueAt - Date.now()));
    this.timers.add(t);
  }

  /** Something claimable may exist now: poll soon. */
  poke(): void {
    this.schedulePoll(0);
  }

  /** Stops taking work, waits for attempts in flight, and gives back every claim. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    this.pollTimer.cancel();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    await this.unlisten?.().catch(() => undefined);
    // A poll already talking to the store finishes before the store may close.
    await this.pollDone;
    // Attempts that finish meanwhile hand their successors to nobody (push ignores them once
    // stopped; unregistering gives their claims back), so this ends when the last one does.
    // The grace timer holds the process: let go, it could exit (an idle connection pool is
    // all that is left) before the claims are given back.
    if (this.inflight > 0) {
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise((r) => (grace = setTimeout(r, graceMs)))]);
      clearTimeout(grace);
    }
    // A store that cannot take the write (disk full, connection lost) must not make stopping
    // fail: the worker row's lease simply expires and the reaper hands back what it held.
    await this.host.store.unregisterWorker(this.id).catch((e) => this.host.onError(e, 'unregister'));
  }

  get busy(): number {
    return this.inflight + this.queue.length;
  }

  private pump(): void {
    while (!this.stopped && this.inflight < this.opts.concurrency && this.queue.length > 0) {
      const w = this.queue.shift()!;
      this.inflight++;
      void this.host.runWork(w).then(
        (r) => this.done(r),
        (e) => {
          this.host.onError(e, `step ${w.runId}/${w.key}`);
          this.done({ ready: [], later: [], poke: true });
        },
      );
    }
  }

  private done(r: { ready: Work[]; later: Array<{ work: Work; dueAt: number }>; poke: boolean }): void {
    this.inflight--;
    for (const l of r.later) this.later(l.work, l.dueAt);
    if (r.ready.length) this.push(r.ready);
    else this.pump();
    if (r.poke) this.poke();
    if (this.inflight === 0 && (this.queue.length === 0 || this.stopped)) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of ws) f();
    }
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    this.pollTimer.arm(delayMs);
  }

  private pollDone: Promise<void> = Promise.resolve();

  private poll(): Promise<void> {
    if (this.stopped || this.polling) return this.pollDone;
    this.pollDone = this.pollOnce();
    return this.pollDone;
  }

  private async pollOnce(): Promise<void> {
    this.polling = true;
    let next = this.opts.pollIntervalMs;
    try {
      const room = this.opts.concurrency * 2 - this.busy;
      if (room > 0) {
        const claimed = await this.host.store.claimSteps(this.id, room, Date.now());
        this.push(claimed.map((c) => ({ runId: c.runId, key: c.key, attempt: c.attempt, fresh: false, claimed: true, state: c.state, retries: c.retries })));
        if (claimed.length === room) next = 0;
      }
      if (next > 0 && !this.stopped) {
        const due = await this.host.store.nextDueAt();
        if (due !== undefined) next = Math.max(0, Math.min(next, due - Date.now()));
      }
    } catch (e) {
      this.host.onError(e, 'poll');
      next = this.opts.pollIntervalMs * 5;
    } finally {
      this.polling = false;
    }
    this.schedulePoll(next);
  }

  /** Frees claims of dead workers so their steps run again here or elsewhere. */
  private async reap(): Promise<void> {
    const freed = await this.host.store.releaseDeadWorkers(Date.now(), (w) => isAlive(w, this.info));
    if (freed > 0) this.poke();
  }
}

/** True/false when we can tell (same host), undefined when only the lease can tell. */
function isAlive(w: WorkerInfo, me: WorkerInfo): boolean | undefined {
  if (w.id === me.id) return true;
  if (w.host !== me.host) return undefined;
  if (w.pid === me.pid) return false; // an earlier worker of this very process that was not stopped
  try {
    process.kill(w.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
