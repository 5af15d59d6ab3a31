/** Plain-text tables for `baton runs list` and `baton runs show`. */
import type { RunResult } from '../engine/engine.js';
import type { EventRecord, RunRecord, StepRecord } from '../store/store.js';
import { formatDuration } from '../util/duration.js';

const w = (s: string) => process.stdout.write(s);

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

function time(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function printRunList(list: RunRecord[]): void {
  if (list.length === 0) {
    w('no runs\n');
    return;
  }
  const rows = [['RUN', 'WORKFLOW', 'STATUS', 'STARTED', 'DURATION']];
  for (const r of list) rows.push([r.id, r.workflow, r.status, time(r.createdAt), r.finishedAt ? formatDuration(r.finishedAt - r.createdAt) : '']);
  w(`${table(rows)}\n`);
}

function brief(v: unknown, max = 100): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function printRunDetail(run: RunResult, steps: StepRecord[], events: EventRecord[]): void {
  w(`run       ${run.id}\n`);
  w(`workflow  ${run.versionId}\n`);
  w(`status    ${run.status}${run.finishedAt ? ` in ${formatDuration(run.finishedAt - run.createdAt)}` : ''}\n`);
  w(`started   ${time(run.createdAt)}\n`);
  if (run.parentRunId) w(`parent    ${run.parentRunId} (step ${run.parentStepKey})\n`);
  w(`input     ${brief(run.input, 200)}\n`);
  if (run.error) w(`error     ${run.error.code}: ${run.error.message}\n`);
  w('\nSTEPS\n');
  const rows = [['STEP', 'STATUS', 'ATTEMPT', 'DURATION', 'OUTPUT / ERROR']];
  for (const s of steps) {
    const dur = s.startedAt && s.finishedAt ? formatDuration(s.finishedAt - s.startedAt) : '';
    rows.push([s.key, s.status, String(s.attempt), dur, s.error ? `${s.error.code}: ${s.error.message}` : brief(s.output)]);
  }
  w(`${table(rows)}\n\nEVENTS\n`);
  const t0 = events[0]?.at ?? run.createdAt;
  const erows = [['#', 'AT', 'EVENT', 'STEP', 'DATA']];
  for (const e of events) erows.push([String(e.id), `+${formatDuration(e.at - t0)}`, e.type, e.stepKey ?? '', brief(e.data, 90)]);
  w(`${table(erows)}\n`);
  if (run.status === 'completed') w(`\nOUTPUT\n${JSON.stringify(run.output ?? null, null, 2)}\n`);
}
