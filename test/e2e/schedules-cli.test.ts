/**
 * Schedules from the command line, as a user meets them: `baton register` a workflow with a
 * cron trigger, `baton serve` fires it (a real process), `baton schedules list|pause|trigger`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;

function baton(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args, '--db', join(dir, 'store')], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-sched-cli-'));
  writeFileSync(join(dir, 'beat.yaml'), `name: beat
triggers:
  - schedule: { cron: "* * * * * *" }
    input: '{ "at": scheduled_at }'
steps:
  - { id: echo, kind: transform, expression: "input.at" }
`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton schedules', () => {
  it('registers, is fired by baton serve, lists, pauses and triggers', async () => {
    const reg = baton(['register', 'beat.yaml']);
    expect(reg.code).toBe(0);
    expect(reg.out).toMatch(/^beat@[0-9a-f]{16}\n$/);
    expect(reg.err).toMatch(/schedule beat~schedule:0: \* \* \* \* \* \* \(UTC\), next fire /);

    // `baton serve` fires it until at least two runs completed.
    const serve = spawn(process.execPath, [bin, 'serve', '--port', '0', '--db', join(dir, 'store')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const end = Date.now() + 20_000;
      for (;;) {
        const runs = baton(['runs', 'list', '--workflow', 'beat', '--json']);
        if (runs.code === 0 && (JSON.parse(runs.out) as Array<{ status: string }>).filter((r) => r.status === 'completed').length >= 2) break;
        if (Date.now() > end) throw new Error('baton serve fired no schedule');
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      serve.kill('SIGTERM');
      await new Promise((r) => (serve.exitCode !== null ? r(null) : serve.once('exit', r)));
    }

    const list = baton(['schedules', 'list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^SCHEDULE +CRON/);
    expect(list.out).toMatch(/beat~schedule:0 +\* \* \* \* \* \* +UTC +once .* sched_[0-9a-f]{12}_\d{8}T\d{6}000Z +active/);

    expect(baton(['schedules', 'pause', 'beat~schedule:0']).out).toBe('paused beat~schedule:0\n');
    const t = baton(['schedules', 'trigger', 'beat~schedule:0']);
    expect(t.code).toBe(0);
    const [row] = JSON.parse(baton(['schedules', 'list', '--json']).out);
    expect(row).toMatchObject({ id: 'beat~schedule:0', paused: true, lastRunId: t.out.trim() });
    expect(row.leaseOwner).toBeUndefined();
    expect(baton(['schedules', 'resume', 'beat~schedule:0']).out).toMatch(/^resumed, next fire \S+ beat~schedule:0\n$/);

    const bad = baton(['schedules', 'pause', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/error\[BATON_SCHEDULE_NOT_FOUND\]: No schedule with id "nope"/);
  }, 90_000); // a dozen CLI processes, each starting an engine (20 s on a quiet machine; 30 s was too tight under load)
});
