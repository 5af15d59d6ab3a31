/**
 * The embedded default store: one SQLite file (better-sqlite3, WAL, synchronous=NORMAL).
 *
 * better-sqlite3 is synchronous, so each transaction below runs to completion without
 * interleaving with other JavaScript in this process; BEGIN IMMEDIATE plus busy_timeout
 * serialises writers across processes that open the same file.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { BatonError } from '../../errors.js';
import type { RunStatus, StepStatus } from '../../engine/states.js';
import type {
  ApiKeyRecord, ClaimedStep, LineageQuery, LineageRecord, ServiceStatusRecord, StageRecord, CommitResult, CostLine, CostQuery, DeliveryResult, EventDelivery, EventRecord, OutboxRecord, Fence, FinishRun, ModelCallRecord, NewEvent, NewRun, NewStep, RetryRun, RunFilter,
  ApprovalChange, ApprovalFilter, ApprovalOpResult, ApprovalRecord, NewSchedule, RunRecord, SchedulePatch, ScheduleRecord, StepCommit, StepRecord, Store, TaskFinish, TaskLease, TaskOpResult, TaskPoll, TaskRecord, VersionRecord, WorkerInfo,
} from '../store.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { CheckpointThread } from './checkpointer.js';
import { anchorHash, eventContentHash, eventDataText, linkHash, type AnchorRecord, type AuditEventRow, type PurgedRunRecord } from '../audit-chain.js';
import { approvalChangeValues, checkApproval, checkLease, parseJsonColumn, toApproval, schedulePatchSql, toAnchor, toApiKey, toAuditEvent, toPurged, toEvent, toLineage, toRun, toSchedule, toServiceStatus, toStage, toStep, toTask, toVersion, LATEST_VERSIONS, type Row } from '../rows.js';


export interface SqliteStoreOptions {
  /** How long a writer waits for another process's lock before failing. Default 10 s. */
  busyTimeoutMs?: number;
  /** `NORMAL` (default, durable across process crashes) or `FULL` (also across power loss). */
  synchronous?: 'NORMAL' | 'FULL';
  /** How often the WAL is checkpointed into the database file. Default 1 s. */
  checkpointIntervalMs?: number;
  /**
   * Where checkpoints run: `timer`, on this thread (the default: nothing else to start), or
   * `thread`, a connection on a thread of its own (checkpointer.ts), so that a busy
   * long-running process never stalls on one (`baton serve` and `baton worker` use it).
   */
  checkpoint?: 'timer' | 'thread';
  /**
   * How long group commit gathers writes. `tick` (default): the writes of the current
   * microtasks, the least latency for one caller. `io`: also those of every I/O callback ready
   * now, which a server wants: requests arrive in separate callbacks, and one transaction for
   * all of them doubles what it admits under load, at a few µs per commit for a lone caller.
   */
  groupCommit?: 'tick' | 'io';
}

/** `column IN (?, …)` for a list filter (an empty list matches nothing); its values go onto `args`. */
function inList(column: string, values: readonly unknown[], args: unknown[]): string {
  args.push(...values);
  return `${column} IN (${values.map(() => '?').join(',') || "''"})`;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepare>;

  private readonly groupAcrossIo: boolean;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.location = path;
    this.groupAcrossIo = opts.groupCommit === 'io';
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path, { timeout: opts.busyTimeoutMs ?? 10_000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      this.db.pragma('foreign_keys = ON');
      migrate(this.db, path);
      // Checkpoints move the WAL into the database file. Run inside a commit (SQLite's default)
      // they add their cost to whichever step happens to trigger them; here they run on a timer,
      // off the step path, and the WAL is truncated on close.
      if (path !== ':memory:') {
        this.db.pragma('wal_autocheckpoint = 0');
        const every = opts.checkpointIntervalMs ?? 1000;
        // A thread that cannot start (or dies) leaves the checkpoints to the timer.
        if (opts.checkpoint === 'thread') this.checkpointThread = new CheckpointThread(path, every, () => this.checkpoint(), () => this.checkpointOnTimer(every));
        else this.checkpointOnTimer(every);
      }
    } catch (e) {
      throw openError(e, path);
    }
    this.s = prepare(this.db);
  }

  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointThread: CheckpointThread | undefined;

  private checkpointOnTimer(every: number): void {
    if (this.checkpointTimer || !this.db.open) return;
    this.checkpointTimer = setInterval(() => this.checkpoint(), every);
    this.checkpointTimer.unref();
  }

  private checkpoint(mode: 'PASSIVE' | 'TRUNCATE' = 'PASSIVE'): void {
    try {
      if (this.db.open && !this.db.inTransaction) this.db.pragma(`wal_checkpoint(${mode})`);
    } catch {
      // Busy readers or writers: the next tick tries again; the WAL only grows meanwhile.
    }
  }

  // ---------------------------------------------------------------- versions

  async putVersion(v: Omit<VersionRecord, 'seq' | 'createdAt'>, check?: (latest: VersionRecord[]) => void): Promise<VersionRecord> {
    // BEGIN IMMEDIATE: what `check` reads cannot change before the insert commits.
    return this.write(() => {
      const existing = this.s.getVersion.get(v.versionId) as Row | undefined;
      if (existing) {
        if (existing.hash !== v.hash) throw new BatonError('BATON_VERSION_CONFLICT', { versionId: v.versionId });
        return toVersion(existing);
      }
      check?.(this.latestVersionsNow());
      const seqRow = this.s.maxSeq.get(v.name) as { seq: number | null };
      const rec: VersionRecord = { ...v, seq: (seqRow.seq ?? 0) + 1, createdAt: Date.now() };
      this.s.insertVersion.run(rec.versionId, rec.name, rec.hash, rec.seq, rec.document, rec.source ?? null, rec.createdAt);
      return rec;
    });
  }

  async getVersion(versionId: string): Promise<VersionRecord | undefined> {
    const r = this.s.getVersion.get(versionId) as Row | undefined;
    return r && toVersion(r);
  }

  async latestVersion(name: string): Promise<VersionRecord | undefined> {
    const r = this.s.latestVersion.get(name) as Row | undefined;
    return r && toVersion(r);
  }

  async latestVersions(): Promise<VersionRecord[]> {
    return this.latestVersionsNow();
  }

  private latestVersionsNow(): VersionRecord[] {
    return (this.s.latestVersions.all() as Row[]).map(toVersion);
  }

  async listVersions(name?: string): Promise<VersionRecord[]> {
    const rows = (name ? this.s.listVersionsByName.all(name) : this.s.listVersions.all()) as Row[];
    return rows.map(toVersion);
  }

  // ---------------------------------------------------------------- runs

  admitRun(run: NewRun): Promise<{ created: boolean; queued?: boolean }> {
    return this.batched(() => this.insertRun(run));
  }

  private insertRun(run: NewRun): { created: boolean; queued?: boolean } {
    const fair: Fairness = { namespace: run.namespace ?? 'default', priority: run.priority ?? 0 };
    // Held back while `limit` runs with its key are active (the write lock makes the count exact).
    const queued = run.concurrency !== undefined && (this.s.activeWithKey.get(run.concurrency.key) as { n: number }).n >= run.concurrency.limit;
    const res = this.s.insertRun.run({
      id: run.id, versionId: run.versionId, workflow: run.workflow, status: queued ? 'queued' : 'running', input: run.inputJson,
      parentRunId: run.parentRunId ?? null, parentStepKey: run.parentStepKey ?? null, createdAt: run.createdAt, budget: run.budget ?? null,
      namespace: fair.namespace, priority: fair.priority, concurrencyKey: run.concurrency?.key ?? null, concurrencyLimit: run.concurrency?.limit ?? null,
      replayOf: run.replayOf ?? null,
      trace: run.trace ?? null,
      configHash: run.configHash ?? null,
      eventHops: run.eventHops ?? null,
    });
    if (res.changes === 0) return { created: false };
    for (const st of run.steps) this.insertStep(run.id, queued ? { ...st, owner: undefined } : st, fair);
    this.insertEvents(run.id, run.events);
    return queued ? { created: true, queued } : { created: true };
  }

  private insertStep(runId: string, st: NewStep, fair: Fairness): void {
    this.s.insertStep.run(runId, st.key, st.stepId, st.index ?? null, st.parentKey ?? null, st.status, st.dueAt ?? 0, st.owner ?? null, st.pendingDeps, st.state === undefined ? null : JSON.stringify(st.state), fair.namespace, fair.priority);
  }

  /**
   * After a run with a concurrency key ended: starts the oldest queued runs with that key while
   * fewer than its limit are active. Their root steps are already scheduled and unowned.
   */
  private promoteQueued(runId: string, now: number): void {
    const r = this.s.runKey.get(runId) as { concurrency_key: string | null; concurrency_limit: number | null } | undefined;
    if (!r?.concurrency_key) return;
    let active = (this.s.activeWithKey.get(r.concurrency_key) as { n: number }).n;
    while (active < (r.concurrency_limit ?? 1)) {
      const next = this.s.oldestQueued.get(r.concurrency_key) as { id: string } | undefined;
      if (!next) return;
      this.s.setRunStatusIf.run('running', now, next.id, 'queued');
      this.insertEvents(next.id, [{ type: 'run.dequeued', at: now, data: { after: runId } }]);
      active++;
    }
  }

  /**
   * Appends in order at the run's next seqs, each hash-chained to the one before (audit-chain.ts);
   * the caller holds the write lock, so reading the last event (seq and hash, one index seek) is race-free.
   */
  private insertEvents(runId: string, events: NewEvent[]): string | undefined {
    if (events.length === 0) return undefined;
    const last = this.s.lastEvent.get(runId) as { seq: number; hash: string | null } | undefined;
    let seq = last?.seq ?? 0;
    let h = last?.hash ?? '';
    for (const e of events) {
      const data = eventDataText(e);
      h = linkHash(h, runId, ++seq, eventContentHash(e.type, e.stepKey, e.at, data));
      this.s.insertEvent.run(runId, seq, e.type, e.stepKey ?? null, e.at, data, h);
    }
    return h;
  }

  /** Appends the run's chain head to the store-wide anchor chain (the run just ended, in this transaction). */
  private anchorRun(runId: string, at: number, head?: string): void {
    const final = head ?? (this.s.lastEvent.get(runId) as { hash: string | null } | undefined)?.hash ?? '';
    const top = this.s.anchorHead.get() as { seq: number; anchor_hash: string } | undefined;
    const seq = (top?.seq ?? 0) + 1;
    const prev = top?.anchor_hash ?? '';
    this.s.insertAnchor.run(seq, runId, final, prev, anchorHash(prev, seq, runId, final, at), at);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const r = this.s.getRun.get(runId) as Row | undefined;
    return r && toRun(r);
  }

  async listRuns(f: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.status?.length) {
      where.push(inList('status', f.status, args));
    }
    if (f.workflow) {
      where.push('workflow = ?');
      args.push(f.workflow);
    }
    if (f.before !== undefined && f.beforeId !== undefined) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      args.push(f.before, f.before, f.beforeId);
    } else if (f.before !== undefined) {
      where.push('created_at < ?');
      args.push(f.before);
    }
    if (f.finishedBefore !== undefined) {
      where.push('finished_at IS NOT NULL AND finished_at < ?');
      args.push(f.finishedBefore);
    }
    if (f.namespaces && !f.namespaces.includes('*')) {
      where.push(inList('namespace', f.namespaces, args));
    }
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
    args.push(f.limit ?? 50);
    return (this.db.prepare(sql).all(...args) as Row[]).map(toRun);
  }

  async getSteps(runId: string): Promise<StepRecord[]> {
    return (this.s.getSteps.all(runId) as Row[]).map(toStep);
  }

  async getStep(runId: string, key: string): Promise<StepRecord | undefined> {
    const r = this.s.getStep.get(runId, key) as Row | undefined;
    return r && toStep(r);
  }

  async getOutputs(runId: string, keys?: string[]): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    const rows = (keys
      ? keys.map((k) => this.s.getOutput.get(runId, k)).filter(Boolean)
      : this.s.getOutputs.all(runId)) as Array<{ key: string; output: string | null }>;
    for (const r of rows) if (r.output !== null) out.set(r.key, JSON.parse(r.output));
    return out;
  }

  async getEvents(runId: string, afterId = 0): Promise<EventRecord[]> {
    return (this.s.getEvents.all(runId, afterId) as Row[]).map(toEvent);
  }

  async appendEvents(runId: string, events: NewEvent[]): Promise<void> {
    this.write(() => this.insertEvents(runId, events));
  }

  // ---------------------------------------------------------------- run control

  async setRunStatus(runId: string, from: RunStatus[], to: RunStatus, events: NewEvent[]): Promise<boolean> {
    return this.write(() => {
      const r = this.s.getRunStatus.get(runId) as { status: RunStatus } | undefined;
      if (!r || !from.includes(r.status)) return false;
      this.s.setRunStatus.run(to, Date.now(), runId);
      this.insertEvents(runId, events);
      return true;
    });
  }

  async cancelRun(runId: string, events: NewEvent[]): Promise<boolean> {
    return this.write(() => {
      const r = this.s.getRunStatus.get(runId) as { status: RunStatus } | undefined;
      if (!r || r.status === 'completed' || r.status === 'failed' || r.status === 'cancelled') return false;
      const now = Date.now();
      this.s.finishRunRow.run('cancelled', null, null, now, now, runId);
      this.s.cancelSteps.run(now, runId);
      this.anchorRun(runId, now, this.insertEvents(runId, events));
      this.promoteQueued(runId, now);
      return true;
    });
  }

  finishRun(f: FinishRun): Promise<boolean> {
    return this.batched(() => this.finishSync(f));
  }

  private finishSync(f: FinishRun): boolean {
    const r = this.s.getRunStatus.get(f.runId) as { status: RunStatus } | undefined;
    if (!r || r.status === 'completed' || r.status === 'failed' || r.status === 'cancelled') return false;
    const now = Date.now();
    this.s.finishRunRow.run(f.status, f.outputJson ?? null, f.error ? JSON.stringify(f.error) : null, now, now, f.runId);
    if (f.status === 'failed') this.s.cancelSteps.run(now, f.runId);
    this.anchorRun(f.runId, now, this.insertEvents(f.runId, f.events));
    if (f.parent) this.wake(f.parent.runId, f.parent.key, f.parent.state, f.parent.events);
    this.promoteQueued(f.runId, now);
    return true;
  }

  async retryRun(x: RetryRun): Promise<{ ok: boolean; status?: 'running' | 'queued' }> {
    return this.write(() => {
      const r = this.s.getRun.get(x.runId) as Row | undefined;
      // The plan was read outside this transaction: it holds only if the run is still as it saw it.
      if (!r || !x.from.includes(r.status as RunStatus) || ((r.finished_at as number | null) ?? undefined) !== x.finishedAt) return { ok: false };
      for (const parent of x.deleteChildrenOf) this.s.deleteChildren.run(x.runId, parent);
      for (const st of x.reset) {
        this.s.resetStep.run({
          status: st.status, attempt: st.attempt, pendingDeps: st.pendingDeps, liveDeps: st.liveDeps,
          dueAt: st.status === 'scheduled' ? x.at : 0, state: st.state === null || st.state === undefined ? null : JSON.stringify(st.state),
          runId: x.runId, key: st.key,
        });
      }
      // Back in line behind its concurrency key like a new admission (this run, ended, is not counted).
      const key = r.concurrency_key as string | null;
      const queued = key !== null && (this.s.activeWithKey.get(key) as { n: number }).n >= ((r.concurrency_limit as number | null) ?? 1);
      const status = queued ? 'queued' : 'running';
      this.s.reopenRun.run(status, x.at, x.runId);
      this.insertEvents(x.runId, x.events);
      return { ok: true, status };
    });
  }

  async idleRuns(limit: number): Promise<string[]> {
    return (this.s.idleRuns.all(limit) as Array<{ id: string }>).map((r) => r.id);
  }

  // ---------------------------------------------------------------- workers and claims

  async registerWorker(w: WorkerInfo, leaseMs: number): Promise<void> {
    this.write(() => this.s.insertWorker.run(w.id, w.pid, w.host, w.startedAt, Date.now() + leaseMs));
  }

  async heartbeat(workerId: string, leaseMs: number): Promise<void> {
    this.write(() => this.s.heartbeat.run(Date.now() + leaseMs, workerId));
  }

  async unregisterWorker(workerId: string): Promise<void> {
    this.write(() => {
      this.s.releaseAll.run(workerId);
      this.s.deleteWorker.run(workerId);
    });
  }

  async releaseDeadWorkers(now: number, isAlive: (w: WorkerInfo) => boolean | undefined): Promise<number> {
    const workers = this.s.listWorkers.all() as Array<{ id: string; pid: number; host: string; started_at: number; lease_until: number }>;
    let released = 0;
    for (const w of workers) {
      const alive = isAlive({ id: w.id, pid: w.pid, host: w.host, startedAt: w.started_at });
      // A process we can see is gone is dead at once; otherwise only an expired lease counts.
      if (alive === true || (alive === undefined && w.lease_until > now)) continue;
      released += this.write(() => {
        const n = this.s.releaseAll.run(w.id).changes;
        this.s.deleteWorker.run(w.id);
        return n;
      });
    }
    return released;
  }

  async claimSteps(workerId: string, limit: number, now: number): Promise<ClaimedStep[]> {
    return this.write(() => {
      // Each namespace's best ready steps by index (namespaces found by index seeks, not a
      // scan), then taken in turns: a namespace with 100 000 ready steps gets no more of this
      // claim than one with a single step. Waiting steps whose time-out passed come last.
      const perNamespace: Array<Array<{ run_id: string; key: string; attempt: number }>> = [];
      for (let ns = this.s.firstReadyNamespace.get(now) as { ns: string | null }; ns?.ns != null; ns = this.s.nextReadyNamespace.get(now, ns.ns) as { ns: string | null }) {
        perNamespace.push(this.s.readyInNamespace.all(ns.ns, now, limit) as Array<{ run_id: string; key: string; attempt: number }>);
      }
      const rows: Array<{ run_id: string; key: string; attempt: number }> = [];
      for (let i = 0; rows.length < limit && perNamespace.some((l) => l.length > i); i++) {
        for (const l of perNamespace) if (i < l.length && rows.length < limit) rows.push(l[i]);
      }
      if (rows.length < limit) rows.push(...(this.s.timedOut.all(now, limit - rows.length) as typeof rows));
      const out: ClaimedStep[] = [];
      const retries = new Map<string, number>();
      for (const r of rows) {
        const got = this.s.claim.get(workerId, r.run_id, r.key) as { attempt: number; state: string | null } | undefined;
        if (!got) continue;
        if (!retries.has(r.run_id)) retries.set(r.run_id, (this.s.runRetries.get(r.run_id) as { retries: number } | undefined)?.retries ?? 0);
        out.push({ runId: r.run_id, key: r.key, attempt: got.attempt, state: parseJsonColumn(got.state), retries: retries.get(r.run_id)! });
      }
      return out;
    });
  }

  async releaseClaims(workerId: string, keys?: Array<{ runId: string; key: string }>): Promise<void> {
    this.write(() => {
      if (!keys) this.s.releaseAll.run(workerId);
      else for (const k of keys) this.s.releaseOne.run(k.runId, k.key, workerId);
    });
  }

  async queueStats(now: number): Promise<{ ready: number; oldestDueAt?: number }> {
    const r = this.s.queueStats.get(now) as { n: number; oldest: number | null };
    return r.oldest === null ? { ready: r.n } : { ready: r.n, oldestDueAt: r.oldest };
  }

  async nextDueAt(): Promise<number | undefined> {
    const r = this.s.nextDue.get() as { due: number | null };
    return r.due ?? undefined;
  }

  markStarted(fence: Fence, at: number, events: NewEvent[]): Promise<boolean> {
    return this.batched(() => {
      const ok = this.s.markStarted.run(at, fence.runId, fence.key, fence.owner, fence.attempt).changes === 1;
      if (ok) this.insertEvents(fence.runId, events);
      return ok;
    });
  }

  commit(c: StepCommit): Promise<CommitResult> {
    return this.batched(() => this.commitSync(c));
  }

  /**
   * Group commit: writes that arrive while the event loop is busy (step commits, run
   * admissions and endings) are applied together in one write transaction, each inside its
   * own savepoint so that one failing write does not undo the others, when the current
   * microtasks have run. Each write is still atomic; a batch only shares the transaction's
   * fixed cost (locks, page writes).
   */
  private batched<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.length === 1) {
        if (this.groupAcrossIo) setImmediate(this.flush);
        else queueMicrotask(this.flush);
      }
    });
  }

  private pending: Array<{ fn: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];

  private readonly flush = (): void => {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 1) {
      try {
        batch[0].resolve(this.write(batch[0].fn));
      } catch (e) {
        batch[0].reject(e);
      }
      return;
    }
    const results: Array<{ ok: true; v: unknown } | { ok: false; e: unknown }> = [];
    try {
      this.write(() => {
        for (const item of batch) {
          this.s.savepoint.run();
          try {
            results.push({ ok: true, v: item.fn() });
            this.s.release.run();
          } catch (e) {
            this.s.rollbackTo.run();
            this.s.release.run();
            results.push({ ok: false, e });
          }
        }
      });
    } catch (e) {
      for (const item of batch) item.reject(e);
      return;
    }
    batch.forEach((item, i) => {
      const r = results[i];
      if (r.ok) item.resolve(r.v);
      else item.reject(r.e);
    });
  };

  /**
   * The one transaction per step attempt: record the outcome (fenced on the claim), append
   * events, count down dependents and schedule those whose count reached zero.
   */
  private commitSync(c0: StepCommit): CommitResult {
    const now = Date.now();
    // A wait arming with a lookback takes a buffered event instead of parking (one writer: no race).
    let consumed: { seq: number } | undefined;
    let c = c0;
    if (c0.inbox && c0.update.status === 'waiting' && c0.update.waitKey) {
      const row = this.s.inboxOldest.get(c0.update.waitKey, c0.inbox.namespace, c0.inbox.since, now) as { seq: number; payload: string; arrived_at: number } | undefined;
      if (row) {
        consumed = { seq: row.seq };
        const r = c0.inbox.resume(JSON.parse(row.payload) as unknown, row.arrived_at);
        c = { ...c0, update: { ...c0.update, status: 'scheduled', waitKey: null, owner: c0.fence.owner, dueAt: now, state: r.state }, events: [...c0.events, ...r.events] };
      }
    }
    const { fence, update: u } = c;
    // The common outcome gets a statement of its own: fewer parameters to bind on the hot path.
    const plainSuccess = u.status === 'succeeded' && !u.error && u.state === undefined && u.pendingDeps === undefined && !u.owner;
    const res = plainSuccess
      ? this.s.succeedStep.run(u.outputJson ?? null, u.startedAt ?? null, u.finishedAt ?? null, fence.runId, fence.key, fence.owner, fence.attempt)
      : this.s.updateStep.run(
          u.status, u.outputJson ?? null, u.error ? JSON.stringify(u.error) : null, u.attempt ?? fence.attempt,
          u.dueAt ?? 0, u.owner === undefined ? null : u.owner, u.state === undefined ? null : JSON.stringify(u.state),
          u.waitKey ?? null, u.pendingDeps ?? null, u.startedAt ?? null, u.finishedAt ?? null,
          fence.runId, fence.key, fence.owner, fence.attempt,
        );
    if (res.changes !== 1) return { ok: false, ready: [], runIdle: false };
    this.insertEvents(fence.runId, c.events);
    if (c.task) {
      const t = c.task;
      this.s.insertTask.run(t.id, fence.runId, fence.key, fence.attempt, t.type, t.namespace, t.inputJson, t.leaseMs, t.maxAttempts ?? null, t.createdAt, t.createdAt, t.createdAt);
    }
    if (c.approval) {
      const a = c.approval;
      this.s.insertApproval.run({
        id: a.id, runId: fence.runId, key: fence.key, attempt: fence.attempt, ns: a.namespace, workflow: a.workflow, approvers: JSON.stringify(a.approvers),
        evidence: a.evidenceJson, hash: a.evidenceHash, summary: a.summary ?? null, form: a.formJson, deadline: a.deadlineAt ?? null,
        expiry: a.onExpiryJson ?? null, reminders: a.remindersJson ?? null, reminder: a.nextReminderAt ?? null, notify: a.notify ?? null, now: a.createdAt,
      });
    }
    const ready: string[] = [];
    if (consumed) {
      this.s.inboxConsume.run(now, `${fence.runId}/${fence.key}`, consumed.seq);
      ready.push(fence.key);
    }
    for (const o of c.outbox ?? []) this.s.outboxInsert.run(o.id, o.runId, o.namespace, o.eventJson, now);
    let attempts: Record<string, number> | undefined;
    if (c.insert) {
      const fair = this.s.runFairness.get(fence.runId) as Fairness;
      for (const st of c.insert) {
        this.insertStep(fence.runId, st, fair);
        if (st.status === 'scheduled' && st.owner === fence.owner) ready.push(st.key);
      }
    }
    if (c.childRun) this.insertRun(c.childRun);
    if (c.decrement) {
      for (const d of c.decrement) {
        // One statement counts down and, at zero, schedules and claims (SET reads the old row).
        // A map step waits ('waiting') for its items the way a join waits ('pending') for its inputs.
        // The run's pause is read in the same statement: a paused run's new steps stay unclaimed.
        const r = this.s.decrement.get({ live: d.live ? 1 : 0, owner: fence.owner, now, runId: fence.runId, key: d.key }) as { pending_deps: number; status: StepStatus; owner: string | null; attempt: number } | undefined;
        if (r && r.pending_deps === 0 && r.status === 'scheduled' && r.owner === fence.owner) {
          ready.push(d.key);
          if (r.attempt !== 1) (attempts ??= {})[d.key] = r.attempt;
        }
      }
    }
    if (c.schedule) {
      for (const key of c.schedule) {
        const r = this.s.schedule.get(fence.owner, now, fence.runId, key) as { attempt: number } | undefined;
        if (r) {
          ready.push(key);
          if (r.attempt !== 1) (attempts ??= {})[key] = r.attempt;
        }
      }
    }
    if (c.startNextChildOf) {
      const next = this.s.nextPendingChild.get(fence.runId, c.startNextChildOf) as { key: string } | undefined;
      if (next) {
        this.s.schedule.run(fence.owner, now, fence.runId, next.key);
        ready.push(next.key);
      }
    }
    if (c.cancelChildrenOf) this.s.cancelChildren.run(now, fence.runId, c.cancelChildrenOf);
    if (c.wake) this.wake(fence.runId, c.wake.key, c.wake.state, c.wake.events);
    if (c.finishRun) {
      this.s.finishRunRow.run(c.finishRun.status, null, c.finishRun.error ? JSON.stringify(c.finishRun.error) : null, now, now, fence.runId);
      this.s.cancelSteps.run(now, fence.runId);
      this.anchorRun(fence.runId, now, this.insertEvents(fence.runId, c.finishRun.events));
      if (c.finishRun.parent) this.wake(c.finishRun.parent.runId, c.finishRun.parent.key, c.finishRun.parent.state, c.finishRun.parent.events);
      this.promoteQueued(fence.runId, now);
      return { ok: true, ready: [], runIdle: false };
    }
    // A run paused by anyone (any process) keeps its new ready steps unclaimed until resumed
    // (countdowns checked that themselves; routes, map items and windows are checked here).
    if (ready.length && (c.insert || c.schedule || c.startNextChildOf)) {
      const rs = this.s.runStatusForCommit.get(fence.runId) as { status: RunStatus } | undefined;
      if (rs?.status === 'paused') {
        for (const key of ready) this.s.releaseOne.run(fence.runId, key, fence.owner);
        ready.length = 0;
      }
    }
    let runIdle = false;
    if (ready.length === 0 && u.status !== 'scheduled' && u.status !== 'running') {
      // Two one-row probes, not a scan: after each branch of a fan-out some sibling is running.
      if (!this.s.anyBusy.get(fence.runId)) {
        if (!this.s.anyWaiting.get(fence.runId)) runIdle = true;
        else this.s.setRunStatusIf.run('waiting', now, fence.runId, 'running');
      }
    }
    if (runIdle && c.finishIfIdle && this.finishSync(c.finishIfIdle)) return { ok: true, ready, runIdle: false, runFinished: true };
    return { ok: true, ready, runIdle, ...(consumed !== undefined ? { consumed: true } : {}), ...(attempts ? { attempts } : {}) };
  }

  async pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]> {
    return (this.s.outboxPending.all(before, limit) as Array<{ id: string; run_id: string; namespace: string; event: string; created_at: number }>)
      .map((r) => ({ id: r.id, runId: r.run_id, namespace: r.namespace, event: JSON.parse(r.event) as unknown, createdAt: r.created_at }));
  }

  async markDispatched(id: string, at: number): Promise<void> {
    this.write(() => this.s.outboxDone.run(at, id));
  }

  async deliverEvent(d: EventDelivery): Promise<DeliveryResult> {
    return this.write(() => {
      // Lazy retention: whatever expired goes now (an index range, usually empty).
      this.s.inboxPrune.run(d.at);
      const ns = d.namespace ?? null;
      if (d.eventId !== undefined && this.s.inboxSeen.get(d.waitKey, d.eventId, ns ?? '')) return { buffered: false, duplicate: true };
      const payload = JSON.stringify(d.payload ?? null);
      for (const st of (this.s.waitingOldest.all(d.waitKey, ns, ns) as Row[]).map(toStep)) {
        if (this.s.wake.run(JSON.stringify(d.state(st) ?? null), d.at, st.runId, st.key).changes !== 1) continue;
        this.s.setRunStatusIf.run('running', d.at, st.runId, 'waiting');
        this.insertEvents(st.runId, d.events.map((e) => ({ ...e, stepKey: st.key })));
        // Remembered (consumed) only to recognise a redelivery of the same id.
        if (d.eventId !== undefined) this.s.inboxInsert.run(d.waitKey, d.eventId, payload, d.at, d.expiresAt, d.at, `${st.runId}/${st.key}`, ns);
        return { woken: { runId: st.runId, key: st.key }, buffered: false, duplicate: false };
      }
      this.s.inboxInsert.run(d.waitKey, d.eventId ?? null, payload, d.at, d.expiresAt, null, null, ns);
      return { buffered: true, duplicate: false };
    });
  }

  async signal(waitKey: string, state: (step: StepRecord) => unknown, events: NewEvent[], runId?: string): Promise<Array<{ runId: string; key: string }>> {
    return this.write(() => {
      const rows = (this.s.waiting.all(waitKey) as Row[]).map(toStep).filter((st) => runId === undefined || st.runId === runId);
      for (const st of rows) {
        this.wake(st.runId, st.key, state(st), events.map((e) => ({ ...e, stepKey: st.key })));
      }
      return rows.map((r) => ({ runId: r.runId, key: r.key }));
    });
  }

  /** Puts a waiting step back on the schedule with its new resume state. */
  private wake(runId: string, key: string, state: unknown, events: NewEvent[]): void {
    const now = Date.now();
    if (this.s.wake.run(JSON.stringify(state ?? null), now, runId, key).changes === 1) {
      this.s.setRunStatusIf.run('running', now, runId, 'waiting');
      this.insertEvents(runId, events);
    }
  }

  // ---------------------------------------------------------------- external tasks

  async pollTask(q: TaskPoll): Promise<TaskRecord | undefined> {
    const params = { types: JSON.stringify(q.types), nss: q.namespaces ? JSON.stringify(q.namespaces) : null, now: q.now };
    // Idle long polls ask often: a read finds nothing without taking the write lock.
    if (!this.s.pollTask.get(params)) return undefined;
    return this.write(() => {
      const row = this.s.pollTask.get(params) as Row | undefined;
      if (!row) return undefined;
      const prev = toTask(row);
      const leaseMs = q.leaseMs ?? prev.leaseMs;
      this.s.leaseTask.run(q.workerId, q.token, leaseMs, q.now + leaseMs, q.now, prev.id);
      this.insertEvents(prev.runId, [{
        type: 'task.leased', stepKey: prev.stepKey, at: q.now,
        data: { task_id: prev.id, worker_id: q.workerId, attempts: prev.attempts + 1, lease_expires_at: new Date(q.now + leaseMs).toISOString(), ...(prev.status === 'leased' ? { expired_lease_of: prev.leaseOwner } : {}) },
      }]);
      return toTask(this.s.getTask.get(prev.id) as Row);
    });
  }

  async usedUpTasks(now: number, limit: number): Promise<TaskRecord[]> {
    return (this.s.usedUpTasks.all(now, limit) as Row[]).map(toTask);
  }

  async heartbeatTask(lease: TaskLease, now: number): Promise<TaskOpResult> {
    return this.write(() => {
      const t = this.task(lease.taskId);
      const refused = checkLease(t, lease);
      if (refused) return refused;
      this.s.extendLease.run(now, now, lease.taskId);
      return { result: 'ok' as const, task: this.task(lease.taskId)! };
    });
  }

  async completeTask(f: TaskFinish): Promise<TaskOpResult> {
    return this.write(() => this.finishTask(f, 'completed'));
  }

  async failTask(f: TaskFinish): Promise<TaskOpResult> {
    return this.write(() => this.finishTask(f, f.retryAt === undefined ? 'failed' : 'pending'));
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    return this.task(taskId);
  }

  private task(id: string): TaskRecord | undefined {
    const r = this.s.getTask.get(id) as Row | undefined;
    return r && toTask(r);
  }

  /** Fenced on the lease (inside the write lock, so the check and the writes see the same rows). */
  private finishTask(f: TaskFinish, status: 'completed' | 'failed' | 'pending'): TaskOpResult {
    const t = this.task(f.lease.taskId);
    const refused = checkLease(t, f.lease, f.leaseExpiredBy);
    if (refused) return refused;
    const now = f.now;
    if (f.wake) {
      if (this.s.wakeTaskStep.run(JSON.stringify(f.wake.state ?? null), now, t!.runId, t!.stepKey, `task:${t!.id}`).changes !== 1) return { result: 'gone', task: t! };
      this.s.setRunStatusIf.run('running', now, t!.runId, 'waiting');
    }
    this.s.settleTask.run({ status, output: f.outputJson ?? null, error: f.error ? JSON.stringify(f.error) : null, availableAt: f.retryAt ?? t!.availableAt, now, id: t!.id });
    this.insertEvents(t!.runId, [...f.events, ...(f.wake?.events ?? [])].map((e) => ({ ...e, stepKey: t!.stepKey })));
    return { result: 'ok', task: this.task(t!.id)! };
  }

  // ---------------------------------------------------------------- human approvals

  async getApproval(id: string): Promise<ApprovalRecord | undefined> {
    const r = this.s.getApproval.get(id) as Row | undefined;
    return r && toApproval(r);
  }

  async listApprovals(f: ApprovalFilter = {}): Promise<ApprovalRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.status?.length) {
      where.push(inList('a.status', f.status, args));
    }
    if (f.namespaces && !f.namespaces.includes('*')) {
      where.push(inList('a.namespace', f.namespaces, args));
    }
    if (f.runId) {
      where.push('a.run_id = ?');
      args.push(f.runId);
    }
    const sql = `SELECT a.*, ${APPROVAL_AWAITED} AS awaited FROM approvals a ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY a.created_at DESC, a.id DESC LIMIT ?`;
    args.push(f.limit ?? 100);
    return (this.db.prepare(sql).all(...args) as Row[]).map(toApproval);
  }

  async dueApprovals(now: number, limit: number): Promise<ApprovalRecord[]> {
    return (this.s.dueApprovals.all(now, now, limit) as Row[]).map(toApproval);
  }

  async nextApprovalDueAt(): Promise<number | undefined> {
    const r = this.s.nextApprovalDue.get() as { due: number | null };
    return r.due ?? undefined;
  }

  async updateApproval(ch: ApprovalChange): Promise<ApprovalOpResult> {
    return this.write(() => {
      const a = this.approval(ch.id);
      const refused = checkApproval(a, ch);
      if (refused) return refused;
      if (ch.wake) {
        // Fenced on the step still waiting for this very approval.
        if (this.s.wakeTaskStep.run(JSON.stringify(ch.wake.state ?? null), ch.now, a!.runId, a!.stepKey, `approval:${a!.id}`).changes !== 1) return { result: 'gone' as const, approval: a! };
        this.s.setRunStatusIf.run('running', ch.now, a!.runId, 'waiting');
      }
      this.s.changeApproval.run(approvalChangeValues(ch));
      this.insertEvents(a!.runId, [...ch.events, ...(ch.wake?.events ?? [])].map((e) => ({ ...e, stepKey: a!.stepKey })));
      return { result: 'ok' as const, approval: this.approval(ch.id)! };
    });
  }

  private approval(id: string): ApprovalRecord | undefined {
    const r = this.s.getApproval.get(id) as Row | undefined;
    return r && toApproval(r);
  }

  // ---------------------------------------------------------------- model calls, cost, cache

  async reserveBudget(runId: string, amount: number): Promise<{ ok: boolean; budget?: number; spent: number; reserved: number }> {
    return this.batched(() => {
      const ok = this.s.reserve.run({ runId, amount }).changes === 1;
      const r = this.s.budgetOf.get(runId) as { budget: number | null; cost_spent: number; cost_reserved: number } | undefined;
      return { ok, budget: r?.budget ?? undefined, spent: r?.cost_spent ?? 0, reserved: r?.cost_reserved ?? 0 };
    });
  }

  recordModelCall(call: ModelCallRecord, release: number): Promise<void> {
    const { runId, stepKey, at, ...rest } = call;
    const data = JSON.stringify(rest);
    return this.batched(() => {
      const last = this.s.lastEvent.get(runId) as { seq: number; hash: string | null } | undefined;
      const seq = (last?.seq ?? 0) + 1;
      this.s.insertEvent.run(runId, seq, 'model.call', stepKey, at, data, linkHash(last?.hash ?? '', runId, seq, eventContentHash('model.call', stepKey, at, data)));
      this.s.insertCall.run({
        runId, seq, workflow: call.workflow, stepKey, attempt: call.attempt, service: call.service, provider: call.provider, model: call.model,
        version: call.version ?? null, operation: call.operation, outcome: call.outcome, errorCode: call.error?.code ?? null,
        inputTokens: call.inputTokens, outputTokens: call.outputTokens, cachedTokens: call.cachedTokens, cost: call.cost, latencyMs: Math.round(call.latencyMs), at,
      });
      this.s.settle.run({ runId, cost: call.cost, release });
    });
  }

  async getModelCalls(runId: string): Promise<ModelCallRecord[]> {
    const rows = this.db.prepare(`SELECT e.run_id, e.step_key, e.at, e.data FROM model_calls c JOIN events e ON e.run_id = c.run_id AND e.seq = c.seq
                                  WHERE c.run_id = ? ORDER BY c.seq`).all(runId) as Row[];
    return rows.map((r) => ({ ...(JSON.parse(r.data as string) as object), runId: r.run_id, stepKey: r.step_key, at: r.at }) as ModelCallRecord);
  }

  async costReport(q: CostQuery): Promise<CostLine[]> {
    const key = { service: 'service', workflow: 'workflow', run: 'run_id', model: `provider || '/' || model || COALESCE('@' || version, '')` }[q.by];
    const where: string[] = [];
    const args: Record<string, unknown> = {};
    if (q.since !== undefined) (where.push('at >= @since'), (args.since = q.since));
    if (q.runId) (where.push('run_id = @runId'), (args.runId = q.runId));
    if (q.workflow) (where.push('workflow = @workflow'), (args.workflow = q.workflow));
    if (q.service) (where.push('service = @service'), (args.service = q.service));
    const rows = this.db.prepare(`SELECT ${key} AS key, COUNT(*) AS calls,
        SUM(outcome IN ('error', 'degraded', 'skipped')) AS failed, SUM(outcome = 'cache_hit') AS cache_hits,
        SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cached_tokens) AS cached_tokens,
        SUM(cost) AS cost, AVG(CASE WHEN outcome = 'ok' THEN latency_ms END) AS avg_latency
      FROM model_calls ${where.length ? `WHERE ${where.join(' AND ')}` : ''} GROUP BY 1 ORDER BY SUM(cost) DESC, 1`).all(args) as Row[];
    return rows.map((r) => ({
      key: r.key as string, calls: r.calls as number, failed: r.failed as number, cacheHits: r.cache_hits as number,
      inputTokens: r.input_tokens as number, outputTokens: r.output_tokens as number, cachedTokens: r.cached_tokens as number,
      cost: Math.round((r.cost as number) * 1e9) / 1e9, avgLatencyMs: Math.round(((r.avg_latency as number | null) ?? 0) * 10) / 10,
    }));
  }

  async cacheGet(key: string, now: number): Promise<string | undefined> {
    return (this.s.cacheGet.get(key, now) as { value: string } | undefined)?.value;
  }

  cachePut(key: string, valueJson: string, now: number, expiresAt: number): Promise<void> {
    return this.batched(() => void this.s.cachePut.run(key, valueJson, now, expiresAt));
  }

  // ---------------------------------------------------------------- shared service limits

  async takeTokens(name: string, perMinute: number, n: number, now: number): Promise<number> {
    return this.write(() => {
      const row = this.s.getBucket.get(name) as { tokens: number; updated_at: number } | undefined;
      const have = Math.min(perMinute, row ? row.tokens + ((now - row.updated_at) * perMinute) / 60_000 : perMinute);
      const need = Math.min(n, perMinute);
      const wait = have >= need ? 0 : Math.ceil(((need - have) * 60_000) / perMinute);
      this.s.putBucket.run(name, wait === 0 ? have - need : have, now);
      return wait;
    });
  }

  async acquireSlot(name: string, limit: number, holder: string, now: number, expiresAt: number): Promise<boolean> {
    return this.write(() => {
      this.s.expireSlots.run(name, now);
      if ((this.s.countSlots.get(name) as { n: number }).n >= limit) return false;
      this.s.putSlot.run(name, holder, expiresAt);
      return true;
    });
  }

  async releaseSlot(name: string, holder: string): Promise<void> {
    this.write(() => this.s.deleteSlot.run(name, holder));
  }

  // ---------------------------------------------------------------- gateway API keys

  async putApiKey(k: ApiKeyRecord): Promise<void> {
    this.write(() => this.db.prepare(`INSERT INTO api_keys (id, hash, name, role, namespaces, rate_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(k.id, k.hash, k.name, k.role, JSON.stringify(k.namespaces), k.ratePerMinute, k.createdAt));
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
    return r && toApiKey(r);
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (this.db.prepare('SELECT * FROM api_keys ORDER BY created_at, id').all() as Row[]).map(toApiKey);
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    return this.write(() => this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1);
  }

  // ---------------------------------------------------------------- governance

  async putServiceConfig(hash: string, configJson: string, at: number): Promise<void> {
    this.write(() => this.db.prepare('INSERT INTO service_configs (hash, config, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING').run(hash, configJson, at));
  }

  async getServiceConfig(hash: string): Promise<string | undefined> {
    const r = this.db.prepare('SELECT config FROM service_configs WHERE hash = ?').get(hash) as { config: string } | undefined;
    return r?.config;
  }

  async lastRunConfig(versionId: string): Promise<string | undefined> {
    const r = this.db.prepare('SELECT config_hash FROM runs WHERE version_id = ? AND config_hash IS NOT NULL ORDER BY created_at DESC LIMIT 1').get(versionId) as { config_hash: string } | undefined;
    return r?.config_hash;
  }

  async promoteVersion(p: Omit<StageRecord, 'seq'>): Promise<StageRecord> {
    return this.write(() => {
      const res = this.db.prepare('INSERT INTO workflow_stages (name, stage, version_id, promoted_by, reason, at) VALUES (?, ?, ?, ?, ?, ?)').run(p.name, p.stage, p.versionId, p.by ?? null, p.reason ?? null, p.at);
      return { ...p, seq: Number(res.lastInsertRowid) };
    });
  }

  async stageVersion(name: string, stage: string): Promise<StageRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM workflow_stages WHERE name = ? AND stage = ? ORDER BY seq DESC LIMIT 1').get(name, stage) as Row | undefined;
    return r && toStage(r);
  }

  async stageHistory(name: string): Promise<StageRecord[]> {
    return (this.db.prepare('SELECT * FROM workflow_stages WHERE name = ? ORDER BY seq').all(name) as Row[]).map(toStage);
  }

  async putServiceStatus(r: Omit<ServiceStatusRecord, 'seq'>): Promise<ServiceStatusRecord> {
    return this.write(() => {
      const res = this.db.prepare('INSERT INTO service_status (service, status, reason, changed_by, at) VALUES (?, ?, ?, ?, ?)').run(r.service, r.status, r.reason ?? null, r.by ?? null, r.at);
      return { ...r, seq: Number(res.lastInsertRowid) };
    });
  }

  async serviceStatusHistory(service?: string): Promise<ServiceStatusRecord[]> {
    const rows = service === undefined
      ? this.db.prepare('SELECT * FROM service_status ORDER BY seq').all()
      : this.db.prepare('SELECT * FROM service_status WHERE service = ? ORDER BY seq').all(service);
    return (rows as Row[]).map(toServiceStatus);
  }

  async lineage(q: LineageQuery): Promise<LineageRecord[]> {
    const args: unknown[] = [q.service];
    if (q.version !== undefined) args.push(q.version);
    if (q.since !== undefined) args.push(q.since);
    const sql = `SELECT m.run_id, r.workflow, r.version_id, r.status, r.namespace, r.created_at, m.version, m.model, COUNT(*) AS calls, MIN(m.at) AS first_at, MAX(m.at) AS last_at
       FROM model_calls m JOIN runs r ON r.id = m.run_id
       WHERE m.outcome <> 'skipped' AND m.service = ?${q.version !== undefined ? ' AND m.version = ?' : ''}${q.since !== undefined ? ' AND m.at >= ?' : ''}
       GROUP BY m.run_id, r.workflow, r.version_id, r.status, r.namespace, r.created_at, m.version, m.model
       ORDER BY r.created_at DESC, m.run_id DESC LIMIT ?`;
    return toLineage(this.db.prepare(sql).all(...args, q.limit ?? 1000) as Row[]);
  }

  // ---------------------------------------------------------------- cron schedules

  async syncSchedules(workflow: string, versionId: string, schedules: NewSchedule[], now: number): Promise<boolean> {
    return this.write(() => {
      // Under the write lock, so a version registered meanwhile by another process is seen.
      const latest = this.s.latestVersion.get(workflow) as Row | undefined;
      if (!latest || latest.version_id !== versionId) return false;
      const keep = schedules.map((x) => x.id);
      this.db.prepare(`DELETE FROM schedules WHERE workflow = ? AND id NOT IN (${keep.map(() => '?').join(', ')})`).run(workflow, ...keep);
      const upsert = this.db.prepare(`INSERT INTO schedules (id, workflow, namespace, trigger_id, version_id, cron, timezone, missed, max_catch_up, next_fire_at, created_at, updated_at)
        VALUES (@id, @workflow, @namespace, @triggerId, @versionId, @cron, @timezone, @missed, @maxCatchUp, @nextFireAt, @now, @now)
        ON CONFLICT (id) DO UPDATE SET version_id = excluded.version_id, missed = excluded.missed, max_catch_up = excluded.max_catch_up,
          next_fire_at = CASE WHEN schedules.cron = excluded.cron AND schedules.timezone = excluded.timezone THEN schedules.next_fire_at ELSE excluded.next_fire_at END,
          cron = excluded.cron, timezone = excluded.timezone, updated_at = excluded.updated_at`);
      for (const x of schedules) upsert.run({ ...x, nextFireAt: x.nextFireAt ?? null, now });
      return true;
    });
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    return (this.db.prepare('SELECT * FROM schedules ORDER BY workflow, trigger_id').all() as Row[]).map(toSchedule);
  }

  async getSchedule(id: string): Promise<ScheduleRecord | undefined> {
    const r = this.db.prepare('SELECT * FROM schedules WHERE id = ?').get(id) as Row | undefined;
    return r && toSchedule(r);
  }

  async claimSchedules(owner: string, now: number, leaseUntil: number, limit: number): Promise<ScheduleRecord[]> {
    // Most looks find nothing due: a read answers them without taking the write lock.
    const due = 'paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ? AND (lease_until IS NULL OR lease_until < ?)';
    if (!this.db.prepare(`SELECT 1 FROM schedules WHERE ${due} LIMIT 1`).get(now, now)) return [];
    // BEGIN IMMEDIATE serialises this with every other process's claim on the same file.
    return this.write(() => (this.db.prepare(`UPDATE schedules SET lease_owner = ?, lease_until = ? WHERE id IN (
        SELECT id FROM schedules WHERE ${due} ORDER BY next_fire_at LIMIT ?) RETURNING *`).all(owner, leaseUntil, now, now, limit) as Row[]).map(toSchedule));
  }

  async updateSchedule(id: string, patch: SchedulePatch, now: number, owner?: string): Promise<boolean> {
    const { sets, values } = schedulePatchSql(patch, () => '?', (b) => (b ? 1 : 0));
    sets.push('updated_at = ?');
    values.push(now);
    let fence = '';
    if (owner !== undefined) {
      if (patch.holdUntil !== undefined) {
        sets.push('lease_until = ?');
        values.push(patch.holdUntil);
      } else sets.push('lease_owner = NULL', 'lease_until = NULL');
      fence = ' AND lease_owner = ?';
    }
    return this.write(() => this.db.prepare(`UPDATE schedules SET ${sets.join(', ')} WHERE id = ?${fence}`).run(...values, id, ...(owner !== undefined ? [owner] : [])).changes === 1);
  }

  async nextScheduleAt(): Promise<number | undefined> {
    const r = this.db.prepare('SELECT MIN(MAX(next_fire_at, COALESCE(lease_until, 0))) AS at FROM schedules WHERE paused = 0 AND next_fire_at IS NOT NULL').get() as { at: number | null };
    return r.at ?? undefined;
  }

  // ---------------------------------------------------------------- audit trail

  async auditEvents(runId: string): Promise<AuditEventRow[]> {
    const rows = this.db.prepare('SELECT seq, type, step_key, at, data, hash FROM events WHERE run_id = ? ORDER BY seq').all(runId) as Row[];
    return rows.map(toAuditEvent);
  }

  async auditAnchors(): Promise<AnchorRecord[]> {
    return (this.db.prepare('SELECT * FROM audit_anchors ORDER BY seq').all() as Row[]).map(toAnchor);
  }

  async auditRunIds(): Promise<string[]> {
    return (this.db.prepare('SELECT id FROM runs ORDER BY created_at, id').all() as Array<{ id: string }>).map((r) => r.id);
  }

  async purgeRuns(runs: Array<{ runId: string; mode: 'purge' | 'archive'; archive?: string }>, at: number): Promise<string[]> {
    return this.write(() => {
      const done: string[] = [];
      for (const x of runs) {
        const r = this.db.prepare(`SELECT workflow, status FROM runs WHERE id = ?`).get(x.runId) as { workflow: string; status: string } | undefined;
        if (!r || !['completed', 'failed', 'cancelled'].includes(r.status)) continue;
        const last = this.s.lastEvent.get(x.runId) as { hash: string | null } | undefined;
        for (const t of ['model_calls', 'events', 'steps', 'tasks', 'approvals', 'event_outbox']) this.db.prepare(`DELETE FROM ${t} WHERE run_id = ?`).run(x.runId);
        this.db.prepare('DELETE FROM runs WHERE id = ?').run(x.runId);
        this.db.prepare('INSERT OR REPLACE INTO audit_purged (run_id, workflow, final_hash, purged_at, mode, archive) VALUES (?, ?, ?, ?, ?, ?)')
          .run(x.runId, r.workflow, last?.hash ?? null, at, x.mode, x.archive ?? null);
        done.push(x.runId);
      }
      return done;
    });
  }

  async blobReferenced(ref: string): Promise<boolean> {
    // A retention-time scan (rare, batch): blob references are JSON text inside these columns.
    const like = `%${ref.replace(/[%_]/g, '')}%`;
    const sql = `SELECT 1 FROM runs WHERE input LIKE @like OR output LIKE @like
      UNION ALL SELECT 1 FROM steps WHERE output LIKE @like OR state LIKE @like
      UNION ALL SELECT 1 FROM events WHERE data LIKE @like
      UNION ALL SELECT 1 FROM tasks WHERE input LIKE @like OR output LIKE @like LIMIT 1`;
    return this.db.prepare(sql).get({ like }) !== undefined;
  }

  async listPurged(): Promise<PurgedRunRecord[]> {
    return (this.db.prepare('SELECT * FROM audit_purged ORDER BY purged_at, run_id').all() as Row[]).map(toPurged);
  }

  async close(): Promise<void> {
    clearInterval(this.checkpointTimer);
    await this.checkpointThread?.stop();
    if (this.pending.length) await new Promise((r) => setImmediate(r));
    if (this.db.open) {
      this.checkpoint('TRUNCATE');
      this.db.close();
    }
  }

  /**
   * Runs `fn` in a BEGIN IMMEDIATE transaction (prepared BEGIN/COMMIT: cheaper than building a
   * better-sqlite3 transaction wrapper per call); maps lock time-outs to BATON_STORE_BUSY.
   */
  private write<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    try {
      this.s.begin.run();
      let out: T;
      try {
        out = fn();
        this.s.commit.run();
      } catch (e) {
        if (this.db.inTransaction) this.s.rollback.run();
        throw e;
      }
      return out;
    } catch (e) {
      if (e instanceof BatonError) throw e;
      const code = (e as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new BatonError('BATON_STORE_BUSY', { path: this.location, detail: (e as Error).message }, { cause: e });
      if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw new BatonError('BATON_STORE_CORRUPT', { path: this.location, detail: (e as Error).message }, { cause: e });
      // A full disk: SQLite rolled the transaction back (the file stays consistent), so this is
      // a clear, retryable refusal rather than an unknown crash.
      if (code === 'SQLITE_FULL') throw new BatonError('BATON_STORE_FULL', { path: this.location, detail: (e as Error).message }, { cause: e });
      throw e;
    }
  }
}

/** SQL: the task's step still waits for it (not timed out, cancelled or finished). */
const TASK_AWAITED = `EXISTS (SELECT 1 FROM steps s WHERE s.run_id = t.run_id AND s.key = t.step_key AND s.status = 'waiting' AND s.wait_key = 'task:' || t.id)`;
/** SQL: the approval's step still waits for it (not cancelled or finished). */
const APPROVAL_AWAITED = `EXISTS (SELECT 1 FROM steps s WHERE s.run_id = a.run_id AND s.key = a.step_key AND s.status = 'waiting' AND s.wait_key = 'approval:' || a.id)`;

function prepare(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    begin: p('BEGIN IMMEDIATE'),
    commit: p('COMMIT'),
    rollback: p('ROLLBACK'),
    savepoint: p('SAVEPOINT step_commit'),
    release: p('RELEASE step_commit'),
    rollbackTo: p('ROLLBACK TO step_commit'),
    getVersion: p('SELECT * FROM workflow_versions WHERE version_id = ?'),
    maxSeq: p('SELECT MAX(seq) AS seq FROM workflow_versions WHERE name = ?'),
    insertVersion: p('INSERT INTO workflow_versions (version_id, name, hash, seq, document, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    latestVersion: p('SELECT * FROM workflow_versions WHERE name = ? ORDER BY seq DESC LIMIT 1'),
    listVersions: p('SELECT * FROM workflow_versions ORDER BY name, seq'),
    latestVersions: p(LATEST_VERSIONS),
    listVersionsByName: p('SELECT * FROM workflow_versions WHERE name = ? ORDER BY seq'),
    insertRun: p(`INSERT INTO runs (id, version_id, workflow, status, input, parent_run_id, parent_step_key, created_at, updated_at, budget,
                    namespace, priority, concurrency_key, concurrency_limit, replay_of, trace, config_hash, event_hops)
                  VALUES (@id, @versionId, @workflow, @status, @input, @parentRunId, @parentStepKey, @createdAt, @createdAt, @budget,
                    @namespace, @priority, @concurrencyKey, @concurrencyLimit, @replayOf, @trace, @configHash, @eventHops) ON CONFLICT (id) DO NOTHING`),
    activeWithKey: p(`SELECT COUNT(*) AS n FROM runs WHERE concurrency_key = ? AND status IN ('running', 'waiting', 'paused', 'pending')`),
    oldestQueued: p(`SELECT id FROM runs WHERE concurrency_key = ? AND status = 'queued' ORDER BY created_at, rowid LIMIT 1`),
    runKey: p('SELECT concurrency_key, concurrency_limit FROM runs WHERE id = ?'),
    runFairness: p('SELECT namespace, priority FROM runs WHERE id = ?'),
    queueStats: p(`SELECT COUNT(*) AS n, MIN(s.due_at) AS oldest FROM steps s JOIN runs r ON r.id = s.run_id
                   WHERE s.status = 'scheduled' AND s.owner IS NULL AND s.due_at <= ? AND r.status IN ('running', 'waiting', 'pending')`),
    firstReadyNamespace: p(`SELECT MIN(namespace) AS ns FROM steps WHERE status = 'scheduled' AND owner IS NULL AND due_at <= ?`),
    nextReadyNamespace: p(`SELECT MIN(namespace) AS ns FROM steps WHERE status = 'scheduled' AND owner IS NULL AND due_at <= ? AND namespace > ?`),
    readyInNamespace: p(`SELECT s.run_id, s.key, s.attempt FROM steps s JOIN runs r ON r.id = s.run_id
                         WHERE s.namespace = ? AND s.status = 'scheduled' AND s.owner IS NULL AND s.due_at <= ?
                           AND r.status IN ('running', 'waiting', 'pending')
                         ORDER BY s.priority DESC, s.due_at LIMIT ?`),
    timedOut: p(`SELECT s.run_id, s.key, s.attempt FROM steps s JOIN runs r ON r.id = s.run_id
                 WHERE s.status = 'waiting' AND s.due_at > 0 AND s.owner IS NULL AND s.due_at <= ?
                   AND r.status IN ('running', 'waiting', 'pending')
                 ORDER BY s.due_at LIMIT ?`),
    getBucket: p('SELECT tokens, updated_at FROM service_buckets WHERE name = ?'),
    putBucket: p('INSERT INTO service_buckets (name, tokens, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at'),
    expireSlots: p('DELETE FROM service_slots WHERE name = ? AND expires_at <= ?'),
    countSlots: p('SELECT COUNT(*) AS n FROM service_slots WHERE name = ?'),
    putSlot: p('INSERT OR REPLACE INTO service_slots (name, holder, expires_at) VALUES (?, ?, ?)'),
    deleteSlot: p('DELETE FROM service_slots WHERE name = ? AND holder = ?'),
    reserve: p(`UPDATE runs SET cost_reserved = cost_reserved + @amount
                WHERE id = @runId AND (budget IS NULL OR cost_spent + cost_reserved + @amount <= budget + 1e-12)`),
    budgetOf: p('SELECT budget, cost_spent, cost_reserved FROM runs WHERE id = ?'),
    settle: p(`UPDATE runs SET cost_spent = cost_spent + @cost, cost_reserved = MAX(0, cost_reserved - @release) WHERE id = @runId`),
    insertCall: p(`INSERT INTO model_calls (run_id, seq, workflow, step_key, attempt, service, provider, model, version, operation, outcome,
                     error_code, input_tokens, output_tokens, cached_tokens, cost, latency_ms, at)
                   VALUES (@runId, @seq, @workflow, @stepKey, @attempt, @service, @provider, @model, @version, @operation, @outcome,
                     @errorCode, @inputTokens, @outputTokens, @cachedTokens, @cost, @latencyMs, @at)`),
    cacheGet: p('SELECT value FROM model_cache WHERE key = ? AND expires_at > ?'),
    cachePut: p(`INSERT INTO model_cache (key, value, created_at, expires_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at, expires_at = excluded.expires_at`),
    insertStep: p(`INSERT INTO steps (run_id, key, step_id, idx, parent_key, status, due_at, owner, pending_deps, state, namespace, priority)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    insertEvent: p('INSERT INTO events (run_id, seq, type, step_key, at, data, hash) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    lastEvent: p('SELECT seq, hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1'),
    anchorHead: p('SELECT seq, anchor_hash FROM audit_anchors ORDER BY seq DESC LIMIT 1'),
    insertAnchor: p('INSERT INTO audit_anchors (seq, run_id, run_final_hash, prev_anchor_hash, anchor_hash, at) VALUES (?, ?, ?, ?, ?, ?)'),
    succeedStep: p(`UPDATE steps SET status = 'succeeded', output = ?, owner = NULL, due_at = 0, wait_key = NULL, started_at = ?, finished_at = ?
                    WHERE run_id = ? AND key = ? AND owner = ? AND attempt = ? AND status IN ('scheduled', 'running', 'waiting')`),
    getRun: p('SELECT * FROM runs WHERE id = ?'),
    getRunStatus: p('SELECT status FROM runs WHERE id = ?'),
    setRunStatus: p('UPDATE runs SET status = ?, updated_at = ? WHERE id = ?'),
    setRunStatusIf: p('UPDATE runs SET status = ?, updated_at = ? WHERE id = ? AND status = ?'),
    finishRunRow: p('UPDATE runs SET status = ?, output = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?'),
    cancelSteps: p(`UPDATE steps SET status = 'cancelled', owner = NULL, wait_key = NULL, finished_at = ?
                    WHERE run_id = ? AND status IN ('pending', 'scheduled', 'running', 'waiting')`),
    deleteChildren: p('DELETE FROM steps WHERE run_id = ? AND parent_key = ?'),
    resetStep: p(`UPDATE steps SET status = @status, attempt = @attempt, pending_deps = @pendingDeps, live_deps = @liveDeps, due_at = @dueAt,
                    owner = NULL, output = NULL, error = NULL, state = @state, wait_key = NULL, started_at = NULL, finished_at = NULL
                  WHERE run_id = @runId AND key = @key`),
    reopenRun: p('UPDATE runs SET status = ?, output = NULL, error = NULL, finished_at = NULL, updated_at = ?, retries = retries + 1 WHERE id = ?'),
    runRetries: p('SELECT retries FROM runs WHERE id = ?'),
    idleRuns: p(`SELECT r.id FROM runs r WHERE r.status IN ('running', 'waiting')
                 AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.status IN ('scheduled', 'running', 'waiting')) LIMIT ?`),
    getSteps: p('SELECT * FROM steps WHERE run_id = ? ORDER BY parent_key IS NOT NULL, parent_key, idx, key'),
    getStep: p('SELECT * FROM steps WHERE run_id = ? AND key = ?'),
    getOutput: p('SELECT key, output FROM steps WHERE run_id = ? AND key = ?'),
    getOutputs: p('SELECT key, output FROM steps WHERE run_id = ? AND output IS NOT NULL'),
    getEvents: p('SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq'),
    insertWorker: p('INSERT OR REPLACE INTO workers (id, pid, host, started_at, lease_until) VALUES (?, ?, ?, ?, ?)'),
    heartbeat: p('UPDATE workers SET lease_until = ? WHERE id = ?'),
    deleteWorker: p('DELETE FROM workers WHERE id = ?'),
    listWorkers: p('SELECT * FROM workers'),
    releaseAll: p(`UPDATE steps SET owner = NULL, status = CASE WHEN status = 'running' THEN 'scheduled' ELSE status END
                   WHERE owner = ?`),
    releaseOne: p(`UPDATE steps SET owner = NULL, status = CASE WHEN status = 'running' THEN 'scheduled' ELSE status END
                   WHERE run_id = ? AND key = ? AND owner = ?`),
    // Due scheduled steps, and waiting steps whose time-out has passed (due_at > 0).
    claim: p(`UPDATE steps SET owner = ? WHERE run_id = ? AND key = ? AND owner IS NULL AND status IN ('scheduled', 'waiting') RETURNING attempt, state`),
    nextDue: p(`SELECT MIN(s.due_at) AS due FROM steps s JOIN runs r ON r.id = s.run_id
                WHERE ((s.status = 'scheduled') OR (s.status = 'waiting' AND s.due_at > 0)) AND s.owner IS NULL
                  AND r.status IN ('running', 'waiting', 'pending')`),
    markStarted: p(`UPDATE steps SET status = 'running', started_at = ? WHERE run_id = ? AND key = ? AND owner = ? AND attempt = ? AND status = 'scheduled'`),
    updateStep: p(`UPDATE steps SET status = ?, output = ?, error = ?, attempt = ?, due_at = ?, owner = ?, state = COALESCE(?, state),
                     wait_key = ?, pending_deps = COALESCE(?, pending_deps), started_at = COALESCE(?, started_at), finished_at = ?
                   WHERE run_id = ? AND key = ? AND owner = ? AND attempt = ? AND status IN ('scheduled', 'running', 'waiting')`),
    decrement: p(`UPDATE steps SET pending_deps = pending_deps - 1, live_deps = live_deps + @live,
                    status = CASE WHEN pending_deps = 1 AND status IN ('pending', 'waiting') THEN 'scheduled' ELSE status END,
                    owner = CASE WHEN pending_deps = 1 AND status IN ('pending', 'waiting')
                      THEN (CASE WHEN (SELECT status FROM runs WHERE id = @runId) = 'paused' THEN NULL ELSE @owner END) ELSE owner END,
                    due_at = CASE WHEN pending_deps = 1 AND status IN ('pending', 'waiting') THEN @now ELSE due_at END,
                    wait_key = CASE WHEN pending_deps = 1 AND status IN ('pending', 'waiting') THEN NULL ELSE wait_key END
                  WHERE run_id = @runId AND key = @key
                  RETURNING pending_deps, status, owner, attempt`),
    schedule: p(`UPDATE steps SET status = 'scheduled', owner = ?, due_at = ?, wait_key = NULL WHERE run_id = ? AND key = ? AND status IN ('pending', 'waiting') RETURNING attempt`),
    cancelChildren: p(`UPDATE steps SET status = 'cancelled', finished_at = ? WHERE run_id = ? AND parent_key = ? AND status = 'pending'`),
    runStatusForCommit: p('SELECT status FROM runs WHERE id = ?'),
    nextPendingChild: p(`SELECT key FROM steps WHERE run_id = ? AND parent_key = ? AND status = 'pending' ORDER BY idx LIMIT 1`),
    anyBusy: p(`SELECT 1 FROM steps WHERE run_id = ? AND status IN ('scheduled', 'running') LIMIT 1`),
    anyWaiting: p(`SELECT 1 FROM steps WHERE run_id = ? AND status = 'waiting' LIMIT 1`),
    waiting: p(`SELECT * FROM steps WHERE wait_key = ? AND status = 'waiting'`),
    waitingOldest: p(`SELECT * FROM steps WHERE wait_key = ? AND status = 'waiting' AND (? IS NULL OR namespace = ?) ORDER BY started_at IS NULL, started_at, run_id, key`),
    inboxOldest: p(`SELECT seq, payload, arrived_at FROM event_inbox WHERE wait_key = ? AND (namespace IS NULL OR namespace = ?) AND consumed_at IS NULL AND arrived_at >= ? AND expires_at > ?
                    ORDER BY arrived_at, seq LIMIT 1`),
    inboxConsume: p('UPDATE event_inbox SET consumed_at = ?, consumed_by = ? WHERE seq = ?'),
    // An id is seen within the delivery's namespace ('': every namespace), as its unique index has it.
    inboxSeen: p(`SELECT 1 FROM event_inbox WHERE wait_key = ? AND event_id = ? AND COALESCE(namespace, '') = ?`),
    inboxInsert: p(`INSERT INTO event_inbox (wait_key, event_id, payload, arrived_at, expires_at, consumed_at, consumed_by, namespace) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    inboxPrune: p('DELETE FROM event_inbox WHERE expires_at <= ?'),
    outboxInsert: p('INSERT OR IGNORE INTO event_outbox (id, run_id, namespace, event, created_at) VALUES (?, ?, ?, ?, ?)'),
    outboxPending: p('SELECT * FROM event_outbox WHERE dispatched_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?'),
    outboxDone: p('UPDATE event_outbox SET dispatched_at = ? WHERE id = ? AND dispatched_at IS NULL'),
    wake: p(`UPDATE steps SET status = 'scheduled', state = ?, wait_key = NULL, owner = NULL, due_at = ? WHERE run_id = ? AND key = ? AND status = 'waiting'`),
    wakeTaskStep: p(`UPDATE steps SET status = 'scheduled', state = ?, wait_key = NULL, owner = NULL, due_at = ? WHERE run_id = ? AND key = ? AND status = 'waiting' AND wait_key = ?`),
    insertTask: p(`INSERT INTO tasks (id, run_id, step_key, step_attempt, type, namespace, input, status, lease_ms, max_attempts, available_at, attempts, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING`),
    getTask: p(`SELECT t.*, ${TASK_AWAITED} AS awaited FROM tasks t WHERE t.id = ?`),
    insertApproval: p(`INSERT OR IGNORE INTO approvals (id, run_id, step_key, step_attempt, namespace, workflow, status, approvers, evidence, evidence_hash, summary, form,
                         deadline_at, on_expiry, reminders, next_reminder_at, notify, version, created_at, updated_at)
                       VALUES (@id, @runId, @key, @attempt, @ns, @workflow, 'pending', @approvers, @evidence, @hash, @summary, @form,
                         @deadline, @expiry, @reminders, @reminder, @notify, 1, @now, @now)`),
    getApproval: p(`SELECT a.*, ${APPROVAL_AWAITED} AS awaited FROM approvals a WHERE a.id = ?`),
    dueApprovals: p(`SELECT a.*, 1 AS awaited FROM approvals a
                     WHERE a.status IN ('pending', 'escalated') AND (a.deadline_at <= ? OR a.next_reminder_at <= ?) AND ${APPROVAL_AWAITED}
                     ORDER BY a.created_at, a.id LIMIT ?`),
    nextApprovalDue: p(`SELECT MIN(MIN(COALESCE(a.deadline_at, 9e15), COALESCE(a.next_reminder_at, 9e15))) AS due FROM approvals a
                        WHERE a.status IN ('pending', 'escalated') AND (a.deadline_at IS NOT NULL OR a.next_reminder_at IS NOT NULL) AND ${APPROVAL_AWAITED}`),
    changeApproval: p(`UPDATE approvals SET status = COALESCE(@status, status), decided_by = COALESCE(@decidedBy, decided_by),
                         decided_at = COALESCE(@decidedAt, decided_at), answer = COALESCE(@answer, answer),
                         approvers = CASE WHEN @setApprovers = 1 THEN @approvers ELSE approvers END,
                         deadline_at = CASE WHEN @setDeadline = 1 THEN @deadline ELSE deadline_at END,
                         on_expiry = CASE WHEN @setExpiry = 1 THEN @expiry ELSE on_expiry END,
                         next_reminder_at = CASE WHEN @setReminder = 1 THEN @reminder ELSE next_reminder_at END,
                         version = version + 1, updated_at = @now
                       WHERE id = @id`),
    // The oldest task of the types asked that is available, or whose lease expired with hand-outs
    // left (one expired at its last is not given out again: the usedUpTasks sweep fails its step), and still awaited.
    pollTask: p(`SELECT t.*, 1 AS awaited FROM tasks t
                 WHERE t.type IN (SELECT value FROM json_each(@types))
                   AND (@nss IS NULL OR t.namespace IN (SELECT value FROM json_each(@nss)))
                   AND ((t.status = 'pending' AND t.available_at <= @now)
                     OR (t.status = 'leased' AND t.lease_expires_at <= @now AND (t.max_attempts IS NULL OR t.attempts < t.max_attempts)))
                   AND ${TASK_AWAITED}
                 ORDER BY t.created_at, t.id LIMIT 1`),
    usedUpTasks: p(`SELECT t.*, 1 AS awaited FROM tasks t
                    WHERE t.status = 'leased' AND t.lease_expires_at <= ? AND t.attempts >= t.max_attempts AND ${TASK_AWAITED}
                    ORDER BY t.lease_expires_at LIMIT ?`),
    leaseTask: p(`UPDATE tasks SET status = 'leased', lease_owner = ?, lease_token = ?, lease_ms = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?`),
    extendLease: p('UPDATE tasks SET lease_expires_at = ? + lease_ms, updated_at = ? WHERE id = ?'),
    // A task going back to pending gives up its lease; one that ends keeps who held it, for the record.
    settleTask: p(`UPDATE tasks SET status = @status, output = @output, error = COALESCE(@error, error), available_at = @availableAt, updated_at = @now,
                     lease_token = CASE WHEN @status = 'pending' THEN NULL ELSE lease_token END,
                     lease_owner = CASE WHEN @status = 'pending' THEN NULL ELSE lease_owner END,
                     lease_expires_at = CASE WHEN @status = 'pending' THEN NULL ELSE lease_expires_at END
                   WHERE id = @id`),
  };
}

/**
 * Brings the schema up to date, one version a transaction. The version is read inside each
 * write transaction: processes opening a new store at once (`baton worker` and a client) would
 * otherwise both read version 0 and the second would apply a migration the first had applied.
 */
function migrate(db: Database.Database, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  const version = () => Number((db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined)?.value ?? 0);
  const step = db.transaction((): boolean => {
    const v = version();
    if (v > SQLITE_MIGRATIONS.length) throw new BatonError('BATON_STORE_SCHEMA_NEWER', { path, found: v, supported: SQLITE_MIGRATIONS.length });
    if (v === SQLITE_MIGRATIONS.length) return false;
    db.exec(SQLITE_MIGRATIONS[v]);
    db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(String(v + 1));
    return true;
  });
  // Read-only first: an up-to-date store (the usual open) takes no write lock.
  if (version() === SQLITE_MIGRATIONS.length) return;
  while (step.immediate()) { /* next version */ }
}

function openError(e: unknown, path: string): BatonError {
  if (e instanceof BatonError) return e;
  const code = (e as { code?: string }).code;
  const detail = (e as Error).message ?? String(e);
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return new BatonError('BATON_STORE_CORRUPT', { path, detail }, { cause: e });
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return new BatonError('BATON_STORE_BUSY', { path, detail }, { cause: e });
  if (code === 'SQLITE_FULL') return new BatonError('BATON_STORE_FULL', { path, detail }, { cause: e });
  return new BatonError('BATON_STORE_OPEN', { path, detail }, { cause: e });
}

interface Fairness {
  namespace: string;
  priority: number;
}
