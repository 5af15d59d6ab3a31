/**
 * Prometheus metrics of one Baton (a registry of its own, not prom-client's global one, so that
 * several engines in one process — tests, embedders — do not mix their numbers).
 *
 * Counted in this process as things happen: runs started and finished, step attempt latency.
 * Read from the store (or this process's services) at each scrape: the shared queue, breaker
 * states, tokens and cost by service, pending approvals. Those read from the store are the
 * cluster's figures whichever process is scraped; the counters are this process's own (sum
 * them over instances).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BreakerState } from '../resilience/breaker.js';
import type { ServiceRuntime } from '../services/runtime.js';
import type { Store } from '../store/store.js';

/** Every metric name exported (the Grafana dashboard test checks its queries against this list). */
export const METRIC_NAMES = [
  'baton_runs_started_total',
  'baton_runs_finished_total',
  'baton_step_duration_seconds',
  'baton_queue_depth',
  'baton_queue_oldest_age_seconds',
  'baton_breaker_state',
  'baton_model_tokens_total',
  'baton_model_cost_usd_total',
  'baton_approvals_pending',
  'baton_approvals_oldest_age_seconds',
] as const;

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The store's approval list, where it has one (approvals are optional to this module). */
type ApprovalLister = { listApprovals?(f: { status: string[]; limit?: number }): Promise<Array<{ createdAt: number; awaited?: boolean }>> };

/** Pending approvals: `store.approvalStats()` when the store has it, else counted from `listApprovals`, else 0. */
async function approvalStats(store: Store): Promise<{ pending: number; oldestCreatedAt?: number }> {
  if (store.approvalStats) return store.approvalStats();
  const lister = store as Store & ApprovalLister;
  if (typeof lister.listApprovals !== 'function') return { pending: 0 };
  // Those whose step stopped waiting (run cancelled) can no longer be decided: not pending.
  const open = (await lister.listApprovals({ status: ['pending'], limit: 100_000 })).filter((a) => a.awaited !== false);
  return open.length ? { pending: open.length, oldestCreatedAt: Math.min(...open.map((a) => a.createdAt)) } : { pending: 0 };
}

export class BatonMetrics {
  readonly registry = new Registry();
  private readonly runsStarted: Counter<'workflow'>;
  private readonly runsFinished: Counter<'workflow' | 'status'>;
  private readonly stepDuration: Histogram<'kind' | 'service'>;
  private readonly queueDepth: Gauge;
  private readonly queueAge: Gauge;
  private readonly breaker: Gauge<'service'>;
  private readonly tokens: Counter<'service' | 'direction'>;
  private readonly cost: Counter<'service'>;
  private readonly approvals: Gauge;
  private readonly approvalsAge: Gauge;
  /** Store totals at the last scrape: the counters move by the difference. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly source: { store: Store; models?: ServiceRuntime; now?: () => number }) {
    const registers = [this.registry];
    this.runsStarted = new Counter({ name: 'baton_runs_started_total', help: 'Runs admitted by this process.', labelNames: ['workflow'], registers });
    this.runsFinished = new Counter({ name: 'baton_runs_finished_total', help: 'Runs whose end this process recorded, by final status (completed, failed, cancelled).', labelNames: ['workflow', 'status'], registers });
    this.stepDuration = new Histogram({
      name: 'baton_step_duration_seconds', help: 'Step attempts run by this process, start to recorded outcome; `service` is the model service for model steps.',
      labelNames: ['kind', 'service'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers,
    });
    this.queueDepth = new Gauge({ name: 'baton_queue_depth', help: 'Steps due now that no worker has claimed yet (cluster-wide).', registers });
    this.queueAge = new Gauge({ name: 'baton_queue_oldest_age_seconds', help: 'How long the oldest unclaimed due step has waited (0 when none).', registers });
    this.breaker = new Gauge({ name: 'baton_breaker_state', help: "Circuit breaker of each model service in this process: 0 closed, 1 half-open, 2 open.", labelNames: ['service'], registers });
    this.tokens = new Counter({ name: 'baton_model_tokens_total', help: 'Model tokens recorded (cluster-wide), by service and direction (input, output, cached).', labelNames: ['service', 'direction'], registers });
    this.cost = new Counter({ name: 'baton_model_cost_usd_total', help: 'USD spent on model calls (cluster-wide), by service.', labelNames: ['service'], registers });
    this.approvals = new Gauge({ name: 'baton_approvals_pending', help: 'Approvals waiting for a decision (0 when the store has none).', registers });
    this.approvalsAge = new Gauge({ name: 'baton_approvals_oldest_age_seconds', help: 'How long the oldest pending approval has waited (0 when none).', registers });
  }

  runStarted(workflow: string): void {
    this.runsStarted.inc({ workflow });
  }

  runFinished(workflow: string, status: string): void {
    this.runsFinished.inc({ workflow, status });
  }

  stepObserved(kind: string, service: string, seconds: number): void {
    this.stepDuration.observe({ kind, service }, seconds);
  }

  /** The exposition text: gauges and store totals are read now. */
  async text(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    const now = this.source.now?.() ?? Date.now();
    const { store, models } = this.source;
    const [queue, usage, approvals] = await Promise.all([
      store.queueStats(now),
      models ? store.costReport({ by: 'service' }) : Promise.resolve([]),
      approvalStats(store),
    ]);
    this.queueDepth.set(queue.ready);
    this.queueAge.set(queue.oldestDueAt === undefined ? 0 : Math.max(0, (now - queue.oldestDueAt) / 1000));
    this.approvals.set(approvals.pending);
    this.approvalsAge.set(approvals.oldestCreatedAt === undefined ? 0 : Math.max(0, (now - approvals.oldestCreatedAt) / 1000));
    for (const s of models?.status() ?? []) this.breaker.set({ service: s.name }, BREAKER_VALUE[s.breaker]);
    for (const line of usage) {
      this.advance(`tin:${line.key}`, line.inputTokens, (d) => this.tokens.inc({ service: line.key, direction: 'input' }, d));
      this.advance(`tout:${line.key}`, line.outputTokens, (d) => this.tokens.inc({ service: line.key, direction: 'output' }, d));
      this.advance(`tcached:${line.key}`, line.cachedTokens, (d) => this.tokens.inc({ service: line.key, direction: 'cached' }, d));
      this.advance(`cost:${line.key}`, line.cost, (d) => this.cost.inc({ service: line.key }, d));
    }
  }

  /** Moves a counter to a store total (never backwards: a total that shrank, e.g. rows deleted, is a new baseline). */
  private advance(key: string, total: number, inc: (delta: number) => void): void {
    const before = this.seen.get(key) ?? 0;
    inc(Math.max(0, total - before));
    this.seen.set(key, total);
  }
}
