/**
 * Cron schedules at run time. A workflow's `schedule` triggers become rows of the store's
 * `schedules` table when its version is registered (`syncSchedules`); every process that runs a
 * worker or the gateway runs a `Scheduler` over those rows.
 *
 * Once per fire, with any number of processes: a scheduler leases due rows atomically (a
 * conditional UPDATE under SQLite's write lock, `FOR UPDATE SKIP LOCKED` on PostgreSQL), starts
 * the runs, then advances the row and gives the lease back in one fenced update. Each fire's run
 * id is derived from the schedule and the fire time (or from the trigger's `run_id` value, with the
 * workflow and trigger, so one value never names two schedules' runs), and
 * admission is idempotent on run id, so a scheduler that dies between starting a run and
 * advancing the row only makes the next one start the same run again — a no-op.
 *
 * Missed fires: a row due more than `misfireGraceMs` ago was missed (no process was running).
 * The trigger's policy then decides: `skip` starts none, `once` one for the latest missed fire,
 * `all` one per missed fire (the latest `max_catch_up`). A row due less long ago is merely late
 * (a busy tick) and every fire since is started.
 *
 * No busy loop: the scheduler sleeps until the earliest next fire in the store, capped so that
 * schedules registered by other processes are noticed (`maxSleepMs`).
 */
import { SoonestTimer } from '../util/soonest-timer.js';
import { createHash } from 'node:crypto';
import { BatonError, serializeError, type SerializedError } from '../errors.js';
import type { CompiledWorkflow } from '../spec/compile.js';
import { nextFire, type CompiledTrigger } from '../spec/triggers.js';
import type { NewSchedule, ScheduleRecord, Store, VersionRecord } from '../store/store.js';
import { splitQualified } from './namespaces.js';
import { derivedRunId } from './triggers.js';

export interface SchedulerOptions {
  /** The clock (epoch ms). Tests move it to simulate downtime. Default `Date.now`. */
  now?: () => number;
  /** Longest sleep between looks at the store. Default 1 s on PostgreSQL, 5 s on SQLite. */
  maxSleepMs?: number;
  /** A fire this late is missed (its policy applies), not just late. Default 30 s. */
  misfireGraceMs?: number;
  /** How long a claimed row stays leased to this process. Default 30 s. */
  leaseMs?: number;
}

export interface SchedulerHost {
  readonly store: Store;
  /** Lease owner: this process's worker id. */
  readonly owner: string;
  getWorkflow(versionId: string): Promise<CompiledWorkflow>;
  /** Admits a run (idempotent on `id`) in the workflow's own namespace. */
  start(versionId: string, input: unknown, id: string): Promise<string>;
  onError(e: unknown, where: string): void;
}

type ScheduleTrigger = Extract<CompiledTrigger, { kind: 'schedule' }>;

/** Rows leased per look at the store. */
const CLAIM_BATCH = 16;
/** Fires started for one row that was merely late (not missed), newest kept. */
const MAX_LATE_FIRES = 1000;
/** A start that failed for a reason that may pass (store busy) is retried after this. */
const RETRY_MS = 1000;

/** `nightly` + `schedule:0` → `nightly~schedule:0`; `team-a/nightly` → `team-a~nightly~schedule:0` (URL-safe, unique: names hold no `~`). */
export function scheduleId(workflow: string, triggerId: string): string {
  return `${workflow.replace('/', '~')}~${triggerId}`;
}

/** The run id of one fire when the trigger gives none: the same for every process. */
export function fireRunId(id: string, fireAt: number): string {
  const h = createHash('sha256').update(id).digest('hex').slice(0, 12);
  return `sched_${h}_${new Date(fireAt).toISOString().replace(/[-:.]/g, '')}`;
}

/**
 * Up to the latest `n` fire times in [from, to]. Windows ending at `to` double until they
 * hold `n` fires or reach `from`, so a long downtime of a frequent cron costs about n·log(span)
 * steps, not one per fire.
 */
export function latestFires(cron: string, timezone: string, from: number, to: number, n: number): number[] {
  if (n <= 0 || from > to) return [];
  for (let w = 1000; ; w *= 2) {
    const start = Math.max(from, to - w);
    const fires: number[] = [];
    for (let t = nextFire(cron, timezone, start - 1); t !== undefined && t <= to; t = nextFire(cron, timezone, t)) {
      fires.push(t);
      if (fires.length > 4 * n + 1024) fires.splice(0, fires.length - n);
    }
    if (fires.length >= n || start === from) return fires.slice(-n);
  }
}

export class Scheduler {
  private readonly now: () => number;
  private readonly maxSleepMs: number;
  private readonly graceMs: number;
  private readonly leaseMs: number;
  private readonly timer = new SoonestTimer(() => void this.tick());
  private running: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private stopped = true;

  constructor(private readonly host: SchedulerHost, opts: SchedulerOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxSleepMs = opts.maxSleepMs ?? (host.store.kind === 'postgres' ? 1000 : 5000);
    this.graceMs = opts.misfireGraceMs ?? 30_000;
    this.leaseMs = opts.leaseMs ?? 30_000;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Something changed (a registration, a resume): look again now. */
  poke(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer.cancel();
    // A tick talking to the store finishes before the store closes.
    await this.running.catch(() => undefined);
  }

  /** Brings `rec`'s schedule rows in step with its triggers (nothing if it is not the latest version). */
  async sync(rec: VersionRecord, wf: CompiledWorkflow): Promise<void> {
    const now = this.now();
    const { namespace } = splitQualified(rec.name);
    const rows: NewSchedule[] = wf.triggers
      .filter((t): t is ScheduleTrigger => t.kind === 'schedule')
      .map((t) => ({
        id: scheduleId(rec.name, t.id), workflow: rec.name, namespace, triggerId: t.id, versionId: rec.versionId,
        cron: t.schedule.cron, timezone: t.schedule.timezone, missed: t.schedule.missed, maxCatchUp: t.schedule.max_catch_up,
        nextFireAt: nextFire(t.schedule.cron, t.schedule.timezone, now),
      }));
    if (await this.host.store.syncSchedules(rec.name, rec.versionId, rows, now)) this.poke();
  }

  /**
   * Starts every due fire (of rows this process can lease) and advances the rows. Returns how
   * many runs it started. Called by the timer; tests call it after moving the clock.
   */
  async tick(): Promise<number> {
    // One tick at a time in this process; a concurrent caller waits for the one in flight.
    while (this.ticking) await this.running.catch(() => undefined);
    this.ticking = true;
    const p = this.tickOnce();
    this.running = p;
    try {
      return await p;
    } finally {
      this.ticking = false;
    }
  }

  /** Fires `row` now, once, outside its cron (`baton schedules trigger`). */
  async fireNow(row: ScheduleRecord): Promise<string> {
    const at = this.now();
    try {
      const runId = await this.startFire(row, at);
      await this.host.store.updateSchedule(row.id, { lastFiredAt: at, lastRunId: runId, lastError: null }, at);
      return runId;
    } catch (e) {
      await this.host.store.updateSchedule(row.id, { lastError: serializeError(e) }, at).catch(() => undefined);
      throw e;
    }
  }

  /** The next fire after now (resume starts from now: fires while paused are not caught up). */
  nextAfterNow(row: Pick<ScheduleRecord, 'cron' | 'timezone'>): number | undefined {
    return nextFire(row.cron, row.timezone, this.now());
  }

  private async tickOnce(): Promise<number> {
    let started = 0;
    let full = false;
    try {
      const now = this.now();
      const rows = await this.host.store.claimSchedules(this.host.owner, now, now + this.leaseMs, CLAIM_BATCH);
      full = rows.length === CLAIM_BATCH;
      // Rows leased are all handed back, even when stopping: another process takes them on time.
      for (const row of rows) started += await this.fireRow(row);
    } catch (e) {
      this.host.onError(e, 'scheduler');
    }
    if (!this.stopped) {
      let delay = this.maxSleepMs;
      if (full) delay = 0;
      else {
        try {
          const next = await this.host.store.nextScheduleAt();
          // At least a few ms: a row still due here is leased elsewhere or waiting for a retry.
          if (next !== undefined) delay = Math.min(delay, Math.max(10, next - this.now()));
        } catch (e) {
          this.host.onError(e, 'scheduler');
        }
      }
      this.schedule(delay);
    }
    return started;
  }

  /** The fires one claimed row owes now, started; then the row advanced and its lease given back. */
  private async fireRow(row: ScheduleRecord): Promise<number> {
    const now = this.now();
    const due = row.nextFireAt!;
    const missed = now - due > this.graceMs;
    const fires = !missed
      ? latestFires(row.cron, row.timezone, due, now, MAX_LATE_FIRES)
      : row.missed === 'skip' ? [] : latestFires(row.cron, row.timezone, due, now, row.missed === 'once' ? 1 : row.maxCatchUp);
    let lastRunId: string | undefined;
    let lastFiredAt: number | undefined;
    let lastError: SerializedError | undefined;
    let started = 0;
    for (const at of fires) {
      try {
        lastRunId = await this.startFire(row, at);
        lastFiredAt = at;
        started++;
      } catch (e) {
        lastError = serializeError(e);
        if (e instanceof BatonError && !e.retryable) continue; // this fire's fault (its input): record it, go on
        // The store or the engine (may pass): keep the row due at this fire and retry it soon;
        // fires already started are started again under the same ids, which changes nothing.
        this.host.onError(e, `schedule ${row.id}`);
        await this.host.store.updateSchedule(row.id, { nextFireAt: at, lastError, holdUntil: now + RETRY_MS }, now, this.host.owner).catch((e2) => this.host.onError(e2, 'scheduler'));
        return started;
      }
    }
    const next = nextFire(row.cron, row.timezone, now);
    await this.host.store.updateSchedule(row.id, {
      nextFireAt: next ?? null, lastFiredAt, lastRunId, lastError: lastError ?? (lastRunId ? null : undefined),
    }, now, this.host.owner);
    return started;
  }

  /** Starts the run of one fire: input and run id from the trigger's expressions, over `{ trigger, scheduled_at, fire_time }`. */
  private async startFire(row: ScheduleRecord, at: number): Promise<string> {
    const wf = await this.host.getWorkflow(row.versionId);
    const trigger = wf.triggers.find((t) => t.id === row.triggerId);
    const scheduledAt = new Date(at).toISOString();
    const ctx = {
      trigger: { kind: 'schedule', id: row.triggerId, schedule: row.id, workflow: splitQualified(row.workflow).name, cron: row.cron, timezone: row.timezone, scheduled_at: scheduledAt },
      scheduled_at: scheduledAt,
      fire_time: scheduledAt,
    };
    const where = `triggers[${row.triggerId.split(':')[1]}]`;
    const input = trigger?.input ? await trigger.input.evaluate(ctx, `in ${where}.input of ${row.workflow}`) : { scheduled_at: scheduledAt };
    let id = fireRunId(row.id, at);
    if (trigger?.runId) {
      const v = await trigger.runId.evaluate(ctx, `in ${where}.run_id of ${row.workflow}`);
      if ((typeof v !== 'string' && typeof v !== 'number') || String(v) === '') {
        throw new BatonError('BATON_EXPR_EVAL', { where: `in ${where}.run_id of ${row.workflow}`, detail: `must give a non-empty string or number, got ${JSON.stringify(v) ?? 'nothing'}` });
      }
      // Per workflow and trigger, as for webhooks: two schedules whose run_id gives the same
      // value (e.g. scheduled_at, with the same cron) must not answer each other's runs.
      id = derivedRunId('sched', row.workflow, row.triggerId, String(v));
    }
    return this.host.start(row.versionId, input ?? {}, id);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer.arm(delayMs);
  }
}
