import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LiveView } from '../../../src/cli/live-view.js';

function sink() {
  let text = '';
  const s = new Writable({ write(chunk, _enc, cb) { text += chunk.toString(); cb(); } }) as unknown as NodeJS.WriteStream;
  return { s, text: () => text };
}

const ev = (key: string, status: 'running' | 'succeeded' | 'failed' | 'waiting', extra = {}) => ({ runId: 'run_1', key, stepId: key.replace(/\[\d+\]$/, ''), status, attempt: 1, at: Date.now(), ...extra });

describe('live view', () => {
  it('prints one plain line per change when not a terminal', () => {
    const o = sink();
    const v = new LiveView(o.s, 'flow', ['a', 'm'], false);
    v.start('run_1');
    v.update(ev('a', 'running'));
    v.update(ev('a', 'succeeded', { durationMs: 12 }));
    v.update(ev('m', 'waiting', { items: 2 }));
    v.update(ev('m[0]', 'succeeded'));
    v.update(ev('m', 'failed', { error: { code: 'X', message: 'bad item', retryable: false } }));
    v.stop();
    const lines = o.text().trim().split('\n');
    expect(lines[0]).toBe('flow run_1');
    expect(lines).toContain('  ✓ a succeeded 12ms');
    expect(lines).toContain('  ◷ m item 0 succeeded');
    expect(lines.at(-1)).toBe('  ✗ m failed — bad item');
    expect(o.text()).not.toMatch(/\x1b\[/);
  });

  it('redraws the block in place on a terminal', () => {
    const o = sink();
    const v = new LiveView(o.s, 'flow', ['a', 'b'], true);
    v.start('run_1');
    v.update(ev('a', 'running'));
    v.update(ev('a', 'succeeded', { durationMs: 5 }));
    v.stop();
    // Cursor moves up over the two step lines and clears each before rewriting it.
    expect(o.text()).toContain('\x1b[2A');
    expect(o.text()).toContain('\x1b[2K');
    const last = o.text().split('\x1b[2A').at(-1)!;
    expect(last).toMatch(/✓.*a.*succeeded/);
    expect(last).toMatch(/○.*b.*pending/);
  });
});
