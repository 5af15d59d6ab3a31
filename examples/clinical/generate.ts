/**
 * Writes the clinical example's data, all synthetic and written for this project: the lexicon
 * (medications, conditions, a dose pattern), the interaction and dose-range tables, and N
 * clinic notes (fictional patients) with their expected entities and alerts, each rendered as
 * a scanned-looking PNG by the stroke font of scripts/make-ocr-fixture.ts (light seeded noise,
 * so the OCR has something to get wrong). Deterministic: the same seed writes the same bytes.
 *
 *   npx tsx examples/clinical/generate.ts [--count 60] [--seed 7]
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, render } from '../../scripts/make-ocr-fixture.js';
import { mulberry32 as prng } from '../../src/util/random.js';

const here = import.meta.dirname;
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const COUNT = flag('count', 60);
const SEED = flag('seed', 7);

const rand = prng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

// name, synonyms, unit, usual doses, doses outside the safe single-dose range, range [min, max]
const MEDS: [string, string[], string, number[], number[], [number, number]][] = [
  ['warfarin', [], 'mg', [2, 3, 5, 7.5], [15, 20], [0.5, 10]],
  ['aspirin', ['asa'], 'mg', [81, 325], [1000, 1300], [75, 650]],
  ['ibuprofen', [], 'mg', [200, 400, 600], [1200, 1600], [200, 800]],
  ['naproxen', [], 'mg', [250, 500], [1000], [220, 550]],
  ['metformin', [], 'mg', [500, 850, 1000], [2000, 3000], [500, 1000]],
  ['lisinopril', [], 'mg', [5, 10, 20, 40], [80], [2.5, 40]],
  ['simvastatin', [], 'mg', [10, 20, 40], [80, 120], [5, 40]],
  ['atorvastatin', [], 'mg', [10, 20, 40, 80], [160], [10, 80]],
  ['clarithromycin', [], 'mg', [250, 500], [1500], [250, 500]],
  ['amiodarone', [], 'mg', [100, 200, 400], [1200], [100, 400]],
  ['digoxin', [], 'mg', [0.125, 0.25], [1.5], [0.0625, 0.25]],
  ['sertraline', [], 'mg', [25, 50, 100], [400], [25, 200]],
  ['tramadol', [], 'mg', [50, 100], [300], [50, 100]],
  ['omeprazole', [], 'mg', [20, 40], [120], [10, 40]],
  ['clopidogrel', [], 'mg', [75], [600], [75, 75]],
  ['spironolactone', [], 'mg', [25, 50], [400], [12.5, 100]],
  ['amlodipine', [], 'mg', [2.5, 5, 10], [40], [2.5, 10]],
  ['furosemide', [], 'mg', [20, 40, 80], [500], [20, 80]],
  ['levothyroxine', [], 'mcg', [50, 75, 100, 125], [500], [25, 200]],
  ['prednisone', [], 'mg', [5, 10, 20, 40], [200], [5, 60]],
  ['hydrochlorothiazide', ['hctz'], 'mg', [12.5, 25], [100], [12.5, 50]],
  ['fluoxetine', [], 'mg', [20, 40], [160], [10, 80]],
];

// name, synonyms
const CONDITIONS: [string, string[]][] = [
  ['hypertension', ['htn', 'high blood pressure']],
  ['type 2 diabetes', ['t2dm', 'type 2 diabetes mellitus']],
  ['atrial fibrillation', ['afib']],
  ['heart failure', ['chf', 'congestive heart failure']],
  ['chronic kidney disease', ['ckd']],
  ['hyperlipidemia', ['high cholesterol']],
  ['major depressive disorder', ['depression', 'mdd']],
  ['osteoarthritis', []],
  ['gastroesophageal reflux disease', ['gerd', 'acid reflux']],
  ['coronary artery disease', ['cad']],
  ['asthma', []],
  ['chronic obstructive pulmonary disease', ['copd']],
  ['hypothyroidism', []],
  ['community acquired pneumonia', ['pneumonia']],
  ['chronic low back pain', ['back pain']],
  ['gout', []],
];

// drug a, drug b, severity, why (a small teaching table, not clinical advice)
const INTERACTIONS: [string, string, string, string][] = [
  ['warfarin', 'aspirin', 'major', 'additive bleeding risk'],
  ['warfarin', 'ibuprofen', 'major', 'NSAID raises bleeding risk with anticoagulant'],
  ['warfarin', 'naproxen', 'major', 'NSAID raises bleeding risk with anticoagulant'],
  ['warfarin', 'amiodarone', 'major', 'amiodarone raises INR; reduce warfarin dose'],
  ['warfarin', 'clarithromycin', 'major', 'macrolide raises INR'],
  ['simvastatin', 'clarithromycin', 'contraindicated', 'CYP3A4 inhibition: myopathy and rhabdomyolysis'],
  ['simvastatin', 'amiodarone', 'major', 'myopathy risk; limit simvastatin to 20 mg'],
  ['atorvastatin', 'clarithromycin', 'major', 'CYP3A4 inhibition: myopathy risk'],
  ['digoxin', 'amiodarone', 'major', 'amiodarone raises digoxin levels'],
  ['digoxin', 'clarithromycin', 'major', 'raised digoxin levels'],
  ['digoxin', 'furosemide', 'moderate', 'hypokalaemia increases digoxin toxicity'],
  ['lisinopril', 'spironolactone', 'major', 'hyperkalaemia'],
  ['lisinopril', 'ibuprofen', 'moderate', 'reduced antihypertensive effect, kidney injury'],
  ['sertraline', 'tramadol', 'major', 'serotonin syndrome, seizures'],
  ['fluoxetine', 'tramadol', 'major', 'serotonin syndrome, seizures'],
  ['clopidogrel', 'omeprazole', 'moderate', 'reduced antiplatelet effect'],
  ['aspirin', 'ibuprofen', 'moderate', 'ibuprofen blunts aspirin cardioprotection'],
  ['prednisone', 'ibuprofen', 'moderate', 'gastrointestinal bleeding'],
  ['sertraline', 'aspirin', 'moderate', 'bleeding risk'],
];

const FIRST = ['MARIA', 'JAMES', 'LINDA', 'ROBERT', 'AISHA', 'WEI', 'OLGA', 'PEDRO', 'FATIMA', 'JOHN', 'SARAH', 'KENJI', 'NADIA', 'TOMAS', 'GRACE', 'ARJUN', 'ELENA', 'SAMUEL', 'INGRID', 'KOFI'];
const LAST = ['GARCIA', 'NOVAK', 'OKAFOR', 'LINDQVIST', 'TANAKA', 'MORENO', 'HUANG', 'PETROV', 'BANERJEE', 'MURPHY', 'SILVA', 'ADEYEMI', 'KOWALSKI', 'REYES', 'FISCHER', 'NGUYEN'];
const FREQ = ['DAILY', 'BID', 'TID', 'AT NIGHT', 'EVERY MORNING', 'TWICE DAILY'];
const VERB = ['START', 'CONTINUE', 'RESTART', 'INCREASE TO', 'TAKING'];
const VITALS = () => pick([`BP ${int(110, 170)}/${int(60, 100)}, HR ${int(55, 110)}.`, `TEMP 37.${int(0, 9)}, HR ${int(60, 100)}.`, `WEIGHT ${int(50, 120)} KG, BP ${int(110, 160)}/${int(60, 95)}.`]);
const FOLLOW = () => pick([`FOLLOW UP IN ${int(1, 6)} WEEKS.`, `RECHECK LABS IN ${int(2, 12)} WEEKS.`, `RETURN IF SYMPTOMS WORSEN.`, `REVIEW IN CLINIC IN ${int(1, 3)} MONTHS.`]);

const fmt = (n: number): string => String(n);
const key = (a: string, b: string): string => [a, b].sort().join('+');
const interactionByPair = new Map(INTERACTIONS.map(([a, b, sev, why]) => [key(a, b), { sev, why }]));

interface Expected {
  type: 'MEDICATION' | 'DOSE' | 'CONDITION';
  text: string;
}

function note(n: number) {
  const id = `note-${String(n).padStart(3, '0')}`;
  const patient = { name: `${pick(FIRST)} ${pick(LAST)}`, mrn: String(int(1000000, 9999999)), dob: `${String(int(1, 12)).padStart(2, '0')}/${String(int(1, 28)).padStart(2, '0')}/${int(1935, 2000)}` };
  // Medications: half the notes carry a known interacting pair, then 1-2 others.
  const meds = new Set<string>();
  if (rand() < 0.5) {
    const [a, b] = pick(INTERACTIONS);
    meds.add(a).add(b);
  }
  const want = int(2, 4);
  while (meds.size < want) meds.add(pick(MEDS)[0]);
  const conds = new Set<string>();
  const wantC = int(1, 3);
  while (conds.size < wantC) conds.add(pick(CONDITIONS)[0]);

  const expected: Expected[] = [];
  const alerts: string[] = [];
  const condWords = [...conds].map((c) => {
    const [, syn] = CONDITIONS.find(([name]) => name === c)!;
    expected.push({ type: 'CONDITION', text: c });
    return (rand() < 0.35 && syn.length ? pick(syn) : c).toUpperCase();
  });
  const medLines = [...meds].map((m) => {
    const [, syn, unit, usual, high, [min, max]] = MEDS.find(([name]) => name === m)!;
    const dose = rand() < 0.12 ? pick(high) : pick(usual);
    if (dose < min || dose > max) alerts.push(`dose:${m}`);
    expected.push({ type: 'MEDICATION', text: m }, { type: 'DOSE', text: `${fmt(dose)} ${unit}` });
    const word = (rand() < 0.3 && syn.length ? pick(syn) : m).toUpperCase();
    const space = rand() < 0.2 ? '' : ' ';
    return `${pick(VERB)} ${word} ${fmt(dose)}${space}${unit.toUpperCase()} ${pick(FREQ)}.`;
  });
  const list = [...meds];
  for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) if (interactionByPair.has(key(list[i], list[j]))) alerts.push(`interaction:${key(list[i], list[j])}`);
  const [first, ...rest] = condWords;
  const lines = [
    `CLINIC NOTE ${int(1, 28)}/${int(1, 12)}/2026`,
    `PATIENT: ${patient.name}  MRN: ${patient.mrn}  DOB: ${patient.dob}`,
    `ASSESSMENT: ${first}${rest.length ? `, ${rest.join(', ')}` : ''}.`,
    VITALS(),
    'PLAN:',
    ...medLines,
    FOLLOW(),
  ];
  return { id, image: `notes/${id}.png`, text: lines.join('\n'), patient, expected: { entities: expected, alerts: alerts.sort() } };
}

/**
 * A scanned look, seeded: off-white paper, ink a little lighter, and dust specks (some next to
 * letters, where they can change a character). Per-pixel grain would be more realistic but
 * makes each PNG ~0.5 MB, since noise does not compress.
 */
function scan(pixels: Uint8Array, width: number): Uint8Array {
  for (let i = 0; i < pixels.length; i++) {
    pixels[i] = Math.round(pixels[i] * 0.88 + 20);
    if (rand() < 0.0003) {
      pixels[i] = 40;
      if (rand() < 0.5 && i + width + 1 < pixels.length) pixels[i + 1] = pixels[i + width] = pixels[i + width + 1] = 60;
    }
  }
  return pixels;
}

const dataDir = join(here, 'data');
rmSync(join(dataDir, 'notes'), { recursive: true, force: true });
mkdirSync(join(dataDir, 'notes'), { recursive: true });
const lexicon = {
  terms: {
    MEDICATION: MEDS.map(([name, synonyms]) => (synonyms.length ? { name, synonyms } : name)),
    CONDITION: CONDITIONS.map(([name, synonyms]) => (synonyms.length ? { name, synonyms } : name)),
  },
  patterns: { DOSE: '\\b\\d+(?:\\.\\d+)?\\s?(?:mg|mcg|g|ml|units?)\\b' },
};
writeFileSync(join(dataDir, 'lexicon.json'), `${JSON.stringify(lexicon, null, 2)}\n`);
writeFileSync(join(dataDir, 'interactions.csv'), `drug_a,drug_b,severity,reason\n${INTERACTIONS.map(([a, b, sev, why]) => `${a},${b},${sev},"${why}"`).join('\n')}\n`);
writeFileSync(join(dataDir, 'dose-ranges.csv'), `drug,unit,min,max\n${MEDS.map(([name, , unit, , , [min, max]]) => `${name},${unit},${min},${max}`).join('\n')}\n`);
const notes = Array.from({ length: COUNT }, (_, i) => note(i + 1));
for (const n of notes) {
  const r = render(n.text, 3, 30);
  writeFileSync(join(dataDir, n.image), encodePng(r.width, r.height, scan(r.pixels, r.width)));
}
writeFileSync(join(dataDir, 'notes.json'), `${JSON.stringify(notes, null, 2)}\n`);
writeFileSync(join(here, 'sample.json'), `${JSON.stringify({ note_id: notes[0].id, path: `data/${notes[0].image}` }, null, 2)}\n`);
console.log(`wrote ${notes.length} notes (seed ${SEED}) to ${dataDir}`);
