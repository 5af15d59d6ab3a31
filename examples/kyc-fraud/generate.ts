/**
 * Writes the kyc-fraud example's data, all synthetic and seeded (the same files every time):
 *
 *   data/customers.json      30 KYC records (name, date of birth, country, usual spend, ID image)
 *   data/ids/C0xx.png        their ID cards, rendered with scripts/make-ocr-fixture.ts's stroke font
 *   data/sanctions.json      a made-up sanctions list (two customers are on it, spelled differently)
 *   data/history.json        features of 600 past normal transactions: the anomaly model's training set
 *   data/transactions.jsonl  320 labelled transactions (~7% fraud) for `npm run eval -- kyc-fraud`
 *
 * Ground truth: four customers present an ID card that is not theirs (another name or birth
 * date), two are sanctioned; fraud transactions are drawn from a different distribution (large
 * against the customer's usual spend, at night, abroad, risky merchants, bursts), some only mildly.
 *
 *   npx tsx examples/kyc-fraud/generate.ts
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arc, encodePng, GLYPHS, render, type Pt } from '../../scripts/make-ocr-fixture.js';
import { featurize, MERCHANT_RISK } from './functions.mjs';
import { mulberry32 as rng } from '../../src/util/random.js';

const dir = join(import.meta.dirname, 'data');

const rand = rng(20261206);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

// ---- Glyphs the ID cards need beyond the fixture's (added only where missing, so a richer font wins).
const MORE: Record<string, { width: number; strokes: Pt[][] }> = {
  B: { width: 6.3, strokes: [[[0, 0], [0, 10]], [[0, 0], [3.4, 0], ...arc(3.4, 2.5, 2.5, 2.5, -90, 90), [0, 5]], [[0, 5], [3.8, 5], ...arc(3.8, 7.5, 2.5, 2.5, -90, 90), [0, 10]]] },
  D: { width: 6.5, strokes: [[[0, 0], [0, 10]], [[0, 0], [2.5, 0], ...arc(2.5, 5, 4, 5, -90, 90), [0, 10]]] },
  F: { width: 5.5, strokes: [[[5.5, 0], [0, 0], [0, 10]], [[0, 5], [4.5, 5]]] },
  G: { width: 7, strokes: [arc(3.6, 5, 3.6, 5, -40, -320), [[6.4, 8.2], [6.9, 5.6], [3.9, 5.6]]] },
  H: { width: 6, strokes: [[[0, 0], [0, 10]], [[6, 0], [6, 10]], [[0, 5], [6, 5]]] },
  J: { width: 4.5, strokes: [[[4.5, 0], [4.5, 7.5], ...arc(2.25, 7.5, 2.25, 2.5, 0, 180)]] },
  K: { width: 6, strokes: [[[0, 0], [0, 10]], [[6, 0], [0, 6.2]], [[2.2, 4.2], [6, 10]]] },
  M: { width: 8, strokes: [[[0, 10], [0, 0], [4, 7], [8, 0], [8, 10]]] },
  P: { width: 6.3, strokes: [[[0, 10], [0, 0], [3.5, 0], ...arc(3.5, 2.75, 2.75, 2.75, -90, 90), [0, 5.5]]] },
  Q: { width: 7.4, strokes: [arc(3.7, 5, 3.7, 5, 0, 360), [[4.6, 7], [7.6, 10.4]]] },
  R: { width: 6.3, strokes: [[[0, 10], [0, 0], [3.5, 0], ...arc(3.5, 2.75, 2.75, 2.75, -90, 90), [0, 5.5]], [[3, 5.5], [6.3, 10]]] },
  S: { width: 6, strokes: [[...arc(3, 2.6, 2.8, 2.6, -20, -270), ...arc(3, 7.4, 3.1, 2.6, -90, 160)]] },
  U: { width: 6, strokes: [[[0, 0], [0, 6.5], ...arc(3, 6.5, 3, 3.5, 180, 0), [6, 0]]] },
  W: { width: 9, strokes: [[[0, 0], [2.2, 10], [4.5, 3], [6.8, 10], [9, 0]]] },
  X: { width: 6.5, strokes: [[[0, 0], [6.5, 10]], [[6.5, 0], [0, 10]]] },
  Y: { width: 7, strokes: [[[0, 0], [3.5, 5], [7, 0]], [[3.5, 5], [3.5, 10]]] },
  Z: { width: 6, strokes: [[[0, 0], [6, 0], [0, 10], [6, 10]]] },
  '-': { width: 3.5, strokes: [[[0, 5.5], [3.5, 5.5]]] },
};
for (const [c, g] of Object.entries(MORE)) GLYPHS[c] ??= g;

/** A card: lines of text stacked, left-aligned, on white, 8-bit greyscale PNG. */
function card(lines: string[]): Buffer {
  const unit = 3;
  const rendered = lines.map((l) => render(l, unit, 4));
  const margin = 24;
  const lineGap = 18;
  const width = Math.max(...rendered.map((r) => r.width)) + 2 * margin;
  const height = rendered.reduce((h, r) => h + r.height, 0) + lineGap * (lines.length - 1) + 2 * margin;
  const pixels = new Uint8Array(width * height).fill(255);
  let y0 = margin;
  for (const r of rendered) {
    for (let y = 0; y < r.height; y++) pixels.set(r.pixels.subarray(y * r.width, (y + 1) * r.width), (y0 + y) * width + margin);
    y0 += r.height + lineGap;
  }
  return encodePng(width, height, pixels);
}

// ---- Customers
const FIRST = ['Olivia', 'Liam', 'Amara', 'Noah', 'Sofia', 'Mateo', 'Hannah', 'Jonas', 'Priya', 'Lucas', 'Elena', 'Omar', 'Grace', 'Felix', 'Ines', 'Tomas', 'Maya', 'Hugo', 'Leila', 'Erik', 'Nadia', 'Pavel', 'Clara', 'Ravi', 'Zoe', 'Diego', 'Freya', 'Kenji', 'Alma', 'Victor'];
const LAST = ['Bennett', 'Okafor', 'Lindqvist', 'Moreau', 'Castillo', 'Novak', 'Fischer', 'Haddad', 'Sharma', 'Kowalski', 'Brennan', 'Tanaka', 'Silva', 'Jansen', 'Rossi', 'Duarte', 'Whitfield', 'Kader', 'Ferreira', 'Holm', 'Varga', 'Petrov', 'Becker', 'Mendez', 'Quinn', 'Adeyemi', 'Larsen', 'Morales', 'Strand', 'Gallo'];
const COUNTRIES = ['GB', 'DE', 'FR', 'NL', 'ES', 'IT', 'SE', 'PL'];
const SANCTIONED = new Map([[7, { list: 'Pavel Vargov', dob: null }], [19, { list: 'Erik Holmqvist', dob: null }]]);
/** Customers whose ID card is not theirs: another name, or another birth date. */
const WRONG_ID: Record<number, 'name' | 'dob'> = { 4: 'name', 12: 'dob', 23: 'name', 27: 'dob' };

interface Customer { id: string; name: string; dob: string; country: string; avg_amount: number; id_image: string; document_number: string }
const customers: Customer[] = [];
const truth: Record<string, { kyc_match: boolean; sanctioned: boolean }> = {};
rmSync(join(dir, 'ids'), { recursive: true, force: true });
mkdirSync(join(dir, 'ids'), { recursive: true });
for (let i = 0; i < 30; i++) {
  const id = `C${pad(i + 1, 3)}`;
  const sanctioned = SANCTIONED.get(i);
  const name = sanctioned ? ['Pavel Vargo', 'Erik Holmquist'][i === 7 ? 0 : 1] : `${FIRST[i]} ${LAST[(i * 7) % LAST.length]}`;
  const dob = `${int(1950, 2003)}-${pad(int(1, 12))}-${pad(int(1, 28))}`;
  const c: Customer = { id, name, dob, country: pick(COUNTRIES), avg_amount: Math.round(Math.exp(3 + rand() * 2) * 100) / 100, id_image: `data/ids/${id}.png`, document_number: String(int(10_000_000, 99_999_999)) };
  customers.push(c);
  let cardName = c.name;
  let cardDob = c.dob;
  if (WRONG_ID[i] === 'name') cardName = `${FIRST[(i + 11) % FIRST.length]} ${LAST[(i + 5) % LAST.length]}`;
  if (WRONG_ID[i] === 'dob') cardDob = `${Number(c.dob.slice(0, 4)) + int(3, 9)}${c.dob.slice(4)}`;
  writeFileSync(join(dir, 'ids', `${id}.png`), card(['IDENTITY CARD', `NAME ${cardName}`, `DOB ${cardDob}`, `ID ${c.document_number}`]));
  truth[id] = { kyc_match: !WRONG_ID[i], sanctioned: !!sanctioned };
}
writeFileSync(join(dir, 'customers.json'), `${JSON.stringify(customers, null, 2)}\n`);

// ---- Sanctions list: invented names, plus the two customers' near-spellings.
const listed = ['Viktor Malenko', 'Ramon Escobedo', 'Yusuf Karaman', 'Anatoly Grekov', 'Lina Sarkissian', 'Boris Telnov', 'Hamid Rostami', 'Celeste Marchetti', 'Ivan Drobotov', 'Sergei Kuznar', 'Mirela Dantes', 'Oleg Barinov', 'Farid Qasemi', 'Jorge Salcedo', 'Nikolai Vesnin', 'Tariq Belhadj', 'Marta Ilyina', 'Karim Zaidan', 'Goran Petrovic', 'Anton Lisovsky'];
const sanctions = [...listed, ...[...SANCTIONED.values()].map((s) => s.list)].map((name, i) => ({
  id: `SL-${pad(i + 1, 4)}`,
  name,
  aliases: i % 4 === 0 ? [name.split(' ').reverse().join(' ')] : [],
  program: pick(['ASSET-FREEZE', 'TERRORISM', 'CORRUPTION', 'PROLIFERATION']),
  dob: null as string | null,
}));
writeFileSync(join(dir, 'sanctions.json'), `${JSON.stringify(sanctions, null, 2)}\n`);

// ---- Transactions
const NORMAL_CATS = ['grocery', 'grocery', 'grocery', 'fuel', 'restaurants', 'restaurants', 'pharmacy', 'utilities', 'transport', 'online_retail', 'online_retail', 'travel'];
const FRAUD_CATS = ['electronics', 'jewellery', 'gift_cards', 'crypto', 'money_transfer', 'online_retail'];
const MERCHANTS: Record<string, string[]> = {
  grocery: ['FreshMart', 'Corner Grocer'], fuel: ['Petrol Plus'], restaurants: ['Bistro 21', 'Noodle Bar'], pharmacy: ['CityPharm'], utilities: ['PowerGrid Energy'],
  transport: ['MetroRail'], online_retail: ['ShopOnline', 'MegaMarket'], travel: ['SkyFly Air', 'StayWell Hotels'], electronics: ['GadgetHub'], jewellery: ['GoldLine'],
  gift_cards: ['CardsNow'], crypto: ['CoinSwap'], money_transfer: ['QuickSend'],
};
for (const c of Object.keys(MERCHANTS)) if (!(c in MERCHANT_RISK)) throw new Error(`merchant category ${c} has no risk`);

interface Txn { id: string; customer_id: string; amount: number; currency: string; timestamp: string; country: string; merchant: { name: string; category: string }; channel: string; recent_transactions_1h: number }
function normalTxn(c: Customer, day: number): Txn {
  const category = pick(NORMAL_CATS);
  const hour = rand() < 0.03 ? int(0, 5) : int(7, 23);
  return {
    id: '', customer_id: c.id,
    amount: Math.round(c.avg_amount * Math.exp(0.6 * normal()) * 100) / 100,
    currency: 'EUR',
    timestamp: `2026-${pad(1 + Math.floor(day / 28))}-${pad(1 + (day % 28))}T${pad(hour)}:${pad(int(0, 59))}:${pad(int(0, 59))}Z`,
    country: rand() < (category === 'travel' ? 0.5 : 0.06) ? pick(COUNTRIES.filter((x) => x !== c.country)) : c.country,
    merchant: { name: pick(MERCHANTS[category]), category },
    channel: pick(['card_present', 'card_present', 'online']),
    recent_transactions_1h: rand() < 0.8 ? int(0, 1) : int(2, 3),
  };
}
function fraudTxn(c: Customer, day: number): Txn {
  const t = normalTxn(c, day);
  // Each fraud shows several of the signals, a few only two (the hard cases).
  const signals = ['amount', 'night', 'abroad', 'merchant', 'burst'].filter(() => rand() < 0.6);
  while (signals.length < 2) signals.push(pick(['amount', 'night', 'abroad', 'merchant', 'burst']));
  if (signals.includes('amount')) t.amount = Math.round(c.avg_amount * (4 + rand() * 16) * 100) / 100;
  if (signals.includes('night')) t.timestamp = `${t.timestamp.slice(0, 11)}${pad(int(1, 5))}${t.timestamp.slice(13)}`;
  if (signals.includes('abroad')) t.country = pick(['NG', 'RU', 'BR', 'VN', 'US', 'AE'].filter((x) => x !== c.country));
  if (signals.includes('merchant')) {
    const category = pick(FRAUD_CATS);
    t.merchant = { name: pick(MERCHANTS[category]), category };
  }
  if (signals.includes('burst')) t.recent_transactions_1h = int(4, 9);
  t.channel = 'online';
  return t;
}

const history = Array.from({ length: 600 }, (_, i) => {
  const c = pick(customers);
  return featurize({ transaction: normalTxn(c, i % 84), customer: c });
});
writeFileSync(join(dir, 'history.json'), `${JSON.stringify(history)}\n`);

const lines: string[] = [];
let frauds = 0;
for (let i = 0; i < 320; i++) {
  const c = pick(customers);
  const fraud = rand() < 0.07;
  frauds += fraud ? 1 : 0;
  const t = (fraud ? fraudTxn : normalTxn)(c, 84 + (i % 28));
  t.id = `T${pad(i + 1, 5)}`;
  lines.push(JSON.stringify({ transaction: t, label: { fraud, ...truth[c.id] } }));
}
writeFileSync(join(dir, 'transactions.jsonl'), `${lines.join('\n')}\n`);
console.log(`wrote ${customers.length} customers and ID cards, ${sanctions.length} sanctions entries, ${history.length} history rows, ${lines.length} transactions (${frauds} fraud) to ${dir}`);
