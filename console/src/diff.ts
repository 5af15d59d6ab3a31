/**
 * A structural diff of two workflow versions: steps added, removed and changed (which fields,
 * before and after), and top-level fields changed. Done here, from the two documents.
 */
export interface StepChange {
  id: string;
  change: 'added' | 'removed' | 'changed' | 'same';
  fields: Array<{ field: string; before: unknown; after: unknown }>;
}

export interface VersionDiff {
  steps: StepChange[];
  top: Array<{ field: string; before: unknown; after: unknown }>;
}

type Doc = Record<string, unknown> & { steps?: Array<Record<string, unknown>> };

export function diffVersions(a: Doc, b: Doc): VersionDiff {
  const before = new Map((a.steps ?? []).map((s) => [String(s.id), s]));
  const after = new Map((b.steps ?? []).map((s) => [String(s.id), s]));
  const steps: StepChange[] = [];
  for (const [id, s] of after) {
    const old = before.get(id);
    if (!old) { steps.push({ id, change: 'added', fields: [] }); continue; }
    const fields = changed(old, s);
    steps.push({ id, change: fields.length ? 'changed' : 'same', fields });
  }
  for (const id of before.keys()) if (!after.has(id)) steps.push({ id, change: 'removed', fields: [] });
  const { steps: _a, ...ta } = a;
  const { steps: _b, ...tb } = b;
  return { steps, top: changed(ta, tb) };
}

function changed(a: Record<string, unknown>, b: Record<string, unknown>) {
  const out: Array<{ field: string; before: unknown; after: unknown }> = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ field: k, before: a[k], after: b[k] });
  }
  return out;
}
