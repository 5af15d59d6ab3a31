import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, setKey, storedKey, type Whoami } from './api';
import { linkProps, usePath } from './router';
import { SignIn } from './pages/SignIn';
import { RunsPage } from './pages/Runs';
import { RunPage } from './pages/Run';
import { ApprovalsPage } from './pages/Approvals';
import { WorkflowsPage } from './pages/Workflows';
import { CostsPage } from './pages/Costs';

export function App() {
  const [me, setMe] = useState<Whoami | null>(null);
  const [needKey, setNeedKey] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [path] = usePath();

  const load = useCallback(async () => {
    try {
      setMe(await api<Whoami>('/console-api/whoami'));
      setNeedKey(false);
    } catch (e) {
      if (e instanceof ApiError && e.problem.status === 401) {
        setKey(null);
        setNeedKey(true);
      } else setError((e as Error).message);
    }
  }, []);
  useEffect(() => void load(), [load]);

  if (error) return <div className="center"><div className="card error">Cannot reach the gateway: {error}</div></div>;
  if (needKey) return <SignIn onSignedIn={(m) => { setMe(m); setNeedKey(false); }} />;
  if (!me) return <div className="center muted">Loading…</div>;

  const nav = [
    ['/runs', 'Runs'],
    ['/workflows', 'Workflows'],
    ['/approvals', 'Approvals'],
    ['/costs', 'Costs & health'],
  ] as const;
  const section = '/' + (path.split('/')[1] || 'runs');
  let page;
  const m = /^\/runs\/([^/]+)$/.exec(path);
  if (m) page = <RunPage id={decodeURIComponent(m[1])} me={me} />;
  else if (path.startsWith('/workflows')) page = <WorkflowsPage me={me} />;
  else if (path.startsWith('/approvals')) page = <ApprovalsPage me={me} />;
  else if (path.startsWith('/costs')) page = <CostsPage />;
  else page = <RunsPage />;

  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Baton</span>
        <nav>
          {nav.map(([to, label]) => (
            <a key={to} {...linkProps(to)} className={section === to ? 'active' : ''}>{label}</a>
          ))}
        </nav>
        <span className="who" data-testid="whoami">
          {me.key ? <>{me.key.name} · <b>{me.key.role}</b> · {me.key.namespaces.join(', ')}</> : <>auth off · local admin</>}
          {storedKey() && <button className="link" onClick={() => { setKey(null); setMe(null); setNeedKey(true); }}>Sign out</button>}
        </span>
      </header>
      <main>{page}</main>
    </div>
  );
}
