/**
 * Governance from the command line, in real separate processes on one SQLite store, with the
 * fake vendor on a real socket: a run pinned to its model survives a crash and a config change
 * (the process that finishes it has another model configured), stages and rollback, diff,
 * service status with who and why, lineage, and policies in `baton validate`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeVendor } from '../../src/testing/fake-vendor.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/baton.js');
let dir: string;
let vendor: FakeVendor;

/** Runs the CLI without blocking this process: the fake vendor answering its calls lives here. */
function baton(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', GOV_KEY: 'sk-secret' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('close', (code) => res({ code, out, err }));
  });
}

const config = (model: string, version: string, extra = '') => `
services:
  chat: { provider: openai, model: ${model}, version: "${version}", endpoint: "${vendor.url}/v1", credential: env:GOV_KEY, data_residency: us, retry: { max_attempts: 1 } }
  chat-eu: { provider: openai, model: eu-model, endpoint: "${vendor.url}/v1", data_residency: eu }
${extra}`;

const FLOW = `name: flow
steps:
  - { id: hold, kind: wait, event: go, key: "input.k" }
  - id: ask
    kind: model
    service: chat
    needs: [hold]
    prompt: |
      Hello {{ input.k }}
`;

beforeAll(async () => {
  // The CLI runs from dist/, rebuilt so that it is this source's.
  const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('build failed');
  dir = mkdtempSync(join(tmpdir(), 'baton-gov-cli-'));
  vendor = await new FakeVendor().start();
  vendor.model('*', { reply: (r) => `answer from ${r.model}` });
}, 120_000);
afterAll(async () => {
  await vendor?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('governance CLI', () => {
  it('a run crashed while waiting finishes, in a process with another model configured, on the model it was pinned to', async () => {
    writeFileSync(join(dir, 'baton.config.yaml'), config('model-a', '1'));
    writeFileSync(join(dir, 'flow.yaml'), FLOW);
    // Process 1 starts the run and is killed while the run waits.
    const p = spawn(process.execPath, [bin, 'run', 'flow.yaml', '--input', '{"k":"x"}', '--id', 'run_pinned', '--json'], { cwd: dir, stdio: 'ignore', env: { ...process.env, GOV_KEY: 'sk-secret' } });
    let waiting = false;
    for (let i = 0; i < 100 && !waiting; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const show = (await baton(['runs', 'show', 'run_pinned', '--json']));
      waiting = show.code === 0 && JSON.parse(show.out).steps.some((s: { key: string; status: string }) => s.key === 'hold' && s.status === 'waiting');
    }
    expect(waiting).toBe(true);
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));

    // The config changes the model behind "chat"; a server with a worker started now (process 2;
    // `baton worker` on SQLite exits when idle) finishes the run once another process (3)
    // delivers the event.
    writeFileSync(join(dir, 'baton.config.yaml'), config('model-b', '2'));
    const worker = spawn(process.execPath, [bin, 'serve', '--port', '0'], { cwd: dir, stdio: 'ignore', env: { ...process.env, GOV_KEY: 'sk-secret' } });
    try {
      expect((await baton(['event', 'go', 'x', '--data', '{}'])).code).toBe(0);
      let status = '';
      for (let i = 0; i < 150 && status !== 'completed' && status !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 200));
        status = JSON.parse((await baton(['runs', 'show', 'run_pinned', '--json'])).out).run.status;
      }
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    }
    const run = JSON.parse((await baton(['runs', 'show', 'run_pinned', '--json'])).out);
    expect(run.run.status).toBe('completed');
    expect(run.run.output).toBe('answer from model-a');
    expect(vendor.requests('model-a')).toHaveLength(1);
    expect(vendor.requests('model-b')).toHaveLength(0);
    expect(run.model_calls.map((c: { model: string; version: string }) => `${c.model}@${c.version}`)).toEqual(['model-a@1']);

    // A new run takes the configuration in force now.
    writeFileSync(join(dir, 'now.yaml'), 'name: now\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: hi }\n');
    const freshRun = (await baton(['run', 'now.yaml', '--json']));
    const fresh = JSON.parse(freshRun.out);
    expect(fresh.error).toBeNull();
    expect(fresh.output).toBe('answer from model-b');

    // Lineage: which runs called chat version 1.
    const lin = (await baton(['lineage', '--service', 'chat', '--version', '1', '--json']));
    expect(lin.code).toBe(0);
    expect(JSON.parse(lin.out).map((l: { runId: string }) => l.runId)).toEqual(['run_pinned']);
    expect((await baton(['lineage', '--service', 'chat'])).out).toMatch(/run_pinned .*flow@/);
  }, 240_000);

  it('promotes, diffs, rolls back, and starts name@production', async () => {
    writeFileSync(join(dir, 'staged.yaml'), 'name: staged\nsteps:\n  - { id: a, kind: transform, expression: "\'one\'" }\n');
    const v1 = (await baton(['register', 'staged.yaml'])).out.trim();
    writeFileSync(join(dir, 'staged.yaml'), 'name: staged\nsteps:\n  - { id: a, kind: transform, expression: "\'two\'" }\n  - { id: b, kind: transform, expression: "steps.a.output" }\n');
    const v2 = (await baton(['register', 'staged.yaml'])).out.trim();
    expect(v1).toMatch(/^staged@[0-9a-f]{16}$/);
    expect(v2).not.toBe(v1);

    const empty = (await baton(['run', 'staged@production', '--json']));
    expect(empty.code).toBe(2);
    expect(empty.err).toMatch(/BATON_STAGE_EMPTY/);
    expect((await baton(['workflows', 'promote', v2, '--stage', 'production', '--by', 'alice', '--reason', 'release'])).code).toBe(0);
    expect(JSON.parse((await baton(['run', 'staged@production', '--json'])).out).output).toBe('two');
    expect((await baton(['workflows', 'promote', v1, '--stage', 'production', '--by', 'bob', '--reason', 'rollback'])).code).toBe(0);
    expect(JSON.parse((await baton(['run', 'staged@production', '--json'])).out).output).toBe('one');
    expect(JSON.parse((await baton(['run', 'staged', '--json'])).out).output).toBe('two');

    const history = (await baton(['workflows', 'history', 'staged'])).out;
    expect(history).toMatch(new RegExp(`production +${v2} +alice +release`));
    expect(history).toMatch(new RegExp(`production +${v1} +bob +rollback`));
    expect((await baton(['workflows', 'list', 'staged'])).out).toMatch(new RegExp(`${v1} +1 +production`));

    const diff = (await baton(['workflows', 'diff', v1, v2]));
    expect(diff.code).toBe(0);
    expect(diff.out).toContain(`--- ${v1}`);
    expect(diff.out).toContain(`~ step a (transform)\n    expression: "'one'" → "'two'"`);
    expect(diff.out).toContain('+ step b (transform)');
    expect((await baton(['workflows', 'promote', v1, '--stage', 'prod'])).code).toBe(2);
  }, 180_000);

  it('records service status with who and why; a blocked service refuses runs with a clear message', async () => {
    expect((await baton(['services', 'set-status', 'chat', 'blocked'])).code).toBe(2);
    const set = (await baton(['services', 'set-status', 'chat', 'blocked', '--reason', 'vendor recall', '--by', 'dana']));
    expect(set.code).toBe(0);
    expect((await baton(['services'])).out).toMatch(/chat .*blocked \(vendor recall; by dana\)/);
    expect((await baton(['services', 'history', 'chat'])).out).toMatch(/chat +blocked +dana +vendor recall/);
    const refused = (await baton(['run', 'now.yaml', '--json']));
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/BATON_DOC_INVALID|BATON_SERVICE_BLOCKED/);
    expect(refused.err).toMatch(/"chat" is blocked.*vendor recall.*dana/);
    expect((await baton(['services', 'set-status', 'chat', 'approved', '--by', 'dana'])).code).toBe(0);
    expect((await baton(['run', 'now.yaml', '--json'])).code).toBe(0);
  }, 120_000);

  it('checks policies in baton validate with file:line:column, the policy id and message', async () => {
    writeFileSync(join(dir, 'baton.config.yaml'), config('model-b', '2', `policies:
  - id: pii-eu-only
    when: { workflow_tags: [pii] }
    require: { service: { data_residency: eu } }
    message: PII workflows must stay in the EU
  - id: high-risk-needs-approval
    when: { step_risk: high }
    require: { downstream_kind: approval }
`));
    writeFileSync(join(dir, 'pii.yaml'), 'name: pii\ntags: [pii]\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: hi, risk: high }\n');
    const bad = (await baton(['validate', 'pii.yaml']));
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('pii.yaml:4:38: policy "pii-eu-only" (PII workflows must stay in the EU): step "ask" may call service "chat", whose data_residency is "us"');
    expect(bad.err).toMatch(/pii\.yaml:4:\d+: policy "high-risk-needs-approval": step "ask" has risk high/);
    writeFileSync(join(dir, 'pii.yaml'), 'name: pii\ntags: [pii]\nsteps:\n  - { id: ask, kind: model, service: chat-eu, prompt: hi, risk: medium }\n');
    expect((await baton(['validate', 'pii.yaml'])).code).toBe(0);
    // Registration checks them too.
    writeFileSync(join(dir, 'pii2.yaml'), 'name: pii2\ntags: [pii]\nsteps:\n  - { id: ask, kind: model, service: chat, prompt: hi }\n');
    const reg = (await baton(['register', 'pii2.yaml']));
    expect(reg.code).toBe(2);
    expect(reg.err).toMatch(/pii2\.yaml:4:\d+: policy "pii-eu-only"/);
  }, 120_000);
});
