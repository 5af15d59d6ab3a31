/**
 * Planning a retry: which steps of a failed or cancelled run go back to work, and with what
 * counts, so that the store can apply it in one transaction (`Store.retryRun`).
 *
 * Rules (the README's "Retrying a failed run" says the same for users):
 * - Re-run: every step that did not finish (cancelled) and every step whose failure nothing
 *   handled (a failure absorbed by `on_error: continue` has an output the run went on with, one
 *   sent by `on_error: route` was handled by its handler; both stay as recorded). With
 *   `from`, that step too, even if it succeeded.
 * - Whatever depends on a re-run step, transitively, is re-run too: its inputs may change.
 *   Everything else keeps its recorded output and is not run again.
 * - Attempt numbers keep counting: an attempt that was used (it ran, or may have) is followed
 *   by the next number, so the history stays honest and every external call gets a fresh
 *   idempotency key (`runId:step:attempt`). A step that never started keeps its number. The
 *   `run.retried` event records each reset step's next attempt, from which the executor
 *   counts the step's retry policy afresh.
 * - A map step re-run because it failed (its inputs unchanged) re-runs only its unfinished and
 *   failed items, keeping the others' outputs; a map re-run because of `from` (on it or
 *   upstream) fans out again from scratch.
 * - A `workflow` step starts a fresh child run (the child id carries the attempt).
 * - An error handler a route had sent runs again if it failed; the handler of a step that is
 *   re-run goes back to waiting for that step's route (unless another step had sent it).
 */
import type { CompiledStep, CompiledWorkflow } from '../spec/compile.js';
import type { MapStepDoc } from '../spec/types.js';
import type { StepRecord, StepReset } from '../store/store.js';

export interface RetryPlan {
  reset: StepReset[];
  deleteChildrenOf: string[];
  /** Top-level step ids re-run, in document order (error handlers only if a route had sent them). */
  steps: string[];
  /** Map items re-run (`id[i]`), by map. */
  items: string[];
}

const FINISHED = new Set(['succeeded', 'skipped']);

/** A failure the run went on past: continued (it has an output) or routed to a handler. */
function handled(row: StepRecord, step: CompiledStep): boolean {
  if (row.status !== 'failed') return false;
  if (row.output !== undefined) return true;
  // A run over budget stops whatever on_error says (see executor.ts): that failure was not routed.
  return step.onError.action === 'route' && row.error?.code !== 'BATON_BUDGET_EXCEEDED';
}

/** Whether this row's current attempt number was used: the step ran, or may have. */
function attemptUsed(row: StepRecord): boolean {
  if (row.status === 'succeeded' || row.status === 'failed' || row.status === 'skipped') return true;
  if (row.startedAt !== undefined) return true;
  // Scheduled at some time (a pending step that was cancelled never was: its due_at is 0).
  if (row.dueAt > 0) return true;
  // Resume state: a wait, a child run, a map's fan-out (a map item's own `item` does not count).
  if (row.index === undefined) return row.state !== undefined && row.state !== null;
  return (row.state as { resume?: unknown } | undefined)?.resume !== undefined;
}

const nextAttempt = (row: StepRecord) => (attemptUsed(row) ? row.attempt + 1 : row.attempt);

export function planRetry(wf: CompiledWorkflow, rows: StepRecord[], from?: string): RetryPlan {
  const top = new Map<string, StepRecord>();
  const items = new Map<string, StepRecord[]>();
  for (const r of rows) {
    if (r.parentKey === undefined) top.set(r.key, r);
    else items.set(r.parentKey, [...(items.get(r.parentKey) ?? []), r]);
  }

  // Seeds: what did not finish or failed unhandled, plus `from`; then everything downstream.
  const rerun = new Set<string>();
  const visit = (id: string) => {
    if (rerun.has(id)) return;
    rerun.add(id);
    for (const d of wf.steps.get(id)!.dependents) visit(d);
  };
  for (const id of wf.order) {
    const row = top.get(id);
    if (!row) continue;
    if (!FINISHED.has(row.status) && !handled(row, wf.steps.get(id)!)) visit(id);
  }
  if (from !== undefined) visit(from);

  // A step re-run from scratch may fail again and route again: its error handler goes back to
  // waiting for that route (unless another step, not re-run, had sent it: that handling stands).
  const unsend = new Set<string>();
  for (const id of rerun) {
    const on = wf.steps.get(id)!.onError;
    if (on.action !== 'route') continue;
    const sentByOther = wf.order.some((o) => {
      const s = wf.steps.get(o)!;
      return !rerun.has(o) && s.onError.action === 'route' && s.onError.step === on.step && top.get(o)?.status === 'failed';
    });
    if (!sentByOther) {
      unsend.add(on.step);
      visit(on.step);
    }
  }

  const plan: RetryPlan = { reset: [], deleteChildrenOf: [], steps: [], items: [] };
  const live = (d: string) => {
    const r = top.get(d);
    return r !== undefined && (r.status === 'succeeded' || (r.status === 'failed' && r.output !== undefined));
  };
  for (const id of wf.order) {
    if (!rerun.has(id)) continue;
    const step = wf.steps.get(id)!;
    const row = top.get(id);
    if (!row) continue;
    const attempt = nextAttempt(row);
    if (step.isHandler) {
      // A handler runs only when a route sends it: one that was sent (it ran or was due) runs
      // again now; one that never was waits, as at admission, on a count nothing decrements
      // (it is put back, not re-run, so it is not listed as re-run).
      const sent = !unsend.has(id) && row.status !== 'pending' && !(row.status === 'cancelled' && row.dueAt === 0);
      if (sent) plan.steps.push(id);
      plan.reset.push({ key: id, status: sent ? 'scheduled' : 'pending', attempt, pendingDeps: sent ? 0 : 1, liveDeps: 0, state: null });
      continue;
    }
    plan.steps.push(id);
    const pendingDeps = step.deps.filter((d) => rerun.has(d)).length;
    const liveDeps = step.deps.filter((d) => !rerun.has(d) && live(d)).length;
    const children = (items.get(id) ?? []).sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    // A map whose inputs are unchanged (nothing upstream re-runs, not named by `from`) keeps its finished items.
    if (children.length > 0 && pendingDeps === 0 && id !== from) {
      const again = children.filter((c) => !FINISHED.has(c.status) && !(c.status === 'failed' && c.output !== undefined));
      const window = (step.doc as MapStepDoc).concurrency ?? 10;
      // The map waits for its re-run items as it did for all of them; with none, it collects at once.
      plan.reset.push({ key: id, status: again.length ? 'waiting' : 'scheduled', attempt, pendingDeps: again.length, liveDeps, state: { count: children.length } });
      again.forEach((c, i) => {
        plan.items.push(c.key);
        const item = (c.state as { item?: unknown } | undefined)?.item;
        plan.reset.push({ key: c.key, status: i < window ? 'scheduled' : 'pending', attempt: nextAttempt(c), pendingDeps: 0, liveDeps: 0, state: { item } });
      });
      continue;
    }
    if (children.length > 0) plan.deleteChildrenOf.push(id);
    plan.reset.push({ key: id, status: pendingDeps === 0 ? 'scheduled' : 'pending', attempt, pendingDeps, liveDeps, state: null });
  }
  return plan;
}
