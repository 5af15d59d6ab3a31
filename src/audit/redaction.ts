/**
 * Sensitive fields (issue 8, redaction). A workflow's `sensitive:` names fields by path
 * (`input.customer.ssn`, `steps.kyc.output.document_number`, `output.token`); a service may
 * mark its whole output sensitive (`sensitive_output: true` in baton.config.yaml).
 *
 * Why at the store boundary: the value is replaced by an envelope before it is serialised for
 * the store, so the run input, the step output and every event embedding them (run.created,
 * step.succeeded) hold no plaintext. Two modes:
 * - `mask`: `{"$baton_sealed":"v1.<iv>.<tag>.<ciphertext>"}`, AES-256-GCM under
 *   BATON_ENCRYPTION_KEY (32 bytes, base64 or hex). The engine decrypts when it reads a run
 *   back (steps after a restart see the real value); readers see `***`, and an admin who asks
 *   (`?reveal=true`, `--reveal`) sees the value, which is recorded as an `audit.revealed` event.
 * - `hash`: `{"$baton_hashed":"sha256:<hex>"}`, irreversible; steps that read it back after a
 *   restart see the `sha256:...` string, so use it for values only kept for the record.
 * Values a step received as input that equal a sensitive value are masked in its events too.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Baton } from '../engine/engine.js';
import { BatonError } from '../errors.js';
import type { WorkflowDocument } from '../spec/types.js';
import type { EventRecord } from '../store/store.js';
import { buildAuditExport, type AuditExport } from './export.js';

export const SEALED = '$baton_sealed';
export const HASHED = '$baton_hashed';
export const MASK = '***';

interface Field {
  path: string[];
  mode: 'mask' | 'hash';
  label: string;
}

export interface SensitiveSpec {
  input: Field[];
  output: Field[];
  steps: Map<string, Field[]>;
  /** Some field is `mask`: runs need the encryption key. */
  needsKey: boolean;
  labels: string[];
}

const specs = new WeakMap<object, SensitiveSpec | null>();

/** The workflow's sensitive fields, or undefined (cached per document object). */
export function sensitiveSpec(doc: WorkflowDocument, sensitiveSteps: string[] = []): SensitiveSpec | undefined {
  const cached = specs.get(doc);
  if (cached !== undefined) return cached ?? undefined;
  const list = [...(doc.sensitive ?? []).map((x) => (typeof x === 'string' ? { path: x, mode: 'mask' as const } : { path: x.path, mode: x.mode ?? 'mask' })),
    ...sensitiveSteps.map((id) => ({ path: `steps.${id}.output`, mode: 'mask' as const }))];
  if (list.length === 0) {
    specs.set(doc, null);
    return undefined;
  }
  const spec: SensitiveSpec = { input: [], output: [], steps: new Map(), needsKey: false, labels: [] };
  for (const x of list) {
    const parts = x.path.split('.');
    const f: Field = { path: [], mode: x.mode, label: x.path };
    if (parts[0] === 'input' || parts[0] === 'output') {
      f.path = parts.slice(1);
      spec[parts[0]].push(f);
    } else if (parts[0] === 'steps' && parts[2] === 'output') {
      f.path = parts.slice(3);
      spec.steps.set(parts[1], [...(spec.steps.get(parts[1]) ?? []), f]);
    } else continue;
    if (f.mode === 'mask') spec.needsKey = true;
    spec.labels.push(x.path);
  }
  specs.set(doc, spec);
  return spec;
}

let keyCache: { raw: string; key: Buffer } | undefined;

/** BATON_ENCRYPTION_KEY as 32 bytes, or undefined when unset; BATON_ENCRYPTION_KEY_INVALID when malformed. */
export function encryptionKey(): Buffer | undefined {
  const raw = process.env.BATON_ENCRYPTION_KEY?.trim();
  if (!raw) return undefined;
  if (keyCache?.raw === raw) return keyCache.key;
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(raw)) key = Buffer.from(raw, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(raw)) key = Buffer.from(raw, raw.includes('-') || raw.includes('_') ? 'base64url' : 'base64');
  if (!key || key.length !== 32) throw new BatonError('BATON_ENCRYPTION_KEY_INVALID', {});
  keyCache = { raw, key };
  return key;
}

function seal(value: unknown, mode: 'mask' | 'hash', key: Buffer | undefined): unknown {
  const text = JSON.stringify(value ?? null);
  if (mode === 'hash') return { [HASHED]: `sha256:${createHash('sha256').update(text).digest('hex')}` };
  if (!key) throw new BatonError('BATON_ENCRYPTION_KEY_MISSING', { workflow: '(this workflow)', fields: '(mask fields)' });
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return { [SEALED]: `v1.${iv.toString('base64url')}.${c.getAuthTag().toString('base64url')}.${ct.toString('base64url')}` };
}

function open(envelope: string, key: Buffer | undefined): unknown {
  if (!key) throw new BatonError('BATON_ENCRYPTION_KEY_MISSING', { workflow: '(a stored run)', fields: 'sealed values' });
  const [v, iv, tag, ct] = envelope.split('.');
  if (v !== 'v1' || !ct) throw new BatonError('BATON_ENCRYPTION_KEY_INVALID', {});
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    d.setAuthTag(Buffer.from(tag, 'base64url'));
    return JSON.parse(Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8')) as unknown;
  } catch {
    // The wrong key (or an altered ciphertext): GCM's tag check fails.
    throw new BatonError('BATON_ENCRYPTION_KEY_INVALID', {});
  }
}

/** Replaces the fields at `fields` of `value` by envelopes (copying only along the paths). */
function sealFields(value: unknown, fields: Field[], key: Buffer | undefined): unknown {
  let out = value;
  for (const f of fields) out = sealPath(out, f.path, f.mode, key);
  return out;
}

function sealPath(v: unknown, path: string[], mode: 'mask' | 'hash', key: Buffer | undefined): unknown {
  if (v === undefined) return v;
  if (path.length === 0) return isEnvelope(v) ? v : seal(v, mode, key);
  if (Array.isArray(v)) return v.map((x) => sealPath(x, path, mode, key));
  if (v === null || typeof v !== 'object' || !(path[0] in (v as object))) return v;
  return { ...(v as Record<string, unknown>), [path[0]]: sealPath((v as Record<string, unknown>)[path[0]], path.slice(1), mode, key) };
}

export function isEnvelope(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && (typeof (v as Record<string, unknown>)[SEALED] === 'string' || typeof (v as Record<string, unknown>)[HASHED] === 'string');
}

/** Refuses a run of a workflow with `mask` fields when no key is configured (before anything is stored). */
export function checkKeyFor(doc: WorkflowDocument, sensitiveSteps?: string[]): void {
  const spec = sensitiveSpec(doc, sensitiveSteps);
  if (spec?.needsKey && !encryptionKey()) {
    throw new BatonError('BATON_ENCRYPTION_KEY_MISSING', { workflow: doc.name, fields: spec.labels.join(', ') });
  }
}

export function sealInput(doc: WorkflowDocument, input: unknown, sensitiveSteps?: string[]): unknown {
  const spec = sensitiveSpec(doc, sensitiveSteps);
  return spec?.input.length ? sealFields(input, spec.input, encryptionKey()) : input;
}

export function sealRunOutput(doc: WorkflowDocument, output: unknown, sensitiveSteps?: string[]): unknown {
  const spec = sensitiveSpec(doc, sensitiveSteps);
  return spec?.output.length ? sealFields(output, spec.output, encryptionKey()) : output;
}

export function sealStepOutput(doc: WorkflowDocument, stepId: string, output: unknown, sensitiveSteps?: string[]): unknown {
  const fields = sensitiveSpec(doc, sensitiveSteps)?.steps.get(stepId);
  return fields?.length ? sealFields(output, fields, encryptionKey()) : output;
}

/**
 * The sensitive plain values of a run as the engine holds them (strings of 4+ characters and
 * numbers), to mask wherever else they show up (a step's input in its events).
 */
export function sensitiveValues(doc: WorkflowDocument, scope: { input?: unknown; steps?: Record<string, { output?: unknown }> }, sensitiveSteps?: string[]): Set<string> {
  const out = new Set<string>();
  const spec = sensitiveSpec(doc, sensitiveSteps);
  if (!spec) return out;
  const collect = (v: unknown, path: string[]) => {
    if (v === undefined || v === null) return;
    if (path.length === 0) {
      leaves(v, (x) => {
        if ((typeof x === 'string' && x.length >= 4) || typeof x === 'number') out.add(String(x));
      });
      return;
    }
    if (Array.isArray(v)) v.forEach((x) => collect(x, path));
    else if (typeof v === 'object') collect((v as Record<string, unknown>)[path[0]], path.slice(1));
  };
  for (const f of spec.input) collect(scope.input, f.path);
  for (const [id, fields] of spec.steps) for (const f of fields) collect(scope.steps?.[id]?.output, f.path);
  return out;
}

function leaves(v: unknown, f: (x: unknown) => void): void {
  if (Array.isArray(v)) v.forEach((x) => leaves(x, f));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => leaves(x, f));
  else f(v);
}

/** `value` with every leaf equal to (or string containing) a sensitive value masked. */
export function scrub(value: unknown, secrets: Set<string>): unknown {
  if (secrets.size === 0) return value;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    if (typeof v === 'number' && secrets.has(String(v))) return MASK;
    if (typeof v === 'string') {
      let s = v;
      for (const x of secrets) if (s.includes(x)) s = s.split(x).join(MASK);
      return s;
    }
    return v;
  };
  return walk(value);
}

/** Envelopes replaced by their values, for the engine's own use (hashed values become `sha256:...`). */
export function unseal(v: unknown): unknown {
  if (!hasEnvelope(v)) return v;
  return mapEnvelopes(v, (e) => (typeof e[SEALED] === 'string' ? open(e[SEALED], encryptionKey()) : e[HASHED]));
}

/**
 * What a reader sees: envelopes as `***`, or (reveal) decrypted, hashed ones as `sha256:...`.
 * `found` collects whether anything was masked.
 */
export function present(v: unknown, o: { reveal?: boolean } = {}, found?: { masked: boolean }): unknown {
  if (!hasEnvelope(v)) return v;
  if (found) found.masked = true;
  return mapEnvelopes(v, (e) => (o.reveal ? (typeof e[SEALED] === 'string' ? open(e[SEALED], encryptionKey()) : e[HASHED]) : MASK));
}

function hasEnvelope(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (isEnvelope(v)) return true;
  return Array.isArray(v) ? v.some(hasEnvelope) : Object.values(v).some(hasEnvelope);
}

function mapEnvelopes(v: unknown, f: (e: Record<string, string>) => unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (isEnvelope(v)) return f(v as Record<string, string>);
  if (Array.isArray(v)) return v.map((x) => mapEnvelopes(x, f));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapEnvelopes(x, f)]));
}

/** Events as a reader sees them. */
export function presentEvents(events: EventRecord[], o: { reveal?: boolean } = {}): EventRecord[] {
  return events.map((e) => (e.data === undefined ? e : { ...e, data: present(e.data, o) }));
}

/** Records that someone saw a run's sensitive values in clear. */
export async function recordReveal(baton: Baton, runId: string, by: string, via: string): Promise<void> {
  await baton.store.appendEvents(runId, [{ type: 'audit.revealed', at: Date.now(), data: { by, via } }]);
}

/**
 * The audit export for a reader: sensitive values masked, or revealed (recorded first, so the
 * report itself shows the reveal).
 */
export async function exportForReader(baton: Baton, runId: string, o: { reveal?: boolean; by?: string; via?: string } = {}): Promise<AuditExport> {
  if (o.reveal) {
    await baton.getRun(runId);
    if (!encryptionKey()) throw new BatonError('BATON_ENCRYPTION_KEY_MISSING', { workflow: '(run export)', fields: 'sealed values' });
    await recordReveal(baton, runId, o.by ?? 'unknown', o.via ?? 'audit export');
  }
  return buildAuditExport(baton, runId, {
    present: (view) => {
      const found = { masked: false };
      const steps = new Map([...view.steps].map(([k, v]) => [k, present(v, o, found)]));
      const events = view.events.map((e) => (e.data === undefined ? e : { ...e, data: present(e.data, o, found) }));
      const out = { input: present(view.input, o, found), output: present(view.output, o, found), steps, events };
      return { ...out, masked: found.masked && !o.reveal ? ['sensitive fields (shown as ***)'] : [] };
    },
  });
}
