// Functions for the support-triage example. They stand in for the built-in local models
// (intent, sentiment, retrieval) so the example runs offline with no key; swapping a step to a
// `model` step changes only the workflow, not these callers.
import { readFileSync } from 'node:fs';

const articles = JSON.parse(readFileSync(new URL('./articles.json', import.meta.url), 'utf8'));

const INTENT_WORDS = {
  billing: ['charge', 'charged', 'invoice', 'refund', 'payment', 'bill', 'card', 'price'],
  bug: ['error', 'crash', 'broken', 'bug', 'fails', 'not working', 'outage'],
  account: ['password', 'login', 'locked', 'account', 'email', 'two-factor'],
  how_to: ['how do i', 'how to', 'where can', 'export', 'download'],
  cancellation: ['cancel', 'unsubscribe', 'close my account', 'stop my subscription'],
};

export function classifyIntent({ text }) {
  const scores = Object.entries(INTENT_WORDS).map(([label, words]) => [label, words.filter((w) => text.includes(w)).length]);
  scores.sort((a, b) => b[1] - a[1]);
  const total = scores.reduce((s, [, n]) => s + n, 0);
  if (total === 0) return { label: 'other', confidence: 0.2 };
  return { label: scores[0][0], confidence: Math.round((scores[0][1] / total) * 100) / 100 };
}

const POSITIVE = ['thanks', 'thank you', 'great', 'love', 'happy', 'appreciate', 'please'];
const NEGATIVE = ['annoyed', 'angry', 'terrible', 'awful', 'twice', 'broken', 'unacceptable', 'frustrated', 'worst', 'never'];

export function scoreSentiment({ text }) {
  const pos = POSITIVE.filter((w) => text.includes(w)).length;
  const neg = NEGATIVE.filter((w) => text.includes(w)).length;
  const score = pos + neg === 0 ? 0 : Math.round(((pos - neg) / (pos + neg)) * 100) / 100;
  return { score, label: score > 0.2 ? 'positive' : score < -0.2 ? 'negative' : 'neutral' };
}

export function searchArticles({ text, intent, limit }) {
  const scored = articles.map((a) => {
    const hits = a.keywords.filter((k) => text.includes(k)).length;
    return { ...a, score: hits * 2 + (a.intent === intent ? 1 : 0) };
  });
  return scored
    .filter((a) => a.score > 0)
    .sort((a, b) => b.score - a.score || a.id.localeCompare(b.id))
    .slice(0, limit)
    .map(({ id, title, url, score }) => ({ id, title, url, score }));
}

export function draftReply({ customer, intent, sentiment, citations }) {
  const opening = sentiment === 'negative' ? `Hi ${customer ?? 'there'}, I'm sorry about the trouble.` : `Hi ${customer ?? 'there'}, thanks for getting in touch.`;
  const body = citations.length ? `These articles should help with your ${intent.replace('_', ' ')} question:\n${citations.join('\n')}` : 'A member of our team will look into this and get back to you.';
  return { text: `${opening}\n\n${body}\n\nBest regards,\nSupport` };
}
