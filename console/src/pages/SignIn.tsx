import { useState } from 'react';
import { api, setKey, type Whoami } from '../api';

/** Sign-in with an API key (`baton keys create`); it is kept for this tab only. */
export function SignIn({ onSignedIn }: { onSignedIn: (me: Whoami) => void }) {
  const [key, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await api<Whoami>('/console-api/whoami', { key: key.trim() });
      setKey(key.trim());
      onSignedIn(me);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="center">
      <form className="card signin" onSubmit={submit}>
        <h1>Baton console</h1>
        <p className="muted">Sign in with an API key. Create one with <code>baton keys create --name you --role operator</code>.</p>
        <label>API key
          <input name="key" type="password" autoComplete="off" placeholder="bk_…" value={key} onChange={(e) => setValue(e.target.value)} autoFocus />
        </label>
        {error && <div className="error" role="alert">{error}</div>}
        <button type="submit" className="primary" disabled={busy || !key.trim()}>Sign in</button>
      </form>
    </div>
  );
}
