/**
 * JSON Schemas of the gateway's responses. Fastify compiles each into a serializer
 * (fast-json-stringify), so a response can only carry the fields declared here — nothing
 * internal leaks by accident — and the OpenAPI document describes what clients get back.
 */

const isoTime = { type: ['string', 'null'], format: 'date-time' } as const;

/** RFC 9457 problem details, with Baton's stable `code`. */
export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details. Branch on `code`, never on `detail`.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string', description: 'Stable Baton error code, e.g. BATON_RUN_NOT_FOUND.' },
    retryable: { type: 'boolean' },
    problems: {
      type: 'array',
      description: 'Every problem of a rejected document, with its position.',
      items: {
        type: 'object',
        properties: {
          message: { type: 'string' },
          path: { type: 'string' },
          file: { type: 'string' },
          line: { type: 'integer' },
          column: { type: 'integer' },
          severity: { type: 'string' },
        },
      },
    },
    details: { type: 'object', additionalProperties: true },
  },
  required: ['type', 'title', 'status', 'detail', 'code'],
} as const;

/** A run as the API shows it. */
export const runSchema = {
  $id: 'Run',
  type: 'object',
  properties: {
    run_id: { type: 'string' },
    workflow: { type: 'string', description: 'Qualified name: `<namespace>/<name>` outside the default namespace.' },
    version_id: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'queued', 'running', 'waiting', 'paused', 'completed', 'failed', 'cancelled'] },
    namespace: { type: 'string' },
    output: { description: 'The run output once completed, else null.' },
    error: { description: 'The error of a failed run (code, message, details), else null.' },
    cost: { type: 'number', description: 'USD spent on model calls.' },
    created_at: isoTime,
    finished_at: isoTime,
    replay_of: { type: 'string', description: 'Replay runs only: the run replayed (a replay calls nothing and costs nothing).' },
  },
  required: ['run_id', 'workflow', 'version_id', 'status', 'namespace', 'cost', 'created_at'],
} as const;

/** An accepted start: at least the id and status (a sync start that timed out carries the whole run). */
export const runAcceptedSchema = {
  $id: 'RunAccepted',
  type: 'object',
  properties: runSchema.properties,
  required: ['run_id', 'status'],
} as const;

/** A run with its step instances. */
export const runWithStepsSchema = {
  $id: 'RunWithSteps',
  type: 'object',
  properties: {
    ...runSchema.properties,
    steps: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: { type: 'string', description: '`classify`, or `summarise[3]` for item 3 of a map step.' },
          status: { type: 'string' },
          attempt: { type: 'integer' },
          output: {},
          error: {},
          started_at: isoTime,
          finished_at: isoTime,
        },
        required: ['key', 'status', 'attempt'],
      },
    },
  },
  required: [...runSchema.required, 'steps'],
} as const;

export const workflowVersionSchema = {
  $id: 'WorkflowVersion',
  type: 'object',
  properties: {
    version_id: { type: 'string' },
    name: { type: 'string' },
    namespace: { type: 'string' },
    seq: { type: 'integer', description: '1, 2, 3… in registration order per name.' },
    created_at: isoTime,
    warnings: { type: 'array', items: problemSchema.properties.problems.items },
  },
  required: ['version_id', 'name', 'namespace', 'seq'],
} as const;

/** What an event delivery did: woke a waiting step, or buffered the event for a wait with a lookback. */
export const eventDeliverySchema = {
  $id: 'EventDelivery',
  type: 'object',
  properties: {
    delivered: { type: 'integer', description: 'Steps woken: 0 or 1 (one event wakes one waiter).' },
    buffered: { type: 'boolean', description: 'Nobody waited: kept for a wait whose `lookback` covers its arrival.' },
    duplicate: { type: 'boolean', description: 'The same event id was delivered before: nothing changed.' },
  },
  required: ['delivered', 'buffered'],
} as const;

/** Runs started (or found started: deliveries are idempotent) by a webhook or CloudEvents. */
export const triggeredSchema = {
  $id: 'Triggered',
  type: 'object',
  properties: {
    run_id: { type: 'string', description: 'Webhooks: the run started.' },
    runs: {
      type: 'array',
      description: 'CloudEvents: every run the event(s) started, across matching workflows.',
      items: { type: 'object', properties: { run_id: { type: 'string' }, workflow: { type: 'string' }, event_id: { type: 'string' } }, required: ['run_id', 'workflow'] },
    },
    failed: {
      type: 'array',
      description: 'CloudEvents: matching workflows that refused an event (its input schema, a trigger expression), with the error.',
      items: { type: 'object', properties: { workflow: { type: 'string' }, event_id: { type: 'string' }, code: { type: 'string' }, detail: { type: 'string' } } },
    },
    events: { type: 'integer', description: 'CloudEvents received in the request.' },
    delivered: { type: 'integer', description: 'CloudEvents: waiting steps woken.' },
    buffered: { type: 'integer', description: 'CloudEvents: events buffered for waits with a lookback.' },
  },
} as const;

/** A human approval as the API shows it: what the approver sees (evidence, summary), what to answer (form), and the outcome. */
export const approvalSchema = {
  $id: 'Approval',
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'escalated', 'approved', 'rejected', 'expired', 'cancelled'], description: '`escalated`: open, for the escalation\'s approvers; `expired`: the deadline decided (see answer) or failed the step; `cancelled`: its run was cancelled.' },
    run_id: { type: 'string' },
    step: { type: 'string', description: 'The step key.' },
    namespace: { type: 'string' },
    workflow: { type: 'string' },
    approvers: { type: 'object', properties: { roles: { type: 'array', items: { type: 'string' } }, users: { type: 'array', items: { type: 'string' } } } },
    evidence: { description: 'What the approver sees (the step\'s `evidence`).' },
    evidence_hash: { type: 'string', description: 'sha256 of the canonical JSON of the evidence, recorded with the decision.' },
    summary: { type: ['string', 'null'] },
    form: { type: 'object', additionalProperties: true, description: 'JSON Schema of the answer: { decision: approve|reject, reason?, ...fields }.' },
    deadline_at: isoTime,
    next_reminder_at: isoTime,
    decided_by: { type: ['string', 'null'], description: 'API key name, local user, or `baton:deadline`.' },
    decided_at: isoTime,
    answer: { description: 'The recorded answer (the step output), else null.' },
    created_at: isoTime,
    updated_at: isoTime,
  },
  required: ['id', 'status', 'run_id', 'step', 'namespace', 'workflow', 'approvers', 'evidence_hash', 'form'],
} as const;

/**
 * The query of the routes that send events (POST /events, POST /cloudevents): the namespace they
 * go to. Unknown parameters are refused: a misspelt `?namespace=` must not send to every namespace.
 */
export const eventQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    namespace: {
      type: 'string',
      description: "The namespace the event goes to: only its runs' waits are woken (a buffered event waits for its runs only), and only its own and shared workflows' triggers start runs, in it. The key must reach it. Default: the key's namespace for a key of one; every namespace for a key with namespace `*` (or with auth off); a key of several must name one (400 BATON_NAMESPACE_REQUIRED).",
    },
  },
} as const;

const ref = (id: string) => ({ $ref: `${id}#` });

/** Every error status answers a problem. */
const problems = { '4xx': ref('Problem'), '5xx': ref('Problem') };

/** Response schemas per route, by status. */
export const responses = {
  run: { 200: ref('Run'), ...problems },
  /** Accepted: the run is back at work (running, or queued behind its concurrency key). */
  retried: { 202: ref('Run'), ...problems },
  started: { 200: ref('Run'), 202: ref('RunAccepted'), ...problems },
  runs: { 200: { type: 'array', items: ref('Run') }, ...problems },
  runWithSteps: { 200: ref('RunWithSteps'), ...problems },
  versions: { 200: { type: 'array', items: ref('WorkflowVersion') }, ...problems },
  registered: { 201: ref('WorkflowVersion'), ...problems },
  delivery: { 202: ref('EventDelivery'), ...problems },
  triggered: { 202: ref('Triggered'), ...problems },
  approval: { 200: ref('Approval'), ...problems },
  approvals: { 200: { type: 'array', items: ref('Approval') }, ...problems },
  problems,
};

export const SHARED_SCHEMAS = [problemSchema, runSchema, runAcceptedSchema, runWithStepsSchema, workflowVersionSchema, eventDeliverySchema, triggeredSchema, approvalSchema];
