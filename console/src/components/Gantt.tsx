/**
 * The run's timeline: one lane per step, a bar per attempt (coloured by how it ended; a retry
 * is a second bar in the same lane, parallel steps overlap in time), and under it the model
 * calls the attempt made (a fallback or hedge shows as calls to other services).
 */
import type { Attempt, ModelCall } from '../history';
import { STATE_COLORS } from './Graph';

const LABEL = 150;
const LANE = 34;
const MAX_ITEMS = 20;

const index = (key: string) => Number(/\[(\d+)\]$/.exec(key)?.[1] ?? 0);

export function Gantt({ order, attempts, calls, now, onSelect }: { order: string[]; attempts: Attempt[]; calls: ModelCall[]; now: number; onSelect?: (step: string) => void }) {
  // A map step's items (`id[0]`, `id[1]`…) get lanes under it, so their parallelism shows.
  const items = new Map<string, string[]>();
  for (const a of attempts) {
    const m = /^(.*)\[(\d+)\]$/.exec(a.step);
    if (m && !(items.get(m[1]) ?? []).includes(a.step)) items.set(m[1], [...(items.get(m[1]) ?? []), a.step]);
  }
  const lanes = order.flatMap((s) => {
    const own = attempts.some((a) => a.step === s) ? [s] : [];
    const its = (items.get(s) ?? []).sort((a, b) => index(a) - index(b)).slice(0, MAX_ITEMS);
    return [...own, ...its];
  });
  if (!lanes.length) return <p className="muted">No step has started yet.</p>;
  const shown = attempts.filter((a) => lanes.includes(a.step));
  const t0 = Math.min(...shown.map((a) => a.start));
  const t1 = Math.max(now, ...shown.map((a) => a.end ?? now));
  const span = Math.max(t1 - t0, 1);
  const width = 1120;
  const x = (t: number) => LABEL + ((t - t0) / span) * (width - LABEL - 10);
  const height = lanes.length * LANE + 24;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => ({ f, t: span * f }));
  return (
    <svg className="gantt" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="timeline of step attempts">
      {ticks.map(({ f, t }) => (
        <g key={f}>
          <line x1={x(t0 + t)} x2={x(t0 + t)} y1={0} y2={height - 18} stroke="#e5e7eb" />
          <text x={x(t0 + t)} y={height - 4} textAnchor={f === 1 ? 'end' : f === 0 ? 'start' : 'middle'} className="tick">{fmtDur(t)}</text>
        </g>
      ))}
      {lanes.map((step, i) => {
        const y = i * LANE + 4;
        return (
          <g key={step} className="lane" data-step={step} onClick={() => onSelect?.(step)}>
            <text x={4} y={y + 15} className="lane-label">{step.length > 20 ? `${step.slice(0, 19)}…` : step}</text>
            {attempts.filter((a) => a.step === step).map((a, j) => (
              <rect key={j} x={x(a.start)} y={y} width={Math.max(x(a.end ?? now) - x(a.start), 3)} height={18} rx={3}
                fill={STATE_COLORS[a.outcome] ?? '#ddd'} stroke="#6b7280" strokeWidth={0.6}>
                <title>{`${step} attempt ${a.attempt}: ${a.outcome}, ${fmtDur((a.end ?? now) - a.start)}`}</title>
              </rect>
            ))}
            {calls.filter((c) => c.step === step).map((c, j) => (
              <rect key={`c${j}`} x={x(c.at - c.latencyMs)} y={y + 21} width={Math.max(x(c.at) - x(c.at - c.latencyMs), 2)} height={6}
                fill={c.outcome === 'ok' || c.outcome === 'cache_hit' ? '#2563eb' : '#dc2626'} opacity={c.hedge ? 0.5 : 0.9}>
                <title>{`${c.service} (${c.provider}/${c.model}): ${c.outcome}${c.hedge ? ', hedge' : ''}, ${c.latencyMs} ms`}</title>
              </rect>
            ))}
          </g>
        );
      })}
    </svg>
  );
}

export function fmtDur(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600_000) return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
  return `${(ms / 3600_000).toFixed(1)} h`;
}
