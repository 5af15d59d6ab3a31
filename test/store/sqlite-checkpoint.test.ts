/**
 * WAL checkpoints on a thread of their own (`sqlite: { checkpoint: 'thread' }`, what `baton
 * serve` and `baton worker` use): under a steady stream of writes the WAL still starts over
 * (instead of growing with every page written), a close leaves no WAL behind, and everything
 * written is there when the store is opened again.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Baton } from '../../src/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-ckpt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);

/** The WAL header's checkpoint sequence number (bytes 12-15): SQLite adds one each time the WAL starts over. */
function walGeneration(f: string): number | undefined {
  if (size(f) < 32) return undefined;
  const fd = openSync(f, 'r');
  try {
    const b = Buffer.alloc(16);
    readSync(fd, b, 0, 16, 0);
    return b.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

it('keeps the WAL small under continuous writes, and loses nothing on close', async () => {
  const baton = await Baton.open({ dir, sqlite: { checkpoint: 'thread', checkpointIntervalMs: 500, groupCommit: 'io' }, concurrency: 256 });
  const wal = join(dir, 'baton.db-wal');
  let runs = 0;
  const generations = new Set<number>();
  try {
    // Inputs large enough that the data written dwarfs a WAL that starts over.
    const v = await baton.register('name: fill\nsteps:\n  - { id: a, kind: transform, expression: "input.pad" }\n');
    const pad = 'x'.repeat(500);
    // Writes go on until enough has happened (at least 2 s; at most 20 s on a slow machine),
    // rather than for a fixed time whose yield depends on the machine.
    const start = Date.now();
    const enough = () => Date.now() - start >= 2000 && runs > 200 && generations.size >= 3;
    const sampler = setInterval(() => {
      const g = walGeneration(wal);
      if (g !== undefined) generations.add(g);
    }, 20);
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (!enough() && Date.now() - start < 20_000) {
        const r = await baton.run(v, { pad });
        expect(r.status).toBe('completed');
        runs++;
      }
    }));
    clearInterval(sampler);
  } finally {
    await baton.close();
  }
  expect(runs).toBeGreaterThan(200);
  // Checkpoints every 500 ms under a writer that never pauses: the WAL must have started over
  // several times (a WAL that never does grows with every page written).
  expect(generations.size).toBeGreaterThanOrEqual(3);
  expect(size(wal)).toBe(0);
  const again = await Baton.open({ dir, worker: false });
  try {
    expect((await again.listRuns({ status: ['completed'], limit: 100_000 })).length).toBe(runs);
  } finally {
    await again.close();
  }
});
