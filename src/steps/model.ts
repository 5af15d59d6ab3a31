/**
 * `model`: calls a registered model service, by name. The step says what to ask (a prompt
 * template, or an input for classifiers, retrievers, OCR, inference servers) and which
 * services may answer (`service`, then `fallback`, or cheapest-first with `strategy: cascade`);
 * the service runtime does the rest — limits, breakers, retries, hedging, cache, budget, cost.
 *
 * `output_schema` and `guard` are checked per answer inside the chain, not after it: an
 * answer that breaks them is degraded, and the next service is asked instead of failing the
 * step (the engine re-checks the final output like any step's, which then passes).
 */
import { BatonError } from '../errors.js';
import type { ModelOperation } from '../providers/provider.js';
import type { ModelCall } from '../services/runtime.js';
import type { ModelStepDoc } from '../spec/types.js';
import { parseDuration } from '../util/duration.js';
import { suggest } from '../util/suggest.js';
import type { ExecContext, StepKind } from './kind.js';

const OPERATIONS: ModelOperation[] = ['chat', 'embed', 'classify', 'sentiment', 'entities', 'retrieve', 'ocr', 'anomaly', 'infer'];

export const modelKind: StepKind<ModelStepDoc> = {
  name: 'model',
  recordsStart: true,
  schema: {
    kind: 'model',
    description: 'Calls a model service named in baton.config.yaml. Output = the answer (parsed JSON when output_schema is set).',
    required: ['service'],
    properties: {
      service: { type: 'string', minLength: 1, description: 'The service to ask first.' },
      fallback: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true, description: 'Services to ask, in order, when the previous one fails or answers a degraded output.' },
      strategy: { enum: ['fallback', 'cascade'], description: '`cascade`: ask the cheapest service first and escalate only on failure or a failed guard.' },
      operation: { enum: OPERATIONS, description: 'What to ask for; default: the service provider\'s own (chat for LLMs).' },
      system: { type: 'string', description: 'System prompt; {{ expr }} parts are expressions.' },
      prompt: { type: 'string', description: 'User prompt; {{ expr }} parts are expressions.' },
      messages: { type: 'string', description: 'Expression giving [{ role, content }] (instead of prompt).' },
      max_tokens: { type: 'integer', minimum: 1 },
      temperature: { type: 'number', minimum: 0, maximum: 2 },
      stream: { type: 'boolean', description: 'Stream the answer; a stream that breaks or stalls counts as a failure.' },
      stream_idle: { anyOf: [{ type: 'string' }, { type: 'number' }], description: 'Longest silence allowed inside a stream (default 30s).' },
      repair_attempts: { type: 'integer', minimum: 0, maximum: 5, description: 'Re-asks after an answer that is not valid JSON for output_schema (default 1).' },
      cache: {
        anyOf: [{ type: 'boolean' }, { type: 'object', properties: { ttl: { anyOf: [{ type: 'string' }, { type: 'number' }] } }, additionalProperties: false }],
        description: 'Reuse a recorded answer to the same request (content-addressed).',
      },
    },
  },
  prepare(step, ctx) {
    const refs = new Set<string>();
    const add = (s: ReadonlySet<string> | undefined) => s?.forEach((r) => refs.add(r));
    const system = ctx.template('system', step.system);
    const prompt = ctx.template('prompt', step.prompt);
    const messages = ctx.expression('messages', step.messages);
    const guard = ctx.expression('guard', step.guard);
    const validate = ctx.schema('output_schema', step.output_schema);
    add(system?.stepRefs);
    add(prompt?.stepRefs);
    add(messages?.stepRefs);
    if (step.prompt !== undefined && step.messages !== undefined) ctx.problem('messages', 'give either `prompt` or `messages`, not both.');

    const names = [step.service, ...(step.fallback ?? [])];
    if (ctx.services) {
      names.forEach((n, i) => {
        const where = i === 0 ? 'service' : `fallback.${i - 1}`;
        const s = ctx.services!.get(n);
        if (!s) ctx.problem(where, `names service "${n}", which is not configured${suggest(n, ctx.services!.names()) || ` (configured: ${ctx.services!.names().join(', ') || 'none'})`}. Declare it under \`services:\` in baton.config.yaml.`);
        else if (s.status === 'blocked') ctx.problem(where, `service "${n}" is blocked${blockedWhy(s)}; choose an approved service.`);
        else if (s.status === 'deprecated') ctx.warn(where, `service "${n}" is deprecated${s.statusReason ? ` (${s.statusReason})` : ''}; plan a move to an approved one.`);
      });
    }
    if (step.fallback?.includes(step.service)) ctx.problem('fallback', `service "${step.service}" is already the primary; a fallback must be another service.`);
    let streamIdleMs: number | undefined;
    let cacheTtl: number | undefined;
    try {
      if (step.stream_idle !== undefined) streamIdleMs = parseDuration(step.stream_idle, 'stream_idle');
    } catch (e) {
      ctx.problem('stream_idle', (e as BatonError).message);
    }
    try {
      if (typeof step.cache === 'object' && step.cache.ttl !== undefined) cacheTtl = parseDuration(step.cache.ttl, 'cache.ttl');
    } catch (e) {
      ctx.problem('cache.ttl', (e as BatonError).message);
    }
    const cache = step.cache === true || typeof step.cache === 'object' ? { ttlMs: cacheTtl ?? 24 * 3_600_000 } : undefined;

    const build = async (x: ExecContext): Promise<ModelCall> => {
      const where = `in step ${x.stepKey}`;
      const call: ModelCall = {
        services: names,
        strategy: step.strategy ?? 'fallback',
        input: x.input,
        repairAttempts: step.repair_attempts ?? 1,
        run: { id: x.runId, workflow: x.workflow, stepKey: x.stepKey, attempt: x.attempt, idempotencyKey: x.idempotencyKey, budget: x.budget, configHash: x.configHash },
        signal: x.signal,
      };
      if (step.operation) call.operation = step.operation;
      if (system) call.system = await system.render(x.scope, `${where}: system`);
      if (prompt) {
        call.messages = [{ role: 'user', content: await prompt.render(x.scope, `${where}: prompt`) }];
        // Non-chat services get the prompt text when the step has no input of its own.
        if (call.input === undefined) call.input = call.messages[0].content;
      }
      if (messages) call.messages = checkMessages(await messages.evaluate(x.scope, `${where}: messages`), x.stepKey);
      if (step.output_schema !== undefined) call.schema = step.output_schema as Record<string, unknown>;
      if (validate) call.validate = validate;
      if (guard) call.guard = { source: guard.source, check: async (output) => Boolean(await guard.evaluate({ ...x.scope, output }, `${where}: guard`)) };
      if (step.max_tokens !== undefined) call.maxTokens = step.max_tokens;
      if (step.temperature !== undefined) call.temperature = step.temperature;
      if (step.stream) call.stream = true;
      if (streamIdleMs !== undefined) call.streamIdleMs = streamIdleMs;
      if (cache) call.cache = cache;
      return call;
    };
    return {
      stepRefs: refs,
      async execute(x) {
        const models = x.services.models;
        if (!models) throw new BatonError('BATON_SERVICE_UNKNOWN', { service: step.service, known: '(no services are configured)' });
        const call = await build(x);
        if (x.span) call.trace = x.span;
        const answer = await models.invoke(call);
        return { type: 'done', output: answer.output };
      },
      // Everything that decides the answer; not the run's identity, the cache or the stream mode.
      async request(x) {
        const c = await build(x);
        return {
          services: c.services, strategy: c.strategy, operation: c.operation, system: c.system, messages: c.messages, input: c.input,
          schema: c.schema, guard: c.guard?.source, maxTokens: c.maxTokens, temperature: c.temperature,
        };
      },
    };
  },
};

function checkMessages(v: unknown, step: string): Array<{ role: 'user' | 'assistant'; content: string }> {
  const ok = Array.isArray(v) && v.length > 0 && v.every((m) => m && typeof m === 'object' && (m.role === 'user' || m.role === 'assistant') && typeof m.content === 'string');
  if (!ok) throw new BatonError('BATON_EXPR_EVAL', { where: `in step ${step}: messages`, detail: 'must give a non-empty array of { role: "user" | "assistant", content: string }' });
  return v as Array<{ role: 'user' | 'assistant'; content: string }>;
}

/** ` (reason; by who)` for a blocked or deprecated service's message. */
export function blockedWhy(s: { statusReason?: string; statusBy?: string }): string {
  const parts = [s.statusReason, s.statusBy && `set by ${s.statusBy}`].filter(Boolean);
  return parts.length ? ` (${parts.join('; ')})` : '';
}
