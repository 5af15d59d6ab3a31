import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');
let dir: string;

function baton(args: string[], opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: opts.cwd ?? dir, encoding: 'utf8', input: opts.input, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts `baton args…` and SIGKILLs it (like a crash) once it has printed its run id. */
function killAfterRunStarts(args: string[]): Promise<NodeJS.Signals | null> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (d: Buffer) => {
      if (/run_[0-9a-z]+/.test(d.toString())) setTimeout(() => p.kill('SIGKILL'), 100);
    });
    p.on('error', rej);
    p.on('exit', (_code, signal) => res(signal));
  });
}

beforeAll(() => {
  // The CLI runs from dist/ exactly as an installed package would.
  if (!existsSync(join(root, 'dist/cli/main.js'))) {
    const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
    if (b.status !== 0) throw new Error('build failed');
  }
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
    expect(res.output).toMatchObject({ ticket: 'T-1042', intent: { label: 'billing' }, articles: ['kb-101', 'kb-102', 'kb-103'], route: { queue: 'humans' } });
    expect(res.output.reply).toContain('[1] Refunds for duplicate charges');
  });

  it('prints plain progress lines when output is not a terminal, then the result and run id', () => {
    const r = baton(['run', join(root, 'examples/support/triage.yaml'), '--input', join(root, 'examples/support/ticket.json'), '--db', join(dir, 'store')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/✓ intent succeeded/);
    expect(r.out).toMatch(/✓ citations succeeded/);
    expect(r.out).toMatch(/✓ completed in .* · run run_/);
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
    expect(await killAfterRunStarts(['run', 'evt.yaml', '--input', '{"order":"o1"}', '--db', join(dir, 'store5')])).toBe('SIGKILL');
    const none = baton(['event', 'paid', 'o2', '--db', join(dir, 'store5')]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/BATON_SIGNAL_NO_TARGET/);
    const ev = baton(['event', 'paid', 'o1', '--data', '{"amount":3}', '--db', join(dir, 'store5')]);
    expect(ev.out).toMatch(/delivered to 1 waiting step/);
    const r = baton(['resume', '--db', join(dir, 'store5')]);
    expect(r.out).toMatch(/1 completed/);
  });
});
