/**
 * `baton audit export RUN` / `GET /runs/{id}/audit`: one self-contained report of a run, for an
 * auditor who has nothing else: the workflow version (id, hash and the document itself), the
 * input, every step (status, attempts, output, error, timings), every model call (service,
 * provider, model, version, tokens, cost), total cost, human decisions and interventions,
 * the full event history with each event's hash, and the result of verifying the chains.
 * The HTML rendering is one file (inline CSS, no scripts, no external assets), every value
 * escaped.
 */
import type { Baton } from '../engine/engine.js';
import { isBlobRef } from '../store/blobs.js';
import type { EventRecord } from '../store/store.js';
import { verifyStore, describeProblem, type AuditReport } from './verify.js';

/** Events that record a person's decision or intervention (approvals from the approvals feature). */
export function isDecisionEvent(type: string): boolean {
  return type.startsWith('approval.') || type.startsWith('audit.') || ['run.paused', 'run.resumed', 'run.cancelled', 'run.retried', 'signal.received'].includes(type);
}

export interface AuditExport {
  format: 'baton.audit/v1';
  generated_at: string;
  run: {
    id: string; status: string; namespace: string; created_at: string; finished_at?: string; retries: number;
    parent_run_id?: string; input: unknown; output?: unknown; error?: unknown; budget?: number;
  };
  workflow: { name: string; version_id: string; version_seq?: number; hash?: string; source?: string; document?: unknown };
  steps: Array<{ key: string; step_id: string; status: string; attempt: number; output?: unknown; error?: unknown; started_at?: string; finished_at?: string; duration_ms?: number }>;
  model_calls: Array<{ step: string; attempt: number; service: string; provider: string; model: string; version?: string; operation: string; outcome: string;
    input_tokens: number; output_tokens: number; cached_tokens: number; cost_usd: number; latency_ms: number; at: string }>;
  cost: { total_usd: number; model_calls: number; input_tokens: number; output_tokens: number };
  decisions: Array<{ seq: number; type: string; step?: string; at: string; data?: unknown }>;
  events: Array<{ seq: number; type: string; step?: string; at: string; data?: unknown; hash: string | null }>;
  chain: { head: string | null; anchors: Array<{ seq: number; run_final_hash: string; anchor_hash: string; at: string }>; verification: AuditReport; summary: string };
  /** Fields hidden from this reader (sensitive data; see README "Audit trail"). */
  masked?: string[];
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export interface ExportOptions {
  /** Applied to the run's values before they are written (masking of sensitive fields). */
  present?: (view: { input: unknown; output: unknown; steps: Map<string, unknown>; events: EventRecord[] }) => { input: unknown; output: unknown; steps: Map<string, unknown>; events: EventRecord[]; masked: string[] };
}

export async function buildAuditExport(baton: Baton, runId: string, opts: ExportOptions = {}): Promise<AuditExport> {
  const run = await baton.getRun(runId);
  const [steps, events, calls, version, rows, verification] = await Promise.all([
    baton.getSteps(runId), baton.getEvents(runId), baton.store.getModelCalls(runId), baton.store.getVersion(run.versionId),
    baton.store.auditEvents(runId), verifyStore(baton.store, runId),
  ]);
  const anchors = (await baton.store.auditAnchors()).filter((a) => a.runId === runId);
  const decode = (v: unknown) => (isBlobRef(v) ? (JSON.parse(baton.blobs.get(v)) as unknown) : v);
  let view = { input: run.input, output: run.output, steps: new Map(steps.map((s) => [s.key, decode(s.output)])), events, masked: [] as string[] };
  if (opts.present) view = opts.present(view);
  const hashOf = new Map(rows.map((r) => [r.seq, r.hash]));
  let document: unknown;
  try {
    document = version ? (JSON.parse(version.document) as unknown) : undefined;
  } catch {
    document = version?.document;
  }
  const cost = calls.reduce((a, c) => ({ total_usd: a.total_usd + c.cost, model_calls: a.model_calls + 1, input_tokens: a.input_tokens + c.inputTokens, output_tokens: a.output_tokens + c.outputTokens }),
    { total_usd: 0, model_calls: 0, input_tokens: 0, output_tokens: 0 });
  cost.total_usd = Math.round(Math.max(cost.total_usd, run.cost) * 1e9) / 1e9;
  const ev = view.events.map((e) => ({ seq: e.id, type: e.type, ...(e.stepKey ? { step: e.stepKey } : {}), at: new Date(e.at).toISOString(), ...(e.data !== undefined ? { data: e.data } : {}), hash: hashOf.get(e.id) ?? null }));
  return {
    format: 'baton.audit/v1',
    generated_at: new Date().toISOString(),
    run: {
      id: run.id, status: run.status, namespace: run.namespace, created_at: iso(run.createdAt)!, ...(run.finishedAt ? { finished_at: iso(run.finishedAt) } : {}),
      retries: run.retries, ...(run.parentRunId ? { parent_run_id: run.parentRunId } : {}), input: view.input,
      ...(view.output !== undefined ? { output: view.output } : {}), ...(run.error ? { error: run.error } : {}), ...(run.budget !== undefined ? { budget: run.budget } : {}),
    },
    workflow: { name: run.workflow, version_id: run.versionId, version_seq: version?.seq, hash: version?.hash, source: version?.source, document },
    steps: steps.map((s) => ({
      key: s.key, step_id: s.stepId, status: s.status, attempt: s.attempt, ...(view.steps.get(s.key) !== undefined ? { output: view.steps.get(s.key) } : {}),
      ...(s.error ? { error: s.error } : {}), started_at: iso(s.startedAt), finished_at: iso(s.finishedAt),
      ...(s.startedAt !== undefined && s.finishedAt !== undefined ? { duration_ms: s.finishedAt - s.startedAt } : {}),
    })),
    model_calls: calls.map((c) => ({
      step: c.stepKey, attempt: c.attempt, service: c.service, provider: c.provider, model: c.model, ...(c.version ? { version: c.version } : {}), operation: c.operation, outcome: c.outcome,
      input_tokens: c.inputTokens, output_tokens: c.outputTokens, cached_tokens: c.cachedTokens, cost_usd: c.cost, latency_ms: c.latencyMs, at: new Date(c.at).toISOString(),
    })),
    cost,
    decisions: ev.filter((e) => isDecisionEvent(e.type)).map(({ hash: _h, ...e }) => e),
    events: ev,
    chain: {
      head: rows.at(-1)?.hash ?? null,
      anchors: anchors.map((a) => ({ seq: a.seq, run_final_hash: a.runFinalHash, anchor_hash: a.anchorHash, at: new Date(a.at).toISOString() })),
      verification,
      summary: verification.ok ? `verified: ${verification.events} events chained${anchors.length ? `, anchored (anchor ${anchors.map((a) => a.seq).join(', ')})` : ', not anchored yet (run not ended)'}` : `TAMPERED: ${describeProblem(verification.problem!)}`,
    },
    ...(view.masked.length ? { masked: view.masked } : {}),
  };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Most of one value the HTML page shows; the JSON export (GET /runs/{id}/audit) has it whole. */
const HTML_VALUE_CHARS = 256 * 1024;

/**
 * A value for the page: indented when small and shallow, else on one line (indentation grows
 * with depth: a 6 KB input nested 3,000 deep made a 90 MB page and blocked the server), and cut
 * at HTML_VALUE_CHARS with a note.
 */
function shownJson(v: unknown): string {
  if (v === undefined) return '';
  const flat = JSON.stringify(v) ?? 'null';
  let text = flat.length <= 64 * 1024 && depthOf(v) <= 16 ? JSON.stringify(v, null, 2) : flat;
  if (text.length > HTML_VALUE_CHARS) text = `${text.slice(0, HTML_VALUE_CHARS)}… (cut: ${flat.length.toLocaleString('en')} characters in all; the JSON export has it whole)`;
  return text;
}

function depthOf(v: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d + 1 > max) max = d + 1;
    if (max > 16) return max;
    for (const c of Object.values(x as object)) stack.push([c, d + 1]);
  }
  return max;
}

const json = (v: unknown) => `<pre>${escapeHtml(shownJson(v))}</pre>`;
const td = (v: unknown) => `<td>${escapeHtml(v === undefined || v === null ? '' : String(v))}</td>`;

/** The report as one HTML page: inline CSS, no scripts or external assets, every value escaped. */
export function renderAuditHtml(r: AuditExport): string {
  const ok = r.chain.verification.ok;
  const rows = <T>(items: T[], cells: (x: T) => string) => items.map((x) => `<tr>${cells(x)}</tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(`Audit report — run ${r.run.id}`)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px;max-height:30em;overflow:auto}
.ok{color:#065f46;background:#d1fae5;padding:.4em .8em;border-radius:4px}.bad{color:#7f1d1d;background:#fee2e2;padding:.4em .8em;border-radius:4px}
code{font-size:12px;word-break:break-all}
</style></head><body>
<h1>Audit report — run <code>${escapeHtml(r.run.id)}</code></h1>
<p class="${ok ? 'ok' : 'bad'}">${escapeHtml(r.chain.summary)}</p>
<table>
<tr><th>Workflow</th>${td(r.workflow.name)}</tr><tr><th>Version</th>${td(`${r.workflow.version_id}${r.workflow.version_seq ? ` (v${r.workflow.version_seq})` : ''}`)}</tr>
<tr><th>Status</th>${td(r.run.status)}</tr><tr><th>Namespace</th>${td(r.run.namespace)}</tr>
<tr><th>Created</th>${td(r.run.created_at)}</tr><tr><th>Finished</th>${td(r.run.finished_at)}</tr>
<tr><th>Total cost (USD)</th>${td(r.cost.total_usd)}</tr><tr><th>Chain head</th><td><code>${escapeHtml(r.chain.head ?? '')}</code></td></tr>
<tr><th>Generated</th>${td(r.generated_at)}</tr>${r.masked?.length ? `<tr><th>Masked fields</th>${td(r.masked.join(', '))}</tr>` : ''}
</table>
<h2>Input</h2>${json(r.run.input)}
<h2>Output</h2>${json(r.run.output)}${r.run.error ? `<h2>Error</h2>${json(r.run.error)}` : ''}
<h2>Steps</h2>
<table><tr><th>Step</th><th>Status</th><th>Attempts</th><th>Started</th><th>Duration (ms)</th><th>Output / error</th></tr>
${rows(r.steps, (s) => `${td(s.key)}${td(s.status)}${td(s.attempt)}${td(s.started_at)}${td(s.duration_ms)}<td>${json(s.error ?? s.output)}</td>`)}
</table>
<h2>Model calls</h2>
<table><tr><th>Step</th><th>Service</th><th>Provider / model / version</th><th>Outcome</th><th>Tokens in / out</th><th>Cost (USD)</th><th>Latency (ms)</th></tr>
${rows(r.model_calls, (c) => `${td(c.step)}${td(c.service)}${td(`${c.provider} / ${c.model}${c.version ? ` / ${c.version}` : ''}`)}${td(c.outcome)}${td(`${c.input_tokens} / ${c.output_tokens}`)}${td(c.cost_usd)}${td(c.latency_ms)}`)}
</table>
<h2>Human decisions and interventions</h2>
${r.decisions.length ? `<table><tr><th>#</th><th>Type</th><th>Step</th><th>At</th><th>Data</th></tr>${rows(r.decisions, (d) => `${td(d.seq)}${td(d.type)}${td(d.step)}${td(d.at)}<td>${json(d.data)}</td>`)}</table>` : '<p>None.</p>'}
<h2>Event history (hash-chained)</h2>
<table><tr><th>#</th><th>Type</th><th>Step</th><th>At</th><th>Data</th><th>Hash</th></tr>
${rows(r.events, (e) => `${td(e.seq)}${td(e.type)}${td(e.step)}${td(e.at)}<td>${json(e.data)}</td><td><code>${escapeHtml(e.hash ?? '')}</code></td>`)}
</table>
<h2>Anchors</h2>
${r.chain.anchors.length ? `<table><tr><th>Anchor</th><th>Run final hash</th><th>Anchor hash</th><th>At</th></tr>${rows(r.chain.anchors, (a) => `${td(a.seq)}<td><code>${escapeHtml(a.run_final_hash)}</code></td><td><code>${escapeHtml(a.anchor_hash)}</code></td>${td(a.at)}`)}</table>` : '<p>Not anchored yet (the run has not ended).</p>'}
<h2>Workflow document</h2>${json(r.workflow.document)}
</body></html>
`;
}
