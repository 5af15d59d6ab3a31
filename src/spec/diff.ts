/**
 * Structural diff of two workflow documents (`baton workflows diff A B`, GET /workflows/diff):
 * steps matched by id — added, removed, or changed field by field — with prompt texts (and any
 * multi-line string) diffed line by line, and the workflow's own fields (input schema, output,
 * tags, triggers…) likewise. Services a step names are fields like any other (`service`,
 * `fallback`); what the services themselves were pinned to is compared by the engine.
 */
import { flatDiff, type FieldChange } from '../services/governance.js';
import type { WorkflowDocument } from './types.js';

export interface TextDiff {
  field: string;
  /** Unified-style lines: `  same`, `- removed`, `+ added`. */
  lines: string[];
}

export interface StepChange {
  id: string;
  change: 'added' | 'removed' | 'changed';
  kind?: string;
  fields?: FieldChange[];
  texts?: TextDiff[];
}

export interface WorkflowDiff {
  /** Nothing differs. */
  same: boolean;
  /** Workflow-level fields (everything but `steps`). */
  workflow: FieldChange[];
  steps: StepChange[];
}

export function diffWorkflows(a: WorkflowDocument, b: WorkflowDocument): WorkflowDiff {
  const { steps: sa, ...wa } = a;
  const { steps: sb, ...wb } = b;
  const workflow = flatDiff(wa, wb);
  const byId = (list: WorkflowDocument['steps']) => new Map((list ?? []).map((s) => [s.id, s]));
  const ma = byId(sa);
  const mb = byId(sb);
  const steps: StepChange[] = [];
  for (const [id, s] of ma) {
    const t = mb.get(id);
    if (!t) {
      steps.push({ id, change: 'removed', kind: s.kind });
      continue;
    }
    const fields = flatDiff(s, t);
    if (!fields.length) continue;
    const texts = fields
      .filter((f) => typeof f.from === 'string' && typeof f.to === 'string' && (isTextField(f.field) || (f.from as string).includes('\n') || (f.to as string).includes('\n')))
      .map((f) => ({ field: f.field, lines: lineDiff(f.from as string, f.to as string) }));
    steps.push({ id, change: 'changed', kind: t.kind, fields, ...(texts.length ? { texts } : {}) });
  }
  for (const [id, t] of mb) if (!ma.has(id)) steps.push({ id, change: 'added', kind: t.kind });
  return { same: workflow.length === 0 && steps.length === 0, workflow, steps };
}

function isTextField(field: string): boolean {
  return /(^|\.)(prompt|system|messages|description)$/.test(field);
}

/** A line diff by longest common subsequence (prompts are short; quadratic is fine). */
export function lineDiff(a: string, b: string): string[] {
  const x = a.split('\n');
  const y = b.split('\n');
  const n = x.length;
  const m = y.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push(`  ${x[i]}`);
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(`- ${x[i++]}`);
    else out.push(`+ ${y[j++]}`);
  }
  while (i < n) out.push(`- ${x[i++]}`);
  while (j < m) out.push(`+ ${y[j++]}`);
  return out;
}
