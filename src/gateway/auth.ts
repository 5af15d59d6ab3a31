/**
 * API keys of the gateway. A key is `bk_<id>_<secret>`: the id finds the record, the secret is
 * checked against its sha256 (stored; the secret itself never is, and is shown once, at
 * creation). A secret of 192 random bits needs no slow hash: nobody can guess it from its
 * digest. Roles grant capabilities; namespaces bound which runs a key can see or touch.
 *
 * Keys live in the store, so every gateway of a cluster knows the same keys, and a key's rate
 * limit is a token bucket in the store (shared by the gateways too).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BatonError } from '../errors.js';
import { checkNamespace } from '../engine/namespaces.js';
import type { ApiKeyRecord, Store } from '../store/store.js';

export type Role = ApiKeyRecord['role'];
export type Capability = 'read' | 'run' | 'approve' | 'register' | 'admin';

const ROLE_CAPS: Record<Role, ReadonlySet<Capability>> = {
  viewer: new Set(['read']),
  approver: new Set(['read', 'approve']),
  operator: new Set(['read', 'run']),
  admin: new Set(['read', 'run', 'approve', 'register', 'admin']),
};

export const ROLES = Object.keys(ROLE_CAPS) as Role[];

const KEY_FORMAT = /^bk_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/;

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export async function createApiKey(store: Store, o: { name: string; role: Role; namespaces: string[]; ratePerMinute?: number }): Promise<{ key: string; record: ApiKeyRecord }> {
  if (!ROLES.includes(o.role)) throw new BatonError('BATON_USAGE', { detail: `role must be one of ${ROLES.join(', ')}, got "${o.role}".` });
  if (o.namespaces.length === 0) throw new BatonError('BATON_USAGE', { detail: 'a key needs at least one namespace (or * for all).' });
  // A malformed name is one no run can be in: every request with the key would be refused.
  for (const ns of o.namespaces) {
    if (ns === '*') continue;
    try {
      checkNamespace(ns);
    } catch (e) {
      const parts = typeof ns === 'string' ? ns.split(/[\s,]+/).filter(Boolean) : [];
      const several = parts.length > 1 ? ` Several namespaces are separate values: --namespace ${parts.join(' ')}.` : '';
      throw new BatonError('BATON_USAGE', { detail: `a key's ${(e as BatonError).message}${several}` });
    }
  }
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  const record: ApiKeyRecord = { id, hash: digest(secret), name: o.name, role: o.role, namespaces: o.namespaces, ratePerMinute: o.ratePerMinute ?? 600, createdAt: Date.now() };
  await store.putApiKey(record);
  return { key: `bk_${id}_${secret}`, record };
}

/** The key an `Authorization` header names, or BATON_UNAUTHENTICATED (never saying which part was wrong). */
export async function authenticate(store: Store, header: string | undefined): Promise<ApiKeyRecord> {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) throw new BatonError('BATON_UNAUTHENTICATED', { detail: 'This gateway needs an API key.' });
  const parts = KEY_FORMAT.exec(m[1]);
  const rec = parts ? await store.findApiKey(parts[1]) : undefined;
  const ok = rec !== undefined && rec.revokedAt === undefined && timingSafeEqual(Buffer.from(digest(parts![2]), 'hex'), Buffer.from(rec.hash, 'hex'));
  if (!ok) throw new BatonError('BATON_UNAUTHENTICATED', { detail: 'The API key is not valid (unknown, revoked or mistyped).' });
  return rec;
}

export function requireCap(key: ApiKeyRecord | undefined, cap: Capability, action: string): void {
  if (key && !ROLE_CAPS[key.role].has(cap)) throw new BatonError('BATON_FORBIDDEN', { key: key.id, role: key.role, action });
}

/** Whether a key reaches a namespace (no key: auth is off, everything is reachable). */
export function reaches(key: ApiKeyRecord | undefined, namespace: string): boolean {
  return !key || key.namespaces.includes('*') || key.namespaces.includes(namespace);
}

/**
 * Takes `requests` from the key's bucket (a CloudEvents batch counts one per event), or
 * BATON_RATE_LIMITED with how long to wait. `taken` of them were taken already: the auth hook
 * takes every request's first before its body is read, so that a key out of requests is
 * refused before its batch is parsed, and a request refused before its route reads it (a bad
 * query, a body over the limit) still counts. More than the key's whole minute could never
 * pass (the bucket holds at most a minute's worth): BATON_RATE_BATCH_TOO_LARGE, rather than a
 * wait after which it would be refused again.
 */
export async function rateLimit(store: Store, key: ApiKeyRecord, requests = 1, taken = 0): Promise<void> {
  const perMinute = key.ratePerMinute;
  if (requests > perMinute) throw new BatonError('BATON_RATE_BATCH_TOO_LARGE', { key: key.id, perMinute, events: requests });
  if (requests <= taken) return;
  const wait = await store.takeTokens(`apikey:${key.id}`, perMinute, requests - taken, Date.now());
  const counted = requests > 1 ? ` (this batch of ${requests} CloudEvents counts as ${requests})` : '';
  // The retry is taken in full again, `taken` of it by the auth hook first: the wait covers
  // those too, or a client that waits just as long is refused again each time.
  if (wait > 0) throw new BatonError('BATON_RATE_LIMITED', { key: key.id, perMinute, retryAfterMs: wait + Math.ceil((taken * 60_000) / perMinute), counted });
}
