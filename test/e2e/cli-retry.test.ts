/**
 * `baton runs retry` as a user runs it: separate `baton` processes on one embedded store, a
 * function module that fails until a file exists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runBaton } from '../helpers/cli.js';

let dir: string;

const baton = (args: string[]) => runBaton(dir, args);

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-cli-retry-'));
  writeFileSync(join(dir, 'fns.mjs'), `import { existsSync, appendFileSync } from 'node:fs';
export function load(rows) {
  appendFileSync('calls.txt', 'load\\n');
  if (!existsSync('warehouse-up')) throw new Error('warehouse offline');
  return rows * 2;
}
export function extract() {
  appendFileSync('calls.txt', 'extract\\n');
  return 21;
}
`);
  writeFileSync(join(dir, 'baton.config.yaml'), 'functions:\n  - ./fns.mjs\n');
  writeFileSync(join(dir, 'etl.yaml'), `name: etl
steps:
  - { id: extract, kind: function, function: extract }
  - { id: load, kind: function, function: load, input: "steps.extract.output" }
`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton runs retry', () => {
  it('retries a failed run to completion in this process; refuses unknown steps and finished runs with exit 2', () => {
    const first = baton(['run', 'etl.yaml', '--json', '--db', 'store']);
    expect(first.code).toBe(1);
    const failed = JSON.parse(first.out) as { run_id: string; status: string };
    expect(failed.status).toBe('failed');

    const typo = baton(['runs', 'retry', failed.run_id, '--from', 'lod', '--db', 'store']);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/error\[BATON_RETRY_STEP_UNKNOWN\]: .*no step "lod" \(did you mean "load"\?\)/);
    expect(typo.err).not.toMatch(/\n\s+at /);

    writeFileSync(join(dir, 'warehouse-up'), '');
    const ok = baton(['runs', 'retry', failed.run_id, '--db', 'store']);
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`retried ${failed.run_id}: running; re-running load`);
    expect(ok.out).toMatch(/✓ completed/);
    expect(ok.out).toContain('42');
    // extract ran once in all; load twice.
    expect(spawnSync('cat', ['calls.txt'], { cwd: dir, encoding: 'utf8' }).stdout.trim().split('\n')).toEqual(['extract', 'load', 'load']);

    const again = baton(['runs', 'retry', failed.run_id, '--db', 'store']);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/error\[BATON_RUN_NOT_RETRYABLE\]: Run .* is completed; only a failed or cancelled run can be retried/);

    const shown = baton(['runs', 'show', failed.run_id, '--json', '--db', 'store']);
    const events = (JSON.parse(shown.out) as { events: Array<{ type: string; data?: { by?: string } }> }).events;
    expect(events.find((e) => e.type === 'run.retried')?.data?.by).toMatch(/^cli/);
  });

  it('with --detach only puts the run back to work; `baton resume` then finishes it', () => {
    rmSync(join(dir, 'warehouse-up'), { force: true });
    const first = baton(['run', 'etl.yaml', '--json', '--db', 'store2']);
    const failed = JSON.parse(first.out) as { run_id: string };
    writeFileSync(join(dir, 'warehouse-up'), '');
    const detached = baton(['runs', 'retry', failed.run_id, '--from', 'extract', '--detach', '--json', '--db', 'store2']);
    expect(detached.code).toBe(0);
    expect(JSON.parse(detached.out)).toEqual({ run_id: failed.run_id, status: 'running', rerun: ['extract', 'load'] });
    const resumed = baton(['resume', '--db', 'store2']);
    expect(resumed.code).toBe(0);
    expect(resumed.out).toContain('1 completed');
  });
});
