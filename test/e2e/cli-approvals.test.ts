/**
 * Approvals as a user does them from a shell: `baton run` of the refund example in one process
 * (it waits at the approval), `baton approvals list` and `baton approve` in others, on one
 * embedded store. The run process finishes with the approver's corrected amount.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, ensureBuilt, root, runBaton } from '../helpers/cli.js';

const example = join(root, 'examples/approvals');
let dir: string;

const baton = (args: string[]) => runBaton(dir, args);

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-cli-approvals-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton approvals', () => {
  it('list shows the waiting approval; a bad answer is refused (exit 2); approve lets the waiting `baton run` finish', async () => {
    const run = spawn(process.execPath, [bin, 'run', join(example, 'refund.yaml'), '-i', `@${join(example, 'risky.json')}`, '--json', '--db', 'store'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let err = '';
    run.stdout.on('data', (d: Buffer) => (out += d.toString()));
    run.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => run.once('exit', (c) => r(c)));
    try {
      let list: Array<{ id: string; status: string; summary: string; run_id: string }> = [];
      const end = Date.now() + 60_000;
      while (list.length === 0) {
        if (Date.now() > end) throw new Error(`no approval appeared: ${err}`);
        const r = baton(['approvals', 'list', '--json', '--db', 'store']);
        expect(r.code).toBe(0);
        list = JSON.parse(r.out) as typeof list;
        if (list.length === 0) await new Promise((res) => setTimeout(res, 200));
      }
      expect(list[0]).toMatchObject({ status: 'pending', summary: 'Refund 420 for order A-1001? Fraud score 0.9.' });
      const text = baton(['approvals', 'list', '--db', 'store']);
      expect(text.out).toContain(list[0].id);

      const bad = baton(['approve', list[0].id, '--data', '{"amount": "lots"}', '--db', 'store']);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/error\[BATON_APPROVAL_FORM\]: .*\/amount must be number/);

      const ok = baton(['approve', list[0].id, '--data', '{"amount": 400}', '--reason', 'checked with the customer', '--as', 'finance-lead', '--db', 'store']);
      expect(ok.code).toBe(0);
      expect(ok.out).toContain(`approved ${list[0].id}`);
      const again = baton(['reject', list[0].id, '--reason', 'too late', '--db', 'store']);
      expect(again.code).toBe(2);
      expect(again.err).toContain('error[BATON_APPROVAL_CLOSED]');

      expect(await exited).toBe(0);
      const result = JSON.parse(out) as { status: string; output: Record<string, unknown> };
      expect(result.status).toBe('completed');
      expect(result.output).toMatchObject({ released: true, amount: 400, decided_by: 'finance-lead' });
      const shown = JSON.parse(baton(['approvals', 'show', list[0].id, '--db', 'store']).out) as { status: string; answer: Record<string, unknown> };
      expect(shown).toMatchObject({ status: 'approved', answer: { decision: 'approve', amount: 400, reason: 'checked with the customer' } });
      expect(JSON.parse(baton(['approvals', 'list', '--json', '--db', 'store']).out)).toEqual([]);
    } finally {
      if (run.exitCode === null) run.kill('SIGKILL');
    }
  }, 120_000);
});
