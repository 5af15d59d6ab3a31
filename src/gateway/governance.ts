/**
 * Versions, stages and model governance over HTTP:
 *
 * - `GET /workflows/{name}/versions`   versions with the stages they hold (read)
 * - `GET /workflows/{name}/history`    promotions, oldest first (read)
 * - `GET /workflows/diff?a=&b=`        structural diff of two versions (ids or `name@stage`) (read)
 * - `POST /workflows/{name}/promote`   { version, stage, reason } (admin; `by` = the key's name)
 * - `GET /services`                    configured services with the status in force, who and why (read)
 * - `POST /services/{name}/status`     { status, reason } (admin; `by` = the key's name)
 * - `GET /services/{name}/history`     status changes, oldest first (read)
 * - `GET /lineage?service=&version=&since=`  runs that called a service (read; runs of the key's namespaces)
 *
 * Workflows are scoped like GET /workflows: `?namespace=` names a team's workflow, which the
 * key must reach; another team's is "not found".
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import { checkNamespace, DEFAULT_NAMESPACE, qualifiedName, splitQualified, workflowOfVersion } from '../engine/namespaces.js';
import { BatonError } from '../errors.js';
import type { ApiKeyRecord, StageRecord } from '../store/store.js';
import { reaches, requireCap } from './auth.js';

const ref = (id: string) => ({ $ref: `${id}#` });
const problems = { '4xx': ref('Problem'), '5xx': ref('Problem') };
const nameParam = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 200 } } } as const;
const nsQuery = { type: 'object', additionalProperties: false, properties: { namespace: { type: 'string' } } } as const;
const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());

const stageBody = (s: StageRecord) => ({ name: splitQualified(s.name).name, stage: s.stage, version_id: s.versionId, by: s.by ?? null, reason: s.reason ?? null, at: iso(s.at) });

/**
 * A plain workflow name as the caller means it: its own namespace's workflow of that name (the
 * key's first namespace) if there is one, else the shared default namespace's, as POST /runs
 * resolves names. A qualified name (`team-a/triage`) is returned as it is.
 */
export async function callerWorkflowName(baton: Baton, key: ApiKeyRecord | undefined, name: string): Promise<string> {
  const own = key && !key.namespaces.includes('*') ? checkNamespace(key.namespaces[0]) : DEFAULT_NAMESPACE;
  if (name.includes('/') || name.includes('@') || own === DEFAULT_NAMESPACE) return name;
  // The registry's lookup (own namespace, then default) is the one POST /runs uses.
  try {
    return workflowOfVersion(await baton.registry.resolve(name, own));
  } catch (e) {
    if (e instanceof BatonError && e.code === 'BATON_WORKFLOW_NOT_FOUND') return name;
    throw e;
  }
}

export function registerGovernanceRoutes(app: FastifyInstance, baton: Baton, keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined): void {
  /**
   * The qualified name of a workflow the caller may see. `?namespace=` names one (which the key
   * must reach, or default); without it a name is looked up as POST /runs does: in the caller's
   * namespace (the key's first) first, then in the shared default namespace.
   */
  const workflowName = async (req: FastifyRequest, name: string, namespace: string | undefined): Promise<string> => {
    const key = keyOf(req);
    if (namespace !== undefined) {
      const ns = checkNamespace(namespace);
      if (ns !== DEFAULT_NAMESPACE && !reaches(key, ns)) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: name });
      return qualifiedName(ns, name);
    }
    return callerWorkflowName(baton, key, name);
  };
  /** Stages of the shared default catalogue are everyone's: only a key reaching `default` (or `*`) moves them. */
  const mayPromote = (req: FastifyRequest, name: string): void => {
    const key = keyOf(req);
    const ns = splitQualified(name).namespace;
    if (!reaches(key, ns)) throw new BatonError('BATON_FORBIDDEN', { key: key!.id, role: key!.role, action: `promote versions of "${name}" in the shared namespace ${ns} (it needs a key reaching ${ns} or *)` });
  };
  const by = (req: FastifyRequest, asked: string | undefined) => keyOf(req)?.name ?? asked;

  app.get('/workflows/:name/versions', {
    schema: { summary: "A workflow's versions, oldest first, with the stages each holds now (`draft` when none).", params: nameParam, querystring: nsQuery },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read workflows');
    const name = await workflowName(req, (req.params as { name: string }).name, (req.query as { namespace?: string }).namespace);
    const list = await baton.versions(name);
    if (list.length === 0) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: name });
    return list.map((v) => ({ version_id: v.versionId, seq: v.seq, hash: v.hash, stages: v.stages, source: v.source ?? null, created_at: iso(v.createdAt) }));
  });

  app.get('/workflows/:name/history', {
    schema: { summary: "A workflow's promotions through stages, oldest first (rollbacks are promotions of an older version).", params: nameParam, querystring: nsQuery },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read workflows');
    const name = await workflowName(req, (req.params as { name: string }).name, (req.query as { namespace?: string }).namespace);
    if ((await baton.versions(name)).length === 0) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: name });
    return (await baton.stageHistory(name)).map(stageBody);
  });

  app.get('/workflows/diff', {
    schema: {
      summary: 'What changed between two versions: steps added, removed and changed field by field, prompt texts line by line, and the services their runs were pinned to.',
      querystring: {
        type: 'object', required: ['a', 'b'], additionalProperties: false,
        properties: { a: { type: 'string', minLength: 1, description: 'A version id or name@stage.' }, b: { type: 'string', minLength: 1 }, namespace: { type: 'string' } },
      },
    },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read workflows');
    const q = req.query as { a: string; b: string; namespace?: string };
    const ns = checkNamespace(q.namespace);
    if (ns !== DEFAULT_NAMESPACE && !reaches(keyOf(req), ns)) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: q.a });
    const d = await baton.diff(q.a, q.b, { namespace: ns });
    for (const v of [d.a, d.b]) {
      const own = splitQualified(v).namespace;
      if (own !== DEFAULT_NAMESPACE && !reaches(keyOf(req), own)) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: v });
    }
    return d;
  });

  app.post('/workflows/:name/promote', {
    schema: {
      summary: 'Promotes a version of this workflow to a stage (admin). Rollback = promote an older version.',
      params: nameParam,
      querystring: nsQuery,
      body: {
        type: 'object', required: ['version', 'stage'], additionalProperties: false,
        properties: {
          version: { type: 'string', minLength: 1, description: 'A version id of this workflow, or name@stage.' },
          stage: { type: 'string', enum: ['staging', 'production'] },
          reason: { type: 'string', maxLength: 2000 },
          by: { type: 'string', maxLength: 200, description: 'Who promotes, when the gateway runs without keys (with keys: the key name).' },
        },
      },
      response: { 201: { type: 'object', additionalProperties: true }, ...problems },
    },
  }, async (req, reply) => {
    requireCap(keyOf(req), 'admin', 'promote workflow versions');
    const name = await workflowName(req, (req.params as { name: string }).name, (req.query as { namespace?: string }).namespace);
    mayPromote(req, name);
    const b = req.body as { version: string; stage: string; reason?: string; by?: string };
    const versionId = await baton.registry.resolve(b.version, splitQualified(name).namespace);
    const rec = await baton.store.getVersion(versionId);
    if (rec?.name !== name) throw new BatonError('BATON_USAGE', { detail: `version ${versionId} is not a version of workflow "${splitQualified(name).name}"; promote it under its own name.` });
    const s = await baton.promote(versionId, b.stage, { by: by(req, b.by), reason: b.reason });
    return reply.code(201).send(stageBody(s));
  });

  app.get('/services', {
    schema: { summary: 'Configured model services with the governance status in force, who set it and why (secrets never shown).' },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read services');
    return (await baton.serviceList()).map((s) => ({
      name: s.name, provider: s.provider, model: s.model, version: s.version ?? null, owner: s.owner ?? null, data_residency: s.dataResidency ?? null, labels: s.labels,
      status: s.status, status_reason: s.statusReason ?? null, status_by: s.statusBy ?? null, status_at: iso(s.statusAt), status_source: s.statusSource,
    }));
  });

  app.post('/services/:name/status', {
    schema: {
      summary: "Records a service's governance status (admin): blocked refuses new runs and registrations using it; deprecated warns.",
      params: nameParam,
      body: {
        type: 'object', required: ['status'], additionalProperties: false,
        properties: {
          status: { type: 'string', enum: ['approved', 'deprecated', 'blocked'] },
          reason: { type: 'string', maxLength: 2000, description: 'Required for deprecated and blocked.' },
          by: { type: 'string', maxLength: 200, description: 'Who, when the gateway runs without keys (with keys: the key name).' },
        },
      },
      response: { 201: { type: 'object', additionalProperties: true }, ...problems },
    },
  }, async (req, reply) => {
    requireCap(keyOf(req), 'admin', 'change service status');
    // Services serve every namespace: blocking one is not for a key confined to some.
    const k = keyOf(req);
    if (k && !k.namespaces.includes('*')) throw new BatonError('BATON_FORBIDDEN', { key: k.id, role: k.role, action: 'change service status (services serve every namespace; use a key with namespace *)' });
    const b = req.body as { status: string; reason?: string; by?: string };
    const r = await baton.setServiceStatus((req.params as { name: string }).name, b.status, { reason: b.reason, by: by(req, b.by) });
    return reply.code(201).send({ service: r.service, status: r.status, reason: r.reason ?? null, by: r.by ?? null, at: iso(r.at) });
  });

  app.get('/services/:name/history', {
    schema: { summary: "A service's recorded status changes, oldest first.", params: nameParam },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read services');
    const name = (req.params as { name: string }).name;
    if (!baton.models?.config(name)) throw new BatonError('BATON_SERVICE_UNKNOWN', { service: name, known: baton.models?.list().map((c) => c.name).join(', ') || '(none)' });
    return (await baton.serviceHistory(name)).map((r) => ({ service: r.service, status: r.status, reason: r.reason ?? null, by: r.by ?? null, at: iso(r.at) }));
  });

  app.get('/lineage', {
    schema: {
      summary: 'Runs that called a model service (of one version), newest first: what a model recall must look at.',
      querystring: {
        type: 'object', required: ['service'], additionalProperties: false,
        properties: {
          service: { type: 'string', minLength: 1 },
          version: { type: 'string', minLength: 1 },
          since: { type: 'string', description: 'An ISO time or epoch milliseconds: calls at or after it.' },
          limit: { type: 'string', description: '1 to 10000, default 1000.' },
        },
      },
    },
  }, async (req) => {
    requireCap(keyOf(req), 'read', 'read runs');
    const q = req.query as { service: string; version?: string; since?: string; limit?: string };
    const since = q.since === undefined ? undefined : parseTime(q.since);
    const limit = q.limit === undefined ? 1000 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new BatonError('BATON_USAGE', { detail: 'limit must be a whole number from 1 to 10000.' });
    const rows = await baton.lineage({ service: q.service, version: q.version, since, limit });
    return rows
      .filter((r) => reaches(keyOf(req), r.namespace))
      .map((r) => ({
        run_id: r.runId, workflow: r.workflow, version_id: r.versionId, status: r.status, namespace: r.namespace, started_at: iso(r.createdAt),
        calls: r.calls, service_versions: r.versions, models: r.models, first_call_at: iso(r.firstCallAt), last_call_at: iso(r.lastCallAt),
      }));
  });
}

/** An ISO time or epoch milliseconds. */
export function parseTime(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) throw new BatonError('BATON_USAGE', { detail: `"${v}" is not a time; give an ISO time such as 2026-01-31T00:00:00Z or epoch milliseconds.` });
  return n;
}
