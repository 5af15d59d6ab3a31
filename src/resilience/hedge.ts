/**
 * Hedged requests: when a service is slower than usual for this call (past a percentile of
 * its recent latencies, or a fixed delay), the next service in the chain is started as well
 * and the first good answer wins; the loser is aborted. Latencies are tracked per service on
 * this worker from successful calls only, so a failing service does not teach the tracker
 * that slow is normal.
 */
export class LatencyTracker {
  private readonly samples: number[] = [];
  private next = 0;

  constructor(private readonly size = 256) {}

  record(ms: number): void {
    if (this.samples.length < this.size) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.size;
  }

  get count(): number {
    return this.samples.length;
  }

  /** The p-th percentile (0..100) of the recent latencies, or undefined with no samples. */
  percentile(p: number): number | undefined {
    if (this.samples.length === 0) return undefined;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i];
  }
}

/** When to start the hedge for one call, or undefined when the tracker has too few samples to say. */
export function hedgeDelay(h: { percentile?: number; afterMs?: number; minSamples: number }, tracker: LatencyTracker): number | undefined {
  if (h.afterMs !== undefined) return h.afterMs;
  if (h.percentile === undefined || tracker.count < h.minSamples) return undefined;
  return tracker.percentile(h.percentile);
}
