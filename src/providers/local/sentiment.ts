/**
 * `local-sentiment`: wink-nlp's English lite model scores sentiment from a lexicon with
 * negation and emphasis handling (`its.sentiment`, -1..1). It is deterministic, runs in well
 * under a millisecond per sentence and needs no data beyond the installed model, which is all
 * a routing/triage step needs. Scores inside ±`options.neutral` (default 0.05) are neutral.
 *
 * `options.aggregate`: `document` (default) scores the text as a whole, which averages one angry
 * sentence away among polite ones ("This is unacceptable, I am furious. Thanks."); `worst_sentence`
 * scores each sentence and takes the most negative one when any is negative (else the
 * document's score) — what an escalation rule for upset customers wants.
 */
import type { Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { describe, localError, textModel } from './common.js';
import { wink } from './nlp.js';

const NAME = 'local-sentiment';

export interface Sentiment {
  label: 'positive' | 'negative' | 'neutral';
  score: number;
  confidence: number;
}

export type Aggregate = 'document' | 'worst_sentence';

export function scoreSentiment(text: string, neutral: number, aggregate: Aggregate = 'document'): Sentiment {
  const nlp = wink();
  const doc = nlp.readDoc(text);
  let raw = Number(doc.out(nlp.its.sentiment));
  if (aggregate === 'worst_sentence') {
    const worst = Math.min(...(doc.sentences().out(nlp.its.sentiment) as unknown as number[]).map(Number).filter(Number.isFinite));
    if (worst < -neutral) raw = worst;
  }
  const score = Number.isFinite(raw) ? Math.max(-1, Math.min(1, raw)) : 0;
  const magnitude = Math.abs(score);
  if (magnitude <= neutral) {
    // 1 at exactly 0, falling to 0.5 at the edge of the neutral band.
    const confidence = neutral === 0 ? 1 : 1 - (magnitude / neutral) * 0.5;
    return { label: 'neutral', score: round(score), confidence: round(confidence) };
  }
  // 0.5 just outside the band, rising to 1 at ±1.
  const confidence = 0.5 + (0.5 * (magnitude - neutral)) / (1 - neutral || 1);
  return { label: score > 0 ? 'positive' : 'negative', score: round(score), confidence: round(Math.min(1, confidence)) };
}

function round(n: number): number {
  return Math.round(n * 1e4) / 1e4;
}

export const createSentiment: ProviderFactory = (setup: ProviderSetup): Provider => {
  const neutral = setup.options.neutral ?? 0.05;
  if (typeof neutral !== 'number' || !(neutral >= 0 && neutral < 1)) {
    throw localError(setup, `options.neutral must be a number from 0 to below 1 (the half-width of the neutral band around 0; default 0.05), got ${describe(neutral)}`);
  }
  const aggregate = setup.options.aggregate ?? 'document';
  if (aggregate !== 'document' && aggregate !== 'worst_sentence') {
    throw localError(setup, `options.aggregate must be "document" (score the whole text, the default) or "worst_sentence" (the most negative sentence), got ${describe(aggregate)}`);
  }
  wink(); // load the model now, not on the first request
  return textModel(setup, NAME, 'sentiment', (text) => scoreSentiment(text, neutral, aggregate));
};
