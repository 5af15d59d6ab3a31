// Code the clinical-note workflow calls by name: parsing the note header and the decision-support
// rules are plain code over small tables shipped with the example (data/*.csv), not models.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const DATA = join(import.meta.dirname, 'data');

/** Rows of a small CSV with a header line; a field may be "quoted, with commas". */
function csv(file) {
  const [head, ...rows] = readFileSync(join(DATA, file), 'utf8').trim().split('\n');
  const cols = head.split(',');
  return rows.map((line) => {
    const cells = [...line.matchAll(/"([^"]*)"|([^,]+)|(?<=,|^)(?=,|$)/g)].map((m) => m[1] ?? m[2] ?? '');
    return Object.fromEntries(cols.map((c, i) => [c, cells[i] ?? '']));
  });
}

const INTERACTIONS = csv('interactions.csv');
const RANGES = new Map(csv('dose-ranges.csv').map((r) => [r.drug, { unit: r.unit, min: Number(r.min), max: Number(r.max) }]));
const pairKey = (a, b) => [a, b].sort().join('+');

/**
 * The patient header ("PATIENT: NAME  MRN: 123  DOB: 01/02/1950", OCR punctuation tolerated)
 * split from the clinical body, and the text with the identifiers replaced, for reviewers.
 */
export function parseHeader({ text }) {
  // The OCR text is stored hashed (workflow `sensitive:`): a run resumed between `ocr` and this
  // step reads back only its sha256. Say so, rather than parse a hash into an empty note.
  if (/^sha256:[0-9a-f]{64}$/.test(text)) {
    throw new Error('the OCR text was stored hashed and is gone after a restart; re-read the image: baton runs retry <run> --from ocr');
  }
  const m = /PATIENT\s*[:;.,]?\s*(.+?)\s+MRN\s*[:;.,]?\s*(\d+)\s+DOB\s*[:;.,]?\s*([\d/]+)/i.exec(text);
  const lines = text.split('\n').filter((l) => l.trim());
  const body = lines.filter((l) => !/PATIENT\s*[:;.,]/i.test(l) && !/\bMRN\b/i.test(l)).join('\n');
  let redacted = text;
  if (m) for (const [v, tag] of [[m[1], '[NAME]'], [m[2], '[MRN]'], [m[3], '[DOB]']]) redacted = redacted.split(v).join(tag);
  return { name: m?.[1] ?? null, mrn: m?.[2] ?? null, dob: m?.[3] ?? null, found: Boolean(m), body, redacted_text: redacted };
}

/**
 * Decision support: each medication with the dose written after it (before the next
 * medication), then every pair in the interaction table and every dose outside its range.
 */
export function checkMedications({ entities }) {
  const sorted = [...entities].sort((a, b) => a.start - b.start);
  const medications = [];
  for (const e of sorted) {
    if (e.type === 'MEDICATION') {
      if (medications.some((m) => m.name === e.normalized)) continue;
      medications.push({ name: e.normalized, text: e.text, dose: null, unit: null });
    } else if (e.type === 'DOSE' && medications.length && medications.at(-1).dose === null) {
      const [, value, unit] = /^([\d.]+)\s*(\S+)$/.exec(e.normalized) ?? [];
      if (value) Object.assign(medications.at(-1), { dose: Number(value), unit });
    }
  }
  const conditions = [...new Set(sorted.filter((e) => e.type === 'CONDITION').map((e) => e.normalized))];
  const alerts = [];
  const names = new Set(medications.map((m) => m.name));
  for (const r of INTERACTIONS) {
    if (names.has(r.drug_a) && names.has(r.drug_b)) {
      alerts.push({ id: `interaction:${pairKey(r.drug_a, r.drug_b)}`, kind: 'interaction', severity: r.severity, drugs: [r.drug_a, r.drug_b], message: `${r.drug_a} + ${r.drug_b}: ${r.reason}` });
    }
  }
  for (const m of medications) {
    const range = RANGES.get(m.name);
    if (!range || m.dose === null) continue;
    if (m.unit !== range.unit) {
      alerts.push({ id: `unit:${m.name}`, kind: 'unit', severity: 'moderate', drugs: [m.name], message: `${m.name} written in ${m.unit}; the range table uses ${range.unit}` });
    } else if (m.dose < range.min || m.dose > range.max) {
      alerts.push({ id: `dose:${m.name}`, kind: 'dose', severity: 'major', drugs: [m.name], message: `${m.name} ${m.dose} ${m.unit} is outside ${range.min}-${range.max} ${range.unit} per dose` });
    }
  }
  const missing = medications.filter((m) => m.dose === null).map((m) => m.name);
  return { medications, conditions, alerts: alerts.sort((a, b) => a.id.localeCompare(b.id)), missing_doses: missing };
}
