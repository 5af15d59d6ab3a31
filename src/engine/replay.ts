/**
 * Replays: a recorded run executed again (a new run, `replay_…`, marked `replay_of`) against a
 * chosen version of its workflow, with what the run recorded standing in for every external
 * effect, so that the new version's *decisions* can be compared with the old ones on real
 * traffic without calling anything.
 *
 * Per step of the replay run (the executor asks `ReplaySource.execute` instead of the kind):
 * - `transform` and `map` (the workflow's own logic), `when`, routes and the run output are
 *   evaluated with the new version: that is where decisions differ.
 * - Every other kind (model, http, task, wait, emit, workflow, function…) gets its recorded
 *   output when the recorded run has that step and its request is the same: for `model` and
 *   `http` the rendered request (prompt, messages, schema, services / URL, headers, body); for
 *   the others the definition, the evaluated input and the outputs of the steps it reads. The
 *   recorded side is computed the same way from the recorded run (its version, input and step
 *   outputs), so runs recorded before replays existed replay too.
 * - A step with no recording for its new request fails the replay with
 *   BATON_REPLAY_NO_RECORDING, unless the replay is `live` (it is then executed for real).
 *   `function` steps are the user's in-process code: run again for a new input.
 * - With `from`, steps not downstream of it are copied as recorded (a fork).
 *
 * The recordings live in the memory of the process that drives the replay (`baton.replay`); a
 * worker elsewhere that claims a step of a replay run refuses to execute it (BATON_REPLAY_ORPHANED),
 * so a replay can never call a service by landing on a worker that does not know it is one.
 */
import { BatonError, type SerializedError } from '../errors.js';
import { canonicalJson, contentHash } from '../spec/canonical.js';
import type { CompiledStep, CompiledWorkflow } from '../spec/compile.js';
import type { ExecContext, StepOutcome } from '../steps/kind.js';
import type { RunRecord, StepRecord } from '../store/store.js';
import { parseKey } from './run-state.js';

/** The workflow's own logic: always evaluated with the replayed version. */
const PURE = new Set(['transform', 'map']);
/** The user's in-process code: recorded output for the same input, run again for a new one. */
const LOCAL = new Set(['function']);

/** How the replay got a step's output. */
export type StepSource = 'recorded' | 'copied' | 'evaluated' | 'ran' | 'live';

/** Definition fields that decide when and how often a step runs, not what it asks. */
const CONTROL = new Set(['id', 'needs', 'when', 'retry', 'timeout', 'on_error', 'guard', 'output_schema', 'description', 'input']);

export class ReplaySource {
  /** Step key → how the replay got its output. */
  readonly sources = new Map<string, StepSource>();
  private readonly recordedPrints = new Map<string, Promise<string | undefined>>();
  private readonly scope: Record<string, unknown>;

  constructor(
    /** The recorded run (input decoded). */
    readonly original: RunRecord,
    /** Its version, compiled. */
    private readonly wf: CompiledWorkflow,
    /** Its steps by key, outputs decoded. */
    private readonly rows: ReadonlyMap<string, StepRecord>,
    /** Top-level step ids copied as recorded (not downstream of `from`). */
    private readonly copied: ReadonlySet<string>,
    readonly live: boolean,
  ) {
    const steps: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const r of rows.values()) {
      if (r.index !== undefined || !['succeeded', 'failed', 'skipped'].includes(r.status)) continue;
      steps[r.stepId] = { status: r.status, ...(r.output !== undefined ? { output: r.output } : {}), ...(r.error ? { error: r.error } : {}) };
    }
    this.scope = {
      input: original.input, steps, vars: wf.doc.vars ?? {},
      run: { id: original.id, workflow: original.workflow, version: original.versionId, created_at: new Date(original.createdAt).toISOString() },
    };
  }

  /** A copied step's recorded status ('succeeded' or 'skipped'), or undefined when it runs. */
  copiedStatus(stepId: string): 'succeeded' | 'skipped' | undefined {
    if (!this.copied.has(stepId)) return undefined;
    const s = this.rows.get(stepId)?.status;
    return s === 'succeeded' || s === 'skipped' ? s : undefined;
  }

  async execute(step: CompiledStep, key: string, x: ExecContext): Promise<StepOutcome> {
    const { stepId, index } = parseKey(key);
    const rec = this.rows.get(key);
    if (index === undefined && this.copiedStatus(stepId) === 'succeeded') {
      this.sources.set(key, 'copied');
      return { type: 'done', output: rec!.output ?? null };
    }
    const kind = step.kind.name;
    if (PURE.has(kind)) {
      this.sources.set(key, 'evaluated');
      return step.prepared.execute(x);
    }
    let reason: string;
    if (!rec) reason = 'the recorded run has no such step';
    else if (rec.status !== 'succeeded' && rec.status !== 'failed') reason = `it was ${rec.status} in the recorded run`;
    else {
      const then = await this.recordedPrint(key, kind, x.scope.run);
      const now = await fingerprint(step, x);
      if (then !== undefined && then === now) {
        this.sources.set(key, 'recorded');
        if (rec.status === 'succeeded') return { type: 'done', output: rec.output ?? null };
        // It failed then: it fails now, the same way, and its on_error applies again (no retries: nothing would change).
        throw recordedError(rec.error);
      }
      reason = then === undefined ? 'its recorded request cannot be rebuilt' : 'its input differs from the recorded one';
    }
    if (LOCAL.has(kind) || this.live) {
      this.sources.set(key, LOCAL.has(kind) ? 'ran' : 'live');
      return step.prepared.execute(x);
    }
    throw new BatonError('BATON_REPLAY_NO_RECORDING', { runId: this.original.id, step: key, kind, reason });
  }

  /**
   * The recorded step's fingerprint, computed from the recorded run as the replay computes its
   * own. `run` (id, version…) is the replay's: a request that names its run is the same request.
   */
  private recordedPrint(key: string, kind: string, run: unknown): Promise<string | undefined> {
    let p = this.recordedPrints.get(key);
    if (!p) {
      p = (async () => {
        const { stepId, index } = parseKey(key);
        const top = this.wf.steps.get(stepId);
        const step = index === undefined ? top : top?.sub;
        if (!step || step.kind.name !== kind) return undefined;
        const item = index === undefined ? undefined : (this.rows.get(key)?.state as { item?: unknown } | undefined)?.item;
        const scope = index === undefined ? { ...this.scope, run } : { ...this.scope, run, item, index };
        try {
          const input = step.input ? await step.input.evaluate(scope, `in step ${key}: input (recorded)`) : undefined;
          return await fingerprint(step, {
            runId: this.original.id, stepKey: key, stepId, attempt: 1, idempotencyKey: `${this.original.id}:${key}:1`, signal: new AbortController().signal,
            scope, input, workflow: this.original.workflow, namespace: this.original.namespace, budget: this.original.budget, state: undefined,
            now: Date.now, services: undefined as never,
          });
        } catch {
          return undefined;
        }
      })();
      this.recordedPrints.set(key, p);
    }
    return p;
  }
}

/** What a step would send out, hashed: equal prints may share one recorded answer. */
async function fingerprint(step: CompiledStep, x: ExecContext): Promise<string> {
  if (step.prepared.request) return contentHash(canonicalJson({ kind: step.kind.name, request: (await step.prepared.request(x)) ?? null }));
  const steps = x.scope.steps as Record<string, { status: string; output?: unknown } | undefined>;
  const reads = Object.fromEntries(step.deps.map((d) => [d, steps[d] ? { status: steps[d]!.status, output: steps[d]!.output ?? null } : null]));
  const def = Object.fromEntries(Object.entries(step.doc as Record<string, unknown>).filter(([k]) => !CONTROL.has(k)));
  return contentHash(canonicalJson({ kind: step.kind.name, def, input: x.input ?? null, reads, item: x.scope.item ?? null, index: x.scope.index ?? null }));
}

function recordedError(e: SerializedError | undefined): Error {
  return Object.assign(new Error(e?.message ?? 'failed in the recorded run'), { code: e?.code ?? 'Error', retryable: false });
}

/** The executor's entry for a step of a replay run; `src` undefined: this process does not drive it. */
export async function replayStep(src: ReplaySource | undefined, runId: string, step: CompiledStep, key: string, x: ExecContext): Promise<StepOutcome> {
  if (!src) throw new BatonError('BATON_REPLAY_ORPHANED', { runId, step: key });
  return src.execute(step, key, x);
}

// ------------------------------------------------------------------ the report

export type StepChange = 'same' | 'differs' | 'new' | 'removed' | 'skipped_now' | 'ran_now';

export interface StepSide {
  status: string;
  output?: unknown;
  error?: { code: string; message: string };
}

export interface JsonDifference {
  /** JSON Pointer into the output ('' = the whole value). */
  path: string;
  before: unknown;
  after: unknown;
}

export interface ReplayStepReport {
  step: string;
  change: StepChange;
  /** How the replay got it (recorded, copied, evaluated, ran, live); absent when it did not execute. */
  source?: StepSource;
  before?: StepSide;
  after?: StepSide;
  /** For `differs`: where the outputs differ (at most 20 places). */
  diff?: JsonDifference[];
}

export interface ReplayReport {
  run_id: string;
  replay_run_id: string;
  workflow: string;
  version_before: string;
  version_after: string;
  from: string | null;
  live: boolean;
  /** The replay run's end. */
  status: string;
  error?: { code: string; message: string };
  steps: ReplayStepReport[];
  output: { change: 'same' | 'differs'; before: unknown; after: unknown; diff?: JsonDifference[] };
  summary: Record<StepChange, number> & { live_calls: number };
  /** One line for people: `4 steps same, 1 differs (decide); output differs`. */
  summary_line: string;
}

const side = (r: StepRecord | undefined): StepSide | undefined =>
  r && { status: r.status, ...(r.output !== undefined ? { output: r.output } : {}), ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}) };

const same = (a: unknown, b: unknown) => canonicalJson(a ?? null) === canonicalJson(b ?? null);

/** Where two JSON values differ, by JSON Pointer; at most `limit` places. */
export function jsonDiff(before: unknown, after: unknown, path = '', out: JsonDifference[] = [], limit = 20): JsonDifference[] {
  if (out.length >= limit || same(before, after)) return out;
  const obj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (obj(before) && obj(after)) {
    for (const k of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) jsonDiff(before[k], after[k], `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, out, limit);
  } else if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    before.forEach((v, i) => jsonDiff(v, after[i], `${path}/${i}`, out, limit));
  } else if (out.length < limit) out.push({ path, before: before ?? null, after: after ?? null });
  return out;
}

/** Compares the recorded run with its replay, step by step (top-level steps; map items are in their map's output). */
export function buildReport(a: {
  original: RunRecord; replay: RunRecord; before: CompiledWorkflow; after: CompiledWorkflow;
  beforeRows: StepRecord[]; afterRows: StepRecord[]; sources: ReadonlyMap<string, StepSource>; from?: string; live: boolean;
}): ReplayReport {
  const top = (rows: StepRecord[]) => new Map(rows.filter((r) => r.index === undefined).map((r) => [r.key, r]));
  const was = top(a.beforeRows);
  const now = top(a.afterRows);
  const ids = [...a.after.order, ...a.before.order.filter((id) => !a.after.steps.has(id))];
  const steps: ReplayStepReport[] = [];
  const summary = { same: 0, differs: 0, new: 0, removed: 0, skipped_now: 0, ran_now: 0, live_calls: [...a.sources.values()].filter((s) => s === 'live').length };
  for (const id of ids) {
    const b = was.get(id);
    const n = a.after.steps.has(id) ? now.get(id) : undefined;
    let change: StepChange;
    if (!a.before.steps.has(id) || !b) change = 'new';
    else if (!n) change = 'removed';
    else if (b.status === 'skipped' && n.status !== 'skipped') change = 'ran_now';
    else if (b.status !== 'skipped' && n.status === 'skipped') change = 'skipped_now';
    else if (b.status === n.status && same(b.output, n.output) && b.error?.code === n.error?.code) change = 'same';
    else change = 'differs';
    summary[change]++;
    const source = a.sources.get(id);
    steps.push({
      step: id, change, ...(source ? { source } : {}),
      ...(b ? { before: side(b) } : {}), ...(n ? { after: side(n) } : {}),
      ...(change === 'differs' ? { diff: jsonDiff(b!.output, n!.output) } : {}),
    });
  }
  const outSame = same(a.original.output, a.replay.output) && a.original.status === a.replay.status;
  const changed = (c: StepChange) => steps.filter((s) => s.change === c).map((s) => s.step);
  const parts = [`${summary.same} step${summary.same === 1 ? '' : 's'} same`];
  const label: Record<Exclude<StepChange, 'same'>, string> = { differs: 'differ', new: 'new', removed: 'removed', skipped_now: 'skipped now', ran_now: 'ran now' };
  for (const c of ['differs', 'skipped_now', 'ran_now', 'new', 'removed'] as const) if (summary[c]) parts.push(`${summary[c]} ${c === 'differs' && summary[c] === 1 ? 'differs' : label[c]} (${changed(c).join(', ')})`);
  return {
    run_id: a.original.id, replay_run_id: a.replay.id, workflow: a.original.workflow, version_before: a.original.versionId, version_after: a.replay.versionId,
    from: a.from ?? null, live: a.live, status: a.replay.status,
    ...(a.replay.error ? { error: { code: a.replay.error.code, message: a.replay.error.message } } : {}),
    steps,
    output: { change: outSame ? 'same' : 'differs', before: a.original.output ?? null, after: a.replay.output ?? null, ...(outSame ? {} : { diff: jsonDiff(a.original.output, a.replay.output) }) },
    summary,
    summary_line: `${parts.join(', ')}; output ${outSame ? 'same' : 'differs'}${summary.live_calls ? `; ${summary.live_calls} live call${summary.live_calls === 1 ? '' : 's'}` : ''}`,
  };
}
