import { useEffect, useState } from 'react';
import { api, fmtCost } from '../api';
import { BarChart } from '../components/BarChart';
import { fmtDur } from '../components/Gantt';

interface CostLine { key: string; calls: number; failed: number; tokens: number; cost: number }
interface Costs { by: string; lines: CostLine[]; truncated: boolean }
interface Service {
  name: string; provider: string; model: string; version: string | null; status: string; breaker: string;
  p50_ms: number | null; p95_ms: number | null; calls: number; failures: number; error_rate: number | null;
  calls_24h: number; error_rate_24h: number | null; cost_24h: number | null;
}

const RANGES: Record<string, number | null> = { '24h': 86400_000, '7d': 7 * 86400_000, '30d': 30 * 86400_000, all: null };

/** Spending per workflow, service and day; each service's latency, error rate and breaker. */
export function CostsPage() {
  const [range, setRange] = useState('7d');
  const [costs, setCosts] = useState<Record<string, Costs>>({});
  const [services, setServices] = useState<Service[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const since = RANGES[range] === null ? '' : `&since=${encodeURIComponent(new Date(Date.now() - RANGES[range]!).toISOString())}`;
    Promise.all(['workflow', 'service', 'day'].map((by) => api<Costs>(`/console-api/costs?by=${by}${since}`)))
      .then(([w, s, d]) => setCosts({ workflow: w, service: s, day: d }), (e) => setError((e as Error).message));
  }, [range]);
  useEffect(() => {
    const load = () => api<Service[]>('/console-api/services').then(setServices, (e) => setError((e as Error).message));
    void load();
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, []);

  const chart = (by: string) => (costs[by]?.lines ?? []).map((l) => ({ key: l.key, value: l.cost, note: `${l.calls} calls, ${l.tokens} tokens` }));
  return (
    <section>
      <h2>Costs and health</h2>
      <div className="filters">
        <label>Period
          <select name="range" value={range} onChange={(e) => setRange(e.target.value)}>
            {Object.keys(RANGES).map((r) => <option key={r} value={r}>{r === 'all' ? 'all time' : `last ${r}`}</option>)}
          </select>
        </label>
      </div>
      {error && <div className="error">{error}</div>}
      <div className="charts">
        <div className="panel"><h3>Cost per workflow</h3><BarChart rows={chart('workflow')} format={fmtCost} testId="cost-workflow" /></div>
        <div className="panel"><h3>Cost per service</h3><BarChart rows={chart('service')} format={fmtCost} testId="cost-service" /></div>
        <div className="panel"><h3>Cost per day</h3><BarChart rows={chart('day')} format={fmtCost} testId="cost-day" /></div>
      </div>
      {Object.values(costs).some((c) => c.truncated) && <p className="muted">Totals cover the newest 1000 runs your key can see.</p>}
      <div className="panel">
        <h3>Services</h3>
        {services === null ? <p className="muted">Loading…</p> : services.length === 0 ? <p className="muted">No model services are configured in this gateway (baton.config.yaml <code>services:</code>).</p> : (
          <table className="list" data-testid="services">
            <thead><tr><th>Service</th><th>Provider / model</th><th>Status</th><th>Breaker</th><th className="num">p50</th><th className="num">p95</th><th className="num">Calls</th><th className="num">Error rate</th><th className="num">Calls 24h</th><th className="num">Errors 24h</th><th className="num">Cost 24h</th></tr></thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.name}>
                  <td><b>{s.name}</b></td>
                  <td>{s.provider}/{s.model}{s.version ? `@${s.version}` : ''}</td>
                  <td>{s.status}</td>
                  <td><span className={`badge b-${s.breaker}`}>{s.breaker}</span></td>
                  <td className="num">{s.p50_ms === null ? '—' : fmtDur(s.p50_ms)}</td>
                  <td className="num">{s.p95_ms === null ? '—' : fmtDur(s.p95_ms)}</td>
                  <td className="num">{s.calls}</td>
                  <td className="num">{pct(s.error_rate)}</td>
                  <td className="num">{s.calls_24h}</td>
                  <td className="num">{pct(s.error_rate_24h)}</td>
                  <td className="num">{s.cost_24h === null ? '—' : fmtCost(s.cost_24h)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

function pct(r: number | null): string {
  return r === null ? '—' : `${(r * 100).toFixed(1)}%`;
}
