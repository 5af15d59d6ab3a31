import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.js';
import type { CallOptions, ModelOperation, Provider, ProviderSetup } from '../../../src/providers/provider.js';
import { LOCAL_PROVIDERS } from '../../../src/providers/local/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const opts = (): CallOptions => ({ signal: new AbortController().signal, idempotencyKey: 'run:step:1' });

function setup(options: Record<string, unknown>, baseDir = ROOT): ProviderSetup {
  return { service: 'svc', model: 'm1', options, baseDir };
}

async function make(name: string, options: Record<string, unknown>, baseDir?: string): Promise<Provider> {
  return LOCAL_PROVIDERS[name](setup(options, baseDir));
}

async function run(p: Provider, operation: ModelOperation, input: unknown): Promise<any> {
  const r = await p.call({ operation, input }, opts());
  expect(r.model).toBe('m1');
  expect(r.usage.cachedInputTokens).toBe(0);
  expect(r.usage.inputTokens).toBeGreaterThan(0);
  return r.output;
}

/** The BatonError a promise/function throws, or fails the test. */
async function caught(f: () => unknown): Promise<BatonError> {
  try {
    await f();
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error('expected a BatonError, nothing was thrown');
}

const EXAMPLES = {
  billing: [
    'I was charged twice for my subscription this month',
    'Please refund the duplicate payment on my credit card',
    'My invoice shows the wrong amount',
    'Why did my bill go up after the upgrade?',
    'Can I get a receipt for my last payment?',
    'The charge on my card does not match the price',
    'I want to cancel my plan and get my money back',
    'How do I update the credit card used for billing?',
  ],
  technical: [
    'The app crashes when I open the settings page',
    'I get a 500 error when uploading a file',
    'The page is very slow and keeps timing out',
    'Sync stopped working after the latest update',
    'The API returns an invalid JSON response',
    'The mobile app freezes on startup',
    'Notifications are not delivered to my phone',
    'Export to CSV fails with an error message',
  ],
  account: [
    'I forgot my password and cannot log in',
    'How do I change the email address on my account?',
    'Please delete my account and all my data',
    'My account was locked after too many login attempts',
    'I want to add a second user to my profile',
    'Two-factor authentication codes are not accepted when I sign in',
    'How can I change my username?',
    'Someone else logged into my account',
  ],
};

describe('LOCAL_PROVIDERS', () => {
  it('has exactly the six local models, each naming itself and its operation', async () => {
    expect(Object.keys(LOCAL_PROVIDERS).sort()).toEqual(['local-anomaly', 'local-classifier', 'local-entities', 'local-ocr', 'local-retrieval', 'local-sentiment']);
    const p = await make('local-sentiment', {});
    expect(p.name).toBe('local-sentiment');
    expect(p.defaultOperation).toBe('sentiment');
  });

  it('an operation a local model lacks throws BATON_MODEL_UNSUPPORTED naming what it does', async () => {
    const p = await make('local-sentiment', {});
    const err = await caught(() => p.call({ operation: 'chat', messages: [{ role: 'user', content: 'hi' }] }, opts()));
    expect(err.code).toBe('BATON_MODEL_UNSUPPORTED');
    expect(err.message).toContain('`chat`');
    expect(err.message).toContain('sentiment');
    expect(err.message).toContain('svc');
  });

  it('every local model refuses an operation it lacks with BATON_MODEL_UNSUPPORTED', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-unsup-'));
    writeFileSync(join(dir, 'a.md'), '# A\n\nSome text.\n');
    const options: Record<string, Record<string, unknown>> = {
      'local-classifier': { examples: { a: ['one'], b: ['two'] } },
      'local-sentiment': {},
      'local-entities': {},
      'local-retrieval': { folder: dir },
      'local-ocr': {},
      'local-anomaly': { training: [{ x: 1 }, { x: 2 }, { x: 3 }] },
    };
    try {
      for (const [name, factory] of Object.entries(LOCAL_PROVIDERS)) {
        const p = await factory(setup(options[name]));
        const err = await caught(() => p.call({ operation: 'embed', input: 'x' }, opts()));
        expect(err.code, name).toBe('BATON_MODEL_UNSUPPORTED');
        expect(err.details).toMatchObject({ service: 'svc', provider: name, operation: 'embed', operations: p.defaultOperation });
        await p.close?.();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a call with an already-aborted signal throws before doing any work', async () => {
    const p = await make('local-sentiment', {});
    const ac = new AbortController();
    ac.abort(new Error('cancelled by test'));
    await expect(p.call({ operation: 'sentiment', input: 'great' }, { signal: ac.signal, idempotencyKey: 'k' })).rejects.toThrow('cancelled by test');
  });
});

describe('local-classifier', () => {
  it('classifies held-out sentences into the right label with probabilities summing to 1', async () => {
    const p = await make('local-classifier', { examples: EXAMPLES });
    expect(p.defaultOperation).toBe('classify');
    const cases: [string, string][] = [
      ['I have been billed two times for the same order, please refund me', 'billing'],
      ['The amount on my invoice is wrong', 'billing'],
      ['The app keeps crashing with an error when I upload a photo', 'technical'],
      ['The website is slow and the page times out', 'technical'],
      ['I cannot log in because I forgot my password', 'account'],
      ['Please change the email on my account', 'account'],
    ];
    for (const [text, label] of cases) {
      const out = await run(p, 'classify', text);
      expect(out.label, text).toBe(label);
      expect(Object.keys(out.scores).sort()).toEqual(['account', 'billing', 'technical']);
      const sum = Object.values(out.scores as Record<string, number>).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 6);
      expect(out.confidence).toBe(out.scores[label]);
      expect(out.confidence).toBeGreaterThan(1 / 3);
    }
  });

  it('reads examples from a YAML file relative to baseDir and merges them with inline ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cls-'));
    try {
      writeFileSync(join(dir, 'ex.yaml'), `spam:\n  - win a free prize now\n  - cheap pills click here\n  - free money claim your prize\n`);
      const p = await make('local-classifier', { examples_file: 'ex.yaml', examples: { ham: ['see you at lunch tomorrow', 'the meeting moved to three', 'thanks for the notes from today'] } }, dir);
      expect((await run(p, 'classify', 'claim your free prize')).label).toBe('spam');
      expect((await run(p, 'classify', 'lunch meeting tomorrow')).label).toBe('ham');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad options throw BATON_MODEL_LOCAL saying what to fix', async () => {
    const one = await caught(() => make('local-classifier', { examples: { billing: ['a bill'] } }));
    expect(one.code).toBe('BATON_MODEL_LOCAL');
    expect(one.message).toMatch(/at least 2 labels.*options\.examples/);
    const empty = await caught(() => make('local-classifier', { examples: { '': ['x'], other: ['y'] } }));
    expect(empty.code).toBe('BATON_MODEL_LOCAL');
    expect(empty.message).toContain('empty label');
    const noTexts = await caught(() => make('local-classifier', { examples: { a: [], b: ['y'] } }));
    expect(noTexts.message).toContain('label "a" needs a non-empty list');
    const missing = await caught(() => make('local-classifier', { examples_file: 'nope/examples.yaml' }));
    expect(missing.code).toBe('BATON_MODEL_LOCAL');
    expect(missing.message).toContain('nope/examples.yaml does not exist');
    expect(missing.message).toContain(join(ROOT, 'nope/examples.yaml'));
    const nothing = await caught(() => make('local-classifier', {}));
    expect(nothing.message).toContain('got 0');
  });

  it('non-string input throws BATON_MODEL_LOCAL', async () => {
    const p = await make('local-classifier', { examples: EXAMPLES });
    const err = await caught(() => p.call({ operation: 'classify', input: 42 }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('needs input to be a string');
  });
});

describe('local-sentiment', () => {
  it('labels clearly positive, negative and neutral sentences', async () => {
    const p = await make('local-sentiment', {});
    const pos = await run(p, 'sentiment', 'I love this product, the support team was wonderful and helpful!');
    expect(pos.label).toBe('positive');
    expect(pos.score).toBeGreaterThan(0.05);
    expect(pos.confidence).toBeGreaterThan(0.5);
    const neg = await run(p, 'sentiment', 'This is terrible. The worst service ever, I hate it and I am very angry.');
    expect(neg.label).toBe('negative');
    expect(neg.score).toBeLessThan(-0.05);
    expect(neg.confidence).toBeGreaterThan(0.5);
    const neutral = await run(p, 'sentiment', 'The parcel was delivered on Tuesday.');
    expect(neutral.label).toBe('neutral');
    expect(neutral.confidence).toBeLessThanOrEqual(1);
  });

  it('options.neutral widens the neutral band', async () => {
    const text = 'The product is good.';
    const narrow = await run(await make('local-sentiment', {}), 'sentiment', text);
    expect(narrow.label).toBe('positive');
    const wide = await run(await make('local-sentiment', { neutral: 0.99 }), 'sentiment', text);
    expect(wide.label).toBe('neutral');
    expect(wide.score).toBe(narrow.score);
  });

  it('options.aggregate worst_sentence: one angry sentence among polite ones is not averaged away', async () => {
    const text = 'Hello team, hope you are well. I was charged twice and I am furious, this is unacceptable. Thanks so much, have a lovely day!';
    const doc = await run(await make('local-sentiment', {}), 'sentiment', text);
    const worst = await run(await make('local-sentiment', { aggregate: 'worst_sentence' }), 'sentiment', text);
    expect(worst.label).toBe('negative');
    expect(worst.score).toBeLessThan(doc.score);
    // No negative sentence: the document's score, as with the default.
    const calm = 'The parcel was delivered on Tuesday. Thanks, great work!';
    expect(await run(await make('local-sentiment', { aggregate: 'worst_sentence' }), 'sentiment', calm)).toEqual(await run(await make('local-sentiment', {}), 'sentiment', calm));
    const err = await caught(() => make('local-sentiment', { aggregate: 'min' }));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('options.aggregate must be');
  });

  it('a bad neutral band throws BATON_MODEL_LOCAL', async () => {
    const err = await caught(() => make('local-sentiment', { neutral: 'wide' }));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('options.neutral must be a number');
  });
});

describe('local-entities', () => {
  it('finds a person, an organisation, a date and an amount with exact offsets', async () => {
    const p = await make('local-entities', {});
    const text = 'On March 3, 2024 Jane Smith of Acme Corporation paid $1,250.00 to the supplier.';
    const { entities } = await run(p, 'entities', text);
    for (const e of entities) expect(text.slice(e.start, e.end)).toBe(e.text);
    const find = (type: string) => entities.find((e: { type: string }) => e.type === type);
    expect(find('PERSON')).toMatchObject({ text: 'Jane Smith', start: text.indexOf('Jane Smith') });
    expect(find('ORG')).toMatchObject({ text: 'Acme Corporation' });
    expect(find('DATE')).toMatchObject({ text: 'March 3, 2024' });
    expect(find('MONEY')).toMatchObject({ text: '$1,250.00' });
    const keys = entities.map((e: { start: number; end: number; type: string }) => `${e.start}:${e.end}:${e.type}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('finds places, e-mails, URLs and phone numbers without overlaps', async () => {
    const p = await make('local-entities', {});
    const text = 'Write to jane@acme.com, see https://acme.com/help or call +1 415-555-0100 from Paris.';
    const { entities } = await run(p, 'entities', text);
    const byType = Object.fromEntries(entities.map((e: { type: string; text: string }) => [e.type, e.text]));
    expect(byType).toMatchObject({ EMAIL: 'jane@acme.com', URL: 'https://acme.com/help', PHONE: '+1 415-555-0100', PLACE: 'Paris' });
    const sorted = [...entities].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i].start).toBeGreaterThanOrEqual(sorted[i - 1].end);
  });

  it('options.types filters entity types; a bad list throws BATON_MODEL_LOCAL', async () => {
    const p = await make('local-entities', { types: ['person'] });
    const { entities } = await run(p, 'entities', 'Jane Smith paid $40 on Monday.');
    expect(entities.map((e: { type: string }) => e.type)).toEqual(['PERSON']);
    const err = await caught(() => make('local-entities', { types: 'PERSON' }));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('options.types must be a non-empty list');
  });
});

describe('local-retrieval', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'baton-docs-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(
      join(dir, 'policies', 'refunds.md'),
      '# Refunds\n\nCustomers can request a refund within 30 days of purchase. Refunds are paid back to the original card within 5 business days.\n\n## Exceptions\n\nGift cards and downloadable software are never refunded.\n',
    );
    writeFileSync(
      join(dir, 'shipping.md'),
      '# Shipping\n\nOrders ship from our warehouse in Rotterdam within two days.\n\n## International\n\nInternational delivery takes 7 to 14 days and customs duties are paid by the recipient.\n',
    );
    writeFileSync(join(dir, 'security.md'), '# Passwords\n\nTo reset your password, open Settings, choose Security and press "Reset password". A link is e-mailed to you.\n');
    writeFileSync(join(dir, 'faq.json'), JSON.stringify([{ id: 'faq-hours', title: 'Opening hours', text: 'Our support desk is open Monday to Friday, 9:00 to 17:00 CET.' }]));
    writeFileSync(join(dir, 'notes.txt'), 'Warehouse staff take lunch at noon.\n\nThe loading dock closes at six.\n');
    writeFileSync(join(dir, 'image.png'), 'not text');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('returns the right passage first, with its source relative to the folder', async () => {
    const p = await make('local-retrieval', { folder: dir });
    const { results } = await run(p, 'retrieve', 'how long do international deliveries take');
    expect(results[0].text).toContain('International delivery takes 7 to 14 days');
    expect(results[0].source).toBe('shipping.md');
    expect(results[0].score).toBeGreaterThan(0);
    expect(results.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < results.length; i++) expect(results[i].score).toBeLessThanOrEqual(results[i - 1].score);
  });

  it('matches word forms ("refunded" finds "refund"), reads nested folders and JSON, honours k', async () => {
    const p = await make('local-retrieval', { folder: dir, k: 1 });
    const refund = await run(p, 'retrieve', { query: 'can I get refunded after purchase?' });
    expect(refund.results).toHaveLength(1);
    expect(refund.results[0]).toMatchObject({ source: 'policies/refunds.md' });
    expect(refund.results[0].text).toContain('within 30 days');
    const hours = await run(p, 'retrieve', { query: 'when is support open', k: 2 });
    expect(hours.results[0]).toMatchObject({ id: 'faq-hours', source: 'faq.json' });
    const pw = await run(p, 'retrieve', 'resetting passwords');
    expect(pw.results[0].source).toBe('security.md');
  });

  it('relative folders resolve against baseDir; missing or empty folders throw BATON_MODEL_LOCAL', async () => {
    const p = await make('local-retrieval', { folder: 'policies' }, dir);
    expect((await run(p, 'retrieve', 'gift cards')).results[0].text).toContain('Gift cards');
    const missing = await caught(() => make('local-retrieval', { folder: './docs' }, dir));
    expect(missing.code).toBe('BATON_MODEL_LOCAL');
    expect(missing.message).toContain(`options.folder ./docs does not exist (resolved to ${join(dir, 'docs')})`);
    expect(missing.message).toContain('.md/.txt');
    const emptyDir = mkdtempSync(join(tmpdir(), 'baton-empty-'));
    try {
      const empty = await caught(() => make('local-retrieval', { folder: emptyDir }));
      expect(empty.message).toContain('holds no .md, .txt or .json text');
    } finally {
      rmSync(emptyDir, { recursive: true, force: true });
    }
    const none = await caught(() => make('local-retrieval', {}));
    expect(none.message).toContain('options.folder must be a path');
  });

  it('an empty query throws BATON_MODEL_LOCAL', async () => {
    const p = await make('local-retrieval', { folder: dir });
    const err = await caught(() => p.call({ operation: 'retrieve', input: { k: 2 } }, opts()));
    expect(err.code).toBe('BATON_MODEL_LOCAL');
    expect(err.message).toContain('needs a query');
  });
});

describe('local-ocr', () => {
  let p: Provider;
  beforeAll(async () => {
    p = await make('local-ocr', {});
  });
  afterAll(async () => {
    await p.close?.();
  });
  const fixture = join(ROOT, 'test/fixtures/ocr/invoice.png');

  it('reads the fixture image from a path and from a data URL, reusing one worker', async () => {
    const fromPath = await run(p, 'ocr', { path: 'test/fixtures/ocr/invoice.png' });
    const words = fromPath.text.toUpperCase().split(/\s+/);
    for (const w of ['INVOICE', '4821', 'TOTAL', '99']) expect(words).toContain(w);
    expect(fromPath.confidence).toBeGreaterThan(0.5);
    expect(fromPath.confidence).toBeLessThanOrEqual(1);
    const fromData = await run(p, 'ocr', { image: `data:image/png;base64,${readFileSync(fixture).toString('base64')}` });
    expect(fromData.text).toBe(fromPath.text);
    const fromBase64 = await run(p, 'ocr', { image: readFileSync(fixture).toString('base64') });
    expect(fromBase64.text).toBe(fromPath.text);
  }, 60_000);

  it('bad input throws BATON_MODEL_LOCAL saying what to give', async () => {
    const missing = await caught(() => p.call({ operation: 'ocr', input: { path: 'no/such.png' } }, opts()));
    expect(missing.code).toBe('BATON_MODEL_LOCAL');
    expect(missing.message).toContain(`resolved to ${join(ROOT, 'no/such.png')}`);
    const notImage = await caught(() => p.call({ operation: 'ocr', input: { image: Buffer.from('hello world').toString('base64') } }, opts()));
    expect(notImage.message).toContain('is not a PNG, JPEG');
    const neither = await caught(() => p.call({ operation: 'ocr', input: 'scan.png' }, opts()));
    expect(neither.message).toContain('{ path: "scan.png" }');
  });

  it('aborting a recognition rejects with the abort reason and the next call starts a fresh worker', async () => {
    const q = await make('local-ocr', {});
    try {
      await run(q, 'ocr', { path: 'test/fixtures/ocr/invoice.png' }); // the worker is up: the abort lands mid-recognition
      const ac = new AbortController();
      const pending = q.call({ operation: 'ocr', input: { path: 'test/fixtures/ocr/invoice.png' } }, { signal: ac.signal, idempotencyKey: 'k' });
      setTimeout(() => ac.abort(new Error('step timed out')), 0);
      await expect(pending).rejects.toThrow('step timed out');
      const out = await run(q, 'ocr', { path: 'test/fixtures/ocr/invoice.png' });
      expect(out.text).toContain('INVOICE');
    } finally {
      await q.close?.();
    }
  }, 60_000);

  it('close() ends the worker; later calls are refused', async () => {
    const q = await make('local-ocr', {});
    await q.close?.();
    const err = await caught(() => q.call({ operation: 'ocr', input: { path: 'test/fixtures/ocr/invoice.png' } }, opts()));
    expect(err.message).toContain('was closed');
  });
});

describe('local-anomaly', () => {
  // Normal orders: amount ~ N(50, 10), items ~ N(3, 1) rounded; a seeded generator keeps the data fixed.
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
  const gauss = (): number => Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
  const training = Array.from({ length: 300 }, () => ({ amount: Math.round((50 + 10 * gauss()) * 100) / 100, items: Math.max(1, Math.round(3 + gauss())) }));

  it('scores a clear outlier above inliers, deterministically', async () => {
    const p = await make('local-anomaly', { training });
    const inlier = await run(p, 'anomaly', { amount: 50, items: 3 });
    const outlier = await run(p, 'anomaly', { record: { amount: 5000, items: 40 } });
    expect(outlier.score).toBeGreaterThan(inlier.score + 0.15);
    expect(outlier.anomalous).toBe(true);
    expect(inlier.anomalous).toBe(false);
    expect(outlier.score).toBeLessThanOrEqual(1);
    expect(inlier.score).toBeGreaterThanOrEqual(0);
    expect((await run(p, 'anomaly', { amount: 50, items: 3 })).score).toBe(inlier.score);
    const again = await make('local-anomaly', { training });
    expect((await run(again, 'anomaly', { amount: 5000, items: 40 })).score).toBe(outlier.score);
  });

  it('trains from a CSV file relative to baseDir and honours options.threshold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-anom-'));
    try {
      writeFileSync(join(dir, 'orders.csv'), `amount,items\n${training.map((r) => `${r.amount},${r.items}`).join('\n')}\n`);
      const p = await make('local-anomaly', { training: 'orders.csv', threshold: 0.99 }, dir);
      const out = await run(p, 'anomaly', { amount: 5000, items: 40 });
      expect(out.score).toBeGreaterThan(0.6);
      expect(out.anomalous).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('missing or non-numeric fields throw BATON_MODEL_LOCAL naming the field', async () => {
    const p = await make('local-anomaly', { training });
    const missing = await caught(() => p.call({ operation: 'anomaly', input: { amount: 10 } }, opts()));
    expect(missing.code).toBe('BATON_MODEL_LOCAL');
    expect(missing.message).toContain('missing the numeric field "items"');
    const text = await caught(() => p.call({ operation: 'anomaly', input: { amount: 'lots', items: 2 } }, opts()));
    expect(text.message).toContain('field "amount" must be a number');
    const badRow = await caught(() => make('local-anomaly', { training: [{ a: 1, b: 2 }, { a: 1 }] }));
    expect(badRow.message).toContain('options.training[1] is missing the numeric field "b"');
    const noFile = await caught(() => make('local-anomaly', { training: 'missing.json' }));
    expect(noFile.message).toContain('options.training missing.json does not exist');
    const none = await caught(() => make('local-anomaly', {}));
    expect(none.message).toContain('options.training must be a list of records');
  });
});
