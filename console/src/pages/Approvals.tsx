import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, fmtTime, type Approval, type Whoami } from '../api';
import { Json } from '../components/Json';
import { SchemaForm, typedValues, type FormValues } from '../components/SchemaForm';
import { linkProps, usePath } from '../router';

const OPEN = new Set(['pending', 'escalated']);

/**
 * The approvals inbox: open decisions the key may take (the server decides who may), with the
 * evidence, summary and form; approve or reject, then see the run continue. "History" lists
 * every approval of the key's namespaces, read-only.
 */
export function ApprovalsPage({ me }: { me: Whoami }) {
  const [, params] = usePath();
  const runFilter = params.get('run');
  const [tab, setTab] = useState<'inbox' | 'all'>('inbox');
  const [list, setList] = useState<Approval[] | null>(null);
  const [selected, setSelected] = useState<string | null>(params.get('id'));
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    const q = new URLSearchParams();
    if (tab === 'all') q.set('status', 'all');
    if (runFilter) q.set('run_id', runFilter);
    try {
      const l = await api<Approval[]>(`/approvals?${q}`);
      setList(l);
      setError(null);
      setSelected((s) => s ?? l[0]?.id ?? null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [tab, runFilter]);
  useEffect(() => {
    void load();
    const t = setInterval(load, 3000);
    return () => clearInterval(t);
  }, [load]);

  return (
    <section>
      <h2>Approvals {runFilter && <small className="muted">for run {runFilter} · <a {...linkProps('/approvals')}>all runs</a></small>}</h2>
      <div className="tabs">
        <button className={tab === 'inbox' ? 'active' : ''} onClick={() => setTab('inbox')}>Inbox</button>
        <button className={tab === 'all' ? 'active' : ''} onClick={() => setTab('all')}>History</button>
      </div>
      {error && <div className="error">{error}</div>}
      <div className="split">
        <div className="panel">
          {list === null ? <p className="muted">Loading…</p> : list.length === 0 ? <p className="muted" data-testid="inbox-empty">{tab === 'inbox' ? 'Nothing waits for your decision.' : 'No approvals.'}</p> : (
            <ul className="inbox" data-testid="inbox">
              {list.map((a) => (
                <li key={a.id} className={selected === a.id ? 'selected' : ''} onClick={() => setSelected(a.id)} data-approval={a.id}>
                  <div><b>{a.workflow}</b> · {a.step} <span className={`badge a-${a.status}`}>{a.status}</span></div>
                  <div className="muted small">{a.summary ?? a.run_id}</div>
                  <div className="muted small">{fmtTime(a.created_at)}{a.deadline_at ? ` · due ${fmtTime(a.deadline_at)}` : ''}</div>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div className="panel">
          {selected ? <ApprovalDetail key={selected} id={selected} me={me} onDecided={load} /> : <p className="muted">Select an approval.</p>}
        </div>
      </div>
    </section>
  );
}

function ApprovalDetail({ id, me, onDecided }: { id: string; me: Whoami; onDecided: () => void }) {
  const [a, setA] = useState<Approval | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [values, setValues] = useState<FormValues>({});
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [mayDecide, setMayDecide] = useState(false);

  useEffect(() => {
    api<Approval>(`/approvals/${encodeURIComponent(id)}`).then(setA, (e) => setError((e as Error).message));
    // The inbox holds exactly what this key may decide (the step's roles and users, or admin).
    api<Approval[]>('/approvals').then((l) => setMayDecide(l.some((x) => x.id === id)), () => setMayDecide(false));
  }, [id]);

  if (error && !a) return <div className="error">{error}</div>;
  if (!a) return <p className="muted">Loading…</p>;

  const decide = async (decision: 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { decision, data: typedValues(a.form, values) };
      if (reason.trim()) body.reason = reason.trim();
      setA(await api<Approval>(`/approvals/${encodeURIComponent(id)}`, { method: 'POST', body }));
      onDecided();
    } catch (e) {
      // A 422 lists each field that breaks the form by JSON pointer.
      const p = e instanceof ApiError ? (e.problem as { details?: { errors?: Array<{ pointer: string; message: string }> } }) : undefined;
      const fieldErrors = p?.details?.errors?.map((x) => `${x.pointer.replace(/^\//, '') || 'answer'} ${x.message}`) ?? [];
      setError([(e as Error).message, ...fieldErrors].join(' · '));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div data-testid="approval-detail">
      <h3>{a.summary ?? `${a.workflow} · ${a.step}`}</h3>
      <p className="muted">
        <a {...linkProps(`/runs/${encodeURIComponent(a.run_id)}`)} data-testid="approval-run">{a.run_id}</a> · step {a.step} · {a.namespace} ·
        {' '}<span className={`badge a-${a.status}`} data-testid="approval-status">{a.status}</span>
        {a.deadline_at && <> · due {fmtTime(a.deadline_at)}</>}
      </p>
      <h4>Evidence</h4>
      <Json value={a.evidence} />
      {OPEN.has(a.status) && mayDecide ? (
        <form className="decide" onSubmit={(e) => e.preventDefault()}>
          <h4>Decision</h4>
          <SchemaForm schema={a.form} values={values} onChange={setValues} />
          <label>Reason <textarea name="reason" value={reason} onChange={(e) => setReason(e.target.value)} rows={2} /></label>
          {error && <div className="error" role="alert">{error}</div>}
          <div className="actions">
            <button type="button" className="primary" disabled={busy} onClick={() => decide('approve')} data-testid="approve">Approve</button>
            <button type="button" className="danger" disabled={busy} onClick={() => decide('reject')} data-testid="reject">Reject</button>
          </div>
        </form>
      ) : OPEN.has(a.status) ? <p className="muted">Your key is not one of this step's approvers.</p> : (
        <>
          <h4>Answer</h4>
          <p>{a.decided_by ? <>by <b>{a.decided_by}</b> at {fmtTime(a.decided_at)}</> : null}</p>
          <Json value={a.answer} />
          <p><a {...linkProps(`/runs/${encodeURIComponent(a.run_id)}`)}>See the run</a></p>
        </>
      )}
    </div>
  );
}
