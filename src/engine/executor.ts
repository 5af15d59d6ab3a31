/**
 * One step attempt, top to bottom: check what is recorded → decide skip → execute under a
 * time limit → check the output (schema, guard) → record outcome, events and successors in ONE
 * transaction (`store.commit`), fenced on the claim so that a step result is recorded exactly
 * once even though execution is at least once.
 *
 * Named crash points (`BATON_CRASH_AT`) let tests kill the process at chosen instants.
 */
import { BatonError, serializeError, type SerializedError } from '../errors.js';
import { encodeValue, type BlobStore } from '../store/blobs.js';
import { unseal } from '../audit/redaction.js';
import type { CompiledStep, CompiledWorkflow } from '../spec/compile.js';
import type { FinishRun, NewApproval, NewEvent, NewRun, OutboxEntry, StepCommit, Store } from '../store/store.js';
import type { ExecContext, ExecServices, StepOutcome } from '../steps/kind.js';
import { backoffDelay, shouldRetry } from '../resilience/retry.js';
import { withTimeout } from '../resilience/timeout.js';
import { EventType } from './states.js';
import { parseKey, type RunState } from './run-state.js';
import { workflowOfVersion } from './namespaces.js';
import { crashPoint } from './crash-points.js';
import { replayStep, type ReplaySource } from './replay.js';
import { SpanStatusCode, trace, ROOT_CONTEXT, type Span } from '@opentelemetry/api';
import type { Telemetry } from '../observability/telemetry.js';
import type { BatonMetrics } from '../observability/metrics.js';

/** A step this worker holds and is about to run. */
export interface Work {
  runId: string;
  key: string;
  attempt: number;
  /** True when this worker just scheduled it (no recorded state to load). */
  fresh: boolean;
  /** Just claimed from the store, which returned its attempt and state with the claim. */
  claimed?: boolean;
  state?: unknown;
  /**
   * The life of its run it belongs to: the run's `retries` when it was claimed, or of the view
   * whose commit made it ready (see RunState.retries). Work of an earlier life is dropped, and
   * a view of an earlier life is not used for work of a later one.
   */
  retries?: number;
}

export interface ExecutorHost {
  readonly store: Store;
  readonly blobs: BlobStore;
  readonly workerId: string;
  readonly services: ExecServices;
  /** Bytes above which a value goes to the blob store instead of its row. */
  inlineLimit(wf: CompiledWorkflow): number;
  /** Builds a child run's admission record (its first steps claimed by this worker); `parentSpan`: the step attempt's span. */
  newRun(versionId: string, input: unknown, opts: { id: string; parentRunId: string; parentStepKey: string; namespace: string; parentSpan?: { traceId: string; spanId: string; sampled: boolean } }): Promise<NewRun>;
  /** Tracing, when on (step spans; model calls and http steps get the step's context). */
  readonly telemetry?: Telemetry;
  /** Step latency histogram, when metrics are on. */
  readonly metrics?: BatonMetrics;
  emitStep(e: StepEvent): void;
  /** False when nobody listens: the hot path then builds no event objects. */
  wantsStepEvents(): boolean;
  /** Outputs of a run's steps may be missing from memory (another process ran them). */
  refresh(rs: RunState): Promise<void>;
  /** The run's end as it would be if `last` were recorded now. */
  prepareFinish(rs: RunState, last: { stepId: string; output: unknown }): Promise<PreparedFinish>;
  /** Bookkeeping after a commit also ended the run. */
  afterFinish(rs: RunState, fin: PreparedFinish): void;
  /** A commit created an external task of `type`: wake pollers waiting for one. */
  taskCreated?(type: string): void;
  /** A commit created an approval whose first deadline or reminder is at `dueAt`. */
  approvalCreated?(dueAt: number | undefined): void;
  /** The recordings of a replay run this process drives (undefined: not driven here; see replay.ts). */
  replay?(runId: string): ReplaySource | undefined;
  /** Dispatches CloudEvents a commit just recorded (never throws: what fails stays for the sweep). */
  dispatch(entries: OutboxEntry[]): Promise<void>;
  /** A step's output as stored: its sensitive fields sealed (audit/redaction.ts); the value itself otherwise. */
  sealOutput(rs: RunState, stepId: string, output: unknown): unknown;
  /** A step's input as recorded in events: sensitive values of the run masked. */
  recordedInput(rs: RunState, input: unknown): unknown;
}

export interface PreparedFinish {
  record: FinishRun;
  output: unknown;
  at: number;
}

export interface StepEvent {
  runId: string;
  key: string;
  stepId: string;
  status: 'running' | 'succeeded' | 'failed' | 'skipped' | 'waiting' | 'retrying' | 'cancelled';
  attempt: number;
  at: number;
  durationMs?: number;
  error?: SerializedError;
  /** For a map step fanning out: how many items. */
  items?: number;
}

/** Retries within this delay keep their claim and a local timer; longer ones go back to the store. */
const LOCAL_DELAY_MS = 5_000;

export interface AttemptResult {
  /** Steps this worker now holds (successors, retries due now, map items). */
  ready: Work[];
  /** Retries held by this worker, due later. */
  later: Array<{ work: Work; dueAt: number }>;
  runIdle: boolean;
  /** The commit also recorded the run's end (see `finishIfIdle`). */
  runFinished?: boolean;
  /** Claims of a just-admitted child run. */
  childReady: Work[];
  /** Another run may now be claimable (a parent woken, a step given back). */
  poke: boolean;
  /** An arming wait took a buffered event (the step is in `ready` again). */
  consumed?: boolean;
}

const EMPTY: AttemptResult = { ready: [], later: [], runIdle: false, childReady: [], poke: false };

/** What an attempt ended as, for its span. */
interface Track {
  status?: StepEvent['status'];
  error?: SerializedError;
}

/**
 * Runs one attempt; with tracing or metrics on, inside a `baton.step <key>` span and timed for
 * the step latency histogram. With both off this is a direct call.
 */
export async function executeAttempt(host: ExecutorHost, rs: RunState, work: Work): Promise<AttemptResult> {
  const tel = host.telemetry;
  const metrics = host.metrics;
  if (!tel && !metrics) return attempt(host, rs, work);
  const { stepId, index } = parseKey(work.key);
  const top = rs.workflow.steps.get(stepId);
  const step = index === undefined ? top : top?.sub;
  if (!step) return attempt(host, rs, work);
  const kind = step.kind.name;
  const service = (step.doc as { service?: unknown }).service;
  const started = performance.now();
  const track: Track = {};
  const span = tel?.startStep(rs.trace, `baton.step ${work.key}`, {
    'baton.run_id': rs.id, 'baton.workflow': rs.workflow.name, 'baton.step.key': work.key, 'baton.step.kind': kind,
    'baton.worker_id': host.workerId,
  });
  try {
    return await attempt(host, rs, work, span, track);
  } catch (e) {
    span?.recordException(e as Error);
    span?.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
    throw e;
  } finally {
    if (span) {
      // Read after the attempt: a step claimed without its row learns its attempt number from it.
      span.setAttribute('baton.step.attempt', work.attempt);
      if (track.status) span.setAttribute('baton.step.outcome', track.status);
      if (track.error) {
        span.setAttribute('error.type', track.error.code ?? 'error');
        span.setStatus({ code: SpanStatusCode.ERROR, message: track.error.message });
      }
      span.end();
    }
    metrics?.stepObserved(kind, typeof service === 'string' ? service : '', (performance.now() - started) / 1000);
  }
}

async function attempt(host: ExecutorHost, rs: RunState, work: Work, span?: Span, track?: Track): Promise<AttemptResult> {
  const { stepId, index } = parseKey(work.key);
  const top = rs.workflow.steps.get(stepId);
  const step = index === undefined ? top : top?.sub;
  if (!top || !step) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: `${rs.versionId} step ${work.key}` });

  // Check what is recorded: a step claimed from the store may carry resume state, or may
  // already be finished (a duplicate delivery), in which case there is nothing to do.
  let state = work.state;
  if (!work.fresh && !work.claimed) {
    const row = await host.store.getStep(work.runId, work.key);
    if (!row || row.owner !== host.workerId || !['scheduled', 'running', 'waiting'].includes(row.status)) return EMPTY;
    state = row.state ?? undefined;
    work.attempt = row.attempt;
  }
  const fence = { runId: work.runId, key: work.key, owner: host.workerId, attempt: work.attempt };
  const started = Date.now();
  const item = index === undefined ? undefined : (state as { item?: unknown } | undefined)?.item;
  const resumeState = index === undefined ? state : (state as { resume?: unknown } | undefined)?.resume;
  const scope = index === undefined ? rs.scope : { ...rs.scope, item, index };
  const where = `in step ${work.key}`;
  const listening = host.wantsStepEvents();
  const emit = (status: StepEvent['status'], extra?: Partial<StepEvent>) => {
    if (track) {
      track.status = status;
      track.error = extra?.error;
    }
    if (listening) host.emitStep({ runId: rs.id, key: work.key, stepId, status, attempt: work.attempt, at: Date.now(), ...extra });
  };

  // A replay run: recordings stand in for effects; steps before its fork keep their recorded fate.
  const replay = rs.replayOf === undefined ? undefined : host.replay?.(rs.id);
  const copied = replay && index === undefined ? replay.copiedStatus(stepId) : undefined;

  // Steps that ended in other processes are not in this view (it may have been read before they
  // ended): read the run again before anything here evaluates an expression over them. That
  // includes an error handler's and a resumed step's expressions, and a map item's.
  if (top.deps.some((d) => rs.steps[d] === undefined) || (step !== top && step.deps.some((d) => rs.steps[d] === undefined))) await host.refresh(rs);

  // Skip: a first execution whose dependencies were all skipped, or whose `when` is false.
  if (resumeState === undefined) {
    let reason: string | undefined;
    if (copied === 'skipped') reason = 'skipped in the replayed run';
    else if (copied) { /* recorded as succeeded: replayed as it was, whatever its `when` says now */ }
    else if (index === undefined && step.deps.length > 0 && !step.isHandler) {
      // Not live: skipped, or failed with its errors routed elsewhere (no output to build on).
      const dead = (d: string) => rs.steps[d]?.status === 'skipped' || (rs.steps[d]?.status === 'failed' && rs.steps[d]?.output === undefined);
      if (step.deps.every(dead)) reason = 'every dependency was skipped';
    }
    if (!reason && !copied && step.when) {
      try {
        if (!truthy(await step.when.evaluate(scope, `${where}: when`))) reason = `when \`${step.when.source}\` is false`;
      } catch (e) {
        return fail(host, rs, work, step, top, fence, started, e, emit);
      }
    }
    if (reason) {
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'skipped', owner: null, finishedAt: Date.now() },
        events: [{ type: EventType.stepSkipped, stepKey: work.key, at: Date.now(), data: { reason } }],
        ...(index === undefined
          ? { decrement: top.dependents.map((d) => ({ key: d, live: false })) }
          : { decrement: [{ key: stepId, live: true }], startNextChildOf: stepId }),
      });
      if (res && index === undefined) rs.record(stepId, 'skipped');
      emit('skipped');
      return res ?? EMPTY;
    }
  }

  let input: unknown;
  let outcome: StepOutcome;
  try {
    input = step.input ? await step.input.evaluate(scope, `${where}: input`) : undefined;
    if (step.kind.recordsStart && resumeState === undefined) {
      const ok = await host.store.markStarted(fence, started, [startEvent(work, host.recordedInput(rs, input), started)]);
      if (!ok) return EMPTY;
    }
    emit('running');
    crashPoint('before-execute');
    outcome = await withTimeout(
      (signal) => {
        const x: ExecContext = {
          runId: rs.id, stepKey: work.key, stepId, attempt: work.attempt,
          idempotencyKey: `${rs.id}:${work.key}:${work.attempt}`, signal, scope, input, state: resumeState,
          workflow: workflowOfVersion(rs.versionId), namespace: rs.namespace, budget: rs.budget, configHash: rs.configHash, eventHops: rs.eventHops,
          now: Date.now, services: host.services, span: span && trace.setSpan(ROOT_CONTEXT, span),
        };
        // A replay's first execution of a step goes through its recordings; a resumed one (a map's items done) is the kind's own.
        return rs.replayOf === undefined || resumeState !== undefined ? step.prepared.execute(x) : replayStep(replay, rs.id, step, work.key, x);
      },
      // Suspending kinds (wait, map, workflow) are limited by their own deadlines, not here.
      step.kind.suspends ? undefined : step.timeoutMs,
      rs.abort.signal,
      work.key,
    );
    if (outcome.type === 'done') checkOutput(step, outcome.output, scope, where);
    if (outcome.type === 'done' && step.guard) {
      const ok = await step.guard.evaluate({ ...scope, output: outcome.output }, `${where}: guard`);
      if (!truthy(ok)) throw new BatonError('BATON_GUARD_FAILED', { step: work.key, guard: step.guard.source });
    }
  } catch (e) {
    if (rs.abort.signal.aborted && isCancel(rs.abort.signal.reason)) return EMPTY;
    return fail(host, rs, work, step, top, fence, started, e, emit, input === undefined ? undefined : host.recordedInput(rs, input));
  }
  crashPoint('after-execute');

  const now = Date.now();
  const recorded = input === undefined ? undefined : host.recordedInput(rs, input);
  const withStart = (events: NewEvent[]) => (step.kind.recordsStart || resumeState !== undefined ? events : [startEvent(work, recorded, started), ...events]);
  switch (outcome.type) {
    case 'done': {
      const outputJson = encodeValue(host.sealOutput(rs, stepId, outcome.output ?? null), host.blobs, host.inlineLimit(rs.workflow)) ?? 'null';
      // A child run's output arrives as stored (its sensitive fields sealed) and is stored so;
      // this run's own steps see the real values.
      const real = step.kind.name === 'workflow' ? unseal(outcome.output) : outcome.output;
      // One event per attempt on the fast path: a start that was not recorded on its own is
      // folded in (started_at, input). The output's stored JSON is spliced in, not re-encoded.
      const startedPart = step.kind.recordsStart || resumeState !== undefined ? '' : `,"started_at":${started}${input === undefined ? '' : `,"input":${inputJson(recorded)}`}`;
      const dataJson = `{"attempt":${work.attempt},"duration_ms":${now - started}${startedPart},"output":${outputJson}}`;
      // When this looks like the run's last step, its end is prepared now and written in the
      // same transaction if the store agrees nothing else is active (saves a transaction per run).
      const fin = index === undefined && looksLast(rs, stepId) ? await host.prepareFinish(rs, { stepId, output: real ?? null }) : undefined;
      const outbox: OutboxEntry[] | undefined = outcome.publish?.length ? outcome.publish.map((e) => ({ id: e.id, runId: rs.id, namespace: rs.namespace, eventJson: JSON.stringify(e) })) : undefined;
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'succeeded', outputJson, owner: null, startedAt: started, finishedAt: now },
        events: outbox
          ? [{ type: EventType.stepSucceeded, stepKey: work.key, at: now, dataJson },
            ...outcome.publish!.map((e) => ({ type: EventType.eventEmitted, stepKey: work.key, at: now, data: { id: e.id, type: e.type, source: e.source, subject: e.subject } }))]
          : [{ type: EventType.stepSucceeded, stepKey: work.key, at: now, dataJson }],
        outbox,
        ...(index === undefined
          ? { decrement: top.dependents.map((d) => ({ key: d, live: true })) }
          : { decrement: [{ key: stepId, live: true }], startNextChildOf: stepId }),
        finishIfIdle: fin?.record,
      });
      if (res && index === undefined) rs.record(stepId, 'succeeded', real ?? null);
      if (res) emit('succeeded', { durationMs: now - started });
      // Recorded: dispatched now (a crash before this leaves it to the next sweep).
      if (res && outbox?.length) await host.dispatch(outbox);
      if (res?.runFinished && fin) host.afterFinish(rs, fin);
      return res ?? EMPTY;
    }
    case 'sleep': {
      const local = outcome.until - now <= LOCAL_DELAY_MS;
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'scheduled', dueAt: outcome.until, owner: local ? host.workerId : null, state: wrapState(index, item, outcome.state) },
        events: withStart([{ type: EventType.stepWaiting, stepKey: work.key, at: now, data: { until: new Date(outcome.until).toISOString() } }]),
      });
      emit('waiting');
      if (!res) return EMPTY;
      if (local) res.later.push({ work: { ...work, fresh: true, state: wrapState(index, item, outcome.state), retries: rs.retries }, dueAt: outcome.until });
      res.poke = !local;
      return res;
    }
    case 'wait': {
      const task = outcome.task;
      const approval = outcome.approval;
      const lookback = outcome.lookbackMs;
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'waiting', waitKey: outcome.waitKey, dueAt: outcome.timeoutAt ?? 0, owner: null, state: wrapState(index, item, outcome.state) },
        events: withStart([
          { type: EventType.stepWaiting, stepKey: work.key, at: now, data: { wait_for: outcome.waitKey, timeout_at: outcome.timeoutAt ? new Date(outcome.timeoutAt).toISOString() : undefined, ...(task ? { task_id: task.id, task_type: task.type } : {}) } },
          ...(approval ? [approvalRequested(work.key, approval)] : []),
        ]),
        // Likewise the approval row: a crash can neither lose nor duplicate it.
        approval,
        // The task row is written by the same transaction as the suspension: never one without the other.
        task: task && { id: task.id, type: task.type, namespace: rs.namespace, inputJson: JSON.stringify(task.input ?? null), leaseMs: task.leaseMs, maxAttempts: step.retry.maxAttempts, createdAt: now },
        // An event that came first (buffered) within the lookback is taken in this same transaction.
        inbox: lookback === undefined ? undefined : {
          since: now - lookback,
          namespace: rs.namespace,
          resume: (payload, at) => ({
            state: wrapState(index, item, { ...(outcome.state as object), signal: { payload, at } }),
            events: [{ type: EventType.signalReceived, stepKey: work.key, at: Date.now(), data: { wait_for: outcome.waitKey, payload, buffered_at: new Date(at).toISOString() } }],
          }),
        },
      });
      emit('waiting');
      if (!res) return EMPTY;
      if (task) host.taskCreated?.(task.type);
      if (approval) host.approvalCreated?.(firstDue(approval));
      // Taken from the inbox: the step runs again at once, its new state read from its row.
      if (res.consumed) res.ready = res.ready.map((w) => (w.key === work.key ? { ...w, attempt: work.attempt, fresh: false } : w));
      return res;
    }
    case 'child': {
      const childId = `${rs.id}.${work.key}.${work.attempt}`;
      const sc = span?.spanContext();
      const parentSpan = sc && { traceId: sc.traceId, spanId: sc.spanId, sampled: (sc.traceFlags & 1) === 1 };
      const child = await host.newRun(outcome.versionId, outcome.input, { id: childId, parentRunId: rs.id, parentStepKey: work.key, namespace: rs.namespace, parentSpan });
      // A child's emits count on from its parent's event: a loop through a child is cut too.
      if (rs.eventHops) child.eventHops = rs.eventHops;
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'waiting', waitKey: `run:${childId}`, owner: null, state: wrapState(index, item, { ...(outcome.state as object), childRunId: childId }) },
        events: withStart([{ type: EventType.stepWaiting, stepKey: work.key, at: now, data: { child_run: childId, workflow: outcome.versionId } }]),
        childRun: child,
      });
      emit('waiting');
      if (!res) return EMPTY;
      res.childReady = child.steps.filter((s) => s.status === 'scheduled').map((s) => ({ runId: childId, key: s.key, attempt: 1, fresh: true, retries: 0 }));
      return res;
    }
    case 'fanout': {
      const n = outcome.items.length;
      const res = await commit(host, rs, work, {
        fence,
        update: { status: 'waiting', owner: null, pendingDeps: n, state: outcome.state },
        events: withStart([{ type: EventType.stepWaiting, stepKey: work.key, at: now, data: { items: n, concurrency: outcome.concurrency } }]),
        insert: outcome.items.map((it, i) => ({
          key: `${stepId}[${i}]`, stepId, index: i, parentKey: stepId, pendingDeps: 0,
          status: i < outcome.concurrency ? ('scheduled' as const) : ('pending' as const),
          // A due time marks an item as handed out (a retry then knows its attempt may have run).
          owner: i < outcome.concurrency ? host.workerId : undefined, dueAt: i < outcome.concurrency ? now : undefined, state: { item: it },
        })),
      });
      emit('waiting', { items: n });
      if (!res) return EMPTY;
      // Items just inserted carry their item in memory: no need to read them back.
      res.ready = res.ready.map((w) => {
        const i = parseKey(w.key).index;
        return i === undefined ? w : { ...w, fresh: true, state: { item: outcome.items[i] } };
      });
      return res;
    }
  }
}

async function fail(
  host: ExecutorHost, rs: RunState, work: Work, step: CompiledStep, top: CompiledStep,
  fence: StepCommit['fence'], started: number, e: unknown, emit: (s: StepEvent['status'], x?: Partial<StepEvent>) => void, input?: unknown,
): Promise<AttemptResult> {
  const { stepId, index } = parseKey(work.key);
  const error = serializeError(e instanceof BatonError || e instanceof Error ? e : new BatonError('BATON_STEP_FAILED', { step: work.key, detail: String(e) }));
  const now = Date.now();
  const startEv = step.kind.recordsStart ? [] : [startEvent(work, input, started)];
  const failEvent = (final: boolean, extra: Record<string, unknown> = {}): NewEvent => ({
    type: EventType.stepFailed, stepKey: work.key, at: now, data: { attempt: work.attempt, duration_ms: now - started, error, final, ...extra },
  });
  const state = index === undefined ? null : { item: (work.state as { item?: unknown } | undefined)?.item };

  // The policy counts this step's attempts since the run was last retried (numbers keep counting across retries).
  const tries = error.retryable && work.attempt >= step.retry.maxAttempts && work.attempt > 1 ? await attemptsSinceRetry(host, rs.id, work) : work.attempt;
  if (shouldRetry(step.retry, tries, error.retryable)) {
    const delay = backoffDelay(step.retry, tries);
    const local = delay <= LOCAL_DELAY_MS;
    const res = await commit(host, rs, work, {
      fence,
      update: { status: 'scheduled', attempt: work.attempt + 1, dueAt: now + delay, owner: local ? host.workerId : null, state },
      events: [...startEv, failEvent(false, { retry_in_ms: delay, next_attempt: work.attempt + 1 })],
    });
    emit('retrying', { error, durationMs: now - started });
    if (!res) return EMPTY;
    const next: Work = { runId: work.runId, key: work.key, attempt: work.attempt + 1, fresh: true, state: state ?? undefined, retries: rs.retries };
    if (local) res.later.push({ work: next, dueAt: now + delay });
    res.poke = !local;
    return res;
  }

  // A run out of budget stops, whatever the step says: continuing or routing would only spend more.
  const onError = error.code === 'BATON_BUDGET_EXCEEDED' ? ({ action: 'fail' } as const) : step.onError;
  if (onError.action === 'continue') {
    let value: unknown = null;
    if (onError.value) {
      try {
        value = await onError.value.evaluate({ ...rs.scope, error }, `in step ${work.key}: on_error.continue`);
      } catch (e2) {
        return failRun(host, rs, work, fence, serializeError(e2), [...startEv, failEvent(true)], emit, started);
      }
    }
    const outputJson = encodeValue(host.sealOutput(rs, stepId, value ?? null), host.blobs, host.inlineLimit(rs.workflow)) ?? 'null';
    const res = await commit(host, rs, work, {
      fence,
      update: { status: 'failed', outputJson, error, owner: null, startedAt: started, finishedAt: now },
      events: [...startEv, failEvent(true, { continued_with: JSON.parse(outputJson) as unknown })],
      ...(index === undefined
        ? { decrement: top.dependents.map((d) => ({ key: d, live: true })) }
        : { decrement: [{ key: stepId, live: true }], startNextChildOf: stepId }),
    });
    if (res && index === undefined) rs.record(stepId, 'failed', value ?? null, error);
    emit('failed', { error, durationMs: now - started });
    return res ?? EMPTY;
  }
  if (onError.action === 'route' && index === undefined) {
    const res = await commit(host, rs, work, {
      fence,
      update: { status: 'failed', error, owner: null, startedAt: started, finishedAt: now },
      events: [...startEv, failEvent(true, { routed_to: onError.step })],
      decrement: top.dependents.map((d) => ({ key: d, live: false })),
      schedule: [onError.step],
    });
    if (res) rs.record(stepId, 'failed', undefined, error);
    emit('failed', { error, durationMs: now - started });
    return res ?? EMPTY;
  }
  if (index !== undefined) {
    // An item failed for good: the map fails (its own on_error then applies).
    const res = await commit(host, rs, work, {
      fence,
      update: { status: 'failed', error, owner: null, startedAt: started, finishedAt: now },
      events: [...startEv, failEvent(true)],
      cancelChildrenOf: stepId,
      wake: { key: stepId, state: { count: 0, failed: { key: work.key, error } }, events: [] },
    });
    emit('failed', { error, durationMs: now - started });
    if (res) res.poke = true;
    return res ?? EMPTY;
  }
  return failRun(host, rs, work, fence, error, [...startEv, failEvent(true)], emit, started);
}

/**
 * How many attempts this step has made since a retry of the run put it back (`run.retried`
 * records each reset step's first attempt); its attempt number if it never was. The history is
 * read only when the attempt number alone says the policy is spent (a final failure), never on
 * the success path.
 */
async function attemptsSinceRetry(host: ExecutorHost, runId: string, work: Work): Promise<number> {
  const events = await host.store.getEvents(runId);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type !== EventType.runRetried) continue;
    const first = (e.data as { attempts?: Record<string, number> } | undefined)?.attempts?.[work.key];
    if (first !== undefined && first <= work.attempt) return work.attempt - first + 1;
  }
  return work.attempt;
}

async function failRun(
  host: ExecutorHost, rs: RunState, work: Work, fence: StepCommit['fence'], error: SerializedError, events: NewEvent[],
  emit: (s: StepEvent['status'], x?: Partial<StepEvent>) => void, started: number,
): Promise<AttemptResult> {
  const now = Date.now();
  const durationMs = now - started;
  const runError: SerializedError = { code: error.code, message: `step ${work.key}: ${error.message}`, retryable: false, details: { step: work.key }, cause: error };
  const res = await commit(host, rs, work, {
    fence,
    update: { status: 'failed', error, owner: null, startedAt: started, finishedAt: now },
    events,
    finishRun: {
      status: 'failed', error: runError, events: [{ type: EventType.runFailed, at: now, data: { error: runError } }],
      parent: rs.parentRunId ? { runId: rs.parentRunId, key: rs.parentStepKey!, state: await childEndState(host.store, rs, { runId: rs.id, status: 'failed', error: runError }), events: [{ type: EventType.stepResumed, stepKey: rs.parentStepKey, at: now, data: { child_run: rs.id, status: 'failed' } }] } : undefined,
    },
  });
  emit('failed', { error, durationMs });
  if (res) {
    rs.status = 'failed';
    res.poke = Boolean(rs.parentRunId);
  }
  return res ?? EMPTY;
}

async function commit(host: ExecutorHost, rs: RunState, work: Work, c: StepCommit): Promise<AttemptResult | undefined> {
  crashPoint('before-commit');
  const r = await host.store.commit(c);
  crashPoint('after-commit');
  if (!r.ok) return undefined;
  // Map items carry their item in the row, so those are read back; other new steps start blank.
  // Fresh steps start blank. Map items carry their item in the row, and a map step made ready
  // is resuming after its items: both are read back.
  const fresh = (key: string) => parseKey(key).index === undefined && !rs.workflow.steps.get(key)?.sub;
  // A step a retry put back keeps counting its attempts; every other starts at 1.
  const ready = r.ready.map((key) => ({ runId: work.runId, key, attempt: r.attempts?.[key] ?? 1, fresh: fresh(key), retries: rs.retries }));
  return { ready, later: [], runIdle: r.runIdle, runFinished: r.runFinished, childReady: [], poke: false, consumed: r.consumed };
}

function checkOutput(step: CompiledStep, output: unknown, _scope: unknown, where: string): void {
  const v = step.outputValidator;
  if (!v || v(output)) return;
  const detail = (v.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ');
  throw new BatonError('BATON_OUTPUT_SCHEMA', { step: where.replace(/^in step /, ''), detail });
}

/** An approval's first deadline or reminder, if it has either. */
function firstDue(a: NewApproval): number | undefined {
  const t = Math.min(a.deadlineAt ?? Infinity, a.nextReminderAt ?? Infinity);
  return t === Infinity ? undefined : t;
}

function approvalRequested(key: string, a: NewApproval): NewEvent {
  return {
    type: EventType.approvalRequested, stepKey: key, at: a.createdAt,
    data: { approval_id: a.id, approvers: a.approvers, evidence_hash: a.evidenceHash, summary: a.summary, deadline_at: a.deadlineAt === undefined ? undefined : new Date(a.deadlineAt).toISOString() },
  };
}

function startEvent(work: Work, input: unknown, at: number): NewEvent {
  return { type: EventType.stepStarted, stepKey: work.key, at, data: { attempt: work.attempt, input: input === undefined ? undefined : summarise(input) } };
}

/** Inputs are recorded as given unless huge; a huge one is recorded by size only. */
function summarise(v: unknown): unknown {
  return JSON.parse(inputJson(v)) as unknown;
}

/** The recorded form of an input, serialised once. */
function inputJson(v: unknown): string {
  const text = JSON.stringify(v) ?? 'null';
  return text.length > 64 * 1024 ? `{"$truncated":true,"bytes":${Buffer.byteLength(text)}}` : text;
}

/**
 * A parent step's state with its child run's end: a map item keeps its item and its kind's
 * state under `resume` (see executor wrapState), or it would run again from nothing and wait
 * for a child that has already ended.
 */
export function withChild(index: number | undefined, state: unknown, child: unknown): unknown {
  return index === undefined
    ? { child }
    : { ...(state as object), resume: { ...((state as { resume?: object } | undefined)?.resume ?? {}), child } };
}

/**
 * The state that wakes the parent step of run `rs` with the run's end. A map item's is read
 * (its item and kind's state are kept around the child's end); the item waits for this child,
 * so nothing else changes it meanwhile.
 */
export async function childEndState(store: Store, rs: RunState, child: unknown): Promise<unknown> {
  const index = rs.parentStepKey === undefined ? undefined : parseKey(rs.parentStepKey).index;
  return withChild(index, index === undefined ? undefined : (await store.getStep(rs.parentRunId!, rs.parentStepKey!))?.state, child);
}

function wrapState(index: number | undefined, item: unknown, state: unknown): unknown {
  return index === undefined ? state : { item, resume: state };
}

/**
 * True when every other step of the run is known here to be finished: this one is probably last.
 * An error handler not seen here was never sent unless the step that routes to it failed: then
 * it was, and may have run (or still run) in another process (handed there after a pause or a
 * lost lease), so its output is unknown here and the run's end is left to finishRun, which reads.
 */
function looksLast(rs: RunState, stepId: string): boolean {
  const wf = rs.workflow;
  if (wf.steps.get(stepId)!.dependents.length > 0) return false;
  for (const id of wf.order) {
    if (id === stepId) continue;
    const v = rs.steps[id];
    const step = wf.steps.get(id)!;
    if (v === undefined && !step.isHandler) return false;
    if (v?.status === 'failed' && step.onError.action === 'route' && step.onError.step !== stepId && rs.steps[step.onError.step] === undefined) return false;
  }
  return true;
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return Boolean(v);
}

function isCancel(reason: unknown): boolean {
  return reason instanceof BatonError && reason.code === 'BATON_CANCELLED';
}
