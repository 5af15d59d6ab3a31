/**
 * Pinning a run to its AI configuration, and the status history of services.
 *
 * At admission the engine snapshots every service the workflow's model steps may call (service
 * and fallbacks, map sub-steps included): provider, model, version, endpoint, the *name* of the
 * credential's environment variable (never the secret), prices, limits, timeouts, retry,
 * breaker, hedge, cache and options. The snapshot is stored content-addressed
 * (`service_configs`) and its hash on the run, so the run's whole AI configuration is the
 * workflow version (documents and prompt templates) plus this hash. While the run lives, its
 * model calls use the snapshot even when baton.config.yaml has changed since, in this process
 * or another; credentials are still read from the environment at call time.
 *
 * A pinned service that is no longer in the config is still callable from its snapshot (it
 * holds everything a call needs). Governance status is *not* pinned: a service blocked since
 * the run started is refused at its next call (the step moves on to its fallbacks, and fails
 * with BATON_SERVICE_BLOCKED when none is left).
 */
import { canonicalJson, contentHash } from '../spec/canonical.js';
import type { CompiledWorkflow } from '../spec/compile.js';
import type { StepDoc, SubStepDoc } from '../spec/types.js';
import type { ServiceStatusRecord } from '../store/store.js';
import type { ServiceConfig } from './config.js';

export const SERVICE_STATUSES = ['approved', 'deprecated', 'blocked'] as const;

/** The parts of a service's configuration that decide how a call is made (what a run is pinned to). */
export type PinnedService = Omit<ServiceConfig, 'status' | 'statusReason' | 'statusBy' | 'statusAt' | 'owner' | 'description'>;

export function pinnedPart(c: ServiceConfig): PinnedService {
  const { status: _s, statusReason: _r, statusBy: _b, statusAt: _a, owner: _o, description: _d, ...rest } = c;
  return rest;
}

/** Fingerprint of a service's pinned part: equal fingerprints call the same way. */
export function fingerprint(c: ServiceConfig | PinnedService): string {
  return contentHash(canonicalJson(pinnedPart(c as ServiceConfig))).slice(0, 16);
}

export interface Snapshot {
  hash: string;
  json: string;
  services: Record<string, PinnedService>;
}

/** The content-addressed snapshot of `services` (sorted by name; undefined fields dropped). */
export function snapshotOf(services: ServiceConfig[]): Snapshot {
  const map: Record<string, PinnedService> = {};
  for (const s of [...services].sort((a, b) => (a.name < b.name ? -1 : 1))) map[s.name] = pinnedPart(s);
  const json = canonicalJson({ services: map });
  return { hash: contentHash(json), json, services: map };
}

export function parseSnapshot(json: string): Record<string, PinnedService> {
  return (JSON.parse(json) as { services: Record<string, PinnedService> }).services;
}

/** Service names a workflow's model steps may call, in document order, without repeats. */
export function servicesOf(wf: Pick<CompiledWorkflow, 'doc'>): string[] {
  const out = new Set<string>();
  const visit = (s: StepDoc | SubStepDoc | undefined) => {
    if (!s) return;
    if (s.kind === 'model') {
      out.add(s.service);
      for (const f of s.fallback ?? []) out.add(f);
    }
    if (s.kind === 'map') visit(s.step);
  };
  for (const s of wf.doc.steps) visit(s);
  return [...out];
}

/** The latest status change per service (history oldest first). */
export function latestStatuses(history: ServiceStatusRecord[]): Map<string, ServiceStatusRecord> {
  const out = new Map<string, ServiceStatusRecord>();
  for (const r of history) out.set(r.service, r);
  return out;
}

/** A service's config with a recorded status change applied over the file's status. */
export function withStatus(c: ServiceConfig, r: ServiceStatusRecord | undefined): ServiceConfig {
  if (!r) return c;
  return { ...c, status: r.status, statusReason: r.reason, statusBy: r.by, statusAt: r.at };
}

/** Field-level differences between two snapshots' services: `service.field: old → new`. */
export function diffServices(a: Record<string, PinnedService>, b: Record<string, PinnedService>): ServiceChange[] {
  const out: ServiceChange[] = [];
  for (const name of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (!(name in b)) out.push({ service: name, change: 'removed' });
    else if (!(name in a)) out.push({ service: name, change: 'added' });
    else {
      const fields = flatDiff(a[name] as unknown as Record<string, unknown>, b[name] as unknown as Record<string, unknown>);
      if (fields.length) out.push({ service: name, change: 'changed', fields });
    }
  }
  return out;
}

export interface FieldChange {
  field: string;
  from?: unknown;
  to?: unknown;
}

export interface ServiceChange {
  service: string;
  change: 'added' | 'removed' | 'changed';
  fields?: FieldChange[];
}

/** Differences between two values, by dotted field path (arrays compared whole). */
export function flatDiff(a: unknown, b: unknown, prefix = ''): FieldChange[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: FieldChange[] = [];
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (a[k] === undefined && b[k] === undefined) continue;
      out.push(...flatDiff(a[k], b[k], prefix ? `${prefix}.${k}` : k));
    }
    return out;
  }
  if (canonicalJson(a ?? null) === canonicalJson(b ?? null)) return [];
  const c: FieldChange = { field: prefix };
  if (a !== undefined) c.from = a;
  if (b !== undefined) c.to = b;
  return [c];
}
