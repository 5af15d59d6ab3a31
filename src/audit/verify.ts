/**
 * `baton audit verify`: recomputes every run's event chain and the store-wide anchor chain
 * (store/audit-chain.ts) from the rows as stored, and names the FIRST thing that does not
 * match: an altered event (its hash differs from the recomputed one), a missing event (a gap
 * in seq, or a tail cut after the run was anchored), an altered or missing anchor, or a run
 * deleted without a retention record. Runs purged by retention are reported, anchor kept.
 */
import { anchorHash, eventContentHash, linkHash } from '../store/audit-chain.js';
import type { Store } from '../store/store.js';

export type AuditProblem =
  | { kind: 'altered_event'; runId: string; seq: number; expected: string; found: string | null }
  | { kind: 'missing_event'; runId: string; seq: number; detail: string }
  | { kind: 'altered_anchor'; seq: number; runId: string; expected: string; found: string; detail: string }
  | { kind: 'missing_anchor'; seq: number; detail: string }
  | { kind: 'missing_run'; runId: string; anchorSeq: number; detail: string };

export interface RunVerification {
  runId: string;
  events: number;
  /** The recomputed chain head. */
  head: string;
  /** Events from before the audit trail existed (no hash): not chained, not checked. */
  unchained: number;
  /** The run's latest anchor matches a hash in its chain. */
  anchored: boolean;
  problem?: AuditProblem;
}

export interface AuditReport {
  ok: boolean;
  runs: number;
  events: number;
  anchors: number;
  /** Runs purged by retention whose anchors were kept (and verified). */
  purged: Array<{ runId: string; mode: string; purgedAt: string; finalHash?: string }>;
  /** The first problem found (runs in creation order, then the anchor chain). */
  problem?: AuditProblem;
  /** Every problem found, at most one per run. */
  problems: AuditProblem[];
}

/** Recomputes one run's chain; `anchoredHashes` are the hashes its anchors recorded. */
export async function verifyRun(store: Store, runId: string, anchoredHashes: string[] = []): Promise<RunVerification> {
  const rows = await store.auditEvents(runId);
  let prev = '';
  let expectSeq = 1;
  let unchained = 0;
  const seen = new Set<string>();
  const out: RunVerification = { runId, events: rows.length, head: '', unchained: 0, anchored: anchoredHashes.length === 0 };
  for (const r of rows) {
    if (r.seq !== expectSeq) {
      out.problem = { kind: 'missing_event', runId, seq: expectSeq, detail: r.seq > expectSeq ? `event ${expectSeq}${r.seq - expectSeq > 1 ? `..${r.seq - 1}` : ''} is missing (next stored is ${r.seq})` : `seq ${r.seq} out of order` };
      return out;
    }
    expectSeq++;
    if (r.hash === null && prev === '') {
      // Written before the audit trail existed: the chain starts after these.
      unchained++;
      continue;
    }
    const h = linkHash(prev, runId, r.seq, eventContentHash(r.type, r.stepKey, r.at, r.dataText));
    if (h !== r.hash) {
      out.problem = { kind: 'altered_event', runId, seq: r.seq, expected: h, found: r.hash };
      return out;
    }
    seen.add(h);
    prev = h;
  }
  out.head = prev;
  out.unchained = unchained;
  if (anchoredHashes.length) {
    // Every anchor of the run must name a hash still in its chain (a retried run ends, and is anchored, again).
    const lost = anchoredHashes.find((a) => a !== '' && !seen.has(a));
    out.anchored = lost === undefined;
    if (lost !== undefined) {
      out.problem = { kind: 'missing_event', runId, seq: expectSeq, detail: `the run was anchored at hash ${lost.slice(0, 16)}… which is no longer in its chain: events from seq ${expectSeq} on (or the run's tail) were deleted` };
    }
  }
  return out;
}

/** Verifies one run (with its anchors) or, without `runId`, every run and the anchor chain. */
export async function verifyStore(store: Store, runId?: string): Promise<AuditReport> {
  // Runs that ended since the last sweep are anchored first (stores that anchor in batches).
  // (Bounded: under a steady stream of run ends this would otherwise never stop.)
  for (let i = 0; i < 20 && ((await store.anchorPending?.()) ?? 0) > 0; i++);
  const anchors = await store.auditAnchors();
  const purged = await store.listPurged();
  const purgedIds = new Set(purged.map((p) => p.runId));
  const problems: AuditProblem[] = [];
  const byRun = new Map<string, string[]>();
  for (const a of anchors) byRun.set(a.runId, [...(byRun.get(a.runId) ?? []), a.runFinalHash]);

  // The anchor chain first: a problem there is store-wide.
  let prev = '';
  let anchorProblem: AuditProblem | undefined;
  anchors.forEach((a, i) => {
    if (anchorProblem) return;
    if (a.seq !== i + 1) {
      anchorProblem = { kind: 'missing_anchor', seq: i + 1, detail: `anchor ${i + 1} is missing (next stored is ${a.seq})` };
      return;
    }
    const h = anchorHash(prev, a.seq, a.runId, a.runFinalHash, a.at);
    if (a.prevAnchorHash !== prev || h !== a.anchorHash) {
      anchorProblem = {
        kind: 'altered_anchor', seq: a.seq, runId: a.runId, expected: h, found: a.anchorHash,
        detail: a.prevAnchorHash !== prev ? `anchor ${a.seq} does not link to anchor ${a.seq - 1}` : `anchor ${a.seq} (run ${a.runId}) was altered`,
      };
      return;
    }
    prev = h;
  });

  const ids = runId ? [runId] : await store.auditRunIds();
  let events = 0;
  for (const id of ids) {
    if (purgedIds.has(id)) continue;
    const v = await verifyRun(store, id, byRun.get(id));
    events += v.events;
    if (v.problem) problems.push(v.problem);
  }
  if (!runId) {
    const present = new Set(ids);
    for (const a of anchors) {
      if (!present.has(a.runId) && !purgedIds.has(a.runId) && !problems.some((p) => p.kind === 'missing_run' && p.runId === a.runId)) {
        problems.push({ kind: 'missing_run', runId: a.runId, anchorSeq: a.seq, detail: `run ${a.runId} was anchored (anchor ${a.seq}) but is gone, and no retention policy purged it` });
      }
    }
  }
  if (anchorProblem) problems.push(anchorProblem);
  const scoped = runId ? purged.filter((p) => p.runId === runId) : purged;
  return {
    ok: problems.length === 0,
    runs: ids.length,
    events,
    anchors: anchors.length,
    purged: scoped.map((p) => ({ runId: p.runId, mode: p.mode, purgedAt: new Date(p.purgedAt).toISOString(), ...(p.finalHash ? { finalHash: p.finalHash } : {}) })),
    ...(problems[0] ? { problem: problems[0] } : {}),
    problems,
  };
}

/** One line for a problem, for the CLI and logs. */
export function describeProblem(p: AuditProblem): string {
  switch (p.kind) {
    case 'altered_event':
      return `run ${p.runId}: event ${p.seq} was altered (expected hash ${p.expected}, found ${p.found ?? 'none'})`;
    case 'missing_event':
      return `run ${p.runId}: ${p.detail}`;
    case 'altered_anchor':
      return `${p.detail} (expected anchor hash ${p.expected}, found ${p.found})`;
    case 'missing_anchor':
      return p.detail;
    case 'missing_run':
      return p.detail;
  }
}
