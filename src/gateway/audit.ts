/**
 * The audit trail over HTTP.
 * - `GET /audit/verify[?run=]`: recomputes the hash chains (store-wide, or one run with its
 *   anchors): 200 with counts when intact, 409 with the first problem when not. Store-wide
 *   integrity is an administrator's question: it takes the `admin` capability.
 * - `GET /runs/{id}/audit` (JSON) and `/runs/{id}/audit.html`: a run's audit report, for any
 *   key that may read the run (`read`); sensitive fields are `***` unless an admin asks with
 *   `?reveal=true`, which is recorded on the run as an `audit.revealed` event.
 * - `POST /audit/purge`: applies retention (`dry_run` lists only); `admin`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Baton } from '../engine/engine.js';
import { BatonError } from '../errors.js';
import type { ApiKeyRecord } from '../store/store.js';
import { renderAuditHtml } from '../audit/export.js';
import { exportForReader } from '../audit/redaction.js';
import { purgeExpired, type RetentionPolicy } from '../audit/retention.js';
import { verifyStore } from '../audit/verify.js';
import { reaches, requireCap } from './auth.js';

export interface AuditRouteOptions {
  keyOf: (req: FastifyRequest) => ApiKeyRecord | undefined;
  /** Store-wide retention for workflows without their own (baton.config.yaml `retention:`). */
  retention?: RetentionPolicy & { archiveDir?: string };
}

const reveal = { type: 'object', additionalProperties: false, properties: { reveal: { enum: ['true', 'false'] } } } as const;

/** Who a key is, for the record of a reveal. */
export function whoIs(key: ApiKeyRecord | undefined): string {
  return key ? `key:${key.id} (${key.name}, ${key.role})` : 'anonymous (gateway auth off)';
}

/** `?reveal=true` needs the admin capability; true if revealing. */
export function wantsReveal(req: FastifyRequest, key: ApiKeyRecord | undefined): boolean {
  const q = req.query as { reveal?: string } | undefined;
  if (q?.reveal !== 'true') return false;
  requireCap(key, 'admin', 'reveal sensitive fields (?reveal=true)');
  return true;
}

/**
 * Verify and purge cover the whole store (every namespace's runs): an admin key confined to
 * some namespaces may not purge, or learn about, the runs of others.
 */
function allNamespaces(key: ApiKeyRecord | undefined, action: string): void {
  if (key && !key.namespaces.includes('*')) throw new BatonError('BATON_FORBIDDEN', { key: key.id, role: key.role, action: `${action} (it covers every namespace; use a key with namespace *)` });
}

export function registerAuditRoutes(app: FastifyInstance, baton: Baton, o: AuditRouteOptions): void {
  app.get('/audit/verify', {
    schema: {
      summary: 'Recomputes the event hash chains and the anchor chain; 409 naming the first altered or missing event or anchor.',
      querystring: { type: 'object', additionalProperties: false, properties: { run: { type: 'string', minLength: 1 } } },
    },
  }, async (req, reply) => {
    requireCap(o.keyOf(req), 'admin', 'verify the audit trail');
    allNamespaces(o.keyOf(req), 'verify the audit trail');
    const { run } = req.query as { run?: string };
    if (run && !(await baton.store.getRun(run)) && !(await baton.store.listPurged()).some((p) => p.runId === run)) throw new BatonError('BATON_RUN_NOT_FOUND', { runId: run });
    const r = await verifyStore(baton.store, run);
    return reply.code(r.ok ? 200 : 409).send(r);
  });

  const report = async (req: FastifyRequest) => {
    const { id } = req.params as { id: string };
    const key = o.keyOf(req);
    requireCap(key, 'read', 'read runs');
    const run = await baton.getRun(id);
    if (!reaches(key, run.namespace)) throw new BatonError('BATON_RUN_NOT_FOUND', { runId: id });
    const rev = wantsReveal(req, key);
    return exportForReader(baton, id, { reveal: rev, by: whoIs(key), via: `GET ${req.url.split('?')[0]}` });
  };
  app.get('/runs/:id/audit', { schema: { summary: "A run's self-contained audit report (JSON).", querystring: reveal } }, async (req) => report(req));
  app.get('/runs/:id/audit.html', { schema: { summary: "A run's audit report as one HTML page.", querystring: reveal } }, async (req, reply) => {
    const r = await report(req);
    return reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'").send(renderAuditHtml(r));
  });

  app.post('/audit/purge', {
    schema: {
      summary: 'Removes (or archives, then removes) ended runs older than their retention policy; anchors are kept.',
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: {
          dry_run: { type: 'boolean' },
          days: { type: 'number', exclusiveMinimum: 0, description: 'Default policy for workflows without `retention:` (overrides the server\'s).' },
          mode: { enum: ['purge', 'archive'] },
        },
      },
    },
  }, async (req) => {
    requireCap(o.keyOf(req), 'admin', 'purge runs');
    allNamespaces(o.keyOf(req), 'purge runs');
    const b = (req.body ?? {}) as { dry_run?: boolean; days?: number; mode?: 'purge' | 'archive' };
    if (b.mode !== undefined && b.days === undefined) throw new BatonError('BATON_USAGE', { detail: '`mode` goes with `days`.' });
    const policy = b.days !== undefined ? { days: b.days, mode: b.mode ?? 'purge' } : o.retention;
    return purgeExpired(baton, { defaultPolicy: policy, archiveDir: o.retention?.archiveDir, dryRun: b.dry_run });
  });
}
