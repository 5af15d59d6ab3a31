import { useEffect, useState } from 'react';
import { api, fmtCost, fmtTime, type Run } from '../api';
import { linkProps } from '../router';

const STATUSES = ['running', 'waiting', 'queued', 'paused', 'completed', 'failed', 'cancelled'];
const SINCE: Record<string, number> = { '1h': 3600_000, '24h': 86400_000, '7d': 7 * 86400_000 };
/** Runs asked for at a time: the newest page (refreshed), then older pages on request. */
const PAGE = 200;

/** Whether `a` comes after `b` in the list's order (newest first: created_at, then run id). */
const olderThan = (a: Run, b: Run) => a.created_at < b.created_at || (a.created_at === b.created_at && a.run_id < b.run_id);

/**
 * The list after a refresh of its newest page: that page is the truth back to its last run
 * (status changes, runs that no longer match); older runs loaded before stay as they were.
 */
function withNewest(prev: Run[] | null, page: Run[]): Run[] {
  const last = page.at(-1);
  const older = prev && last && page.length === PAGE ? prev.filter((r) => olderThan(r, last)) : [];
  return [...page, ...older];
}

/** Runs the key can see, newest first; status and workflow filter on the server, time and cost here. */
export function RunsPage() {
  const [runs, setRuns] = useState<Run[] | null>(null);
  /** Whether older runs may exist: the last page asked for came back full. */
  const [more, setMore] = useState<{ newest: boolean; older?: boolean }>({ newest: false });
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState('');
  const [workflow, setWorkflow] = useState('');
  const [since, setSince] = useState('');
  const [minCost, setMinCost] = useState('');

  const query = (extra: Record<string, string> = {}) => {
    const q = new URLSearchParams({ limit: String(PAGE), ...extra });
    if (status) q.set('status', status);
    if (workflow.trim()) q.set('workflow', workflow.trim());
    return q;
  };

  useEffect(() => {
    let stop = false;
    setRuns(null);
    setMore({ newest: false });
    const load = async () => {
      try {
        const r = await api<Run[]>(`/runs?${query()}`);
        if (!stop) {
          setRuns((prev) => withNewest(prev, r));
          setMore((m) => ({ ...m, newest: r.length === PAGE }));
          setError(null);
        }
      } catch (e) {
        if (!stop) setError((e as Error).message);
      }
    };
    void load();
    // The list refreshes on its own; a run page follows its run live.
    const t = setInterval(load, 3000);
    return () => { stop = true; clearInterval(t); };
  }, [status, workflow]);

  const loadOlder = async () => {
    const last = runs?.at(-1);
    if (!last) return;
    try {
      // The next page starts after the last run shown (its time and id: runs of one millisecond are not skipped).
      const r = await api<Run[]>(`/runs?${query({ before: last.created_at, before_run: last.run_id })}`);
      setRuns((prev) => [...(prev ?? []), ...r.filter((x) => !prev?.length || olderThan(x, prev[prev.length - 1]))]);
      setMore((m) => ({ ...m, older: r.length === PAGE }));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const hasOlder = more.older ?? more.newest;

  const cutoff = since ? Date.now() - SINCE[since] : 0;
  const shown = (runs ?? []).filter((r) => Date.parse(r.created_at) >= cutoff && (!minCost || r.cost >= Number(minCost)));
  return (
    <section>
      <h2>Runs</h2>
      <div className="filters">
        <label>Status
          <select name="status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <label>Workflow <input name="workflow" value={workflow} placeholder="name" onChange={(e) => setWorkflow(e.target.value)} /></label>
        <label>Since
          <select name="since" value={since} onChange={(e) => setSince(e.target.value)}>
            <option value="">any time</option>
            {Object.keys(SINCE).map((s) => <option key={s} value={s}>last {s}</option>)}
          </select>
        </label>
        <label>Cost ≥ $ <input name="mincost" type="number" min="0" step="0.001" value={minCost} onChange={(e) => setMinCost(e.target.value)} style={{ width: 90 }} /></label>
      </div>
      {error && <div className="error">{error}</div>}
      {runs === null ? <p className="muted">Loading…</p> : (
        <table className="list" data-testid="runs">
          <thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th>Namespace</th><th>Started</th><th>Finished</th><th className="num">Cost</th></tr></thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.run_id} data-run={r.run_id}>
                <td><a {...linkProps(`/runs/${encodeURIComponent(r.run_id)}`)}>{r.run_id}</a></td>
                <td>{r.workflow}</td>
                <td><span className={`badge s-${r.status}`}>{r.status}</span></td>
                <td>{r.namespace}</td>
                <td>{fmtTime(r.created_at)}</td>
                <td>{fmtTime(r.finished_at)}</td>
                <td className="num">{fmtCost(r.cost)}</td>
              </tr>
            ))}
            {!shown.length && <tr><td colSpan={7} className="muted">No runs match.</td></tr>}
          </tbody>
        </table>
      )}
      {runs !== null && (
        <p className="muted">
          {runs.length} run{runs.length === 1 ? '' : 's'} loaded{' '}
          {hasOlder && <button type="button" data-testid="older" onClick={() => void loadOlder()}>Load older runs</button>}
        </p>
      )}
    </section>
  );
}
