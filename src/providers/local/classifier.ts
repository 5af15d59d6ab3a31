/**
 * `local-classifier`: a multinomial naive Bayes text classifier trained at construction from
 * a handful of labelled examples per label (`options.examples` and/or `options.examples_file`).
 *
 * Why naive Bayes: with ~5-50 examples per label it generalises better than a discriminative
 * model, trains in microseconds (so training at start-up costs nothing), needs no iteration
 * or seed (always the same model for the same examples) and its posteriors are real
 * probabilities. Features are wink-nlp tokens, stemmed, as unigrams (stop words dropped) plus
 * bigrams (stop words kept, so "log in" and "not work" survive), which is what lets a few
 * examples cover "charged"/"charges" and short phrases.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { describe, isRecord, localError, resolveOptionPath, textModel } from './common.js';
import { wink } from './nlp.js';

const NAME = 'local-classifier';

export interface Classification {
  label: string;
  confidence: number;
  scores: Record<string, number>;
}

/** Lower-cased, stemmed unigrams (no stop words) and bigrams of `text`. */
export function features(text: string): string[] {
  const nlp = wink();
  const its = nlp.its;
  const tokens = nlp.readDoc(text.toLowerCase()).tokens();
  const types = tokens.out(its.type) as string[];
  const stems = tokens.out(its.stem as unknown as typeof its.value) as string[];
  const normals = tokens.out(its.normal) as string[];
  const stops = tokens.out(its.stopWordFlag) as unknown as boolean[];
  const seq: { term: string; stop: boolean }[] = [];
  for (let i = 0; i < types.length; i++) {
    if (types[i] !== 'word' && types[i] !== 'number') continue;
    seq.push({ term: stops[i] ? normals[i] : stems[i], stop: stops[i] });
  }
  const out: string[] = [];
  for (let i = 0; i < seq.length; i++) {
    if (!seq[i].stop) out.push(seq[i].term);
    if (i > 0) out.push(`${seq[i - 1].term} ${seq[i].term}`);
  }
  return out;
}

/** Multinomial naive Bayes with Laplace smoothing. */
export class NaiveBayes {
  private readonly labels: string[];
  private readonly logPrior = new Map<string, number>();
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly totals = new Map<string, number>();
  private readonly vocabulary = new Set<string>();

  constructor(examples: Record<string, string[]>, private readonly alpha = 1) {
    this.labels = Object.keys(examples);
    const n = this.labels.reduce((s, l) => s + examples[l].length, 0);
    for (const label of this.labels) {
      this.logPrior.set(label, Math.log(examples[label].length / n));
      const counts = new Map<string, number>();
      let total = 0;
      for (const text of examples[label]) {
        for (const f of features(text)) {
          counts.set(f, (counts.get(f) ?? 0) + 1);
          this.vocabulary.add(f);
          total++;
        }
      }
      this.counts.set(label, counts);
      this.totals.set(label, total);
    }
  }

  classify(text: string): Classification {
    const fs = features(text).filter((f) => this.vocabulary.has(f));
    const v = this.vocabulary.size;
    const logs = this.labels.map((label) => {
      const counts = this.counts.get(label)!;
      const denom = Math.log(this.totals.get(label)! + this.alpha * v);
      let lp = this.logPrior.get(label)!;
      for (const f of fs) lp += Math.log((counts.get(f) ?? 0) + this.alpha) - denom;
      return lp;
    });
    // Softmax in log space so long inputs do not underflow.
    const max = Math.max(...logs);
    const exps = logs.map((l) => Math.exp(l - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    const scores: Record<string, number> = {};
    let best = 0;
    this.labels.forEach((label, i) => {
      scores[label] = exps[i] / sum;
      if (exps[i] > exps[best]) best = i;
    });
    return { label: this.labels[best], confidence: scores[this.labels[best]], scores };
  }
}

/** `options.examples` merged with the contents of `options.examples_file`, validated. */
function loadExamples(setup: ProviderSetup): Record<string, string[]> {
  const merged: Record<string, string[]> = {};
  const add = (source: string, value: unknown): void => {
    if (!isRecord(value)) {
      throw localError(setup, `${source} must map each label to a list of example texts ({ billing: ["..."], technical: ["..."] }), got ${describe(value)}`);
    }
    for (const [label, texts] of Object.entries(value)) {
      if (label.trim() === '') throw localError(setup, `${source} has an empty label; give every label a name`);
      if (!Array.isArray(texts) || texts.length === 0) {
        throw localError(setup, `${source}: label "${label}" needs a non-empty list of example texts, got ${describe(texts)}`);
      }
      texts.forEach((t, i) => {
        if (typeof t !== 'string' || t.trim() === '') throw localError(setup, `${source}: example ${i} of label "${label}" must be a non-empty string, got ${describe(t)}`);
      });
      (merged[label] ??= []).push(...(texts as string[]));
    }
  };
  const { examples, examples_file: file } = setup.options;
  if (examples !== undefined) add('options.examples', examples);
  if (file !== undefined) {
    const path = resolveOptionPath(setup, 'examples_file', file, 'a JSON or YAML file mapping each label to example texts');
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(path, 'utf8')); // YAML is a superset of JSON
    } catch (err) {
      throw localError(setup, `options.examples_file ${String(file)} is not valid JSON/YAML (${(err as Error).message}); fix the file`, err);
    }
    add(`options.examples_file ${String(file)}`, parsed);
  }
  const labels = Object.keys(merged);
  if (labels.length < 2) {
    throw localError(
      setup,
      `a classifier needs examples for at least 2 labels, got ${labels.length}${labels.length ? ` (${labels.join(', ')})` : ''}; set options.examples or options.examples_file to { label: [example texts] }`,
    );
  }
  return merged;
}

export const createClassifier: ProviderFactory = (setup: ProviderSetup): Provider => {
  const alpha = setup.options.alpha ?? 1;
  if (typeof alpha !== 'number' || !(alpha > 0)) throw localError(setup, `options.alpha must be a positive number (smoothing; default 1), got ${describe(alpha)}`);
  const model = new NaiveBayes(loadExamples(setup), alpha);
  return textModel(setup, NAME, 'classify', (text) => model.classify(text));
};
