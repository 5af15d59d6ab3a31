/**
 * `baton runs replay` as a user runs it: separate `baton` processes on one embedded store, a
 * model service answered by the fake vendor and an HTTP service counting its calls, both over
 * real sockets in this process (so the CLI is spawned asynchronously, never blocking them).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';
import { FakeVendor } from '../../src/testing/fake-vendor.js';
import { until } from '../helpers/wait.js';
import { countingServer, triage } from '../helpers/replay.js';
import { bin, ensureBuilt } from '../helpers/cli.js';

let dir: string;
let vendor: FakeVendor;
let srv: Awaited<ReturnType<typeof countingServer>>;

function baton(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [bin, ...args, '--db', 'store'], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } }, (e, out, err) => {
      res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err });
    });
  });
}

beforeAll(async () => {
  ensureBuilt();
  vendor = await new FakeVendor().start();
  vendor.model('gpt-x', { reply: () => ({ label: 'billing', score: 0.9 }) });
  srv = await countingServer();
  dir = mkdtempSync(join(tmpdir(), 'baton-cli-replay-'));
  writeFileSync(join(dir, 'baton.config.yaml'), `services:\n  llm: { provider: openai, model: gpt-x, endpoint: "${vendor.url}/v1" }\n`);
  writeFileSync(join(dir, 'triage.yaml'), triage(srv.url));
  writeFileSync(join(dir, 'triage-v2.yaml'), triage(srv.url, { threshold: 0.95 }));
});
afterAll(async () => {
  await vendor?.close();
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('baton runs replay', () => {
  it('replays a recorded run against a new version without calling anything, prints what differs, and lists the replay as one', async () => {
    const first = await baton(['run', 'triage.yaml', '--json', '--input', '{"customer":"c1","text":"charged twice"}']);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    const run = JSON.parse(first.out) as { run_id: string; status: string };
    expect(run.status).toBe('completed');
    expect(vendor.calls()).toBe(1);
    expect(srv.calls).toHaveLength(2);
    vendor.log.length = 0;
    srv.calls.length = 0;

    const reg = await baton(['register', 'triage-v2.yaml']);
    expect(reg.code).toBe(0);
    const v2 = reg.out.trim();

    const same = await baton(['runs', 'replay', run.run_id]);
    expect(same.err).toBe('');
    expect(same.code).toBe(0);
    expect(same.out).toContain('4 steps same; output same');

    const diff = await baton(['runs', 'replay', run.run_id, '--version', v2]);
    expect(diff.code).toBe(0);
    expect(diff.out).toMatch(new RegExp(`replay of ${run.run_id} as replay_\\w+ \\(triage@\\w+ → ${v2}\\): completed`));
    expect(diff.out).toMatch(/≠\s+decide\s+differs\s+evaluated\n\s+\/escalate: true → false/);
    expect(diff.out).toMatch(/↷\s+page\s+skipped now\s+was succeeded/);
    expect(diff.out).toContain('2 steps same, 1 differs (decide), 1 skipped now (page); output differs');

    const json = await baton(['runs', 'replay', run.run_id, '--version', 'triage', '--from', 'decide', '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.out) as { replay_run_id: string; steps: Array<{ step: string; source?: string }> };
    expect(report.steps.map((s) => `${s.step}:${s.source ?? '-'}`)).toEqual(['lookup:copied', 'classify:copied', 'decide:evaluated', 'page:-']);

    const typo = await baton(['runs', 'replay', run.run_id, '--from', 'decid']);
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/error\[BATON_REPLAY_STEP_UNKNOWN\]: .*no step "decid" \(did you mean "decide"\?\)/);

    writeFileSync(join(dir, 'triage-v3.yaml'), triage(srv.url, { prompt: 'Classify this ticket' }));
    const v3 = (await baton(['register', 'triage-v3.yaml'])).out.trim();
    const missing = await baton(['runs', 'replay', run.run_id, '--version', v3]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/error\[BATON_REPLAY_NO_RECORDING\]: .*step classify \(model\) has no recorded answer to reuse: its input differs.*--live/);

    // Nothing was called by any replay.

    expect(vendor.calls()).toBe(0);
    expect(srv.calls).toEqual([]);

    const list = await baton(['runs', 'list']);
    expect(list.code, list.err).toBe(0);
    expect(list.out).toMatch(/REPLAY OF/);
    expect(list.out).toMatch(new RegExp(`${report.replay_run_id}\\s+triage\\s+completed.*${run.run_id}`));
  }, 180_000); // ten CLI processes, each starting an engine, on a shared machine
  it('Ctrl-C during a replay cancels the replay run, saying why, and exits non-zero', async () => {
    // A run cancelled while it waited has no recorded answer for its wait: a live replay waits.
    const setup = await Baton.open({ dir: join(dir, 'store') });
    const v = await setup.register('name: hold\nsteps:\n  - { id: w, kind: wait, event: go, key: "input.k" }\n');
    const id = await setup.start(v, { k: 'x' });
    await until(async () => (await setup.getRun(id)).status === 'waiting' || undefined, 'the run waiting');
    await setup.cancel(id, 'to replay it');
    await setup.close();
    // Read from this process by an engine that runs nothing (a worker here would be one that
    // does not drive the replay).
    const look = await Baton.open({ dir: join(dir, 'store'), worker: false });
    try {
      const p = spawn(process.execPath, [bin, 'runs', 'replay', id, '--live', '--db', 'store'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
      const waiting = await until(async () => (await look.listRuns({ workflow: 'hold' })).find((r) => r.replayOf === id && r.status === 'waiting'), 'the replay run waiting').catch((e: Error) => {
        throw new Error(`${e.message}; baton runs replay wrote: ${err || '(nothing)'}`);
      });
      p.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'slow'>((r) => setTimeout(() => r('slow'), 10_000))]);
      expect(code).not.toBe('slow');
      expect(code).not.toBe(0);
      expect(err).toMatch(/BATON_REPLAY_INTERRUPTED/);
      expect(err).toContain('baton runs replay was interrupted (SIGINT)');
      // The replay run is ended, saying why, not left waiting with no process to drive it.
      expect((await look.getRun(waiting.id)).status).toBe('cancelled');
      expect((await look.getEvents(waiting.id)).find((e) => e.type === 'run.cancelled')?.data).toMatchObject({ reason: 'baton runs replay was interrupted (SIGINT)' });
    } finally {
      await look.close();
    }
  }, 60_000);
});
