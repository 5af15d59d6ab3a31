// Code the kyc-fraud workflow calls by name. Plain, deterministic code: the customer lookup, the
// fraud features, the identity match against the OCR'd ID card and the sanctions screening.
// The data generator (generate.ts) imports `featurize` too, so the anomaly model is trained on
// exactly the features the workflow computes.
import { readFileSync } from 'node:fs';

const data = (name) => JSON.parse(readFileSync(new URL(`./data/${name}`, import.meta.url), 'utf8'));
let customers;
let sanctions;

/** Merchant categories by how often fraudsters use them (0 = rarely, 1 = mostly). */
export const MERCHANT_RISK = {
  grocery: 0.05, fuel: 0.1, restaurants: 0.1, pharmacy: 0.1, utilities: 0.05, transport: 0.15,
  online_retail: 0.35, travel: 0.4, electronics: 0.7, jewellery: 0.75, gift_cards: 0.9, crypto: 0.95, money_transfer: 0.9,
};

/** The customer record (KYC file) of a transaction; unknown customers fail the step (not retried). */
export function lookupCustomer({ customer_id }) {
  customers ??= new Map(data('customers.json').map((c) => [c.id, c]));
  const c = customers.get(customer_id);
  if (!c) throw Object.assign(new Error(`unknown customer ${customer_id}`), { retryable: false });
  return c;
}

/** Numeric features of a transaction against its customer's usual behaviour. */
export function featurize({ transaction: t, customer: c }) {
  const hour = Number(t.timestamp.slice(11, 13));
  return {
    amount_ratio: Math.round(Math.log2(Math.max(t.amount, 1) / c.avg_amount) * 100) / 100,
    night: hour < 6 ? 1 : 0,
    hour,
    foreign: t.country === c.country ? 0 : 1,
    merchant_risk: MERCHANT_RISK[t.merchant.category] ?? 0.5,
    velocity_1h: t.recent_transactions_1h ?? 0,
  };
}

/** Upper-case letters and digits only, single spaces: what OCR and records have in common. */
const norm = (s) => String(s ?? '').toUpperCase().replace(/[^A-Z0-9]+/g, ' ').trim();

/** Levenshtein similarity in [0, 1]. */
export function similarity(a, b) {
  if (a === b) return 1;
  if (!a.length || !b.length) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return 1 - prev[b.length] / Math.max(a.length, b.length);
}

/** Name similarity that ignores word order and tolerates OCR slips (best word-to-word pairing). */
export function nameScore(a, b) {
  const wa = norm(a).split(' ').filter(Boolean);
  const wb = norm(b).split(' ').filter(Boolean);
  if (!wa.length || !wb.length) return 0;
  const [short, long] = wa.length <= wb.length ? [wa, wb] : [wb, wa];
  const best = short.map((w) => Math.max(...long.map((v) => similarity(w, v))));
  const whole = similarity(wa.join(' '), wb.join(' '));
  return Math.round(Math.max(whole, best.reduce((x, y) => x + y, 0) / long.length) * 1000) / 1000;
}

/**
 * Matches the OCR text of an ID card against the customer record. The card's lines are
 * `NAME <name>`, `DOB <yyyy-mm-dd>`, `ID <number>`; OCR may garble the labels, so the name is the
 * line after NAME (or the best-scoring line) and the date is any 8 digits in order.
 */
export function matchIdentity({ text, confidence, customer }) {
  const lines = String(text ?? '').split(/\n+/).map(norm).filter(Boolean);
  const nameLine = lines.find((l) => /^NAME\b/.test(l));
  const candidates = nameLine ? [nameLine.replace(/^NAME\s*/, '')] : lines;
  let name = '';
  let score = 0;
  for (const l of candidates) {
    const s = nameScore(l, customer.name);
    if (s > score) (score = s), (name = l);
  }
  const digits = lines.map((l) => l.replace(/[^0-9]/g, '')).find((d) => d.length === 8 && /^(19|20)\d{6}$/.test(d));
  const dob = digits ? `${digits.slice(0, 4)}-${digits.slice(4, 6)}-${digits.slice(6, 8)}` : null;
  const dobMatch = dob === customer.dob;
  const nameMatch = score >= 0.85;
  return { name_read: name, name_score: score, dob_read: dob, dob_match: dobMatch, match: nameMatch && dobMatch, ocr_confidence: confidence };
}

/** Screens a name against the sanctions list: best fuzzy match, `hit` at 0.9 or more. */
export function screenSanctions({ name, dob }) {
  sanctions ??= data('sanctions.json');
  let best = { score: 0 };
  for (const e of sanctions) {
    const score = Math.max(nameScore(name, e.name), ...(e.aliases ?? []).map((a) => nameScore(name, a)));
    if (score > best.score) best = { score, entry: e };
  }
  // A birth date on the list that differs makes a near-match less likely to be the same person.
  const dobConflict = best.entry?.dob && dob && best.entry.dob !== dob;
  const score = Math.round((dobConflict ? best.score - 0.1 : best.score) * 1000) / 1000;
  return { hit: score >= 0.9, possible: score >= 0.8 && score < 0.9, score, entry: score >= 0.8 ? { id: best.entry.id, name: best.entry.name, program: best.entry.program } : null };
}
