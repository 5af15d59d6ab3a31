import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBuilt, root } from '../helpers/cli.js';

let dir: string;

function baton(args: string[], opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: opts.cwd ?? dir, encoding: 'utf8', input: opts.input, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * Starts `baton args…` and SIGKILLs it (like a crash) once it has printed its run id, or, with
 * `parked`, once the store (`<db>/baton.db`) shows that step waiting: the id is printed before
 * the first steps have run, and a kill before the wait commits would leave nothing to deliver to.
 */
function killAfterRunStarts(args: string[], parked?: { db: string; step: string }): Promise<NodeJS.Signals | null> {
  const waiting = (): boolean => {
    if (!existsSync(join(parked!.db, 'baton.db'))) return false;
    const db = new Database(join(parked!.db, 'baton.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT status FROM steps WHERE key = ?').get(parked!.step) as { status?: string } | undefined)?.status === 'waiting';
    } catch {
      return false; // not created yet
    } finally {
      db.close();
    }
  };
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = false;
    p.stdout.on('data', (d: Buffer) => {
      if (seen || !/run_[0-9a-z]+/.test(d.toString())) return;
      seen = true;
      if (!parked) return void setTimeout(() => p.kill('SIGKILL'), 100);
      const poll = setInterval(() => {
        if (!waiting()) return;
        clearInterval(poll);
        p.kill('SIGKILL');
      }, 20);
      p.on('exit', () => clearInterval(poll));
    });
    p.on('error', rej);
    p.on('exit', (_code, signal) => res(signal));
  });
}

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton CLI', () => {
  it('runs the support example offline and prints its result (--json for machines)', () => {
    const r = baton(['run', join(root, 'examples/support/triage.yaml'), '--input', join(root, 'examples/support/ticket.json'), '--json', '--db', join(dir, 'store')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out);
    expect(res.status).toBe('completed');
    expect(res.run_id).toMatch(/^run_/);
    expect(res.output).toMatchObject({ ticket: 'T-1042', intent: { label: 'billing' }, sentiment: { label: 'negative' }, articles: ['Refunds for duplicate charges', 'Understanding your invoice'], route: { queue: 'humans' } });
    expect(res.output.reply).toContain('[1] Refunds for duplicate charges');
    expect(res.cost).toBeGreaterThan(0);
  });

  it('prints plain progress lines when output is not a terminal, then the result and run id', () => {
    const r = baton(['run', join(root, 'examples/support/triage.yaml'), '--input', join(root, 'examples/support/ticket.json'), '--db', join(dir, 'store')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/✓ intent succeeded/);
    expect(r.out).toMatch(/✓ articles succeeded/);
    expect(r.out).toMatch(/✓ completed in .* · \$0\.000002 · run run_/);
    expect(r.out).not.toMatch(/\x1b\[/);
  });

  it('lists and shows runs with their history', () => {
    const list = baton(['runs', 'list', '--db', join(dir, 'store')]);
    expect(list.code).toBe(0);
    const id = /run_[0-9a-z]+/.exec(list.out)![0];
    expect(list.out).toMatch(/support-triage\s+completed/);
    const show = baton(['runs', 'show', id, '--db', join(dir, 'store')]);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/status\s+completed/);
    expect(show.out).toMatch(/run\.created/);
    expect(show.out).toMatch(/step\.succeeded\s+reply/);
    const json = JSON.parse(baton(['runs', 'show', id, '--json', '--db', join(dir, 'store')]).out);
    expect(json.events.filter((e: { type: string }) => e.type === 'step.succeeded').length).toBe(json.steps.filter((s: { status: string }) => s.status === 'succeeded').length);
    const missing = baton(['runs', 'show', 'run_nope', '--db', join(dir, 'store')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/error\[BATON_RUN_NOT_FOUND\]/);
  });

  it('validates documents: every problem with file:line:column, exit 2', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'name: bad\nsteps:\n  - { id: a, kind: transfrom, expression: "1" }\n  - { id: b, kind: transform, expression: "steps.zzz.output" }\n');
    writeFileSync(join(dir, 'good.yaml'), 'name: good\nsteps:\n  - { id: a, kind: transform, expression: "1" }\n');
    const r = baton(['validate', 'bad.yaml', 'good.yaml']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('bad.yaml:3:20: unknown step kind "transfrom"');
    expect(r.err).toContain('bad.yaml:4:5: refers to steps.zzz, but there is no step with that id');
    expect(r.out).toContain('✓ good.yaml: valid');
    expect(baton(['validate', 'good.yaml']).code).toBe(0);
    expect(baton(['validate', join(root, 'examples/support/triage.yaml')]).code).toBe(0);
  });

  it('explains bad input without a stack trace', () => {
    const wf = join(root, 'examples/support/triage.yaml');
    const cases: Array<[string[], RegExp]> = [
      [['run', 'missing.yaml'], /error\[BATON_DOC_NOT_FOUND\]: Cannot read workflow file missing.yaml: no such file/],
      [['run', wf, '--input', '{"ticket": {"id": 1}}'], /error\[BATON_INPUT_INVALID\].*\/ticket\/id must be string/],
      [['run', wf, '--input', '{not json'], /error\[BATON_INPUT_PARSE\]/],
      [['run', wf, '--input', '@nope.json'], /error\[BATON_INPUT_PARSE\]: Cannot read the run input: cannot read nope.json: no such file/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [args, re] of cases) {
      const r = baton(args[0] === 'frobnicate' ? args : [...args, '--db', join(dir, 'store2')]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(re);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it('exits 1 when the run fails, naming the step', () => {
    writeFileSync(join(dir, 'fails.yaml'), 'name: fails\nsteps:\n  - { id: calc, kind: transform, expression: "input.x + 1" }\n');
    const r = baton(['run', 'fails.yaml', '--input', '{"x":"text"}', '--db', join(dir, 'store3')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✗ failed/);
    expect(r.out).toMatch(/step calc: Expression in step calc: expression failed/);
    expect(r.out).toMatch(/baton runs show run_/);
  });

  it('resumes unfinished runs after the process that started them died', async () => {
    writeFileSync(join(dir, 'slow.yaml'), 'name: slow\nsteps:\n  - { id: nap, kind: wait, duration: 2s }\n  - { id: done, kind: transform, expression: "\'done\'", needs: [nap] }\n');
    expect(await killAfterRunStarts(['run', 'slow.yaml', '--db', join(dir, 'store4')])).toBe('SIGKILL');
    const r = baton(['resume', '--db', join(dir, 'store4')]);
    expect(r.out).toMatch(/resuming 1 unfinished run/);
    expect(r.out).toMatch(/1 completed/);
    expect(r.code).toBe(0);
    expect(baton(['resume', '--db', join(dir, 'store4')]).out).toMatch(/nothing to resume/);
  });

  it('delivers events to waiting runs', async () => {
    writeFileSync(join(dir, 'evt.yaml'), 'name: evt\nsteps:\n  - { id: paid, kind: wait, event: paid, key: "input.order" }\n');
    expect(await killAfterRunStarts(['run', 'evt.yaml', '--input', '{"order":"o1"}', '--db', join(dir, 'store5')], { db: join(dir, 'store5'), step: 'paid' })).toBe('SIGKILL');
    const none = baton(['event', 'paid', 'o2', '--db', join(dir, 'store5')]);
    expect(none.code).toBe(0);
    expect(none.out).toMatch(/no step is waiting: buffered/);
    const ev = baton(['event', 'paid', 'o1', '--data', '{"amount":3}', '--db', join(dir, 'store5')]);
    expect(ev.out).toMatch(/delivered to 1 waiting step/);
    const r = baton(['resume', '--db', join(dir, 'store5')]);
    expect(r.out).toMatch(/1 completed/);
  });

  it('shows model calls and cost per run, totals them with `baton cost`, and lists services', () => {
    const store = join(dir, 'store-cost');
    const run = baton(['run', join(root, 'examples/support/triage.yaml'), '--input', join(root, 'examples/support/ticket.json'), '--json', '--db', store]);
    const id = JSON.parse(run.out).run_id as string;
    const show = baton(['runs', 'show', id, '--db', store]);
    expect(show.out).toMatch(/cost\s+\$0\.000002 · 4 model calls/);
    expect(show.out).toMatch(/MODEL CALLS[\s\S]*intent#1\s+intent\s+support-intents@1\s+ok/);
    const cost = baton(['cost', '--db', store]);
    expect(cost.code).toBe(0);
    expect(cost.out).toMatch(/^intent\s+1\s+0\s+0\s+\d+\s+\d+\s+0\s+0\.000002/m);
    expect(cost.out).toMatch(/^total\s+4\s+0/m);
    expect(baton(['cost', '--by', 'model', '--db', store]).out).toMatch(/local-classifier\/support-intents@1/);
    expect(baton(['cost', '--by', 'colour', '--db', store]).err).toMatch(/error\[BATON_USAGE\]: --by must be service, workflow, run or model/);
    const services = baton(['services', '--config', join(root, 'examples/support/baton.config.yaml')]);
    expect(services.out).toMatch(/^help-articles\s+local-retrieval\s+bm25\s+approved\s+support-platform/m);
  });

  it('validates model steps against the configured services: unknown and blocked are errors, deprecated a warning', () => {
    writeFileSync(join(dir, 'baton.config.yaml'), [
      'services:',
      '  classifier: { provider: local-classifier, options: { examples: { a: [x], b: [y] } } }',
      '  old-llm: { provider: openai, model: m, status: deprecated, status_reason: replaced by classifier }',
      '  banned: { provider: openai, model: m, status: blocked }',
    ].join('\n'));
    writeFileSync(join(dir, 'gov.yaml'), 'name: gov\nsteps:\n  - { id: a, kind: model, service: clasifier }\n  - { id: b, kind: model, service: old-llm, fallback: [banned] }\n');
    const bad = baton(['validate', 'gov.yaml']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('gov.yaml:3:36: names service "clasifier", which is not configured (did you mean "classifier"?)');
    expect(bad.err).toContain('gov.yaml:4:56: service "banned" is blocked; choose an approved service.');
    expect(bad.err).toContain('gov.yaml:4:36: warning: service "old-llm" is deprecated (replaced by classifier)');
    expect(bad.err).toContain('✗ gov.yaml: 2 problems, 1 warning');
    writeFileSync(join(dir, 'ok.yaml'), 'name: ok\nsteps:\n  - { id: a, kind: model, service: old-llm }\n');
    const ok = baton(['validate', 'ok.yaml']);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/✓ ok.yaml: valid \(ok, 1 steps, 1 warning\)/);
    writeFileSync(join(dir, 'baton.config.yaml'), 'services:\n  x: { provider: openai, credential: sk-live-abc }\n');
    const secret = baton(['validate', 'ok.yaml']);
    expect(secret.code).toBe(2);
    expect(secret.err).toMatch(/error\[BATON_CONFIG_INVALID\].*services\.x\.credential: write `env:NAME` or `\{ env: NAME \}`; never the secret itself/s);
    rmSync(join(dir, 'baton.config.yaml'));
  });
});

