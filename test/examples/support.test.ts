/**
 * The customer-service example (examples/support/workflow.yaml) through the real engine, with
 * the services and functions of its baton.config.yaml (built-in local models, offline): a calm
 * ticket is answered automatically with cited articles; an angry one and an uncertain one stop
 * at the `review` approval, whose evidence holds the draft, and the agent's edited reply is what
 * goes out. Then a spread subset of the labelled set runs through `evaluate` (the code of
 * `npm run eval -- support`) and its figures must stay above floors measured on it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Baton } from '../../src/index.js';
import { findConfig, loadFunctions } from '../../src/cli/config.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';
import { evaluate, loadTickets, spread, thresholdSweep } from '../../examples/support/eval.js';
import { until } from '../helpers/wait.js';

const app = resolve(import.meta.dirname, '../../examples/support');
const AGENT = { name: 'agent-ana', role: 'approver' };

const ticket = (id: string, subject: string, body: string) => ({ ticket: { id, customer: 'Mei', tier: 'pro', subject, body } });

describe.each(STORE_KINDS)('support example on %s', (k) => {
  const suite = engineSuite(k, 'baton-support-');
  async function open(): Promise<Baton> {
    const config = findConfig(join(app, 'baton.config.yaml'), []);
    return suite.baton({ functions: await loadFunctions(config.functions), services: config.services, baseDir: config.baseDir });
  }

  it('a calm how-to ticket: answered automatically, the reply cites the retrieved articles by title and id', async () => {
    const b = await open();
    const v = await b.registerFile(join(app, 'workflow.yaml'));
    const r = await b.run(v, ticket('T-1', 'Spreadsheet export', 'Hello, how do I export all our contacts to a CSV file? Thanks!'), { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    const o = r.output as { intent: { label: string }; route: string; articles: string[]; reply: string; citations: Array<{ id: string; title: string }> };
    expect(o.intent.label).toBe('how_to');
    expect(o.route).toBe('automatic');
    expect(o.articles[0]).toBe('howto-export-csv');
    expect(new Set(o.articles).size).toBe(o.articles.length);
    expect(o.articles.length).toBe(3);
    expect(o.reply).toContain('[1] Exporting your data to CSV or Excel (howto-export-csv)');
    expect(await b.approvals.list({ runId: r.id, status: ['pending', 'escalated', 'approved', 'rejected', 'expired', 'cancelled'] })).toEqual([]);
  });

  it('an angry customer stops at the review; the evidence has the draft and the agent\'s edited reply goes out', async () => {
    const b = await open();
    const v = await b.registerFile(join(app, 'workflow.yaml'));
    const id = await b.start(v, ticket('T-2', 'Charged twice', 'You took my payment two times for the same invoice. This is unacceptable and I am furious. Thanks.'));
    const a = await until(async () => (await b.approvals.list({ runId: id }))[0], 'the review approval');
    const ev = a.evidence as { ticket: { id: string }; intent: { label: string }; sentiment: { score: number }; draft: { text: string; citations: Array<{ id: string }> } };
    expect(ev.ticket.id).toBe('T-2');
    expect(ev.intent.label).toBe('billing');
    expect(ev.sentiment.score).toBeLessThan(-0.3);
    expect(ev.draft.citations[0].id).toBe('billing-duplicate-charge');
    expect(ev.draft.text).toContain("I'm sorry about the trouble");
    expect(a.summary).toMatch(/^Ticket T-2 from Mei: billing/);
    // A viewer may not decide; an answer that breaks the form is refused.
    expect(await b.approvals.list({ for: { name: 'vic', role: 'viewer' } })).toEqual([]);
    await expect(b.approvals.decide(a.id, { decision: 'approve', data: { intent: 'refund' } }, AGENT)).rejects.toMatchObject({ code: 'BATON_APPROVAL_FORM' });
    await b.approvals.decide(a.id, { decision: 'approve', data: { reply: 'Hi Mei, we have refunded the second payment today. Sorry!' } }, AGENT);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.status).toBe('completed');
    expect(r.output).toMatchObject({ route: 'reviewed', reviewed_by: 'agent-ana', reply: 'Hi Mei, we have refunded the second payment today. Sorry!', articles: expect.arrayContaining(['billing-duplicate-charge']) });
  });

  it('an uncertain intent goes to a person too; a rejected review sends no reply', async () => {
    const b = await open();
    const v = await b.registerFile(join(app, 'workflow.yaml'));
    // Says nothing any intent was trained on: the classifier's confidence is low, the tone calm.
    const id = await b.start(v, ticket('T-3', 'Question', 'Hello, I have a question about the thing we discussed with Sam.'));
    const a = await until(async () => (await b.approvals.list({ runId: id }))[0], 'the review approval');
    expect((a.evidence as { intent: { confidence: number } }).intent.confidence).toBeLessThan(0.6);
    expect((a.evidence as { sentiment: { score: number } }).sentiment.score).toBeGreaterThanOrEqual(-0.3);
    await b.approvals.decide(a.id, { decision: 'reject', reason: 'will call the customer' }, AGENT);
    const r = await b.wait(id, { timeoutMs: 20_000 });
    expect(r.output).toMatchObject({ route: 'rejected', reply: null });
  });
});

describe('support example: the first command of the README', () => {
  it('`baton run examples/support/workflow.yaml --input examples/support/sample.json` completes offline without waiting for a person', () => {
    const root = resolve(app, '../..');
    // The CLI runs from dist/ (npm install builds it); build it when a test run has not yet.
    if (!existsSync(join(root, 'dist/cli/main.js'))) expect(spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root }).status).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'baton-support-cli-'));
    try {
      const r = spawnSync(process.execPath, [join(root, 'bin/baton.js'), 'run', 'examples/support/workflow.yaml', '--input', 'examples/support/sample.json', '--json', '--db', join(dir, 'store')], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const res = JSON.parse(r.stdout) as { status: string; output: { route: string; intent: { label: string }; articles: string[]; reply: string } };
      expect(res.status).toBe('completed');
      expect(res.output).toMatchObject({ route: 'automatic', intent: { label: 'how_to' } });
      expect(res.output.articles[0]).toBe('howto-export-csv');
      expect(res.output.reply).toContain('(howto-export-csv)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('support example: the labelled set', () => {
  it('no eval ticket is a training example; the set has 200+ tickets over 5 intents and 30+ articles', () => {
    const all = loadTickets();
    expect(all.length).toBeGreaterThanOrEqual(200);
    expect(new Set(all.map((t) => t.intent)).size).toBe(5);
    expect(new Set(all.flatMap((t) => t.articles)).size).toBeGreaterThanOrEqual(30);
    expect(new Set(all.map((t) => t.id)).size).toBe(all.length);
    const training = ['intents.yaml', 'data/training.yaml'].flatMap((f) => Object.values(parse(readFileSync(join(app, f), 'utf8')) as Record<string, string[]>).flat());
    expect(training.length).toBeGreaterThan(100);
    for (const t of all) {
      const text = `${t.subject} ${t.body}`.toLowerCase();
      for (const ex of training) expect(text.includes(ex.toLowerCase()), `${t.id} contains "${ex}"`).toBe(false);
    }
  });

  it('a spread subset of 30 tickets through the workflow: intent accuracy, hit@3 and routing above measured floors', async () => {
    const r = await evaluate(spread(loadTickets(), 30), { concurrency: 8 });
    expect(r.completed).toBe(30);
    // Measured on this subset: intent 96.7%, hit@3 96.7%, every angry ticket seen (the full set: see the README).
    expect(r.intentAccuracy).toBeGreaterThanOrEqual(0.85);
    expect(r.hitAt3).toBeGreaterThanOrEqual(0.9);
    expect(r.angryReviewed).toBe(1);
    expect(r.sentToPerson).toBeGreaterThan(0);
    expect(r.approvalsDecided).toBe(Math.round(r.sentToPerson * 30));
    expect(r.sentToPerson).toBeLessThan(0.6);
    expect(r.totalCost).toBeGreaterThan(0);
    expect(thresholdSweep(r.results)).toContain('angry_below');
  }, 60_000);
});
