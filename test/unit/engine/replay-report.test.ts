/** The replay report's comparison (engine/replay.ts): JSON diffs and step changes, from records alone. */
import { describe, expect, it } from 'vitest';
import { buildReport, jsonDiff } from '../../../src/engine/replay.js';
import type { CompiledWorkflow } from '../../../src/spec/compile.js';
import type { RunRecord, StepRecord } from '../../../src/store/store.js';

const wf = (ids: string[]) => ({ order: ids, steps: new Map(ids.map((id) => [id, {}])) }) as unknown as CompiledWorkflow;
const run = (id: string, versionId: string, output: unknown): RunRecord =>
  ({ id, versionId, workflow: 'w', status: 'completed', input: {}, output, createdAt: 0, updatedAt: 0, cost: 0, namespace: 'default', priority: 0, retries: 0 });
const row = (runId: string, key: string, status: StepRecord['status'], output?: unknown): StepRecord =>
  ({ runId, key, stepId: key, status, attempt: 1, dueAt: 0, pendingDeps: 0, liveDeps: 0, output });

describe('jsonDiff', () => {
  it('points at what changed, by JSON Pointer, and nothing for equal values whatever their key order', () => {
    expect(jsonDiff({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toEqual([]);
    expect(jsonDiff({ a: 1, b: { c: [1, 2], 'x/y': 0 } }, { a: 2, b: { c: [1, 3], 'x/y': 1 }, d: true })).toEqual([
      { path: '/a', before: 1, after: 2 }, { path: '/b/c/1', before: 2, after: 3 }, { path: '/b/x~1y', before: 0, after: 1 }, { path: '/d', before: null, after: true },
    ]);
    expect(jsonDiff([1], [1, 2])).toEqual([{ path: '', before: [1], after: [1, 2] }]);
    expect(jsonDiff('a', 'b')).toEqual([{ path: '', before: 'a', after: 'b' }]);
  });
});

describe('buildReport', () => {
  it('names decisions that flipped either way', () => {
    const r = buildReport({
      original: run('r1', 'w@1', 1), replay: run('replay_1', 'w@2', 2), before: wf(['a', 'b', 'c']), after: wf(['a', 'b', 'c']),
      beforeRows: [row('r1', 'a', 'succeeded', 1), row('r1', 'b', 'skipped'), row('r1', 'c', 'succeeded', 'x')],
      afterRows: [row('replay_1', 'a', 'succeeded', 1), row('replay_1', 'b', 'succeeded', 5), row('replay_1', 'c', 'skipped')],
      sources: new Map([['a', 'recorded'], ['b', 'evaluated']]), live: false,
    });
    expect(r.steps.map((s) => [s.step, s.change, s.source ?? null])).toEqual([['a', 'same', 'recorded'], ['b', 'ran_now', 'evaluated'], ['c', 'skipped_now', null]]);
    expect(r.summary_line).toBe('1 step same, 1 skipped now (c), 1 ran now (b); output differs');
    expect(r.output.diff).toEqual([{ path: '', before: 1, after: 2 }]);
  });
});
