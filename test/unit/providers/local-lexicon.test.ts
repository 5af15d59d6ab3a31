/**
 * `local-entities` with `options.lexicon`: the dictionary tagger (src/providers/local/lexicon.ts)
 * on its own file, offsets exact, synonyms normalised, longest phrase first, OCR-tolerant fuzzy
 * matching (and its off switch), patterns, mixing with the general taggers, and every bad option
 * refused with BATON_MODEL_LOCAL naming what to fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.js';
import { LOCAL_PROVIDERS } from '../../../src/providers/local/index.js';
import { editDistance } from '../../../src/providers/local/lexicon.js';

let dir = '';
const LEXICON = {
  terms: {
    MEDICATION: ['warfarin', { name: 'aspirin', synonyms: ['asa'] }, 'metformin'],
    condition: ['diabetes', 'type 2 diabetes', { name: 'hypertension', synonyms: ['htn', 'high blood pressure'] }],
  },
  patterns: { DOSE: '\\b\\d+(?:\\.\\d+)?\\s?(?:mg|mcg)\\b' },
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-lexicon-'));
  writeFileSync(join(dir, 'lex.json'), JSON.stringify(LEXICON));
  writeFileSync(join(dir, 'bad.json'), '{ "terms": ');
  writeFileSync(join(dir, 'empty.json'), '{ "terms": {} }');
  writeFileSync(join(dir, 'badre.json'), JSON.stringify({ patterns: { DOSE: '(' } }));
  writeFileSync(join(dir, 'badterm.json'), JSON.stringify({ terms: { DRUG: ['ok', { synonyms: ['x'] }] } }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function entities(options: Record<string, unknown>, text: string): Promise<{ text: string; type: string; start: number; end: number; normalized?: string }[]> {
  const p = await LOCAL_PROVIDERS['local-entities']({ service: 'svc', model: 'm1', options, baseDir: dir });
  const r = await p.call({ operation: 'entities', input: text }, { signal: new AbortController().signal, idempotencyKey: 'k' });
  return (r.output as { entities: never[] }).entities;
}

async function refused(options: Record<string, unknown>): Promise<BatonError> {
  try {
    await LOCAL_PROVIDERS['local-entities']({ service: 'svc', model: 'm1', options, baseDir: dir });
  } catch (e) {
    expect(e).toBeInstanceOf(BatonError);
    expect((e as BatonError).code).toBe('BATON_MODEL_LOCAL');
    return e as BatonError;
  }
  throw new Error('expected the options to be refused');
}

describe('local-entities options.lexicon', () => {
  it('tags terms and patterns with exact offsets, the canonical name as normalized, longest phrase first', async () => {
    const text = 'Dx: Type 2 Diabetes, HTN. Start WARFARIN 5MG daily and ASA 81 mg; metformin 500 mg.';
    const got = await entities({ lexicon: './lex.json', types: ['MEDICATION', 'DOSE', 'CONDITION'] }, text);
    for (const e of got) expect(text.slice(e.start, e.end)).toBe(e.text);
    expect(got.map((e) => [e.type, e.text, e.normalized])).toEqual([
      ['CONDITION', 'Type 2 Diabetes', 'type 2 diabetes'],
      ['CONDITION', 'HTN', 'hypertension'],
      ['MEDICATION', 'WARFARIN', 'warfarin'],
      ['DOSE', '5MG', '5 mg'],
      ['MEDICATION', 'ASA', 'aspirin'],
      ['DOSE', '81 mg', '81 mg'],
      ['MEDICATION', 'metformin', 'metformin'],
      ['DOSE', '500 mg', '500 mg'],
    ]);
  });

  it('forgives one OCR error in a word of 6+ letters, none in short words; fuzzy: false turns it off', async () => {
    const text = 'WARFARN 5 MG, METF0RMIN 1000 MG, ASB 81 MG, high bl00d pressure';
    const fuzzy = await entities({ lexicon: './lex.json', types: ['MEDICATION', 'CONDITION'] }, text);
    expect(fuzzy.map((e) => e.normalized)).toEqual(['warfarin', 'metformin', 'hypertension']);
    const strict = await entities({ lexicon: './lex.json', types: ['MEDICATION', 'CONDITION'], fuzzy: false }, text);
    expect(strict).toEqual([]);
    // A near-miss of a different length class is not a match: "diabetic" is two edits from "diabetes".
    expect(await entities({ lexicon: './lex.json', types: ['CONDITION'] }, 'diabetic foot')).toEqual([]);
  });

  it('without types, the general taggers add what the lexicon does not cover, the lexicon winning overlaps', async () => {
    const got = await entities({ lexicon: './lex.json' }, 'Maria Garcia takes warfarin 5 mg since March 3, 2024.');
    const types = got.map((e) => e.type);
    expect(types).toContain('PERSON');
    expect(got.some((e) => e.normalized === undefined && e.text.includes('2024'))).toBe(true); // wink's DATE/DURATION
    expect(got.find((e) => e.type === 'MEDICATION')?.text).toBe('warfarin');
    expect(got.find((e) => e.type === 'DOSE')?.text).toBe('5 mg');
    // No general entity overlaps a lexicon one (wink's CARDINAL "5" is dropped for the DOSE "5 mg").
    const domain = got.filter((e) => e.normalized !== undefined);
    for (const e of got.filter((x) => x.normalized === undefined)) expect(domain.some((d) => e.start < d.end && d.start < e.end)).toBe(false);
  });

  it('refuses a missing file, bad JSON, an empty lexicon, a bad regex, a bad term and fuzzy without a lexicon', async () => {
    expect((await refused({ lexicon: './nope.json' })).message).toContain('does not exist');
    expect((await refused({ lexicon: './bad.json' })).message).toContain('not valid JSON');
    expect((await refused({ lexicon: './empty.json' })).message).toContain('no terms and no patterns');
    expect((await refused({ lexicon: './badre.json' })).message).toContain('patterns.DOSE is not a valid regular expression');
    expect((await refused({ lexicon: './badterm.json' })).message).toContain('terms.DRUG[1]');
    expect((await refused({ lexicon: './lex.json', fuzzy: 'yes' })).message).toContain('options.fuzzy must be true or false');
    expect((await refused({ fuzzy: true })).message).toContain('options.fuzzy applies to options.lexicon');
  });

  it('editDistance stops early past its limit', () => {
    expect(editDistance('warfarin', 'warfarn', 1)).toBe(1);
    expect(editDistance('warfarin', 'aspirin', 1)).toBe(2);
    expect(editDistance('a', 'abcdef', 2)).toBe(3);
  });
});
