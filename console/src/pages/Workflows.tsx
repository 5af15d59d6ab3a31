import { useEffect, useMemo, useState } from 'react';
import { api, fmtTime, type GraphStep, type VersionDetail, type VersionRow, type Whoami } from '../api';
import { Graph } from '../components/Graph';
import { Json } from '../components/Json';
import { diffVersions } from '../diff';
import { navigate, usePath } from '../router';

/** Workflows and their versions; a version's graph; a start-run form; a diff of two versions. */
export function WorkflowsPage({ me }: { me: Whoami }) {
  const [, params] = usePath();
  const [versions, setVersions] = useState<VersionRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const name = params.get('name');
  const versionId = params.get('version');
  const against = params.get('diff');

  useEffect(() => {
    api<VersionRow[]>('/workflows').then(setVersions, (e) => setError((e as Error).message));
  }, []);

  const byName = useMemo(() => {
    const m = new Map<string, VersionRow[]>();
    for (const v of versions ?? []) {
      const k = v.namespace === 'default' ? v.name : `${v.namespace}/${v.name}`;
      m.set(k, [...(m.get(k) ?? []), v].sort((a, b) => b.seq - a.seq));
    }
    return m;
  }, [versions]);

  const go = (q: Record<string, string | null>) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v) p.set(k, v);
    navigate(`/workflows?${p}`);
  };
  const current = name ? byName.get(name) ?? byName.get(name.split('/').pop()!) : undefined;
  const selected = versionId ?? current?.[0]?.version_id ?? null;

  return (
    <section>
      <h2>Workflows</h2>
      {error && <div className="error">{error}</div>}
      <div className="split wide-right">
        <div className="panel">
          {versions === null ? <p className="muted">Loading…</p> : byName.size === 0 ? <p className="muted">No workflow is registered. <code>npx baton register flow.yaml</code></p> : (
            <ul className="inbox" data-testid="workflows">
              {[...byName].map(([n, vs]) => (
                <li key={n} className={name === n ? 'selected' : ''} onClick={() => go({ name: n })} data-workflow={n}>
                  <b>{n}</b> <span className="muted small">{vs.length} version{vs.length > 1 ? 's' : ''} · latest {fmtTime(vs[0].created_at)}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          {!current ? <p className="muted">Select a workflow.</p> : (
            <>
              <div className="panel pickers">
                <label>Version{' '}
                  <select name="version" value={selected ?? ''} onChange={(e) => go({ name, version: e.target.value, diff: against })}>
                    {current.map((v) => <option key={v.version_id} value={v.version_id}>v{v.seq} · {v.version_id} · {fmtTime(v.created_at)}</option>)}
                  </select>
                </label>
                {current.length > 1 && (
                  <label>Compare with{' '}
                    <select name="diff" value={against ?? ''} onChange={(e) => go({ name, version: selected, diff: e.target.value })}>
                      <option value="">—</option>
                      {current.filter((v) => v.version_id !== selected).map((v) => <option key={v.version_id} value={v.version_id}>v{v.seq} · {v.version_id}</option>)}
                    </select>
                  </label>
                )}
              </div>
              {selected && <VersionView key={`${selected}:${against ?? ''}`} id={selected} against={against} me={me} />}
            </>
          )}
        </div>
      </div>
    </section>
  );
}

function VersionView({ id, against, me }: { id: string; against: string | null; me: Whoami }) {
  const [v, setV] = useState<VersionDetail | null>(null);
  const [old, setOld] = useState<VersionDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<VersionDetail>(`/console-api/versions/${encodeURIComponent(id)}`).then(setV, (e) => setError((e as Error).message));
    if (against) api<VersionDetail>(`/console-api/versions/${encodeURIComponent(against)}`).then(setOld, (e) => setError((e as Error).message));
  }, [id, against]);
  if (error) return <div className="error">{error}</div>;
  if (!v || (against && !old)) return <p className="muted">Loading…</p>;

  if (against && old) {
    const d = diffVersions(old.document, v.document);
    const states: Record<string, string> = {};
    for (const s of d.steps) states[s.id] = s.change;
    // The removed steps are drawn too, from the older version.
    const steps: GraphStep[] = [...v.steps, ...old.steps.filter((s) => !v.steps.some((x) => x.id === s.id))];
    return (
      <div className="panel" data-testid="diff">
        <h3>v{old.seq} → v{v.seq}</h3>
        <div className="legend">{['added', 'removed', 'changed', 'same'].map((s) => <span key={s} className={`badge d-${s}`}>{s}</span>)}</div>
        <Graph steps={steps} states={states} />
        <table className="list small">
          <thead><tr><th>Step / field</th><th>Change</th><th>Before</th><th>After</th></tr></thead>
          <tbody>
            {d.top.map((f) => <tr key={`top:${f.field}`}><td><code>{f.field}</code></td><td>changed</td><td><Json value={f.before} /></td><td><Json value={f.after} /></td></tr>)}
            {d.steps.filter((s) => s.change !== 'same').flatMap((s) => s.fields.length ? s.fields.map((f) => (
              <tr key={`${s.id}:${f.field}`}><td><b>{s.id}</b>.<code>{f.field}</code></td><td><span className={`badge d-${s.change}`}>{s.change}</span></td><td><Json value={f.before} /></td><td><Json value={f.after} /></td></tr>
            )) : [<tr key={s.id}><td><b>{s.id}</b></td><td><span className={`badge d-${s.change}`}>{s.change}</span></td><td colSpan={2} /></tr>])}
            {d.top.length === 0 && d.steps.every((s) => s.change === 'same') && <tr><td colSpan={4} className="muted">No difference.</td></tr>}
          </tbody>
        </table>
      </div>
    );
  }

  return (
    <>
      <div className="panel">
        <h3>{v.name} <span className="muted">v{v.seq} · {v.namespace}</span></h3>
        <Graph steps={v.steps} />
      </div>
      {me.can.run && <StartRun v={v} />}
      <details className="panel"><summary>Document</summary><Json value={v.document} /></details>
    </>
  );
}

function StartRun({ v }: { v: VersionDetail }) {
  const [input, setInput] = useState('{}');
  const [error, setError] = useState<string | null>(null);
  const start = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch (err) {
      setError(`The input is not JSON: ${(err as Error).message}`);
      return;
    }
    try {
      const r = await api<{ run_id: string }>('/runs', { method: 'POST', body: { workflow: v.version_id, input: parsed } });
      navigate(`/runs/${encodeURIComponent(r.run_id)}`);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form className="panel start" onSubmit={start} data-testid="start-run">
      <h3>Start a run</h3>
      <label>Input (JSON)
        <textarea name="input" rows={6} value={input} onChange={(e) => setInput(e.target.value)} spellCheck={false} />
      </label>
      {error && <div className="error" role="alert">{error}</div>}
      <button type="submit" className="primary">Start run</button>
    </form>
  );
}
