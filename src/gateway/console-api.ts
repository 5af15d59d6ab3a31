/**
 * `/console-api/*`: the few reads the web console needs that the public API does not give in
 * one request — who the caller is (so the console offers only what its key may do), a
 * version's graph, cost totals and service health. They follow the API's rules: a key's
 * capabilities and namespaces bound what comes back, and another team's version is "not
 * found". The paths are the console's own so they never collide with public routes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import { DEFAULT_NAMESPACE, splitQualified } from '../engine/namespaces.js';
import { BatonError } from '../errors.js';
import type { ApiKeyRecord, ModelCallRecord } from '../store/store.js';
import { reaches, requireCap, type Capability } from './auth.js';

const CAPS: Record<ApiKeyRecord['role'], Capability[]> = {
  viewer: ['read'],
  approver: ['read', 'approve'],
  operator: ['read', 'run'],
  admin: ['read', 'run', 'approve', 'register', 'admin'],
};

/** Runs read, at most, to total costs for a key limited to some namespaces. */
const COST_RUN_LIMIT = 1000;

export function registerConsoleApi(app: FastifyInstance, baton: Baton, keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined): void {
  app.get('/console-api/whoami', { schema: { hide: true } }, async (req) => {
    const key = keyOf(req);
    // No key got past the auth hook: auth is off, and the caller acts as a local admin.
    const caps = key ? CAPS[key.role] : CAPS.admin;
    return {
      auth: key ? 'on' : 'off',
      key: key ? { id: key.id, name: key.name, role: key.role, namespaces: key.namespaces } : null,
      can: { run: caps.includes('run'), approve: caps.includes('approve'), register: caps.includes('register'), admin: caps.includes('admin') },
    };
  });

  app.get('/console-api/versions/:versionId', {
    schema: { hide: true, params: { type: 'object', required: ['versionId'], properties: { versionId: { type: 'string', minLength: 1, maxLength: 400 } } } },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read workflows');
    const { versionId } = req.params as { versionId: string };
    const own = splitQualified(versionId).namespace;
    const rec = await baton.store.getVersion(versionId);
    if (!rec || (own !== DEFAULT_NAMESPACE && !reaches(keyOf(req), own))) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: versionId });
    const wf = await baton.registry.get(versionId);
    const { namespace, name } = splitQualified(rec.name);
    return {
      version_id: rec.versionId, name, namespace, seq: rec.seq, created_at: new Date(rec.createdAt).toISOString(),
      document: wf.doc,
      steps: wf.order.map((id) => {
        const s = wf.steps.get(id)!;
        const d = s.doc as unknown as Record<string, unknown>;
        return {
          id, kind: d.kind, deps: s.deps, dependents: s.dependents, handler: s.isHandler,
          when: typeof d.when === 'string' ? d.when : null,
          services: d.kind === 'model' ? [d.service, ...((d.fallback as string[] | undefined) ?? [])] : [],
          strategy: d.kind === 'model' ? (d.strategy ?? 'fallback') : null,
          approvers: d.kind === 'approval' ? (d.approvers ?? null) : null,
          on_error: d.on_error ?? null,
        };
      }),
    };
  });

  app.get('/console-api/costs', {
    schema: {
      hide: true,
      querystring: {
        type: 'object', additionalProperties: false, required: ['by'],
        properties: { by: { type: 'string', enum: ['workflow', 'service', 'day'] }, since: { type: 'string', format: 'date-time' } },
      },
    },
  }, async (req) => {
    const key = keyOf(req);
    requireCap(key, 'read', 'read costs');
    const q = req.query as { by: 'workflow' | 'service' | 'day'; since?: string };
    const since = q.since === undefined ? undefined : Date.parse(q.since);
    // A key that reaches every namespace reads the store's totals; a narrower key sums the
    // calls of the runs it can see, so it never learns another team's spending.
    if ((!key || key.namespaces.includes('*')) && q.by !== 'day') {
      const lines = await baton.store.costReport({ by: q.by, since });
      return { by: q.by, lines: lines.map((l) => ({ key: l.key, calls: l.calls, failed: l.failed, tokens: l.inputTokens + l.outputTokens, cost: l.cost })), truncated: false };
    }
    const runs = await baton.listRuns({ namespaces: key?.namespaces, limit: COST_RUN_LIMIT });
    const totals = new Map<string, { calls: number; failed: number; tokens: number; cost: number }>();
    for (const run of runs) {
      if (run.cost === 0) continue;
      for (const c of await baton.store.getModelCalls(run.id)) {
        if (since !== undefined && c.at < since) continue;
        const k = q.by === 'day' ? new Date(c.at).toISOString().slice(0, 10) : q.by === 'service' ? c.service : run.workflow;
        const t = totals.get(k) ?? { calls: 0, failed: 0, tokens: 0, cost: 0 };
        t.calls++;
        if (failed(c)) t.failed++;
        t.tokens += c.inputTokens + c.outputTokens;
        t.cost += c.cost;
        totals.set(k, t);
      }
    }
    const lines = [...totals].map(([k, t]) => ({ key: k, ...t }));
    lines.sort((a, b) => (q.by === 'day' ? a.key.localeCompare(b.key) : b.cost - a.cost));
    return { by: q.by, lines, truncated: runs.length >= COST_RUN_LIMIT };
  });

  app.get('/console-api/services', { schema: { hide: true } }, async (req) => {
    const key = keyOf(req);
    requireCap(key, 'read', 'read service health');
    // Latency and breaker state are this process's view (the service runtime); error rates
    // come from the calls recorded in the store, so they cover every worker. A service's health
    // is shared by every team, but its spending is not: only a key reaching every namespace
    // sees a service's total cost (the costs charts give a narrower key its own share).
    const everything = !key || key.namespaces.includes('*');
    const report = new Map((await baton.store.costReport({ by: 'service', since: Date.now() - 24 * 3600_000 })).map((l) => [l.key, l]));
    return (baton.models?.status() ?? []).map((s) => {
      const day = report.get(s.name);
      return {
        name: s.name, provider: s.provider, model: s.model, version: s.version ?? null, status: s.status, breaker: s.breaker,
        p50_ms: s.p50Ms ?? null, p95_ms: s.p95Ms ?? null,
        calls: s.calls, failures: s.failures,
        error_rate: s.calls > 0 ? s.failures / s.calls : null,
        calls_24h: day?.calls ?? 0, error_rate_24h: day && day.calls > 0 ? day.failed / day.calls : null, cost_24h: everything ? (day?.cost ?? 0) : null,
      };
    });
  });
}

function failed(c: ModelCallRecord): boolean {
  return c.outcome === 'error' || c.outcome === 'degraded' || c.outcome === 'skipped';
}
