/**
 * `local-entities`: named entities with character offsets, from two rule/lexicon taggers that
 * each cover what the other lacks. compromise finds people, organisations and places (it
 * has name/gazetteer lexicons; wink's lite model does not); wink-nlp finds dates, times,
 * money, percentages, numbers, e-mails, URLs, hashtags and mentions; a regex adds phone
 * numbers in international forms neither tagger knows. Overlaps are resolved by keeping the
 * longer span, so "+1 415-555-0100" is one PHONE, not a CARDINAL and a PHONE.
 *
 * Offsets are recomputed against the input (never trusted blindly) so that
 * `text.slice(start, end) === entity.text` always holds.
 *
 * `options.lexicon` adds a dictionary tagger (lexicon.ts) for domain terms and measured values
 * the general taggers do not know (drugs, doses, conditions); its entities win overlaps and
 * carry `normalized`. With `types` naming only lexicon types, compromise and wink are skipped.
 */
import nlp from 'compromise';
import type { Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { describe, localError, textModel } from './common.js';
import { wink } from './nlp.js';
import { lexiconEntities, loadLexicon, type Lexicon } from './lexicon.js';

const NAME = 'local-entities';

export interface Entity {
  text: string;
  type: string;
  start: number;
  end: number;
}

/** When two spans are the same length, the more specific type wins ("@tim" is a MENTION, not a PERSON). */
const PRIORITY = ['EMAIL', 'URL', 'MENTION', 'HASHTAG', 'PHONE', 'MONEY', 'DATE', 'TIME', 'PERCENT', 'PERSON', 'ORG', 'PLACE'];
const rank = (type: string): number => (PRIORITY.includes(type) ? PRIORITY.indexOf(type) : PRIORITY.length);

const PHONE = /(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,5}){1,4}/g;

/** compromise: PERSON, ORG, PLACE, PHONE. */
function compromiseEntities(text: string): Entity[] {
  const doc = nlp(text);
  const out: Entity[] = [];
  const groups: [string, { json(o: object): unknown }][] = [
    ['PERSON', doc.people()],
    ['ORG', doc.organizations()],
    ['PLACE', doc.places()],
    ['PHONE', doc.phoneNumbers()],
  ];
  for (const [type, view] of groups) {
    for (const m of view.json({ offset: true, text: true, terms: false }) as { text: string; offset?: { start: number; length: number } }[]) {
      if (!m.offset) continue;
      const e = anchor(text, m.offset.start, m.offset.start + m.offset.length, type);
      if (e) out.push(e);
    }
  }
  return out;
}

/** wink-nlp: DATE, TIME, MONEY, PERCENT, CARDINAL, ORDINAL, DURATION, EMAIL, URL, ... */
function winkEntities(text: string): Entity[] {
  const w = wink();
  const doc = w.readDoc(text);
  // Character offset of every token: find each token's text from where the last one ended.
  const values = doc.tokens().out(w.its.value) as string[];
  const starts: number[] = [];
  const ends: number[] = [];
  let cursor = 0;
  for (const v of values) {
    const at = text.indexOf(v, cursor);
    const s = at < 0 ? cursor : at;
    starts.push(s);
    ends.push(s + v.length);
    cursor = s + v.length;
  }
  const details = doc.entities().out(w.its.detail) as unknown as { value: string; type: string }[];
  const spans = doc.entities().out(w.its.span) as unknown as [number, number][];
  const out: Entity[] = [];
  spans.forEach(([first, last], i) => {
    let start = starts[first];
    let type = details[i].type.toUpperCase();
    // The lite model knows "$5" as MONEY but reads "€5 million" as a CARDINAL: the symbol decides.
    if (type === 'CARDINAL' && /[$€£¥₹]\s?$/.test(text.slice(Math.max(0, start - 2), start))) {
      type = 'MONEY';
      start = text.slice(0, start).search(/[$€£¥₹]\s?$/);
    }
    const e = anchor(text, start, ends[last], type);
    if (e) out.push(e);
  });
  return out;
}

function regexPhones(text: string): Entity[] {
  const out: Entity[] = [];
  for (const m of text.matchAll(PHONE)) {
    const digits = m[0].replace(/\D/g, '').length;
    // A phone number has 7-15 digits and a visible phone-ish form: +, ( ) or a dash.
    if (digits < 7 || digits > 15 || !/[+()-]/.test(m[0])) continue;
    const e = anchor(text, m.index, m.index + m[0].length, 'PHONE');
    if (e) out.push(e);
  }
  return out;
}

/** The span trimmed of punctuation at its edges, or undefined if nothing is left. */
function anchor(text: string, start: number, end: number, type: string): Entity | undefined {
  if (!(start >= 0 && end <= text.length && start < end)) return undefined;
  let raw = text.slice(start, end);
  let lead = 0;
  // Strip quotes, spaces and punctuation at the edges, but keep a bracket whose partner is inside: "(415) 555-0100".
  for (;;) {
    const c = raw[0];
    if (c === undefined || !(/[\s"'“‘[{]/.test(c) || (c === '(' && !raw.includes(')')))) break;
    raw = raw.slice(1);
    lead++;
  }
  for (;;) {
    const c = raw[raw.length - 1];
    if (c === undefined || !(/[\s.,;:!?"'”’\]}]/.test(c) || (c === ')' && !raw.includes('(')))) break;
    raw = raw.slice(0, -1);
  }
  const trimmed = raw;
  if (!trimmed) return undefined;
  const s = start + lead;
  return { text: trimmed, type, start: s, end: s + trimmed.length };
}

/** All entities, longest span first on overlap, sorted by position, no duplicates. */
export function extractEntities(text: string, types?: Set<string>): Entity[] {
  const all = [...compromiseEntities(text), ...winkEntities(text), ...regexPhones(text)].filter((e) => !types || types.has(e.type));
  all.sort((a, b) => b.end - b.start - (a.end - a.start) || rank(a.type) - rank(b.type) || a.start - b.start);
  const kept: Entity[] = [];
  for (const e of all) {
    if (kept.some((k) => e.start < k.end && k.start < e.end)) continue;
    kept.push(e);
  }
  return kept.sort((a, b) => a.start - b.start);
}

export const createEntities: ProviderFactory = (setup: ProviderSetup): Provider => {
  const t = setup.options.types;
  let types: Set<string> | undefined;
  if (t !== undefined) {
    if (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== 'string' || !x)) {
      throw localError(setup, `options.types must be a non-empty list of entity types (e.g. [PERSON, ORG, DATE, MONEY]), got ${describe(t)}; leave it out to get every type`);
    }
    types = new Set((t as string[]).map((x) => x.toUpperCase()));
  }
  const lexicon: Lexicon | undefined = setup.options.lexicon === undefined ? undefined : loadLexicon(setup, setup.options.lexicon, setup.options.fuzzy);
  if (!lexicon && setup.options.fuzzy !== undefined) throw localError(setup, 'options.fuzzy applies to options.lexicon; add a lexicon file or leave fuzzy out');
  const lexTypes = new Set([...(lexicon?.terms.map((t) => t.type) ?? []), ...(lexicon?.patterns.map((p) => p.type) ?? [])]);
  // The general taggers only run when some wanted type is theirs.
  const general = !lexicon || !types || [...types].some((t) => !lexTypes.has(t));
  if (general) wink(); // load the model now, not on the first request
  return textModel(setup, NAME, 'entities', (text) => {
    if (!lexicon) return { entities: extractEntities(text, types) };
    const domain = lexiconEntities(lexicon, text).filter((e) => !types || types.has(e.type));
    const others = general ? extractEntities(text, types).filter((e) => !domain.some((d) => e.start < d.end && d.start < e.end)) : [];
    return { entities: [...domain, ...others].sort((a, b) => a.start - b.start) };
  });

};
