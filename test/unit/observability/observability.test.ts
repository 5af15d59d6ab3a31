/**
 * The observability parts on their own: the Grafana dashboard queries only metrics Baton
 * exports (and uses every one), the registry exports exactly the documented names, trace
 * context parsing, log scrubbing, and the `telemetry:` config section.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BatonMetrics, METRIC_NAMES } from '../../../src/observability/metrics.js';
import { decodeRunTrace, encodeRunTrace, parseTraceparent, telemetryWanted } from '../../../src/observability/genai.js';
import { createLogger, loggedUrl, scrubSecrets } from '../../../src/observability/logger.js';
import { parseTelemetry } from '../../../src/observability/config.js';
import type { Store } from '../../../src/store/store.js';

const dashboard = JSON.parse(readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
const HISTOGRAM_SUFFIX = /_(bucket|count|sum)$/;

describe('Grafana dashboard', () => {
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));

  it('queries only metric names Baton exports', () => {
    expect(exprs.length).toBeGreaterThan(0);
    for (const { panel, expr } of exprs) {
      const names = expr.match(/\bbaton_[a-z_]+/g) ?? [];
      expect(names.length, `panel "${panel}" queries no baton metric`).toBeGreaterThan(0);
      for (const n of names) {
        const base = METRIC_NAMES.includes(n as never) ? n : n.replace(HISTOGRAM_SUFFIX, '');
        expect(METRIC_NAMES, `panel "${panel}": ${n}`).toContain(base);
      }
    }
  });

  it('shows every exported metric somewhere', () => {
    const used = new Set(exprs.flatMap(({ expr }) => (expr.match(/\bbaton_[a-z_]+/g) ?? []).map((n) => (METRIC_NAMES.includes(n as never) ? n : n.replace(HISTOGRAM_SUFFIX, '')))));
    for (const n of METRIC_NAMES) expect(used, n).toContain(n);
  });
});

describe('metrics registry', () => {
  it('exports exactly the documented names, with zeros where the store has nothing', async () => {
    const store = { queueStats: async () => ({ ready: 0 }), costReport: async () => [] } as unknown as Store;
    const m = new BatonMetrics({ store });
    m.runStarted('w');
    m.runFinished('w', 'completed');
    m.stepObserved('transform', '', 0.001);
    const text = await m.text();
    const names = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]));
    expect([...names].sort()).toEqual([...METRIC_NAMES].sort());
    expect(text).toMatch(/^baton_approvals_pending 0$/m);
    // A store with approvals feeds the approval gauges.
    const m2 = new BatonMetrics({ store: { ...store, approvalStats: async () => ({ pending: 3, oldestCreatedAt: 1_000 }) } as unknown as Store, now: () => 61_000 });
    const t2 = await m2.text();
    expect(t2).toMatch(/^baton_approvals_pending 3$/m);
    expect(t2).toMatch(/^baton_approvals_oldest_age_seconds 60$/m);
    // A store that only lists approvals: pending ones still awaited are counted.
    const listed = [{ createdAt: 31_000, awaited: true }, { createdAt: 1_000, awaited: false }];
    const m3 = new BatonMetrics({ store: { ...store, listApprovals: async (f: { status: string[] }) => (f.status.includes('pending') ? listed : []) } as unknown as Store, now: () => 61_000 });
    const t3 = await m3.text();
    expect(t3).toMatch(/^baton_approvals_pending 1$/m);
    expect(t3).toMatch(/^baton_approvals_oldest_age_seconds 30$/m);
  });

  it('keeps several engines apart (a registry each)', async () => {
    const store = { queueStats: async () => ({ ready: 0 }), costReport: async () => [] } as unknown as Store;
    const a = new BatonMetrics({ store });
    const b = new BatonMetrics({ store });
    a.runStarted('x');
    expect(await b.text()).not.toMatch(/baton_runs_started_total\{workflow="x"\}/);
  });
});

describe('trace context', () => {
  it('parses W3C traceparent and refuses malformed or all-zero ids', () => {
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true });
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')?.sampled).toBe(false);
    for (const bad of [undefined, '', 'garbage', '00-0000000000000000000000000000000-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  it('stores a run span with its parent and reads it back', () => {
    const t = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), sampled: true, parentSpanId: 'c'.repeat(16) };
    expect(decodeRunTrace(encodeRunTrace(t))).toEqual(t);
    expect(decodeRunTrace(undefined)).toBeUndefined();
    expect(decodeRunTrace('nonsense')).toBeUndefined();
  });

  it('is off unless a processor or an OTLP endpoint asks for it; false wins over the environment', () => {
    expect(telemetryWanted(undefined, {})).toBe(false);
    expect(telemetryWanted(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(true);
    expect(telemetryWanted(false, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(false);
    expect(telemetryWanted({ otlpEndpoint: 'http://c:4318' }, {})).toBe(true);
    expect(telemetryWanted(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false);
    expect(telemetryWanted(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBe(false);
  });
});

describe('logs', () => {
  it('scrubs API keys, bearer tokens and vendor keys wherever they are, and redacts secret fields', () => {
    const key = `bk_0123456789ab_${'S'.repeat(32)}`;
    expect(scrubSecrets(`{"msg":"bad key ${key}","h":"Bearer abc.def"}`)).toBe('{"msg":"bad key bk_[redacted]","h":"Bearer [redacted]"}');
    expect(scrubSecrets('sk-live1234567890')).toBe('sk-[redacted]');
    const lines: string[] = [];
    const log = createLogger({ stream: new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } }) });
    log.info({ headers: { authorization: 'Basic Zm9vOmJhcg==' }, password: 'hunter2', run_id: 'run_1', url: `/x?k=${key}` }, 'hello');
    const out = lines.join('');
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('Zm9vOmJhcg');
    expect(out).not.toContain('S'.repeat(32));
    expect(JSON.parse(out)).toMatchObject({ level: 'info', run_id: 'run_1', msg: 'hello', password: '[redacted]' });
  });

  it('logs a URL with its query names only', () => {
    expect(loggedUrl('/runs?token=secret&limit=5')).toBe('/runs?token=…&limit=…');
    expect(loggedUrl('/runs')).toBe('/runs');
  });
});

describe('telemetry: in baton.config.yaml', () => {
  it('reads the endpoint, service name and headers from the environment', () => {
    expect(parseTelemetry({ otlp_endpoint: 'http://localhost:4318', service_name: 'b', headers: { 'x-key': 'env:K' } }, 'c.yaml', { K: 'v' })).toEqual({ otlpEndpoint: 'http://localhost:4318', serviceName: 'b', headers: { 'x-key': 'v' } });
    expect(parseTelemetry({ enabled: false }, 'c.yaml', {})).toBe(false);
    expect(parseTelemetry(undefined)).toBeUndefined();
  });

  it('refuses an unknown field, a bad URL and a secret written in the file, naming each path', () => {
    let err: { code?: string; message?: string } = {};
    try {
      parseTelemetry({ otlp_endpoint: 'localhost:4318', colour: 1 }, 'c.yaml', {});
    } catch (e) {
      err = e as Error & { code: string };
    }
    expect(err.code).toBe('BATON_CONFIG_INVALID');
    expect(err.message).toContain('telemetry.otlp_endpoint');
    expect(err.message).toContain('`colour`');
    expect(() => parseTelemetry({ headers: { 'x-key': 'plain-secret' } }, 'c.yaml', {})).toThrow(/telemetry\.headers\.x-key: write `env:NAME`/);
    expect(() => parseTelemetry({ headers: { 'x-key': 'env:NOPE' } }, 'c.yaml', {})).toThrow(/NOPE is not set/);
  });
});
