/**
 * Retention: ended runs older than their policy are purged (steps, events, model calls, tasks,
 * outbox rows deleted) or archived (their audit export written to a folder first, then purged).
 * The policy is the workflow's `retention:` or the store-wide default (baton.config.yaml
 * `retention:`); a run with neither is kept. Anchors are never deleted: the anchor chain still
 * verifies, and `audit verify` reports each purged run as "purged, anchor kept".
 */
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Baton } from '../engine/engine.js';
import { BatonError } from '../errors.js';
import type { RetentionDoc, WorkflowDocument } from '../spec/types.js';
import { buildAuditExport } from './export.js';
import { BLOB_KEY, isBlobRef, type BlobRef } from '../store/blobs.js';

export interface RetentionPolicy {
  days: number;
  mode: 'purge' | 'archive';
}

export interface PurgeOptions {
  /** Applies to runs whose workflow sets no `retention:`. */
  defaultPolicy?: RetentionPolicy;
  /** Where archived runs' exports go (required when a policy archives). */
  archiveDir?: string;
  /** List what would go, change nothing. */
  dryRun?: boolean;
  now?: number;
}

export interface PurgeCandidate {
  runId: string;
  workflow: string;
  finishedAt: string;
  mode: 'purge' | 'archive';
  policy: 'workflow' | 'default';
  archive?: string;
}

export interface PurgeResult {
  dryRun: boolean;
  candidates: PurgeCandidate[];
  purged: string[];
  /** Blob files deleted because no remaining row refers to them. */
  blobsDeleted?: number;
}

/** Every blob reference in a run's stored values (input, output, step outputs, event data). */
async function blobRefsOf(baton: Baton, runId: string): Promise<BlobRef[]> {
  const out = new Map<string, BlobRef>();
  const walk = (v: unknown): void => {
    if (isBlobRef(v)) out.set(v[BLOB_KEY], v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  const run = await baton.store.getRun(runId);
  walk(run?.input);
  walk(run?.output);
  for (const s of await baton.store.getSteps(runId)) walk(s.output);
  for (const e of await baton.store.getEvents(runId)) walk(e.data);
  return [...out.values()];
}

const DAY = 86_400_000;

export function parseRetention(raw: unknown, where: string): RetentionPolicy | undefined {
  if (raw === undefined || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r !== 'object' || typeof r.days !== 'number' || !(r.days > 0)) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where}: \`retention\` must be { days: N (> 0), mode: purge | archive, archive_dir?: folder }.` });
  }
  if (r.mode !== undefined && r.mode !== 'purge' && r.mode !== 'archive') throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where}: \`retention.mode\` must be purge or archive, got "${String(r.mode)}".` });
  return { days: r.days, mode: (r.mode as RetentionPolicy['mode'] | undefined) ?? 'purge' };
}

/** Finds the ended runs past their policy and (unless `dryRun`) archives and purges them. */
export async function purgeExpired(baton: Baton, opts: PurgeOptions = {}): Promise<PurgeResult> {
  const now = opts.now ?? Date.now();
  const policies = new Map<string, RetentionPolicy | undefined>();
  const policyOf = async (versionId: string): Promise<{ p?: RetentionPolicy; from: 'workflow' | 'default' }> => {
    if (!policies.has(versionId)) {
      const v = await baton.store.getVersion(versionId);
      const doc = v ? (JSON.parse(v.document) as WorkflowDocument & { retention?: RetentionDoc }) : undefined;
      policies.set(versionId, doc?.retention ? { days: doc.retention.days, mode: doc.retention.mode ?? 'purge' } : undefined);
    }
    const own = policies.get(versionId);
    return own ? { p: own, from: 'workflow' } : { p: opts.defaultPolicy, from: 'default' };
  };
  const candidates: PurgeCandidate[] = [];
  let before: { at: number; id: string } | undefined;
  for (;;) {
    const page = await baton.store.listRuns({ finishedBefore: now, limit: 1000, before: before?.at, beforeId: before?.id });
    for (const r of page) {
      const { p, from } = await policyOf(r.versionId);
      if (!p || r.finishedAt === undefined || r.finishedAt >= now - p.days * DAY) continue;
      candidates.push({ runId: r.id, workflow: r.workflow, finishedAt: new Date(r.finishedAt).toISOString(), mode: p.mode, policy: from });
    }
    if (page.length < 1000) break;
    before = { at: page.at(-1)!.createdAt, id: page.at(-1)!.id };
  }
  if (candidates.some((c) => c.mode === 'archive') && !opts.archiveDir) {
    throw new BatonError('BATON_USAGE', { detail: 'a retention policy archives runs, but no archive folder is set: pass --archive-dir or set retention.archive_dir in baton.config.yaml.' });
  }
  if (opts.dryRun || candidates.length === 0) return { dryRun: !!opts.dryRun, candidates, purged: [] };
  // A run is anchored before it goes (stores that anchor in batches may not have yet).
  for (let i = 0; i < 20 && ((await baton.store.anchorPending?.()) ?? 0) > 0; i++);
  const purged: string[] = [];
  let blobs = 0;
  for (const c of candidates) {
    if (c.mode === 'archive') {
      // Written (atomically) before anything is deleted: a crash in between leaves the run and its archive.
      mkdirSync(opts.archiveDir!, { recursive: true });
      const file = join(opts.archiveDir!, `${c.runId.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
      const report = await buildAuditExport(baton, c.runId);
      writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
      renameSync(`${file}.tmp`, file);
      c.archive = file;
    }
    const refs = await blobRefsOf(baton, c.runId);
    const gone = await baton.store.purgeRuns([{ runId: c.runId, mode: c.mode, archive: c.archive }], now);
    purged.push(...gone);
    // Blobs are shared by content: one goes only when no remaining row refers to it.
    if (gone.length && baton.store.blobReferenced) {
      for (const ref of refs) if (!(await baton.store.blobReferenced(ref[BLOB_KEY]))) { baton.blobs.delete(ref); blobs++; }
    }
  }
  return { dryRun: false, candidates, purged, blobsDeleted: blobs };
}
