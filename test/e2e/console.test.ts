/**
 * The web console in a real browser: Debian's Chromium driven by playwright-core against a
 * gateway on 127.0.0.1 (auth required, API keys of each role), on each store. An operator
 * starts a run from the workflow page and watches it, without reloading, reach the approval;
 * an approver answers it in the inbox with a form field; the operator's page shows the run
 * completed with the corrected amount. A viewer is offered no action. Cancel and retry from a
 * step are driven from the run page; the costs page shows a model workflow's fallback. An open
 * run page lives through gateway restarts (a graceful stop, a cut connection) on the same port:
 * it follows the run's events again from the last it saw, and reads the run again.
 *
 * `BATON_SCREENSHOTS=1` also saves docs/screenshots/{runs,run,approvals,workflow,costs}.png.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatonError } from '../../src/errors.js';
import { createApiKey } from '../../src/gateway/auth.js';
import { createGateway } from '../../src/gateway/server.js';
import type { Baton } from '../../src/index.js';
import type { ProviderFactory } from '../../src/providers/provider.js';
import { STORE_KINDS, engineSuite } from '../helpers/stores.js';

const root = resolve(import.meta.dirname, '../..');
const REFUND = readFileSync(resolve(root, 'examples/approvals/refund.yaml'), 'utf8');
const RISKY = JSON.parse(readFileSync(resolve(root, 'examples/approvals/risky.json'), 'utf8')) as Record<string, unknown>;
const SAFE = JSON.parse(readFileSync(resolve(root, 'examples/approvals/safe.json'), 'utf8')) as Record<string, unknown>;
const SHOTS = process.env.BATON_SCREENSHOTS === '1';
const CHROMIUM = '/usr/bin/chromium';

/** A model step with a fallback: the primary always fails, the backup answers (and costs). */
const TRIAGE = `
name: ticket-triage
steps:
  - id: classify
    kind: model
    service: primary
    fallback: [backup]
    prompt: "Classify: {{ input.text }}"
    output_schema: { type: object }
  - id: cool_off
    kind: wait
    duration: 400ms
  - id: route
    kind: transform
    needs: [cool_off]
    expression: '{ "queue": steps.classify.output.label }'
`;

const primary: ProviderFactory = () => ({
  name: 'flaky', defaultOperation: 'chat',
  async call() {
    throw new BatonError('BATON_MODEL_HTTP', { service: 'primary', httpStatus: 503, detail: 'scripted outage', retryAfter: '' }, { retryable: true });
  },
});
const backup: ProviderFactory = () => ({
  name: 'steady', defaultOperation: 'chat',
  async call() {
    // Long enough that the parallel wait step has surely started meanwhile (the timeline test).
    await new Promise((r) => setTimeout(r, 150));
    return { output: '{"label":"billing"}', usage: { inputTokens: 1200, outputTokens: 300, cachedInputTokens: 0 } };
  },
});

/** A run that waits for two signals in turn: something to send after each gateway restart. */
const SIGNALS = `
name: two-signals
steps:
  - { id: first, kind: wait, event: go.one, timeout: 1h }
  - { id: second, kind: wait, event: go.two, timeout: 1h, needs: [first] }
  - { id: finish, kind: transform, needs: [second], expression: '{ "done": true }' }
`;

// One build and one browser for the whole file; the tests run on every store.
let browser: Browser;
beforeAll(async () => {
  // The console under test is the one in this tree: build it (a second or two).
  const built = spawnSync('npx', ['vite', 'build', '--config', 'console/vite.config.ts', '--logLevel', 'error'], { cwd: root, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`vite build failed: ${built.stderr}${built.stdout}`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
});

describe.each(STORE_KINDS)('web console in Chromium on %s', (kind) => {
  const suite = engineSuite(kind, 'baton-console-');
  let app: FastifyInstance | undefined;

  async function setup() {
    const b: Baton = await suite.baton({
      providers: { flaky: primary, steady: backup },
      services: {
        primary: { provider: 'flaky', model: 'big-1', retry: { max_attempts: 1 } },
        backup: { provider: 'steady', model: 'small-2', price: { input_per_mtok: 2.5, output_per_mtok: 10 } },
      },
    });
    const keys: Record<string, string> = {};
    const keyIds: Record<string, string> = {};
    for (const [name, role] of [['olga', 'operator'], ['ana', 'approver'], ['vic', 'viewer'], ['finance-lead', 'viewer']] as const) {
      const made = await createApiKey(b.store, { name, role, namespaces: ['team-a'] });
      keys[name] = made.key;
      keyIds[name] = made.record.id;
    }
    app = await createGateway(b, { auth: 'required' });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    const port = Number(new URL(base).port);
    /** The event streams' URLs the gateway was asked for (path and query), in order. */
    const streams: string[] = [];
    /**
     * Stops the gateway and starts another on the same port and store (the engine runs on).
     * `close`: a graceful stop, which ends each event stream without its `end` event;
     * `drop`: the connections are cut first, mid-stream, as when the process dies.
     * `refuseStreams`: the new gateway answers that many event-stream requests with a 429.
     */
    const restart = async (how: 'close' | 'drop', refuseStreams = 0) => {
      if (how === 'drop') app!.server.closeAllConnections();
      await app!.close();
      app = undefined;
      // Down long enough that the page's first tries to follow again are refused.
      await new Promise((r) => setTimeout(r, 1500));
      app = await createGateway(b, { auth: 'required' });
      app.addHook('onRequest', async (req, reply) => {
        if (!/^\/runs\/[^/]+\/events/.test(req.url)) return;
        streams.push(req.url);
        if (refuseStreams-- > 0) {
          return reply.code(429).header('retry-after', '1').type('application/problem+json')
            .send({ type: 'about:blank', title: 'Too Many Requests', status: 429, code: 'BATON_RATE_LIMITED', detail: 'slow down (test)' });
        }
      });
      await app.listen({ port, host: '127.0.0.1' });
    };
    const contexts: BrowserContext[] = [];
    /** A browser tab signed in as `who` (each its own context: its own sessionStorage). */
    const signIn = async (who: string): Promise<Page> => {
      const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.on('dialog', (d) => void d.accept());
      await page.goto(`${base}/console/`);
      await page.fill('input[name=key]', keys[who]);
      await page.click('button[type=submit]');
      await page.waitForSelector(`[data-testid=whoami]:has-text("${who}")`);
      return page;
    };
    const api = async (method: string, path: string, who: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method, headers: { authorization: `Bearer ${keys[who]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const close = async () => {
      for (const c of contexts) await c.close();
      await app?.close();
      app = undefined;
    };
    return { b, base, keys, keyIds, signIn, api, close, restart, streams };
  }

  const shot = async (page: Page, name: string) => {
    if (SHOTS && kind === STORE_KINDS[0]) await page.screenshot({ path: resolve(root, `docs/screenshots/${name}.png`), fullPage: true });
  };

  it('an operator starts a run and watches it live; an approver approves with a form field; the run completes on the open page', async () => {
    const { b, base, signIn, api, close } = await setup();
    try {
      await b.register(REFUND);
      // A second version, so the workflow page has a diff to show.
      await b.register(REFUND.replace('deadline: 2d', 'deadline: 1d').replace(/  - id: release/, `  - id: notify\n    kind: transform\n    needs: [review]\n    expression: '{ "sent": true }'\n  - id: release`));
      // The console's files load without a key (they hold no data); the API does not.
      const html = await fetch(`${base}/console/runs/whatever`);
      expect(html.status).toBe(200);
      expect(await html.text()).toContain('<div id="root">');
      // It holds a key in the tab: only its own scripts run, and no other site may frame it.
      expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(html.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(html.headers.get('x-frame-options')).toBe('DENY');
      expect(html.headers.get('x-content-type-options')).toBe('nosniff');
      const docs = await fetch(`${base}/docs/static/index.html`);
      expect(docs.headers.get('x-frame-options')).toBe('DENY');
      expect(docs.headers.get('content-security-policy')).toBeTruthy();
      expect((await fetch(`${base}/console-api/whoami`)).status).toBe(401);

      // Without a key, the page asks for one; the console's files themselves load without one.
      const op = await signIn('olga');
      await op.click('nav >> text=Workflows');
      await op.click('[data-workflow=refund-release]');
      await op.waitForSelector('svg.graph [data-step=review]');
      await op.fill('[data-testid=start-run] textarea[name=input]', JSON.stringify(RISKY));
      // Marks this document: if the page reloads, the mark is gone.
      await op.evaluate(() => ((window as unknown as { __mark: number }).__mark = 42));
      await op.click('[data-testid=start-run] button[type=submit]');
      await op.waitForURL(/\/console\/runs\/run_/);
      const runId = decodeURIComponent(op.url().split('/runs/')[1]);

      // The graph turns the approval step to waiting from the event stream alone.
      await op.waitForSelector('svg.graph [data-step=review][data-state=waiting]', { timeout: 20_000 });
      expect(await op.getAttribute('svg.graph [data-step=fraud]', 'data-state')).toBe('succeeded');
      expect(await op.getAttribute('svg.graph [data-step=release]', 'data-state')).toBe('pending');
      // The run's own status arrives in an event of its own, just after the step's.
      await op.waitForSelector('[data-testid=run-status]:has-text("waiting")');
      expect(await op.textContent('[data-testid=run-status]')).toBe('waiting');
      // An operator may cancel, but cannot decide the approval.
      expect(await op.isVisible('[data-testid=cancel]')).toBe(true);
      expect(await op.isVisible('[data-testid=to-inbox]')).toBe(false);
      // A viewer key the step names (approvers.users: finance-lead) may decide it: its run page
      // says so and links to the inbox (it said "your key cannot decide it", going by the role).
      const lead = await signIn('finance-lead');
      await lead.goto(`${base}/console/runs/${encodeURIComponent(runId)}`);
      await lead.waitForSelector('[data-testid=to-inbox]', { timeout: 20_000 });
      // The timeline has a bar for each step that ran; the detail panel shows the fraud score.
      await expect.poll(() => op.locator('svg.gantt .lane').count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      await op.click('svg.graph [data-step=fraud]');
      await op.waitForSelector('[data-testid=step-detail] :text("0.9")');

      // The approver's inbox has it: evidence, summary, the form. Approve with a corrected amount.
      const ana = await signIn('ana');
      await ana.click('nav >> text=Approvals');
      await ana.waitForSelector(`[data-testid=inbox] li:has-text("refund-release")`);
      await ana.waitForSelector('[data-testid=approval-detail] :text("A-1001")');
      expect(await ana.textContent('[data-testid=approval-detail] h3')).toContain('Refund 420 for order A-1001');
      // An answer that breaks the form is refused field by field, and changes nothing.
      await ana.fill('[data-testid=approval-detail] input[name=amount]', '-5');
      await ana.click('[data-testid=approve]');
      await ana.waitForSelector('[data-testid=approval-detail] [role=alert]:has-text("amount")');
      expect(await ana.textContent('[data-testid=approval-status]')).toBe('pending');
      expect(await op.getAttribute('svg.graph [data-step=review]', 'data-state')).toBe('waiting');
      await ana.fill('[data-testid=approval-detail] input[name=amount]', '400');
      await ana.fill('[data-testid=approval-detail] input[name=note]', 'partial refund');
      await shot(ana, 'approvals');
      await ana.click('[data-testid=approve]');
      await ana.waitForSelector('[data-testid=approval-status]:has-text("approved")');

      // The operator's page, never reloaded, shows the run completed with the approver's amount.
      await op.waitForSelector('[data-testid=run-status]:has-text("completed")', { timeout: 20_000 });
      await op.waitForSelector('svg.graph [data-step=release][data-state=succeeded]');
      expect(await op.evaluate(() => (window as unknown as { __mark?: number }).__mark)).toBe(42);
      expect(await op.isVisible('[data-testid=cancel]')).toBe(false);
      const run = await api('GET', `/runs/${runId}`, 'olga');
      expect(run.body.status).toBe('completed');
      expect(run.body.output).toMatchObject({ release: { amount: 400, released: true, decided_by: 'ana' } });
      await op.click('svg.graph [data-step=release]');
      await op.waitForSelector('[data-testid=step-detail] :text("decided_by")');
      await shot(op, 'run');

      // The runs list, filtered by status.
      await op.click('nav >> text=Runs');
      await op.selectOption('select[name=status]', 'completed');
      await op.waitForSelector(`[data-testid=runs] tr[data-run="${runId}"]`);

      // The workflow page: graph of the newest version, and the diff with the first.
      await op.goto(`${base}/console/workflows?name=refund-release`);
      await op.waitForSelector('svg.graph [data-step=notify]');
      const versions = await op.locator('select[name=version] option').count();
      expect(versions).toBe(2);
      const older = await op.locator('select[name=diff] option').nth(1).getAttribute('value');
      await op.selectOption('select[name=diff]', older!);
      await op.waitForSelector('[data-testid=diff] svg.graph [data-step=notify][data-state=added]');
      expect(await op.getAttribute('[data-testid=diff] svg.graph [data-step=review]', 'data-state')).toBe('changed');
      expect(await op.getAttribute('[data-testid=diff] svg.graph [data-step=fraud]', 'data-state')).toBe('same');
      await shot(op, 'workflow');

      // A viewer sees the run and the inbox but is offered no action.
      const vic = await signIn('vic');
      await vic.goto(`${base}/console/runs/${encodeURIComponent(runId)}`);
      await vic.waitForSelector('[data-testid=run-status]:has-text("completed")');
      await vic.click('svg.graph [data-step=fraud]');
      await vic.waitForSelector('[data-testid=step-detail] h3');
      expect(await vic.locator('[data-testid=cancel], [data-testid=retry], [data-testid=retry-from], button:has-text("Pause")').count()).toBe(0);
      await vic.click('nav >> text=Approvals');
      await vic.waitForSelector('[data-testid=inbox-empty]');
      await vic.click('nav >> text=Workflows');
      await vic.click('[data-workflow=refund-release]');
      await vic.waitForSelector('svg.graph [data-step=review]');
      expect(await vic.locator('[data-testid=start-run]').count()).toBe(0);
    } finally {
      await close();
    }
  }, 120_000);

  it('follows the run again when the gateway restarts (a graceful stop, then a dropped connection), from the last event it saw, without reloading', async () => {
    const { b, base, signIn, api, close, restart, streams } = await setup();
    try {
      await b.register(SIGNALS);
      const started = await api('POST', '/runs', 'olga', { workflow: 'two-signals', input: {} });
      expect(started.status).toBe(202);
      const runId = started.body.run_id as string;
      const op = await signIn('olga');
      await op.goto(`${base}/console/runs/${encodeURIComponent(runId)}`);
      await op.waitForSelector('svg.graph [data-step=first][data-state=waiting]', { timeout: 20_000 });
      await op.evaluate(() => ((window as unknown as { __mark: number }).__mark = 42));
      /** Waits until the page holds every event of the run, and gives the last one's id. */
      const caughtUp = async () => {
        const events = await b.getEvents(runId);
        await op.waitForSelector(`details summary:text-is("Events (${events.length})")`, { timeout: 20_000 });
        return events[events.length - 1].id;
      };
      const stream = (after: number) => `/runs/${encodeURIComponent(runId)}/events?after=${after}`;

      // A graceful stop ends the stream without its `end` event: the page follows it again on
      // the new gateway, from the last event it saw.
      const seen1 = await caughtUp();
      await restart('close');
      await expect.poll(() => streams, { timeout: 10_000 }).toContain(stream(seen1));

      // The first signal: its events reach the page, which reads the run 250 ms later (the
      // step's output is there, not in the graph's events). The connection is cut as soon as
      // the graph shows them, mid-stream, as when the process dies, so that read fails (on the
      // old page, 3 runs of 3 stayed without the output). Once the gateway is back the
      // stream is followed again (an error, not a close) and the run is read again: the
      // step's output shows, though no event comes to ask for it (the run waits).
      await op.click('svg.graph [data-step=first]');
      streams.length = 0;
      expect((await api('POST', `/runs/${runId}/signal`, 'olga', { event: 'go.one', payload: { by: 'the first signal' } })).status).toBe(200);
      await op.waitForSelector('svg.graph [data-step=second][data-state=waiting]', { timeout: 20_000 });
      await restart('drop');
      const seen2 = await caughtUp();
      expect(seen2).toBeGreaterThan(seen1);
      await expect.poll(() => streams, { timeout: 10_000 }).toContain(stream(seen2));
      await op.waitForSelector('[data-testid=step-detail] :text("the first signal")', { timeout: 10_000 });

      // The second signal: the run completes on the page.
      expect((await api('POST', `/runs/${runId}/signal`, 'olga', { event: 'go.two' })).status).toBe(200);
      await op.waitForSelector('[data-testid=run-status]:has-text("completed")', { timeout: 20_000 });
      await op.waitForSelector('svg.graph [data-step=finish][data-state=succeeded]');
      // Nothing missed (the page's events are the store's), and the same document throughout.
      await caughtUp();
      expect(await op.evaluate(() => (window as unknown as { __mark?: number }).__mark)).toBe(42);
    } finally {
      await close();
    }
  }, 120_000);

  it('keeps following through a rate limit on the event stream, and says so when the gateway refuses the page for good', async () => {
    const { b, base, keyIds, signIn, api, close, restart, streams } = await setup();
    try {
      await b.register(SIGNALS);
      const started = await api('POST', '/runs', 'olga', { workflow: 'two-signals', input: {} });
      const runId = started.body.run_id as string;
      const op = await signIn('olga');
      await op.goto(`${base}/console/runs/${encodeURIComponent(runId)}`);
      await op.waitForSelector('svg.graph [data-step=first][data-state=waiting]', { timeout: 20_000 });

      // The new gateway answers the page's next two event-stream requests 429 (Retry-After 1):
      // a rate limit passes, so the page asks again and follows on (the old page stopped at
      // any 4xx, silently, with the run still shown as waiting).
      streams.length = 0;
      await restart('close', 2);
      await expect.poll(() => streams.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(3);
      expect((await api('POST', `/runs/${runId}/signal`, 'olga', { event: 'go.one' })).status).toBe(200);
      await op.waitForSelector('svg.graph [data-step=second][data-state=waiting]', { timeout: 20_000 });
      expect(await op.locator('[data-testid=stream-error]').count()).toBe(0);

      // The page's key revoked while the gateway is down: following again is refused (401),
      // which asking again will not change. The page keeps the run and says live updates stopped.
      expect(await b.store.revokeApiKey(keyIds.olga, Date.now())).toBe(true);
      await restart('close');
      const banner = await op.waitForSelector('[data-testid=stream-error]', { timeout: 20_000 });
      expect(await banner.textContent()).toMatch(/Live updates stopped .*not valid.*Reload the page/);
      expect(await op.locator('svg.graph [data-step=first][data-state=succeeded]').count()).toBe(1);
    } finally {
      await close();
    }
  }, 120_000);

  it('cancels a run and retries it from a step on the run page; the costs page shows a fallback and its spend', async () => {
    const { b, base, signIn, api, close } = await setup();
    try {
      await b.register(REFUND);
      await b.register(TRIAGE);
      const started = await api('POST', '/runs', 'olga', { workflow: 'refund-release', input: RISKY });
      expect(started.status).toBe(202);
      const runId = started.body.run_id as string;
      const op = await signIn('olga');
      await op.goto(`${base}/console/runs/${encodeURIComponent(runId)}`);
      await op.waitForSelector('svg.graph [data-step=review][data-state=waiting]', { timeout: 20_000 });
      await op.click('[data-testid=cancel]'); // confirm() is accepted
      await op.waitForSelector('[data-testid=run-status]:has-text("cancelled")', { timeout: 20_000 });
      expect((await api('GET', `/runs/${runId}`, 'olga')).body.status).toBe('cancelled');

      // Retry from the first step: it runs again (a second attempt in its timeline lane) and the run waits again.
      await op.click('svg.graph [data-step=fraud]');
      await op.click('[data-testid=retry-from]');
      await op.waitForSelector('[data-testid=run-status]:has-text("waiting")', { timeout: 20_000 });
      await op.waitForSelector('svg.graph [data-step=review][data-state=waiting]');
      await expect.poll(() => op.locator('svg.gantt .lane[data-step=fraud] rect').count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      const events = await b.getEvents(runId);
      expect(events.filter((e) => e.type === 'run.retried')).toHaveLength(1);

      // A model step: the primary fails, the backup answers; the run page lists both calls.
      const t = await api('POST', '/runs', 'olga', { workflow: 'ticket-triage', input: { text: 'my invoice is wrong' }, wait: 20 });
      expect(t.body.status).toBe('completed');
      await op.goto(`${base}/console/runs/${encodeURIComponent(t.body.run_id)}`);
      await op.waitForSelector('[data-testid=run-status]:has-text("completed")');
      await op.click('svg.graph [data-step=classify]');
      await op.waitForSelector('[data-testid=step-detail] td:has-text("primary")');
      await op.waitForSelector('[data-testid=step-detail] td:has-text("backup")');
      // The timeline shows the two branches side by side: their bars overlap in time.
      const span = async (step: string) => {
        const box = (await op.locator(`svg.gantt .lane[data-step="${step}"] rect`).first().boundingBox())!;
        return [box.x, box.x + box.width];
      };
      const [c0, c1] = await span('classify');
      const [w0, w1] = await span('cool_off');
      expect(c0 < w1 && w0 < c1).toBe(true);
      await shot(op, 'run-model');

      await op.click('nav >> text=Costs');
      await op.waitForSelector('[data-testid=cost-service] text:has-text("backup")');
      await op.waitForSelector('[data-testid=cost-workflow] text:has-text("ticket-triage")');
      await op.waitForSelector('[data-testid=cost-day] rect');
      await op.waitForSelector('[data-testid=services] tr:has-text("primary")');
      const rows = await op.locator('[data-testid=services] tbody tr').allTextContents();
      expect(rows.find((r) => r.startsWith('primary'))).toContain('100.0%');
      expect(rows.find((r) => r.startsWith('backup'))).toContain('closed');
      await shot(op, 'costs');

      // The runs list: every run of the key's namespaces, newest first, with its cost.
      for (const _ of [1, 2]) expect((await api('POST', '/runs', 'olga', { workflow: 'refund-release', input: SAFE, wait: 20 })).body.status).toBe('completed');
      await op.click('nav >> text=Runs');
      await op.waitForFunction(() => document.querySelectorAll('[data-testid=runs] tr[data-run]').length === 4);
      await op.selectOption('select[name=status]', 'cancelled');
      await op.waitForFunction(() => document.querySelectorAll('[data-testid=runs] tr[data-run]').length === 0);
      await op.selectOption('select[name=status]', '');
      await op.waitForFunction(() => document.querySelectorAll('[data-testid=runs] tr[data-run]').length === 4);
      await shot(op, 'runs');

      // Older runs a page at a time: the newest 200 (refreshed), then "Load older runs" for the rest.
      await b.register('name: tick\nsteps:\n  - { id: a, kind: transform, expression: "input.n" }\n', undefined, { namespace: 'team-a' });
      for (let n = 0; n < 200; n++) await b.run('tick', { n }, { namespace: 'team-a' });
      // A fresh page holds the newest 200 (the open one would also keep the 4 it had loaded).
      await op.reload();
      await op.waitForFunction(() => document.querySelectorAll('[data-testid=runs] tr[data-run]').length === 200);
      const older = await op.$$eval('[data-testid=runs] tr[data-run]', (rows) => rows.slice(-1).map((r) => r.getAttribute('data-run')));
      await op.click('[data-testid=older]');
      await op.waitForFunction(() => document.querySelectorAll('[data-testid=runs] tr[data-run]').length === 204);
      const all = await op.$$eval('[data-testid=runs] tr[data-run]', (rows) => rows.map((r) => r.getAttribute('data-run')));
      expect(new Set(all).size).toBe(204);
      expect(all.indexOf(older[0])).toBe(199);
      expect(await op.isVisible('[data-testid=older]')).toBe(false);
    } finally {
      await close();
    }
  }, 120_000);
});
