/**
 * Acting on triggers (the document side is src/spec/triggers.ts): which latest workflow
 * versions a webhook path or a CloudEvent starts, and the run each start gets — its input from
 * the trigger's `input` expression, its id derived deterministically (from the trigger's
 * `run_id`, or from the CloudEvent's source and id), so a redelivery starts no second run.
 *
 * Only the latest version of each workflow listens: registering a new version moves its
 * triggers with it. The latest versions are read from the store at most a second apart
 * (registry.listening()), so a workflow registered by any process listens within a second, and
 * one registered by this process at once.
 */
import { createHash } from 'node:crypto';
import { BatonError } from '../errors.js';
import type { CompiledTrigger } from '../spec/triggers.js';
import type { CompiledWorkflow } from '../spec/compile.js';
import type { VersionRecord } from '../store/store.js';
import { DEFAULT_NAMESPACE, splitQualified } from './namespaces.js';

export type WebhookTrigger = CompiledTrigger & { kind: 'webhook' };
export type CloudEventTrigger = CompiledTrigger & { kind: 'cloudevent' };

export interface Listening<T extends CompiledTrigger> {
  versionId: string;
  /** Qualified name (`team-a/name` outside the default namespace). */
  workflow: string;
  namespace: string;
  trigger: T;
}

/** The subset of a CloudEvent that matching and run inputs use. */
export interface TriggerEvent {
  id: string;
  type: string;
  source: string;
  subject?: string;
  data?: unknown;
  /** CloudEvents distributed-tracing extension: runs the event starts join this trace (tracing on). */
  traceparent?: string;
  /** Baton's extension: how many times emit steps passed the event on (see steps/emit.ts). */
  batonhops?: number | string;
}

/** Every trigger of `versions` (each the latest of its workflow), compiled by `compiled`. */
export function triggersOf(versions: VersionRecord[], compiled: (v: VersionRecord) => CompiledWorkflow): Array<Listening<CompiledTrigger>> {
  return versions.flatMap((v) => (compiled(v).triggers ?? []).map((trigger) => ({ versionId: v.versionId, workflow: v.name, namespace: splitQualified(v.name).namespace, trigger })));
}

/**
 * The environment variable each webhook of `triggers` takes its secret from, when it is not set
 * in `env`: every delivery to such a webhook is refused until the gateway has it, so its
 * operator is told at registration and when `baton serve` starts, not by a refused delivery.
 */
export function unsetWebhookSecrets<T extends { trigger: CompiledTrigger }>(listening: T[], env: NodeJS.ProcessEnv = process.env): Array<T & { variable: string }> {
  return listening.flatMap((l) => {
    if (l.trigger.kind !== 'webhook') return [];
    const variable = l.trigger.webhook.secret.slice('env:'.length);
    return env[variable] ? [] : [{ ...l, variable }];
  });
}

/** The URL path (after `/hooks/`) a webhook trigger listens on: namespaced workflows under their namespace. */
export function hookPath(l: Listening<WebhookTrigger>): string {
  return l.namespace === DEFAULT_NAMESPACE ? l.trigger.webhook.path : `${l.namespace}/${l.trigger.webhook.path}`;
}

/** True when the CloudEvent matches the trigger's type (and source, when the trigger names one). */
export function cloudEventMatches(t: CloudEventTrigger, e: TriggerEvent): boolean {
  return t.cloudevent.type === e.type && (t.cloudevent.source === undefined || t.cloudevent.source === e.source);
}

/** A run id from parts: the same parts give the same id, and ids of different workflows never meet. */
export function derivedRunId(prefix: 'hook' | 'ce' | 'sched', ...parts: string[]): string {
  return `${prefix}_${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32)}`;
}

/**
 * Whether `id` has the form of the ids triggers give their runs (derivedRunId, and a schedule's
 * fireRunId: `sched_<12 hex>_<fire time>`). Only triggers may start a run with such an id: a
 * caller of another namespace who could would take a team's trigger's run id before it (its run
 * refused BATON_RUN_ID_TAKEN), or learn from that refusal whether the team's run exists.
 */
export function isDerivedRunId(id: string): boolean {
  return /^(?:(?:hook|ce|sched)_[0-9a-f]{32}|sched_[0-9a-f]{12}_\d{8}T\d{9}Z)$/.test(id);
}

/**
 * The last part of a derived run id: for a shared (default-namespace) workflow started in a
 * team's namespace, that namespace, so that two teams relaying one event each start their own
 * run instead of the second being refused the id. None otherwise (ids as they always were).
 */
export function runIdScope(l: Listening<CompiledTrigger>, runNamespace: string): string[] {
  return l.namespace === DEFAULT_NAMESPACE && runNamespace !== DEFAULT_NAMESPACE ? [runNamespace] : [];
}

/**
 * The run a trigger starts, in `runNamespace`: input (trigger `input`, else `fallback`) and id
 * (trigger `run_id` made a deterministic id for this workflow, else `defaultId`, which may be
 * undefined: a fresh id).
 */
export async function triggerRun(l: Listening<CompiledTrigger>, context: Record<string, unknown>, fallback: unknown, defaultId: string | undefined, runNamespace = l.namespace): Promise<{ input: unknown; id: string | undefined }> {
  const where = `in ${l.workflow} triggers[${l.trigger.id.split(':')[1]}]`;
  const ctx = { trigger: { id: l.trigger.id, kind: l.trigger.kind, workflow: l.workflow }, ...context };
  const input = l.trigger.input ? await l.trigger.input.evaluate(ctx, `${where}: input`) : fallback;
  let id = defaultId;
  if (l.trigger.runId) {
    const v = await l.trigger.runId.evaluate(ctx, `${where}: run_id`);
    if (v === undefined || v === null || v === '' || typeof v === 'object') {
      throw new BatonError('BATON_EXPR_EVAL', { where: `${where}: run_id`, detail: `gave ${JSON.stringify(v ?? null)}; it must give a non-empty string or number (e.g. a delivery id header)` });
    }
    id = derivedRunId(l.trigger.kind === 'webhook' ? 'hook' : 'ce', l.workflow, l.trigger.id, String(v), ...runIdScope(l, runNamespace));
  }
  return { input: input ?? {}, id };
}
