/**
 * Command-line inputs that used to be accepted silently or to crash with a stack trace: each is
 * now `error[BATON_…]` with exit 2 (or, for a closed stdout, a quiet exit).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { bin, ensureBuilt, runBaton } from '../helpers/cli.js';

let dir: string;

const baton = (args: string[]) => runBaton(dir, args);

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'baton-cli-inputs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('baton CLI inputs', () => {
  it('refuses a --db that is a file (the baton.db `baton serve` prints), naming the folder', () => {
    expect(baton(['runs', 'list', '--db', 'store']).code).toBe(0);
    const r = baton(['runs', 'list', '--db', join('store', 'baton.db')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error\[BATON_USAGE\]: the store .* is a folder .* is a file\. Give the folder that holds it: .*store\n$/);
    const under = baton(['runs', 'list', '--db', join('store', 'baton.db', 'sub')]);
    expect(under.code).toBe(2);
    expect(under.err).toMatch(/^error\[BATON_USAGE\]: .* a part of .* is a file\.\n$/);
  });

  it('refuses a run status that does not exist, listing the valid ones (and a --timeout that is no duration)', () => {
    const r = baton(['runs', 'list', '--db', 'store', '--status', 'failed,complete']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('error[BATON_USAGE]: run status must be one of pending, queued, running, waiting, paused, completed, failed, cancelled, got "complete".\n');
    expect(baton(['runs', 'list', '--db', 'store', '--status', 'failed,completed'])).toMatchObject({ code: 0, err: '' });
    const t = baton(['resume', '--db', 'store', '--timeout', '5 minutes']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/^error\[BATON_USAGE\]: --timeout "5 minutes" is not a duration/);
    // Approvals too, naming `all`, which the command takes beside the statuses.
    const a = baton(['approvals', 'list', '--db', 'store', '--status', 'bogus']);
    expect(a.code).toBe(2);
    expect(a.err).toContain('or all; got "bogus"');
    expect(baton(['approvals', 'list', '--db', 'store', '--status', 'all'])).toMatchObject({ code: 0, err: '' });
    // --data that is not JSON is named as --data (it was reported as a bad run --input).
    const d = baton(['event', 'paid', 'k1', '--db', 'store', '--data', 'notjson']);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/^error\[BATON_USAGE\]: --data: it is neither JSON nor a readable file/);
  });

  it('refuses a key namespace no run can be in, hinting that several are separate values', async () => {
    const comma = baton(['keys', 'create', '--db', 'keys', '--role', 'operator', '--namespace', 'team-a,team-b']);
    expect(comma.code).toBe(2);
    expect(comma.err).toMatch(/^error\[BATON_USAGE\]: a key's namespace must be .*; got "team-a,team-b"\. Several namespaces are separate values: --namespace team-a team-b\.\n$/);
    expect(baton(['keys', 'create', '--db', 'keys', '--role', 'operator', '--namespace', 'team a']).code).toBe(2);
    expect(baton(['keys', 'list', '--db', 'keys']).out).toBe(''); // nothing was created
    const two = baton(['keys', 'create', '--db', 'keys', '--role', 'operator', '--namespace', 'team-a', 'team-b']);
    expect(two.code).toBe(0);
    // A key stored before namespaces were checked lists its one malformed namespace quoted.
    const store = new SqliteStore(join(dir, 'keys', 'baton.db'));
    await store.putApiKey({ id: '0123456789ab', hash: '00'.repeat(32), name: 'old', role: 'viewer', namespaces: ['team-a,team-b', 'team-c'], ratePerMinute: 600, createdAt: Date.now() });
    await store.close();
    const list = baton(['keys', 'list', '--db', 'keys']).out;
    expect(list).toMatch(/ operator {2}team-a,team-b {3}/);
    expect(list).toMatch(/0123456789ab {2}viewer {4}"team-a,team-b",team-c /);
  });

  it('exits quietly when its stdout is closed early (`| head -1`)', async () => {
    for (const args of [['runs', 'list', '--db', 'store'], ['--help']]) {
      const p = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.destroy(); // the reader is gone before the first line: every write fails with EPIPE
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((res) => p.on('close', res));
      expect(err, args.join(' ')).toBe('');
      expect(code, args.join(' ')).toBe(0);
    }
  });
});
