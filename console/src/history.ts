/**
 * What a run's event history says: each step's live state, its attempts (for the timeline)
 * and model calls. Folded from the events in order, so the run page updates from the stream
 * alone, without re-reading the run.
 */
import type { RunEvent } from './api';

export interface Attempt {
  step: string;
  attempt: number;
  start: number;
  end?: number;
  outcome: 'running' | 'waiting' | 'succeeded' | 'failed' | 'retrying' | 'cancelled';
}

export interface ModelCall {
  step: string;
  attempt: number;
  service: string;
  provider: string;
  model: string;
  outcome: string;
  inputTokens: number;
  outputTokens: number;
  cost: number;
  latencyMs: number;
  hedge: boolean;
  at: number;
  error?: { code?: string; message?: string };
}

export interface History {
  states: Record<string, string>;
  attempts: Attempt[];
  calls: ModelCall[];
  inputs: Record<string, unknown>;
  errors: Record<string, unknown>;
  runStatus?: string;
  /** As recorded in `run.created` (a large one may be a blob reference). */
  runInput?: unknown;
  start?: number;
  end?: number;
}

const RUN_END: Record<string, string> = { 'run.completed': 'completed', 'run.failed': 'failed', 'run.cancelled': 'cancelled' };

export function fold(events: RunEvent[]): History {
  const h: History = { states: {}, attempts: [], calls: [], inputs: {}, errors: {} };
  const open = new Map<string, Attempt>();
  const close = (step: string, at: number, outcome: Attempt['outcome']) => {
    const a = open.get(step);
    if (a) {
      a.end = at;
      a.outcome = outcome;
      open.delete(step);
    }
  };
  for (const e of events) {
    const at = Date.parse(e.at);
    h.start ??= at;
    const d = e.data ?? {};
    const k = e.step;
    if (RUN_END[e.type]) {
      h.runStatus = RUN_END[e.type];
      h.end = at;
      for (const [step, a] of open) {
        if (e.type === 'run.cancelled') h.states[step] = 'cancelled';
        a.end = at;
        a.outcome = e.type === 'run.cancelled' ? 'cancelled' : a.outcome === 'waiting' || a.outcome === 'running' ? 'failed' : a.outcome;
      }
      open.clear();
      continue;
    }
    if (e.type === 'run.created') { h.runInput = d.input; continue; }
    if (e.type === 'run.retried') { h.runStatus = 'running'; h.end = undefined; continue; }
    if (e.type === 'run.paused') { h.runStatus = 'paused'; continue; }
    if (e.type === 'run.resumed' || e.type === 'run.started') { h.runStatus = 'running'; continue; }
    if (!k) continue;
    switch (e.type) {
      case 'step.started': {
        close(k, at, 'failed');
        const a: Attempt = { step: k, attempt: d.attempt ?? 1, start: at, outcome: 'running' };
        h.attempts.push(a);
        open.set(k, a);
        h.states[k] = 'running';
        if (d.input !== undefined) h.inputs[k] = d.input;
        break;
      }
      case 'step.waiting': {
        let a = open.get(k);
        if (!a) {
          a = { step: k, attempt: d.attempt ?? 1, start: at, outcome: 'waiting' };
          h.attempts.push(a);
          open.set(k, a);
        }
        a.outcome = 'waiting';
        h.states[k] = 'waiting';
        break;
      }
      case 'step.resumed':
      case 'signal.received':
        if (open.get(k)) open.get(k)!.outcome = 'running';
        h.states[k] = 'running';
        break;
      case 'step.succeeded':
      case 'step.failed': {
        const outcome = e.type === 'step.succeeded' ? 'succeeded' : d.final === false ? 'retrying' : 'failed';
        if (!open.get(k)) {
          // The fast path folds the start into this event (started_at, input).
          const start = typeof d.started_at === 'number' ? d.started_at : at - (d.duration_ms ?? 0);
          const a: Attempt = { step: k, attempt: d.attempt ?? 1, start, outcome: 'running' };
          h.attempts.push(a);
          open.set(k, a);
          if (d.input !== undefined) h.inputs[k] = d.input;
        }
        close(k, at, outcome);
        h.states[k] = outcome;
        if (d.error) h.errors[k] = d.error;
        break;
      }
      case 'step.retrying':
        close(k, at, 'retrying');
        h.states[k] = 'retrying';
        if (d.error) h.errors[k] = d.error;
        break;
      case 'step.skipped':
        h.states[k] = 'skipped';
        break;
      case 'model.call':
        h.calls.push({
          step: k, attempt: d.attempt ?? 1, service: d.service, provider: d.provider, model: d.model, outcome: d.outcome,
          inputTokens: d.inputTokens ?? 0, outputTokens: d.outputTokens ?? 0, cost: d.cost ?? 0, latencyMs: d.latencyMs ?? 0,
          hedge: Boolean(d.hedge), at, error: d.error,
        });
        break;
    }
  }
  return h;
}
