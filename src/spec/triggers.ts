/**
 * Triggers: what starts a workflow's runs besides an explicit start. A workflow declares a
 * list; each entry has exactly one source —
 *
 * - `schedule`: a cron expression (croner syntax, 5 or 6 fields) in a time zone, with a policy
 *   for fires missed while no gateway was running (`skip`, `once`, `all`);
 * - `webhook`: `POST /hooks/<path>`, the raw body signed with HMAC by the sender (the secret is
 *   a reference like `env:NAME`, never the secret itself);
 * - `cloudevent`: a CloudEvent (HTTP structured or binary mode, or one an `emit` step
 *   publishes) whose `type` — and `source`, when given — match.
 *
 * plus, for every source, `input` (JSONata giving the run input from the trigger's context)
 * and `run_id` (JSONata giving a run id, so a redelivered event does not start a second run).
 *
 * This module owns the document shape and its load-time checks; the gateway and scheduler
 * (src/gateway) act on the compiled form.
 */
import { Cron } from 'croner';
import type { Expression } from '../expr/expression.js';
import type { DocPath } from './parse.js';

export type MissedFirePolicy = 'skip' | 'once' | 'all';

export interface ScheduleTriggerDoc {
  /** Cron expression: `m h dom mon dow`, or with seconds first (6 fields). */
  cron: string;
  /** IANA time zone the expression is read in. Default UTC. */
  timezone?: string;
  /** Fires missed while nothing ran: none (`skip`), one run for all of them (`once`, default), or each (`all`, at most `max_catch_up`). */
  missed?: MissedFirePolicy;
  /** With `missed: all`, the most missed fires started at once. Default 100. */
  max_catch_up?: number;
}

export type HmacAlgorithm = 'sha256' | 'sha1' | 'sha512';

export interface WebhookTriggerDoc {
  /** `POST /hooks/<path>`; unique across workflows of a namespace. */
  path: string;
  /** Credential reference to the shared HMAC secret: `env:NAME`. */
  secret: string;
  /** Header carrying the signature (`sha256=<hex>` or bare hex). Default `X-Baton-Signature`. */
  header?: string;
  /** Default sha256. */
  algorithm?: HmacAlgorithm;
}

export interface CloudEventTriggerDoc {
  /** The CloudEvent `type` to match exactly. */
  type: string;
  /** When given, the `source` must match exactly too. */
  source?: string;
}

interface TriggerCommon {
  /**
   * The run input, over the trigger's context: `{ trigger, body, headers, query }` for a
   * webhook, `{ trigger, event, data }` for a CloudEvent, `{ trigger }` for a schedule.
   * Default: the webhook body, the event's data, `{ scheduled_at }` for a schedule.
   */
  input?: string;
  /** A run id over the same context (e.g. a delivery id header): a repeat starts no second run. */
  run_id?: string;
}

export type TriggerDoc =
  | (TriggerCommon & { schedule: ScheduleTriggerDoc; webhook?: never; cloudevent?: never })
  | (TriggerCommon & { webhook: WebhookTriggerDoc; schedule?: never; cloudevent?: never })
  | (TriggerCommon & { cloudevent: CloudEventTriggerDoc; schedule?: never; webhook?: never });

export type TriggerKind = 'schedule' | 'webhook' | 'cloudevent';

/** A trigger after load-time checks, with its expressions compiled. */
export type CompiledTrigger = {
  /** Position in the document's `triggers`, stable per version: `schedule:0`. */
  id: string;
  input?: Expression;
  runId?: Expression;
} & (
  | { kind: 'schedule'; schedule: Required<ScheduleTriggerDoc> }
  | { kind: 'webhook'; webhook: Required<WebhookTriggerDoc> }
  | { kind: 'cloudevent'; cloudevent: CloudEventTriggerDoc }
);

const expressionRef = { $ref: '#/$defs/expression' };

/** The `triggers` property of the published workflow schema. */
export const TRIGGERS_SCHEMA = {
  type: 'array',
  description: 'What starts runs of this workflow besides an explicit start: cron schedules, signed webhooks, CloudEvents.',
  items: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      schedule: {
        type: 'object',
        additionalProperties: false,
        required: ['cron'],
        properties: {
          cron: { type: 'string', minLength: 1, description: 'Cron expression (5 fields, or 6 with seconds first).' },
          timezone: { type: 'string', minLength: 1, description: 'IANA time zone, e.g. Europe/Paris. Default UTC.' },
          missed: { enum: ['skip', 'once', 'all'], description: 'Fires missed while no gateway ran: none, one run, or each. Default once.' },
          max_catch_up: { type: 'integer', minimum: 1, maximum: 10000, description: 'With missed: all, the most missed fires started. Default 100.' },
        },
      },
      webhook: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'secret'],
        properties: {
          path: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$', description: 'Receives POST /hooks/<path>.' },
          secret: { type: 'string', minLength: 1, description: 'Reference to the HMAC secret: env:NAME.' },
          header: { type: 'string', pattern: '^[A-Za-z0-9-]+$', description: 'Signature header. Default X-Baton-Signature.' },
          algorithm: { enum: ['sha256', 'sha1', 'sha512'] },
        },
      },
      cloudevent: {
        type: 'object',
        additionalProperties: false,
        required: ['type'],
        properties: {
          type: { type: 'string', minLength: 1, description: 'CloudEvent type to match.' },
          source: { type: 'string', minLength: 1, description: 'CloudEvent source to match (exactly), when given.' },
        },
      },
      input: { ...expressionRef, description: 'Run input over the trigger context (see docs); default the body / data / { scheduled_at }.' },
      run_id: { ...expressionRef, description: 'Run id over the trigger context: a repeated delivery starts no second run.' },
    },
  },
} as const;

/**
 * Checks what the JSON Schema cannot (one source per trigger, cron syntax, time zone, unique
 * webhook paths) and compiles the expressions. Problems go to `add`.
 */
export function compileTriggers(
  triggers: TriggerDoc[] | undefined,
  add: (path: DocPath, message: string) => void,
  compileExpr: (src: string | undefined, path: DocPath) => Expression | undefined,
): CompiledTrigger[] {
  const out: CompiledTrigger[] = [];
  const paths = new Map<string, number>();
  (triggers ?? []).forEach((t, i) => {
    const at: DocPath = ['triggers', i];
    // An entry of another shape is a schema problem (reported by the structure check).
    if (!t || typeof t !== 'object' || Array.isArray(t)) return;
    const sources = (['schedule', 'webhook', 'cloudevent'] as const).filter((k) => t[k] !== undefined);
    if (sources.length !== 1) {
      add(at, `a trigger needs exactly one of schedule, webhook or cloudevent; this one has ${sources.length ? sources.join(' and ') : 'none'}.`);
      return;
    }
    const input = compileExpr(t.input, [...at, 'input']);
    const runId = compileExpr(t.run_id, [...at, 'run_id']);
    for (const [field, e] of [['input', input], ['run_id', runId]] as const) {
      for (const r of e?.stepRefs ?? []) add([...at, field], `a trigger acts before any step runs, so it cannot read steps.${r}.`);
    }
    const id = `${sources[0]}:${i}`;
    if (t.schedule) {
      const s = t.schedule;
      if (typeof s !== 'object' || typeof s.cron !== 'string' || (s.timezone !== undefined && typeof s.timezone !== 'string')) return; // a schema problem
      const timezone = s.timezone ?? 'UTC';
      if (!validTimeZone(timezone)) {
        add([...at, 'schedule', 'timezone'], `"${timezone}" is not a time zone this runtime knows; use an IANA name such as Europe/Paris or UTC.`);
        return;
      }
      const problem = cronProblem(s.cron, timezone);
      if (problem) {
        add([...at, 'schedule', 'cron'], `"${s.cron}" is not a cron expression: ${problem}. Use 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. "0 9 * * 1-5".`);
        return;
      }
      out.push({ id, input, runId, kind: 'schedule', schedule: { cron: s.cron, timezone, missed: s.missed ?? 'once', max_catch_up: s.max_catch_up ?? 100 } });
    } else if (t.webhook) {
      const w = t.webhook;
      if (typeof w !== 'object' || typeof w.path !== 'string' || typeof w.secret !== 'string' || (w.header !== undefined && typeof w.header !== 'string')) return; // a schema problem
      if (!/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(w.secret)) {
        // A literal would be stored in the version and shown by the API and console.
        add([...at, 'webhook', 'secret'], 'the secret must be a reference like env:ORDERS_WEBHOOK_SECRET (the variable holds the secret), never the secret itself.');
      }
      const seen = paths.get(w.path);
      if (seen !== undefined) add([...at, 'webhook', 'path'], `path "${w.path}" is already used by triggers[${seen}]; each webhook path starts one trigger.`);
      paths.set(w.path, i);
      out.push({ id, input, runId, kind: 'webhook', webhook: { path: w.path, secret: w.secret, header: (w.header ?? 'X-Baton-Signature').toLowerCase(), algorithm: w.algorithm ?? 'sha256' } });
    } else if (t.cloudevent) {
      if (typeof t.cloudevent !== 'object') return; // a schema problem
      out.push({ id, input, runId, kind: 'cloudevent', cloudevent: { type: t.cloudevent.type, source: t.cloudevent.source } });
    }
  });
  return out;
}

/** The next fire strictly after `after` (epoch ms), or undefined if the expression never fires again. */
export function nextFire(cron: string, timezone: string, after: number): number | undefined {
  const next = new Cron(cron, { timezone, paused: true }).nextRun(new Date(after));
  return next ? next.getTime() : undefined;
}

function cronProblem(cron: string, timezone: string): string | undefined {
  // croner also takes a 7th (year) field; Baton documents 5 or 6, and says so itself rather than
  // pass on croner's "five, six, or seven" next to its own advice.
  const fields = cron.trim().split(/\s+/).length;
  if (!cron.trim().startsWith('@') && fields !== 5 && fields !== 6) return `it has ${fields} field${fields === 1 ? '' : 's'}`;
  try {
    const c = new Cron(cron, { timezone, paused: true });
    if (!c.nextRun()) return 'it never fires';
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^CronPattern: /, '');
  }
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
