/** A horizontal bar chart in plain SVG (label, bar, value). */
export function BarChart({ rows, format, testId }: { rows: Array<{ key: string; value: number; note?: string }>; format: (v: number) => string; testId?: string }) {
  if (!rows.length) return <p className="muted">No data yet.</p>;
  const max = Math.max(...rows.map((r) => r.value), 1e-12);
  const LABEL = 170;
  const W = 520;
  const ROW = 24;
  const height = rows.length * ROW + 6;
  return (
    <svg className="bars" width={W} height={height} viewBox={`0 0 ${W} ${height}`} role="img" data-testid={testId}>
      {rows.map((r, i) => {
        const w = Math.max(((W - LABEL - 90) * r.value) / max, 1);
        return (
          <g key={r.key} transform={`translate(0,${i * ROW + 3})`}>
            <text x={LABEL - 8} y={14} textAnchor="end" className="bar-label">{r.key.length > 24 ? `${r.key.slice(0, 23)}…` : r.key}</text>
            <rect x={LABEL} y={2} width={w} height={16} rx={3} fill="#3b82f6"><title>{`${r.key}: ${format(r.value)}${r.note ? ` (${r.note})` : ''}`}</title></rect>
            <text x={LABEL + w + 6} y={14} className="bar-value">{format(r.value)}</text>
          </g>
        );
      })}
    </svg>
  );
}
