import { BatonError } from '../errors.js';
import type { Duration } from '../spec/types.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "5s", "1.5m", "2h", "1d" or a number of milliseconds. */
export function parseDuration(d: Duration, where = 'duration'): number {
  if (typeof d === 'number' && Number.isFinite(d) && d >= 0) return d;
  if (typeof d === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(d);
    if (m) return Math.round(parseFloat(m[1]) * UNITS[m[2]]);
  }
  throw new BatonError('BATON_DOC_INVALID', { detail: `${where}: "${String(d)}" is not a duration; write e.g. "250ms", "5s", "2m", "1h" or "1d".` });
}

export function formatDuration(ms: number): string {
  if (ms < 1) return "<1ms";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${Math.round((ms % 60_000) / 1000)}s`;
}
