/**
 * The published JSON Schema of workflow documents (`schema/workflow.schema.json`), built from
 * the step kind table so that a new kind appears in the schema by being registered.
 * `npm run schema` writes the file; a test regenerates it and fails on any difference.
 */
import { TRIGGERS_SCHEMA } from './triggers.js';
import type { JsonSchema } from './types.js';

export const SCHEMA_ID = 'https://baton.dev/schema/workflow.schema.json';

const duration = {
  description: 'A duration: "250ms", "5s", "2m", "1h", "1d", or milliseconds.',
  anyOf: [
    { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$' },
    { type: 'number', minimum: 0 },
  ],
};

const expression = { type: 'string', minLength: 1, description: 'A JSONata expression over { input, steps, vars, run }.' };

const retry = {
  type: 'object',
  additionalProperties: false,
  properties: {
    max_attempts: { type: 'integer', minimum: 1, maximum: 100, description: 'Total attempts including the first.' },
    initial_delay: { $ref: '#/$defs/duration' },
    max_delay: { $ref: '#/$defs/duration' },
    multiplier: { type: 'number', minimum: 1 },
    jitter: { type: 'number', minimum: 0, maximum: 1 },
  },
};

const onError = {
  description: 'What happens when the step fails after its retries.',
  anyOf: [
    { enum: ['fail', 'continue'] },
    { type: 'object', additionalProperties: false, required: ['continue'], properties: { continue: { $ref: '#/$defs/expression' } } },
    { type: 'object', additionalProperties: false, required: ['route'], properties: { route: { type: 'string' } } },
  ],
};

/** Fields every step has, whatever its kind. `id` and `needs` are absent from map sub-steps. */
export const COMMON_STEP_FIELDS: Record<string, unknown> = {
  id: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Unique step id; other steps refer to it as steps.<id>.' },
  description: { type: 'string' },
  needs: { type: 'array', items: { type: 'string' }, uniqueItems: true, description: 'Steps that must finish first (besides those referenced in expressions).' },
  when: { $ref: '#/$defs/expression', description: 'Condition; when false the step is skipped, and so is what depends only on it.' },
  input: { $ref: '#/$defs/expression', description: 'The step input.' },
  output_schema: { $ref: '#/$defs/schemaObject', description: 'JSON Schema the output must meet; a violation is a (retryable) failure.' },
  guard: { $ref: '#/$defs/expression', description: 'Quality gate over `output`; false is a (retryable) failure.' },
  retry: { $ref: '#/$defs/retry' },
  timeout: { $ref: '#/$defs/duration' },
  on_error: { $ref: '#/$defs/onError' },
  risk: { enum: ['low', 'medium', 'high'], description: 'Risk level, read by governance policies in baton.config.yaml (e.g. high-risk steps need an approval step downstream).' },
};

export interface KindSchema {
  kind: string;
  description: string;
  /** Kind-specific properties. */
  properties: Record<string, unknown>;
  required: string[];
}

function stepSchema(k: KindSchema, sub: boolean): Record<string, unknown> {
  const common = { ...COMMON_STEP_FIELDS };
  if (sub) {
    delete common.id;
    delete common.needs;
  }
  return {
    type: 'object',
    description: k.description,
    additionalProperties: false,
    required: [...(sub ? [] : ['id']), 'kind', ...k.required],
    properties: { kind: { const: k.kind }, ...common, ...k.properties },
  };
}

/** Builds the document schema for the given kinds. */
export function buildWorkflowSchema(kinds: KindSchema[]): Record<string, unknown> {
  const defs: Record<string, unknown> = {
    duration,
    expression,
    retry,
    onError,
    schemaObject: { type: ['object', 'boolean'], description: 'A JSON Schema (draft 2020-12).' },
  };
  const stepRefs: unknown[] = [];
  const subRefs: unknown[] = [];
  for (const k of kinds) {
    defs[`${k.kind}Step`] = stepSchema(k, false);
    stepRefs.push({ $ref: `#/$defs/${k.kind}Step` });
    if (k.kind !== 'map') {
      defs[`${k.kind}SubStep`] = stepSchema(k, true);
      subRefs.push({ $ref: `#/$defs/${k.kind}SubStep` });
    }
  }
  const kindNames = kinds.map((k) => k.kind);
  defs.step = {
    type: 'object',
    required: ['kind'],
    properties: { kind: { enum: kindNames } },
    discriminator: { propertyName: 'kind' },
    oneOf: stepRefs,
  };
  defs.subStep = {
    type: 'object',
    required: ['kind'],
    properties: { kind: { enum: kindNames.filter((k) => k !== 'map') } },
    discriminator: { propertyName: 'kind' },
    oneOf: subRefs,
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'Baton workflow',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'steps'],
    properties: {
      $schema: { type: 'string' },
      name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', description: 'Workflow name.' },
      description: { type: 'string' },
      input: { $ref: '#/$defs/schemaObject', description: 'JSON Schema the run input must meet.' },
      output: { $ref: '#/$defs/expression', description: 'The run output; default: the outputs of the final steps by id.' },
      vars: { type: 'object', description: 'Constants available to expressions as `vars`.' },
      budget: {
        type: 'object',
        additionalProperties: false,
        required: ['max_cost'],
        properties: { max_cost: { type: 'number', exclusiveMinimum: 0, description: 'USD a run may spend on model calls; a call that could exceed it stops the run.' } },
      },
      concurrency: {
        type: 'object',
        additionalProperties: false,
        required: ['key'],
        description: 'At most `limit` runs with the same key are active at once, across every worker; the others wait, queued, in order.',
        properties: {
          key: { $ref: '#/$defs/expression', description: 'Expression over { input } giving the key, e.g. input.customer_id.' },
          limit: { type: 'integer', minimum: 1, description: 'Default 1.' },
        },
      },
      priority: { type: 'integer', minimum: -1000, maximum: 1000, description: 'Default priority of its runs within their namespace (higher first; a run option overrides it).' },
      tags: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true, description: 'Labels read by governance policies in baton.config.yaml (e.g. `pii`).' },
      sensitive: {
        type: 'array',
        description: 'Fields holding personal data or secrets (input.x.y, steps.<id>.output.x, output.x): stored encrypted (mask, needs BATON_ENCRYPTION_KEY) or as a sha256 (hash), shown as *** to readers without access.',
        items: {
          oneOf: [
            { type: 'string', pattern: '^(input|output|steps\\.[A-Za-z0-9_-]+\\.output)(\\.[A-Za-z0-9_-]+)*$' },
            {
              type: 'object',
              additionalProperties: false,
              required: ['path'],
              properties: {
                path: { type: 'string', pattern: '^(input|output|steps\\.[A-Za-z0-9_-]+\\.output)(\\.[A-Za-z0-9_-]+)*$' },
                mode: { enum: ['mask', 'hash'], description: 'mask (default): encrypted, revealed to admins who ask; hash: sha256 only, irreversible.' },
              },
            },
          ],
        },
      },
      retention: {
        type: 'object',
        additionalProperties: false,
        required: ['days'],
        description: 'How long ended runs are kept before `baton audit purge` removes them (their final hash stays anchored).',
        properties: {
          days: { type: 'number', exclusiveMinimum: 0 },
          mode: { enum: ['purge', 'archive'], description: 'purge (default) deletes; archive writes the audit export to the archive folder first.' },
        },
      },
      triggers: TRIGGERS_SCHEMA,
      defaults: {
        type: 'object',
        additionalProperties: false,
        properties: { retry: { $ref: '#/$defs/retry' }, timeout: { $ref: '#/$defs/duration' } },
      },
      limits: {
        type: 'object',
        additionalProperties: false,
        properties: {
          expression_timeout: { $ref: '#/$defs/duration' },
          inline_output_bytes: { type: 'integer', minimum: 0 },
        },
      },
      steps: { type: 'array', minItems: 1, items: { $ref: '#/$defs/step' } },
    },
    $defs: defs,
  };
}

export type { JsonSchema };
