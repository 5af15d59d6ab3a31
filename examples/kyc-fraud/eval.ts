/**
 * `npm run eval -- kyc-fraud [--limit N] [--concurrency N] [--json]`: every labelled transaction
 * of data/transactions.jsonl through the real workflow, on an embedded Baton in a temp folder
 * with this example's baton.config.yaml, then the figures the README quotes.
 *
 * Held cases are decided by a simulated analyst through `baton.approvals` (the same desk the
 * gateway and CLI use): one who knows the truth, so the final decisions show what the workflow
 * achieves with a careful reviewer, and the hold rate shows how much work it gives people.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton } from '../../src/index.js';
import { findConfig, loadFunctions } from '../../src/cli/config.js';
import type { Transaction } from './functions.mjs';

const here = import.meta.dirname;
export const WORKFLOW = join(here, 'workflow.yaml');

export interface Case { transaction: Transaction; label: { fraud: boolean; kyc_match: boolean; sanctioned: boolean } }
export interface Outcome {
  transaction: string; customer: string; decision: 'clear' | 'hold' | 'block'; rules: 'clear' | 'hold' | 'block'; reasons: string[]; decided_by: string;
  fraud: { score: number; anomalous: boolean }; kyc: { match: boolean; name_score: number; dob_match: boolean }; sanctions: { hit: boolean; possible: boolean; score: number };
}

export function loadCases(limit?: number): Case[] {
  const all = readFileSync(join(here, 'data', 'transactions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Case);
  return limit ? all.slice(0, limit) : all;
}

/** An embedded Baton with this example's config (services, functions), its store in `dir`. */
export async function openBaton(dir: string): Promise<Baton> {
  const config = findConfig(undefined, [here]);
  return Baton.open({
    dir, services: config.services, functions: await loadFunctions(config.functions), baseDir: config.baseDir,
    schedules: false, metrics: false, telemetry: false, pollIntervalMs: 50,
  });
}

/** The simulated analyst: releases a held transaction only when it is legitimate and the customer checks out. */
export const ANALYST = { name: 'fraud-analyst', role: 'approver' } as const;
function review(c: Case) {
  const ok = !c.label.fraud && c.label.kyc_match && !c.label.sanctioned;
  return { decision: ok ? 'approve' : 'reject', data: { confirmed_fraud: c.label.fraud, note: ok ? 'checked with the customer' : 'confirmed' } } as const;
}

export interface Figures {
  cases: number; fraudCases: number;
  fraudStage: { tp: number; fp: number; fn: number; tn: number; precision: number; recall: number; f1: number };
  blockStage: { precision: number; recall: number };
  rules: Record<string, number>; final: Record<string, number>; toPerson: number; toPersonShare: number;
  kycAccuracy: number; kycMismatchesCaught: number; kycMismatches: number; sanctionsAccuracy: number;
  fraudBlocked: number; legitBlocked: number; legit: number;
  wallMs: number; perSecond: number; cost: number; costPerCase: number;
}

/** Runs the cases through the workflow (at most `concurrency` at a time), analyst included. */
export async function evaluate(baton: Baton, cases: Case[], opts: { concurrency?: number; onProgress?: (done: number) => void } = {}): Promise<{ figures: Figures; outcomes: Outcome[] }> {
  const version = await baton.registerFile(WORKFLOW);
  const byRun = new Map<string, Case>();
  let stop = false;
  let reviewed = 0;
  const analyst = (async () => {
    while (!stop) {
      const open = await baton.approvals.list({ for: ANALYST, limit: 1000 });
      for (const a of open) {
        const c = byRun.get(a.runId);
        if (!c) continue;
        await baton.approvals.decide(a.id, review(c), ANALYST);
        reviewed++;
      }
      await new Promise((r) => setTimeout(r, open.length ? 0 : 25));
    }
  })();
  const t0 = performance.now();
  const outcomes: Outcome[] = new Array(cases.length);
  let cost = 0;
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < cases.length) {
      const i = next++;
      const c = cases[i];
      const id = await baton.start(version, c.transaction);
      byRun.set(id, c);
      const r = await baton.wait(id);
      if (r.status !== 'completed') throw new Error(`run ${id} (${c.transaction.id}) ended ${r.status}: ${JSON.stringify(r.error)}`);
      outcomes[i] = r.output as Outcome;
      cost += r.cost ?? 0;
      opts.onProgress?.(++done);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, lane));
  } finally {
    stop = true;
    await analyst;
  }
  const wallMs = performance.now() - t0;

  const count = (pred: (o: Outcome, c: Case) => boolean) => outcomes.filter((o, i) => pred(o, cases[i])).length;
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  const tp = count((o, c) => o.fraud.anomalous && c.label.fraud);
  const fp = count((o, c) => o.fraud.anomalous && !c.label.fraud);
  const fn = count((o, c) => !o.fraud.anomalous && c.label.fraud);
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  const btp = count((o, c) => o.rules === 'block' && o.reasons.some((r) => r.startsWith('fraud score')) && c.label.fraud);
  const bAll = count((o) => o.rules === 'block' && o.reasons.some((r) => r.startsWith('fraud score')));
  const dist = (key: 'rules' | 'decision') => Object.fromEntries(['clear', 'hold', 'block'].map((d) => [d, count((o) => o[key] === d)]));
  const legit = (c: Case) => !c.label.fraud && c.label.kyc_match && !c.label.sanctioned;
  const toPerson = count((o) => o.decided_by !== 'rules');
  if (toPerson !== reviewed) throw new Error(`the analyst decided ${reviewed} approvals but ${toPerson} runs say a person decided`);
  return {
    outcomes,
    figures: {
      cases: cases.length, fraudCases: count((_, c) => c.label.fraud),
      fraudStage: { tp, fp, fn, tn: cases.length - tp - fp - fn, precision, recall, f1: ratio(2 * precision * recall, precision + recall) },
      blockStage: { precision: ratio(btp, bAll), recall: ratio(btp, count((_, c) => c.label.fraud)) },
      rules: dist('rules'), final: dist('decision'), toPerson, toPersonShare: ratio(toPerson, cases.length),
      kycAccuracy: ratio(count((o, c) => o.kyc.match === c.label.kyc_match), cases.length),
      kycMismatches: count((_, c) => !c.label.kyc_match), kycMismatchesCaught: count((o, c) => !c.label.kyc_match && !o.kyc.match),
      sanctionsAccuracy: ratio(count((o, c) => o.sanctions.hit === c.label.sanctioned), cases.length),
      fraudBlocked: count((o, c) => c.label.fraud && o.decision === 'block'), legit: count((_, c) => legit(c)), legitBlocked: count((o, c) => legit(c) && o.decision === 'block'),
      wallMs, perSecond: cases.length / (wallMs / 1000), cost, costPerCase: ratio(cost, cases.length),
    },
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function table(f: Figures): string {
  const rows: [string, string][] = [
    ['cases (fraud)', `${f.cases} (${f.fraudCases}, ${pct(f.fraudCases / f.cases)})`],
    ['fraud stage precision', `${f.fraudStage.precision.toFixed(3)}  (tp ${f.fraudStage.tp}, fp ${f.fraudStage.fp})`],
    ['fraud stage recall', `${f.fraudStage.recall.toFixed(3)}  (fn ${f.fraudStage.fn})`],
    ['fraud stage F1', f.fraudStage.f1.toFixed(3)],
    ['auto-block on score: precision / recall', `${f.blockStage.precision.toFixed(3)} / ${f.blockStage.recall.toFixed(3)}`],
    ['rules: clear / hold / block', `${f.rules.clear} / ${f.rules.hold} / ${f.rules.block}`],
    ['sent to a person', `${f.toPerson} (${pct(f.toPersonShare)})`],
    ['final (after review): clear / block', `${f.final.clear} / ${f.final.block}`],
    ['fraud blocked (final)', `${f.fraudBlocked} of ${f.fraudCases}`],
    ['legitimate blocked (final)', `${f.legitBlocked} of ${f.legit}`],
    ['KYC match accuracy', `${pct(f.kycAccuracy)}  (wrong ID cards caught: ${f.kycMismatchesCaught} of ${f.kycMismatches} cases)`],
    ['sanctions screening accuracy', pct(f.sanctionsAccuracy)],
    ['throughput', `${f.perSecond.toFixed(1)} cases/s`],
    ['wall time', `${(f.wallMs / 1000).toFixed(1)} s`],
    ['cost total / per case', `$${f.cost.toFixed(5)} / $${f.costPerCase.toFixed(6)}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

export default async function main(args: string[]): Promise<number> {
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
  const cases = loadCases(opt('--limit'));
  const dir = mkdtempSync(join(tmpdir(), 'baton-eval-kyc-'));
  const baton = await openBaton(dir);
  try {
    process.stderr.write(`kyc-fraud: ${cases.length} transactions through ${WORKFLOW}\n`);
    const { figures } = await evaluate(baton, cases, {
      concurrency: opt('--concurrency') ?? 8,
      onProgress: (n) => n % 50 === 0 && process.stderr.write(`  ${n}/${cases.length}\n`),
    });
    process.stdout.write(args.includes('--json') ? `${JSON.stringify(figures, null, 2)}\n` : `${table(figures)}\n`);
    return 0;
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
