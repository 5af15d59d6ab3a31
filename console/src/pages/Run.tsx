import { useEffect, useMemo, useRef, useState } from 'react';
import { api, ApiError, followEvents, retryable, fmtCost, fmtTime, TERMINAL, type Approval, type Run, type RunEvent, type StepRow, type VersionDetail, type Whoami } from '../api';
import { Gantt, fmtDur } from '../components/Gantt';
import { Graph } from '../components/Graph';
import { Json } from '../components/Json';
import { fold } from '../history';
import { linkProps } from '../router';

type RunWithSteps = Run & { steps: StepRow[] };

/**
 * One run: its graph coloured by live step state and its timeline, both folded from the event
 * stream (no reload); the selected step's input, output, model calls and errors; and the
 * actions the key may take.
 */
export function RunPage({ id, me }: { id: string; me: Whoami }) {
  const [run, setRun] = useState<RunWithSteps | null>(null);
  const [version, setVersion] = useState<VersionDetail | null>(null);
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [streamGen, setStreamGen] = useState(0);
  const [streamError, setStreamError] = useState<string | null>(null);
  const reload = useRef<() => void>(() => undefined);
  const versionId = useRef<string | null>(null);

  useEffect(() => {
    let stop = false;
    let pending: ReturnType<typeof setTimeout> | undefined;
    let retryMs = 1000;
    const later = (ms: number) => {
      if (pending) return;
      pending = setTimeout(() => { pending = undefined; void load(); }, ms);
    };
    const load = async () => {
      try {
        const r = await api<RunWithSteps>(`/runs/${encodeURIComponent(id)}`);
        if (stop) return;
        retryMs = 1000;
        setRun(r);
        if (versionId.current !== r.version_id) {
          const v = await api<VersionDetail>(`/console-api/versions/${encodeURIComponent(r.version_id)}`);
          versionId.current = r.version_id;
          if (!stop) setVersion(v);
        }
      } catch (e) {
        if (stop) return;
        setError((e as Error).message);
        // A read the gateway did not answer (stopping, restarting, a proxy's 502) is tried
        // again: the events that asked for it have been seen, and a run that now waits or has
        // ended sends no more, so the page would keep its status and outputs as they were.
        // Less often each time (up to every 15 s), as the event stream does.
        if (!(e instanceof ApiError) || retryable(e.problem.status)) {
          later(retryMs);
          retryMs = Math.min(retryMs * 2, 15_000);
        }
      }
    };
    // Outputs live on the run; the stream says when to read them again (at most every 250 ms).
    reload.current = () => later(250);
    void load();
    return () => { stop = true; if (pending) clearTimeout(pending); };
  }, [id]);

  useEffect(() => {
    const ac = new AbortController();
    setEvents([]);
    setStreamError(null);
    const seen = new Set<number>();
    // Events arrive in bursts (a run's history at first, a map's items): render them in batches.
    let batch: RunEvent[] = [];
    let flush: ReturnType<typeof setTimeout> | undefined;
    followEvents(id, (e) => {
      if (seen.has(e.id)) return;
      seen.add(e.id);
      batch.push(e);
      flush ??= setTimeout(() => {
        const add = batch;
        batch = [];
        flush = undefined;
        setEvents((es) => [...es, ...add]);
      }, 60);
      if (e.type.startsWith('run.') || e.type === 'step.succeeded' || e.type === 'step.failed' || e.type === 'step.waiting') reload.current();
    }, ac.signal).catch((e) => {
      // Before the run is shown this is the page's error; after, the page stays as it was
      // and says that it no longer follows the run.
      setError((e as Error).message);
      setStreamError((e as Error).message);
    });
    return () => {
      ac.abort();
      if (flush) clearTimeout(flush);
    };
  }, [id, streamGen]);

  const h = useMemo(() => fold(events), [events]);
  const live = run && !TERMINAL.has(h.runStatus ?? run.status);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [live]);

  // Who may decide a waiting approval is the step's rule (roles, named keys), not the key's
  // role: the inbox holds exactly what this key may decide, as the Approvals page reads it.
  const waitingKey = run && version ? version.steps.find((s) => s.kind === 'approval' && (h.states[s.id] ?? run.steps.find((r) => r.key === s.id)?.status) === 'waiting')?.id : undefined;
  const [mayDecide, setMayDecide] = useState<Set<string>>(new Set());
  useEffect(() => {
    if (!waitingKey) return;
    let stop = false;
    api<Approval[]>(`/approvals?run_id=${encodeURIComponent(id)}`).then(
      (l) => !stop && setMayDecide(new Set(l.map((a) => a.step))),
      () => !stop && setMayDecide(new Set()),
    );
    return () => { stop = true; };
  }, [id, waitingKey]);

  if (error && !run) return <div className="error">{error}</div>;
  if (!run || !version) return <p className="muted">Loading…</p>;

  const status = run.status;
  const states: Record<string, string> = {};
  for (const s of run.steps) states[s.key] = s.status;
  Object.assign(states, h.states);
  const order = version.steps.map((s) => s.id);
  const step = selected ? version.steps.find((s) => s.id === selected) : undefined;
  const row = selected ? run.steps.find((s) => s.key === selected) : undefined;
  const calls = h.calls.filter((c) => c.step === selected);
  const waitingApproval = version.steps.find((s) => s.kind === 'approval' && states[s.id] === 'waiting');

  const act = async (what: string, body?: unknown) => {
    setNotice(null);
    try {
      await api(`/runs/${encodeURIComponent(id)}/${what}`, { method: 'POST', body: body ?? {} });
      setNotice(`${what} requested`);
      reload.current();
      // A retried run streams again from where it was.
      if (what === 'retry') setStreamGen((g) => g + 1);
    } catch (e) {
      setNotice((e as Error).message);
    }
  };

  return (
    <section>
      <div className="run-head">
        <div>
          <h2>Run <code>{run.run_id}</code> <span className={`badge s-${status}`} data-testid="run-status">{status}</span></h2>
          <div className="muted">
            <a {...linkProps(`/workflows?name=${encodeURIComponent(run.workflow)}&version=${encodeURIComponent(run.version_id)}`)}>{run.workflow}</a>
            {' '}v{version.seq} · {run.namespace} · started {fmtTime(run.created_at)} · {run.finished_at ? `finished ${fmtTime(run.finished_at)}` : 'in progress'} · cost {fmtCost(run.cost)}
          </div>
        </div>
        <div className="actions">
          {me.can.run && !TERMINAL.has(status) && status !== 'paused' && <button onClick={() => act('pause')}>Pause</button>}
          {me.can.run && status === 'paused' && <button onClick={() => act('resume')}>Resume</button>}
          {me.can.run && !TERMINAL.has(status) && <button className="danger" data-testid="cancel" onClick={() => confirm('Cancel this run?') && act('cancel')}>Cancel run</button>}
          {me.can.run && (status === 'failed' || status === 'cancelled') && <button data-testid="retry" onClick={() => act('retry', {})}>Retry</button>}
        </div>
      </div>
      {notice && <div className="notice">{notice}</div>}
      {streamError && <div className="error" data-testid="stream-error">Live updates stopped ({streamError.replace(/\.$/, '')}). Reload the page to follow the run again.</div>}
      {waitingApproval && (
        <div className="notice">Step <b>{waitingApproval.id}</b> waits for a person's decision. {mayDecide.has(waitingApproval.id) || me.auth === 'off'
          ? <a {...linkProps(`/approvals?run=${encodeURIComponent(run.run_id)}`)} data-testid="to-inbox">Open in the approvals inbox</a>
          : <span className="muted">(your key cannot decide it)</span>}</div>
      )}
      {run.error && <div className="error"><b>{run.error.code}</b> {run.error.message}</div>}
      <div className="run-grid">
        <div className="panel">
          <h3>Graph</h3>
          <Graph steps={version.steps} states={states} selected={selected} onSelect={setSelected} />
          <Legend />
        </div>
        <div className="panel detail" data-testid="step-detail">
          {!step ? <p className="muted">Select a step in the graph or the timeline to see its input, output, model calls and errors.</p> : (
            <>
              <h3>{step.id} <span className="muted">({step.kind})</span> <span className={`badge s-${states[step.id] ?? 'pending'}`}>{states[step.id] ?? 'pending'}</span></h3>
              {me.can.run && (status === 'failed' || status === 'cancelled') && (
                <button data-testid="retry-from" onClick={() => act('retry', { from: step.id })}>Retry from this step</button>
              )}
              {step.when && <p><b>when</b> <code>{step.when}</code></p>}
              {step.services.length > 0 && <p><b>services</b> {step.services.join(' → ')} ({step.strategy})</p>}
              <p className="muted">attempt {row?.attempt ?? '—'} · started {fmtTime(row?.started_at)} · finished {fmtTime(row?.finished_at)}</p>
              <h4>Input</h4>
              <Json value={h.inputs[step.id]} />
              <h4>Output</h4>
              <Json value={row?.output} />
              {(row?.error || h.errors[step.id]) && <><h4>Error</h4><Json value={row?.error ?? h.errors[step.id]} /></>}
              {calls.length > 0 && (
                <>
                  <h4>Model calls</h4>
                  <table className="list small">
                    <thead><tr><th>#</th><th>Service</th><th>Model</th><th>Outcome</th><th className="num">Tokens in/out</th><th className="num">Cost</th><th className="num">Latency</th></tr></thead>
                    <tbody>
                      {calls.map((c, i) => (
                        <tr key={i} title={c.error?.message}>
                          <td>{c.attempt}{c.hedge ? ' (hedge)' : ''}</td><td>{c.service}</td><td>{c.provider}/{c.model}</td>
                          <td><span className={`badge ${c.outcome === 'ok' || c.outcome === 'cache_hit' ? 's-succeeded' : 's-failed'}`}>{c.outcome}</span></td>
                          <td className="num">{c.inputTokens}/{c.outputTokens}</td><td className="num">{fmtCost(c.cost)}</td><td className="num">{fmtDur(c.latencyMs)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </>
              )}
            </>
          )}
        </div>
      </div>
      <div className="panel">
        <h3>Timeline</h3>
        <Gantt order={order} attempts={h.attempts} calls={h.calls} now={live ? now : (h.end ?? now)} onSelect={setSelected} />
      </div>
      <details className="panel">
        <summary>Events ({events.length})</summary>
        <table className="list small">
          <tbody>
            {events.map((e) => (
              <tr key={e.id}><td>{e.id}</td><td>{fmtTime(e.at)}</td><td>{e.type}</td><td>{e.step ?? ''}</td><td><code>{e.data ? JSON.stringify(e.data).slice(0, 140) : ''}</code></td></tr>
            ))}
          </tbody>
        </table>
      </details>
      <div className="run-grid">
        <div className="panel"><h3>Run input</h3><Json value={h.runInput} /></div>
        <div className="panel"><h3>Run output</h3><Json value={run.output} /></div>
      </div>
    </section>
  );
}

function Legend() {
  const items = ['pending', 'running', 'waiting', 'retrying', 'succeeded', 'failed', 'skipped', 'cancelled'];
  return (
    <div className="legend">
      {items.map((s) => <span key={s} className={`badge s-${s}`}>{s}</span>)}
    </div>
  );
}
