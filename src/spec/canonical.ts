/**
 * Canonical JSON (keys sorted, no whitespace) and the content hash that makes a version id:
 * two documents that differ in anything but formatting and comments never share an id.
 */
import { createHash } from 'node:crypto';

export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

export function contentHash(canonical: string): string {
  return createHash('sha256').update(canonical).digest('hex');
}

/** `triage@3f2a9c1b7d4e5a6b`: the name plus the first 16 hex digits of the content hash. */
export function versionIdOf(name: string, hash: string): string {
  return `${name}@${hash.slice(0, 16)}`;
}
