/**
 * `npm run eval -- support [--limit N] [--json]`: runs the labelled tickets in
 * data/tickets.jsonl through workflow.yaml on an embedded Baton (the real engine, the services
 * and functions of baton.config.yaml, a throw-away store) and prints intent accuracy, retrieval
 * hit rate at 3, the share of tickets sent to a person, throughput and cost.
 *
 * The `review` approvals are decided by a simulated agent, as a person would from the inbox:
 * it approves the draft and, when the model's intent is wrong, corrects it in the form. So the
 * run's history has the same shape as in production, and "sent to a person" counts real
 * approval steps that asked, not a re-computation of the `when:` condition.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton } from '../../src/index.js';
import { findConfig, loadFunctions } from '../../src/cli/config.js';

const here = import.meta.dirname;

export interface Ticket {
  id: string;
  customer: string;
  tier: 'free' | 'pro' | 'enterprise';
  subject: string;
  body: string;
  intent: string;
  articles: string[];
  tone: 'calm' | 'polite' | 'angry';
}

export interface CaseResult {
  ticket: Ticket;
  status: string;
  intent?: string;
  confidence?: number;
  articles: string[];
  route?: string;
  /** The `mood` score (-1..1) the approval's `when:` read. */
  sentiment?: number;
  cost: number;
}

export interface Report {
  cases: number;
  completed: number;
  intentAccuracy: number;
  /** After the reviewers' corrections: what the ticket ends up filed under. */
  intentAccuracyAfterReview: number;
  hitAt1: number;
  hitAt3: number;
  sentToPerson: number;
  /** Approvals the simulated agent decided (equals the tickets sent to a person). */
  approvalsDecided: number;
  /** Share of angry tickets that reached a person. */
  angryReviewed: number;
  /** Share of wrongly classified tickets that reached a person. */
  wrongIntentReviewed: number;
  perIntent: Record<string, { n: number; correct: number }>;
  wallSeconds: number;
  casesPerSecond: number;
  totalCost: number;
  costPerCase: number;
  results: CaseResult[];
}

export function loadTickets(): Ticket[] {
  return readFileSync(join(here, 'data', 'tickets.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Ticket);
}

/** An evenly spread subset (every k-th ticket), so a small run still covers every intent. */
export function spread<T>(xs: T[], n: number): T[] {
  if (n >= xs.length) return xs;
  const step = xs.length / n;
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)]);
}

const REVIEWER = { name: 'eval-reviewer', role: 'approver' };

/** Runs `tickets` through workflow.yaml and measures. The store lives in a temp folder, removed after. */
export async function evaluate(tickets: Ticket[], opts: { concurrency?: number } = {}): Promise<Report> {
  const config = findConfig(join(here, 'baton.config.yaml'), []);
  const functions = await loadFunctions(config.functions);
  const dir = mkdtempSync(join(tmpdir(), 'baton-eval-support-'));
  const baton = await Baton.open({ dir, functions, services: config.services, baseDir: config.baseDir, telemetry: false, schedules: false, concurrency: opts.concurrency ?? 32 });
  const byId = new Map(tickets.map((t) => [t.id, t]));
  let reviewed = 0;
  try {
    const version = await baton.registerFile(join(here, 'workflow.yaml'));
    const started = performance.now();
    const runIds = await Promise.all(tickets.map(({ intent: _i, articles: _a, tone: _t, ...ticket }) => baton.start(version, { ticket })));
    const runToTicket = new Map(runIds.map((id, i) => [id, tickets[i]]));
    // The simulated agent works the inbox while the runs go on.
    let done = false;
    const reviewer = (async () => {
      while (!done) {
        const open = await baton.approvals.list({ for: REVIEWER, limit: 1000 });
        for (const a of open) {
          const ev = a.evidence as { ticket: { id: string }; intent: { label: string } };
          const gold = byId.get(ev.ticket.id)?.intent;
          const data = gold && gold !== ev.intent.label ? { intent: gold } : undefined;
          await baton.approvals.decide(a.id, { decision: 'approve', reason: 'simulated agent: draft checked', data }, REVIEWER);
          reviewed++;
        }
        if (open.length === 0) await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const runs = await Promise.all(runIds.map((id) => baton.wait(id, { timeoutMs: 300_000 })));
    const wallSeconds = (performance.now() - started) / 1000;
    done = true;
    await reviewer;

    const results: CaseResult[] = runs.map((r) => {
      const o = (r.output ?? {}) as { intent?: { label: string; confidence: number }; sentiment?: { score: number }; articles?: string[]; route?: string; corrected_intent?: string };
      return { ticket: runToTicket.get(r.id)!, status: r.status, intent: o.intent?.label, confidence: o.intent?.confidence, sentiment: o.sentiment?.score, articles: o.articles ?? [], route: o.route, cost: r.cost ?? 0, corrected: o.corrected_intent } as CaseResult & { corrected?: string };
    });
    const n = results.length;
    const share = (f: (c: CaseResult & { corrected?: string }) => boolean, of = results): number => (of.length ? of.filter(f).length / of.length : 0);
    const human = (c: CaseResult): boolean => c.route === 'reviewed' || c.route === 'rejected';
    const perIntent: Report['perIntent'] = {};
    for (const c of results) {
      const p = (perIntent[c.ticket.intent] ??= { n: 0, correct: 0 });
      p.n++;
      if (c.intent === c.ticket.intent) p.correct++;
    }
    const totalCost = results.reduce((s, c) => s + c.cost, 0);
    const angry = results.filter((c) => c.ticket.tone === 'angry');
    const wrong = results.filter((c) => c.intent !== c.ticket.intent);
    return {
      cases: n,
      completed: results.filter((c) => c.status === 'completed').length,
      intentAccuracy: share((c) => c.intent === c.ticket.intent),
      intentAccuracyAfterReview: share((c) => (c.corrected ?? c.intent) === c.ticket.intent),
      hitAt1: share((c) => c.ticket.articles.includes(c.articles[0])),
      hitAt3: share((c) => c.articles.slice(0, 3).some((a) => c.ticket.articles.includes(a))),
      sentToPerson: share(human),
      approvalsDecided: reviewed,
      angryReviewed: share(human, angry),
      wrongIntentReviewed: share(human, wrong),
      perIntent,
      wallSeconds,
      casesPerSecond: n / wallSeconds,
      totalCost,
      costPerCase: n ? totalCost / n : 0,
      results,
    };
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export function formatReport(r: Report): string {
  const rows: Array<[string, string]> = [
    ['tickets', `${r.cases} (${r.completed} completed)`],
    ['intent accuracy (model)', pct(r.intentAccuracy)],
    ['intent accuracy after review', pct(r.intentAccuracyAfterReview)],
    ['retrieval hit rate @1', pct(r.hitAt1)],
    ['retrieval hit rate @3', pct(r.hitAt3)],
    ['sent to a person', `${pct(r.sentToPerson)} (${r.approvalsDecided} approvals decided)`],
    ['  of angry tickets', pct(r.angryReviewed)],
    ['  of misclassified tickets', pct(r.wrongIntentReviewed)],
    ...Object.entries(r.perIntent).map(([k, v]): [string, string] => [`  accuracy: ${k}`, `${pct(v.correct / v.n)} of ${v.n}`]),
    ['throughput', `${r.casesPerSecond.toFixed(1)} tickets/s`],
    ['wall time', `${r.wallSeconds.toFixed(2)} s`],
    ['cost, total', `$${r.totalCost.toFixed(6)}`],
    ['cost, per ticket', `$${r.costPerCase.toFixed(6)}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `support: ${r.cases} labelled tickets through examples/support/workflow.yaml\n\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`;
}

/**
 * What other thresholds would have done, from the scores the runs recorded: the share sent to a
 * person, and how many angry and misclassified tickets a person would have seen. (The workflow's
 * own `vars` decided the real routing above.)
 */
export function thresholdSweep(results: CaseResult[]): string {
  const lines = ['  angry_below  min_confidence  sent to a person  angry seen  misclassified seen'];
  const angry = results.filter((c) => c.ticket.tone === 'angry');
  const wrong = results.filter((c) => c.intent !== c.ticket.intent);
  for (const a of [-0.2, -0.3, -0.45, -0.55]) {
    for (const m of [0.5, 0.6, 0.7]) {
      const sent = (c: CaseResult): boolean => (c.sentiment ?? 0) < a || (c.confidence ?? 0) < m;
      const f = (xs: CaseResult[]): string => pct(xs.length ? xs.filter(sent).length / xs.length : 0);
      lines.push(`  ${String(a).padStart(11)}  ${String(m).padStart(14)}  ${f(results).padStart(16)}  ${f(angry).padStart(10)}  ${f(wrong).padStart(18)}`);
    }
  }
  return lines.join('\n');
}

export default async function main(args: string[]): Promise<number> {
  let limit: number | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--limit') limit = Number(args[++i]);
    else if (args[i] === '--json') json = true;
    else {
      process.stderr.write(`unknown option ${args[i]}\nusage: npm run eval -- support [--limit N] [--json]\n`);
      return 2;
    }
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    process.stderr.write('--limit must be a whole number of at least 1\n');
    return 2;
  }
  const all = loadTickets();
  const report = await evaluate(limit ? spread(all, limit) : all);
  const { results, ...figures } = report;
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else {
    process.stdout.write(formatReport(report));
    process.stdout.write(`\nrouting thresholds (vars of workflow.yaml), replayed on the scores recorded in the outputs (confidence rounded to 2 decimals):\n${thresholdSweep(results)}\n`);
    const misses = results.filter((c) => c.intent !== c.ticket.intent).slice(0, 5);
    if (misses.length) process.stdout.write(`\nsome misclassified tickets:\n${misses.map((c) => `  ${c.ticket.id} ${c.ticket.intent} → ${c.intent} (${c.confidence}): ${c.ticket.subject}`).join('\n')}\n`);
  }
  return report.completed === report.cases ? 0 : 1;
}
