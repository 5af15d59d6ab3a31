/**
 * A dictionary (gazetteer) tagger for `local-entities` (`options.lexicon`): domain terms the
 * general taggers do not know (drugs, conditions, product names, part numbers) come from a
 * JSON file of terms per entity type, and measured values (doses, lab values) from regex
 * patterns in the same file. Nothing in here knows a domain; the file does.
 *
 *   {
 *     "terms": {
 *       "MEDICATION": ["warfarin", { "name": "aspirin", "synonyms": ["asa"] }],
 *       "CONDITION": ["type 2 diabetes", { "name": "hypertension", "synonyms": ["htn"] }]
 *     },
 *     "patterns": { "DOSE": "\\d+(?:\\.\\d+)?\\s?(?:mg|mcg|g|ml|units?)\\b" }
 *   }
 *
 * Terms match whole words, case-insensitively, longest first ("type 2 diabetes" before
 * "diabetes"). Because the text often comes from OCR, a word of 6+ letters also matches at
 * one edit (two at 12+): "metf0rmin" is still metformin; set `fuzzy: false` to turn it off.
 * Each entity carries `normalized`: the canonical term name (a synonym maps to its name), or
 * for a pattern match the text lower-cased with spaces collapsed and a space between a
 * number and its unit ("5MG" -> "5 mg"), so results compare across spellings.
 */
import { readFileSync } from 'node:fs';
import type { ProviderSetup } from '../provider.js';
import { describe, isRecord, localError, resolveOptionPath } from './common.js';
import type { Entity } from './entities.js';

export interface LexiconEntity extends Entity {
  normalized: string;
}

interface Term {
  words: string[];
  phrase: string;
  name: string;
  type: string;
}

export interface Lexicon {
  terms: Term[];
  /** Terms by their exact lower-cased phrase. */
  exact: Map<string, Term>;
  maxWords: number;
  patterns: { type: string; re: RegExp }[];
  fuzzy: boolean;
}

const WORD = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu;

/** Reads and checks the lexicon file named by `options.lexicon`. */
export function loadLexicon(setup: ProviderSetup, value: unknown, fuzzy: unknown): Lexicon {
  const what = 'a JSON file { "terms": { TYPE: [term | { name, synonyms }] }, "patterns": { TYPE: regex } }';
  const file = resolveOptionPath(setup, 'lexicon', value, what);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw localError(setup, `options.lexicon ${String(value)} is not valid JSON (${(err as Error).message}); it must be ${what}`, err);
  }
  if (!isRecord(doc)) throw localError(setup, `options.lexicon ${String(value)} must hold an object; it must be ${what}`);
  if (fuzzy !== undefined && typeof fuzzy !== 'boolean') throw localError(setup, `options.fuzzy must be true or false, got ${describe(fuzzy)}`);
  const terms: Term[] = [];
  const exact = new Map<string, Term>();
  const rawTerms = doc.terms ?? {};
  if (!isRecord(rawTerms)) throw localError(setup, `options.lexicon ${String(value)}: "terms" must be an object of TYPE: [terms], got ${describe(rawTerms)}`);
  for (const [rawType, list] of Object.entries(rawTerms)) {
    const type = rawType.toUpperCase();
    if (!Array.isArray(list)) throw localError(setup, `options.lexicon ${String(value)}: terms.${rawType} must be a list, got ${describe(list)}`);
    list.forEach((t, i) => {
      const entry = typeof t === 'string' ? { name: t, synonyms: [] as unknown[] } : isRecord(t) ? { name: t.name, synonyms: t.synonyms ?? [] } : undefined;
      if (!entry || typeof entry.name !== 'string' || !entry.name.trim() || !Array.isArray(entry.synonyms) || entry.synonyms.some((s) => typeof s !== 'string' || !s.trim())) {
        throw localError(setup, `options.lexicon ${String(value)}: terms.${rawType}[${i}] must be a non-empty string or { name: string, synonyms?: [string] }, got ${describe(t)}`);
      }
      const name = entry.name.trim().toLowerCase().replace(/\s+/g, ' ');
      for (const form of [entry.name, ...(entry.synonyms as string[])]) {
        const words = (form.toLowerCase().match(WORD) ?? []) as string[];
        if (words.length === 0) continue;
        const term = { words, phrase: words.join(' '), name, type };
        if (!exact.has(term.phrase)) {
          exact.set(term.phrase, term);
          terms.push(term);
        }
      }
    });
  }
  const patterns: { type: string; re: RegExp }[] = [];
  const rawPatterns = doc.patterns ?? {};
  if (!isRecord(rawPatterns)) throw localError(setup, `options.lexicon ${String(value)}: "patterns" must be an object of TYPE: regex, got ${describe(rawPatterns)}`);
  for (const [type, source] of Object.entries(rawPatterns)) {
    if (typeof source !== 'string' || !source) throw localError(setup, `options.lexicon ${String(value)}: patterns.${type} must be a regular expression (string), got ${describe(source)}`);
    try {
      patterns.push({ type: type.toUpperCase(), re: new RegExp(source, 'giu') });
    } catch (err) {
      throw localError(setup, `options.lexicon ${String(value)}: patterns.${type} is not a valid regular expression: ${(err as Error).message}`, err);
    }
  }
  if (terms.length === 0 && patterns.length === 0) throw localError(setup, `options.lexicon ${String(value)} has no terms and no patterns; it must be ${what}`);
  return { terms, exact, maxWords: Math.max(1, ...terms.map((t) => t.words.length)), patterns, fuzzy: fuzzy !== false };
}

/** Levenshtein distance, giving up (returning max + 1) once it exceeds `max`. */
export function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      best = Math.min(best, cur[j]);
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length];
}

/** Edits allowed for a phrase of this length: none under 6 letters, one from 6, two from 12. */
const allowed = (phrase: string): number => (phrase.length >= 12 ? 2 : phrase.length >= 6 ? 1 : 0);

function lookup(lex: Lexicon, phrase: string, words: number): Term | undefined {
  const hit = lex.exact.get(phrase);
  if (hit || !lex.fuzzy) return hit;
  const max = allowed(phrase);
  if (max === 0 || /^\d+$/.test(phrase)) return undefined;
  let best: Term | undefined;
  let bestD = max + 1;
  for (const t of lex.terms) {
    if (t.words.length !== words || allowed(t.phrase) === 0) continue;
    const cap = Math.min(max, allowed(t.phrase));
    const d = editDistance(phrase, t.phrase, cap);
    if (d <= cap && d < bestD) {
      best = t;
      bestD = d;
    }
  }
  return best;
}

/** Lexicon terms and pattern matches in `text`, with exact offsets; terms win over patterns where they overlap. */
export function lexiconEntities(lex: Lexicon, text: string): LexiconEntity[] {
  const tokens = [...text.matchAll(WORD)].map((m) => ({ word: m[0].toLowerCase(), start: m.index, end: m.index + m[0].length }));
  const out: LexiconEntity[] = [];
  for (let i = 0; i < tokens.length; ) {
    let matched = 0;
    for (let n = Math.min(lex.maxWords, tokens.length - i); n >= 1 && !matched; n--) {
      const phrase = tokens.slice(i, i + n).map((t) => t.word).join(' ');
      const term = lookup(lex, phrase, n);
      if (term) {
        const start = tokens[i].start;
        const end = tokens[i + n - 1].end;
        out.push({ text: text.slice(start, end), type: term.type, start, end, normalized: term.name });
        matched = n;
      }
    }
    i += matched || 1;
  }
  for (const { type, re } of lex.patterns) {
    for (const m of text.matchAll(re)) {
      if (!m[0].trim()) continue;
      const start = m.index + (m[0].length - m[0].trimStart().length);
      const end = m.index + m[0].trimEnd().length;
      if (out.some((e) => start < e.end && e.start < end)) continue;
      const normalized = m[0].trim().toLowerCase().replace(/\s+/g, ' ').replace(/(\d)([a-z])/gu, '$1 $2');
      out.push({ text: text.slice(start, end), type, start, end, normalized });
    }
  }
  return out.sort((a, b) => a.start - b.start);
}
