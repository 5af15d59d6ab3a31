/** Plain-text tables for `baton runs list`, `runs show`, `cost` and `services`. */
import type { RunResult } from '../engine/engine.js';
import type { ReplayReport, StepChange } from '../engine/replay.js';
import type { ServiceConfig } from '../services/config.js';
import type { CostLine, EventRecord, ModelCallRecord, RunRecord, ScheduleRecord, StepRecord } from '../store/store.js';
import { formatDuration } from '../util/duration.js';

const w = (s: string) => process.stdout.write(s);

export function table(rows: string[][]): string {
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
  // Replays (which call nothing and cost nothing) say what they replay; the column is there only when one is listed.
  const replays = list.some((r) => r.replayOf);
  const rows = [['RUN', 'WORKFLOW', 'STATUS', 'STARTED', 'DURATION', ...(replays ? ['REPLAY OF'] : [])]];
  for (const r of list) rows.push([r.id, r.workflow, r.status, time(r.createdAt), r.finishedAt ? formatDuration(r.finishedAt - r.createdAt) : '', ...(replays ? [r.replayOf ?? ''] : [])]);
  w(`${table(rows)}\n`);
}

/** `baton runs replay`: one line per step (what changed, and how the replay got it), the output, a summary. */
export function printReplay(r: ReplayReport): void {
  const mark: Record<StepChange, string> = { same: '=', differs: '≠', new: '+', removed: '-', skipped_now: '↷', ran_now: '↻' };
  const words: Record<StepChange, string> = { same: 'same', differs: 'differs', new: 'new step', removed: 'removed step', skipped_now: 'skipped now', ran_now: 'ran now' };
  const change = r.version_before === r.version_after ? r.version_after : `${r.version_before} → ${r.version_after}`;
  w(`replay of ${r.run_id} as ${r.replay_run_id} (${change}${r.from ? `, from ${r.from}` : ''}${r.live ? ', live' : ''}): ${r.status}\n`);
  const rows = r.steps.map((s) => {
    const how = s.change === 'skipped_now' ? `was ${s.before?.status}` : s.change === 'ran_now' ? 'was skipped' : s.source ?? s.after?.status ?? '';
    return [`  ${mark[s.change]}`, s.step, words[s.change], how];
  });
  for (const [i, line] of table([['', '', '', ''], ...rows]).split('\n').slice(1).entries()) {
    w(`${line}\n`);
    const s = r.steps[i];
    for (const d of s.diff ?? []) w(`      ${d.path || '(output)'}: ${brief(d.before, 60)} → ${brief(d.after, 60)}\n`);
    if (s.change === 'differs' && s.after?.error) w(`      error: ${s.after.error.code}: ${s.after.error.message}\n`);
  }
  w(`output ${r.output.change}${r.output.change === 'differs' ? ':' : ''}\n`);
  for (const d of r.output.diff ?? []) w(`      ${d.path || '(output)'}: ${brief(d.before, 60)} → ${brief(d.after, 60)}\n`);
  w(`${r.summary_line}\n`);
}

function brief(v: unknown, max = 100): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** USD with enough digits for sub-cent model calls: 0.0042, 1.25, 0.000015. */
export function formatUsd(v: number): string {
  if (v === 0) return '0';
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2).replace(/0+$/, '').replace(/\.$/, '');
}

export function printRunDetail(run: RunResult, steps: StepRecord[], events: EventRecord[], calls: ModelCallRecord[] = []): void {
  w(`run       ${run.id}\n`);
  w(`workflow  ${run.versionId}\n`);
  if (run.replayOf) w(`replay of ${run.replayOf}\n`);
  w(`status    ${run.status}${run.finishedAt ? ` in ${formatDuration(run.finishedAt - run.createdAt)}` : ''}\n`);
  w(`started   ${time(run.createdAt)}\n`);
  if (run.parentRunId) w(`parent    ${run.parentRunId} (step ${run.parentStepKey})\n`);
  w(`input     ${brief(run.input, 200)}\n`);
  if (run.error) w(`error     ${run.error.code}: ${run.error.message}\n`);
  if (calls.length || run.budget !== undefined) {
    const tokens = calls.reduce((a, c) => a + c.inputTokens + c.outputTokens + c.cachedTokens, 0);
    w(`cost      $${formatUsd(run.cost)}${run.budget !== undefined ? ` of a $${formatUsd(run.budget)} budget` : ''} · ${calls.length} model call${calls.length === 1 ? '' : 's'} · ${tokens} tokens\n`);
  }
  w('\nSTEPS\n');
  const rows = [['STEP', 'STATUS', 'ATTEMPT', 'DURATION', 'OUTPUT / ERROR']];
  for (const s of steps) {
    const dur = s.startedAt && s.finishedAt ? formatDuration(s.finishedAt - s.startedAt) : '';
    rows.push([s.key, s.status, String(s.attempt), dur, s.error ? `${s.error.code}: ${s.error.message}` : brief(s.output)]);
  }
  w(`${table(rows)}\n`);
  if (calls.length) {
    w('\nMODEL CALLS\n');
    const crows = [['STEP', 'SERVICE', 'MODEL', 'OUTCOME', 'TOKENS IN/OUT/CACHED', 'COST', 'LATENCY']];
    for (const c of calls) {
      const outcome = c.error ? `${c.outcome} ${c.error.code}` : c.outcome + (c.hedge ? ' (hedge)' : '');
      crows.push([`${c.stepKey}#${c.attempt}`, c.service, `${c.model}${c.version ? `@${c.version}` : ''}`, outcome, `${c.inputTokens}/${c.outputTokens}/${c.cachedTokens}`, `$${formatUsd(c.cost)}`, formatDuration(c.latencyMs)]);
    }
    w(`${table(crows)}\n`);
  }
  w('\nEVENTS\n');
  const t0 = events[0]?.at ?? run.createdAt;
  const erows = [['#', 'AT', 'EVENT', 'STEP', 'DATA']];
  for (const e of events) erows.push([String(e.id), `+${formatDuration(e.at - t0)}`, e.type, e.stepKey ?? '', brief(e.data, 90)]);
  w(`${table(erows)}\n`);
  if (run.status === 'completed') w(`\nOUTPUT\n${JSON.stringify(run.output ?? null, null, 2)}\n`);
}

export function printCost(by: string, lines: CostLine[]): void {
  if (lines.length === 0) {
    w('no model calls recorded\n');
    return;
  }
  const rows = [[by.toUpperCase(), 'CALLS', 'FAILED', 'CACHE HITS', 'TOKENS IN', 'TOKENS OUT', 'CACHED', 'COST USD', 'AVG LATENCY']];
  const sum = { calls: 0, failed: 0, hits: 0, tin: 0, tout: 0, cached: 0, cost: 0 };
  for (const l of lines) {
    rows.push([l.key, String(l.calls), String(l.failed), String(l.cacheHits), String(l.inputTokens), String(l.outputTokens), String(l.cachedTokens), formatUsd(l.cost), formatDuration(l.avgLatencyMs)]);
    sum.calls += l.calls;
    sum.failed += l.failed;
    sum.hits += l.cacheHits;
    sum.tin += l.inputTokens;
    sum.tout += l.outputTokens;
    sum.cached += l.cachedTokens;
    sum.cost += l.cost;
  }
  rows.push(['total', String(sum.calls), String(sum.failed), String(sum.hits), String(sum.tin), String(sum.tout), String(sum.cached), formatUsd(Math.round(sum.cost * 1e9) / 1e9), '']);
  w(`${table(rows)}\n`);
}

export function printServices(list: ServiceConfig[]): void {
  if (list.length === 0) {
    w('no services configured (declare them under `services:` in baton.config.yaml)\n');
    return;
  }
  const rows = [['SERVICE', 'PROVIDER', 'MODEL', 'VERSION', 'STATUS', 'OWNER', 'PRICE IN/OUT PER MTOK', 'PER CALL']];
  for (const c of list) {
    rows.push([c.name, c.provider, c.model, c.version ?? '', c.status + ([c.statusReason, c.statusBy && `by ${c.statusBy}`].some(Boolean) ? ` (${[c.statusReason, c.statusBy && `by ${c.statusBy}`].filter(Boolean).join('; ')})` : ''), c.owner ?? '', `${formatUsd(c.price.inputPerMTok)}/${formatUsd(c.price.outputPerMTok)}`, formatUsd(c.price.perCall)]);
  }
  w(`${table(rows)}\n`);
}

export function printSchedules(list: ScheduleRecord[]): void {
  const iso = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z'));
  const rows = [['SCHEDULE', 'CRON', 'TIME ZONE', 'MISSED', 'NEXT FIRE', 'LAST FIRE', 'LAST RUN', 'STATE']];
  for (const s of list) {
    rows.push([s.id, s.cron, s.timezone, s.missed, s.paused ? '(paused)' : iso(s.nextFireAt), iso(s.lastFiredAt), s.lastRunId ?? '-', s.lastError ? `error: ${s.lastError.message}` : s.paused ? 'paused' : 'active']);
  }
  w(`${table(rows)}\n`);
}
