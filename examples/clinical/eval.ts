/**
 * `npm run eval -- clinical [--limit N] [--json]`: every labelled note (data/notes.json) through
 * the real workflow on an embedded Baton in a temp folder, a simulated clinician deciding each
 * approval, then: entity precision/recall per type and overall (exact match on the normalised
 * text, sets per note), alert precision/recall against the expected interactions and dose
 * alerts, OCR character accuracy, the share of notes sent to a person, throughput and cost.
 *
 * The figures are measured on what the machine produced, before the clinician: the simulated
 * reviewer approves every note as extracted, and the eval counts how many it would have had
 * to correct (any entity or alert differing from the label).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton } from '../../src/engine/engine.js';
import { findConfig, loadFunctions } from '../../src/cli/config.js';

const here = import.meta.dirname;
const TYPES = ['MEDICATION', 'DOSE', 'CONDITION'] as const;
const IN_FLIGHT = 3;

export interface Note {
  id: string;
  image: string;
  text: string;
  patient: { name: string; mrn: string; dob: string };
  expected: { entities: { type: string; text: string }[]; alerts: string[] };
}

export interface Counts {
  tp: number;
  fp: number;
  fn: number;
}

export interface NoteResult {
  id: string;
  runId: string;
  status: string;
  entities: string[];
  alerts: string[];
  ocrText: string;
  released: boolean;
}

export interface Metrics {
  notes: number;
  completed: number;
  entities: Record<string, Counts & { precision: number; recall: number; f1: number }>;
  alerts: Counts & { precision: number; recall: number; exact: number };
  ocrCharAccuracy: number;
  toPerson: number;
  needsCorrection: number;
  wallMs: number;
  notesPerSecond: number;
  cost: number;
  results: NoteResult[];
}

export function loadNotes(): Note[] {
  return JSON.parse(readFileSync(join(here, 'data/notes.json'), 'utf8')) as Note[];
}

/** Levenshtein distance (two rows). */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** The note's true text with its identifiers replaced as the workflow's header step does. */
function redactedTruth(n: Note): string {
  let t = n.text;
  for (const [v, tag] of [[n.patient.name, '[NAME]'], [n.patient.mrn, '[MRN]'], [n.patient.dob, '[DOB]']]) t = t.split(v).join(tag);
  return t;
}

const ratio = (a: number, b: number): number => (b === 0 ? 1 : a / b);

function score(expected: Set<string>, got: Set<string>, c: Counts): void {
  for (const x of got) if (expected.has(x)) c.tp++;
  else c.fp++;
  for (const x of expected) if (!got.has(x)) c.fn++;
}

/** Runs `notes` through the workflow on a fresh embedded store; the simulated clinician approves each one. */
export async function evaluate(notes: Note[], opts: { onNote?: (r: NoteResult, i: number) => void } = {}): Promise<Metrics> {
  const config = findConfig(join(here, 'baton.config.yaml'), []);
  const functions = await loadFunctions(config.functions);
  const dir = mkdtempSync(join(tmpdir(), 'baton-clinical-eval-'));
  const baton = await Baton.open({ dir, services: config.services, functions, baseDir: config.baseDir, policies: config.policies });
  const clinician = { name: 'dr-eval', role: 'approver' };
  const results: NoteResult[] = [];
  let cost = 0;
  let toPerson = 0;
  const started = Date.now();
  try {
    const version = await baton.registerFile(join(here, 'workflow.yaml'));
    // A few notes in flight at a time: the OCR model reads one image at a time, the other steps
    // (and the clinician) overlap with it; starting all at once would only queue them on the OCR.
    const runIds: string[] = new Array(notes.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < notes.length) {
        const i = next++;
        const n = notes[i];
        const id = await baton.start(version, { note_id: n.id, path: `data/${n.image}` });
        runIds[i] = id;
        for (;;) {
          const r = await baton.getRun(id);
          if (['completed', 'failed', 'cancelled'].includes(r.status)) break;
          const [a] = await baton.approvals.list({ runId: id, status: 'pending' });
          if (a) {
            toPerson++;
            await baton.approvals.decide(a.id, { decision: 'approve', reason: 'simulated clinician (eval)' }, clinician);
            await baton.wait(id);
            break;
          }
          await new Promise((res) => setTimeout(res, 25));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, notes.length) }, lane));
    for (const [i, n] of notes.entries()) {
      const run = await baton.getRun(runIds[i]);
      cost += run.cost ?? 0;
      const steps = new Map((await baton.getSteps(runIds[i])).map((s) => [s.stepId, s]));
      const out = (id: string): any => (steps.get(id) as { output?: unknown } | undefined)?.output;
      const ents = ((out('entities')?.entities ?? []) as { type: string; normalized: string }[]).map((e) => `${e.type}:${e.normalized}`);
      const alerts = ((out('check')?.alerts ?? []) as { id: string }[]).map((a) => a.id);
      const r: NoteResult = { id: n.id, runId: runIds[i], status: run.status, entities: [...new Set(ents)].sort(), alerts, ocrText: out('header')?.redacted_text ?? '', released: (run.output as { released?: boolean } | undefined)?.released === true };
      results.push(r);
      opts.onNote?.(r, i);
    }
  } finally {
    await baton.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const wallMs = Date.now() - started;

  const entities = Object.fromEntries(TYPES.map((t) => [t, { tp: 0, fp: 0, fn: 0 }])) as Record<string, Counts>;
  const all: Counts = { tp: 0, fp: 0, fn: 0 };
  const alerts: Counts = { tp: 0, fp: 0, fn: 0 };
  let exact = 0;
  let needsCorrection = 0;
  let editSum = 0;
  let charSum = 0;
  notes.forEach((n, i) => {
    const r = results[i];
    const want = new Set(n.expected.entities.map((e) => `${e.type}:${e.text}`));
    const got = new Set(r.entities);
    for (const t of TYPES) score(new Set([...want].filter((x) => x.startsWith(`${t}:`))), new Set([...got].filter((x) => x.startsWith(`${t}:`))), entities[t]);
    score(want, got, all);
    const wantAlerts = new Set(n.expected.alerts);
    const gotAlerts = new Set(r.alerts);
    score(wantAlerts, gotAlerts, alerts);
    const alertsExact = wantAlerts.size === gotAlerts.size && [...wantAlerts].every((a) => gotAlerts.has(a));
    if (alertsExact) exact++;
    if (!alertsExact || want.size !== got.size || [...want].some((x) => !got.has(x))) needsCorrection++;
    const truth = squash(redactedTruth(n));
    editSum += levenshtein(squash(r.ocrText), truth);
    charSum += truth.length;
  });
  const prf = (c: Counts) => {
    const precision = ratio(c.tp, c.tp + c.fp);
    const recall = ratio(c.tp, c.tp + c.fn);
    return { ...c, precision, recall, f1: precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall) };
  };
  return {
    notes: notes.length,
    completed: results.filter((r) => r.status === 'completed').length,
    entities: { ...Object.fromEntries(TYPES.map((t) => [t, prf(entities[t])])), overall: prf(all) },
    alerts: { ...alerts, precision: ratio(alerts.tp, alerts.tp + alerts.fp), recall: ratio(alerts.tp, alerts.tp + alerts.fn), exact: ratio(exact, notes.length) },
    ocrCharAccuracy: Math.max(0, 1 - ratio(editSum, charSum)),
    toPerson: ratio(toPerson, notes.length),
    needsCorrection: ratio(needsCorrection, notes.length),
    wallMs,
    notesPerSecond: notes.length / (wallMs / 1000),
    cost,
    results,
  };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

export function table(m: Metrics): string {
  const rows: string[] = [];
  rows.push(`clinical: ${m.notes} notes, ${m.completed} completed`);
  rows.push('');
  rows.push('entities      precision  recall   F1      tp   fp   fn');
  for (const [t, c] of Object.entries(m.entities)) rows.push(`${t.padEnd(13)} ${pct(c.precision).padStart(8)} ${pct(c.recall).padStart(7)} ${pct(c.f1).padStart(7)} ${String(c.tp).padStart(4)} ${String(c.fp).padStart(4)} ${String(c.fn).padStart(4)}`);
  rows.push('');
  rows.push(`alerts (interactions + dose ranges): precision ${pct(m.alerts.precision)}, recall ${pct(m.alerts.recall)} (tp ${m.alerts.tp}, fp ${m.alerts.fp}, fn ${m.alerts.fn}); notes with exactly the expected alerts ${pct(m.alerts.exact)}`);
  rows.push(`OCR character accuracy: ${pct(m.ocrCharAccuracy)}`);
  rows.push(`sent to a clinician: ${pct(m.toPerson)} (every note, by design); would need a correction: ${pct(m.needsCorrection)}`);
  rows.push(`throughput: ${m.notesPerSecond.toFixed(2)} notes/s, wall time ${(m.wallMs / 1000).toFixed(1)} s`);
  rows.push(`cost: $${m.cost.toFixed(6)} total, $${(m.cost / Math.max(1, m.notes)).toFixed(6)} per note (local models)`);
  return rows.join('\n');
}

export default async function main(args: string[]): Promise<number> {
  const limitAt = args.indexOf('--limit');
  const limit = limitAt >= 0 ? Number(args[limitAt + 1]) : undefined;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    process.stderr.write(`--limit must be a positive whole number, got ${args[limitAt + 1]}\n`);
    return 2;
  }
  const notes = loadNotes().slice(0, limit);
  const m = await evaluate(notes, { onNote: args.includes('--verbose') ? (r) => process.stderr.write(`${r.id} ${r.status} ${r.alerts.join(' ')}\n`) : undefined });
  if (args.includes('--json')) {
    const { results: _r, ...rest } = m;
    process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
  } else process.stdout.write(`${table(m)}\n`);
  return m.completed === m.notes ? 0 : 1;
}
