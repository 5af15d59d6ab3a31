/**
 * A workflow drawn as a graph: steps as boxes (kind, `when`, fallbacks, approvers), edges for
 * dependencies (dashed for `on_error.route` handlers), laid out by dagre, top to bottom, in
 * SVG. With `states`, each box is coloured by its step's state.
 */
import dagre from '@dagrejs/dagre';
import { useMemo } from 'react';
import type { GraphStep } from '../api';

const W = 190;
const H = 58;

export const STATE_COLORS: Record<string, string> = {
  pending: '#e5e7eb', scheduled: '#dbeafe', running: '#93c5fd', retrying: '#fcd34d', waiting: '#fde68a',
  succeeded: '#86efac', failed: '#fca5a5', skipped: '#f3f4f6', cancelled: '#d1d5db',
  added: '#bbf7d0', removed: '#fecaca', changed: '#fef08a', same: '#f9fafb',
};

export function Graph({ steps, states, selected, onSelect }: {
  steps: GraphStep[];
  states?: Record<string, string>;
  selected?: string | null;
  onSelect?: (id: string) => void;
}) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 30, ranksep: 46, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const s of steps) g.setNode(s.id, { width: W, height: H });
    const edges: Array<{ from: string; to: string; handler: boolean }> = [];
    for (const s of steps) {
      for (const d of s.deps) if (steps.some((x) => x.id === d)) { g.setEdge(d, s.id); edges.push({ from: d, to: s.id, handler: false }); }
      const route = (s.on_error as { route?: string } | null)?.route;
      if (route && steps.some((x) => x.id === route)) { g.setEdge(s.id, route); edges.push({ from: s.id, to: route, handler: true }); }
    }
    dagre.layout(g);
    const gr = g.graph();
    return {
      width: (gr.width ?? 200) + 4, height: (gr.height ?? 100) + 4,
      nodes: steps.map((s) => ({ s, ...(g.node(s.id) as { x: number; y: number }) })),
      edges: edges.map((e) => ({ ...e, points: (g.edge(e.from, e.to) as { points: Array<{ x: number; y: number }> } | undefined)?.points ?? [] })),
    };
  }, [steps]);

  return (
    <svg className="graph" width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`} role="img" aria-label="workflow graph">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280" />
        </marker>
      </defs>
      {layout.edges.map((e, i) => (
        <polyline key={i} fill="none" stroke={e.handler ? '#dc2626' : '#9ca3af'} strokeWidth={1.5} strokeDasharray={e.handler ? '5 4' : undefined}
          markerEnd="url(#arrow)" points={e.points.map((p) => `${p.x},${p.y}`).join(' ')} />
      ))}
      {layout.nodes.map(({ s, x, y }) => {
        const state = states?.[s.id] ?? (states ? 'pending' : undefined);
        const fill = state ? STATE_COLORS[state] ?? '#fff' : '#fff';
        const sub = s.kind === 'model' && s.services.length
          ? `${s.services[0]}${s.services.length > 1 ? ` → ${s.services.slice(1).join(' → ')}` : ''}`
          : s.kind === 'approval' ? `approvers: ${[...(s.approvers?.roles ?? []), ...(s.approvers?.users ?? [])].join(', ')}` : '';
        return (
          <g key={s.id} transform={`translate(${x - W / 2},${y - H / 2})`} className={`node${onSelect ? ' clickable' : ''}`}
            data-step={s.id} data-state={state ?? ''} onClick={() => onSelect?.(s.id)}>
            <title>{`${s.id} (${s.kind})${s.when ? `\nwhen: ${s.when}` : ''}${state ? `\nstate: ${state}` : ''}`}</title>
            <rect width={W} height={H} rx={8} fill={fill} stroke={selected === s.id ? '#1d4ed8' : s.handler ? '#dc2626' : '#6b7280'} strokeWidth={selected === s.id ? 3 : 1.2}
              strokeDasharray={s.handler ? '4 3' : undefined} />
            <text x={10} y={20} className="node-id">{clip(s.id, 20)}</text>
            <text x={W - 8} y={20} textAnchor="end" className="node-kind">{s.kind}{state ? ` · ${state}` : ''}</text>
            {s.when && <text x={10} y={37} className="node-when">when {clip(s.when, 26)}</text>}
            {sub && <text x={10} y={s.when ? 51 : 40} className="node-sub">{clip(sub, 30)}</text>}
          </g>
        );
      })}
    </svg>
  );
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
