// Code the support-triage workflow calls by name: composing the reply is plain code, not a model.

export function draftReply({ customer, intent, sentiment, articles }) {
  const name = customer ?? 'there';
  const opening = sentiment === 'negative' ? `Hi ${name}, I'm sorry about the trouble.` : `Hi ${name}, thanks for getting in touch.`;
  const body = articles.length
    ? `This should help with your ${intent.replace('_', ' ')} question:\n${articles.map((a, i) => `[${i + 1}] ${a.title}: ${a.text}`).join('\n')}`
    : 'A member of our team will look into this and get back to you.';
  return { text: `${opening}\n\n${body}\n\nBest regards,\nSupport` };
}
