// Code the support-triage workflow calls by name: composing the reply is plain code, not a model.

export function draftReply({ customer, intent, sentiment, articles }) {
  const name = customer ?? 'there';
  const opening = sentiment === 'negative' ? `Hi ${name}, I'm sorry about the trouble.` : `Hi ${name}, thanks for getting in touch.`;
  const body = articles.length
    ? `This should help with your ${intent.replace('_', ' ')} question:\n${articles.map((a, i) => `[${i + 1}] ${a.title}: ${a.text}`).join('\n')}`
    : 'A member of our team will look into this and get back to you.';
  return { text: `${opening}\n\n${body}\n\nBest regards,\nSupport` };
}

/**
 * The drafted reply of workflow.yaml. Retrieval returns passages; an article may give several,
 * so the hits are cut down to distinct articles (in rank order, at most `max`) and the reply
 * cites each by number, title and id — the agent reviewing it, and the customer, can open the
 * article it rests on. The article id is the file name in help-center/ without `.md`.
 */
export function draftCitedReply({ customer, intent, sentiment, results, max = 3 }) {
  const seen = new Set();
  const citations = [];
  for (const r of results ?? []) {
    const id = String(r.source ?? r.id).replace(/\.(md|markdown|txt)$/, '').replace(/#\d+$/, '');
    if (seen.has(id)) continue;
    seen.add(id);
    citations.push({ id, title: r.title, text: r.text });
    if (citations.length >= max) break;
  }
  const name = customer ?? 'there';
  const opening = sentiment === 'negative'
    ? `Hi ${name}, I'm sorry about the trouble, and thank you for your patience.`
    : `Hi ${name}, thanks for getting in touch.`;
  const topic = String(intent ?? 'support').replace('_', ' ');
  const body = citations.length
    ? `Here is what should help with your ${topic} question. ${citations[0].text}\n\nMore in our help centre:\n${citations.map((c, i) => `[${i + 1}] ${c.title} (${c.id})`).join('\n')}`
    : 'A member of our team will look into this and get back to you.';
  return { text: `${opening}\n\n${body}\n\nBest regards,\nSupport`, citations: citations.map(({ id, title }) => ({ id, title })) };
}
