/**
 * The services registry as written in `baton.config.yaml` (or passed to `Baton.open`):
 * named model services. Workflows name services only, so swapping a vendor, a model version
 * or a price is a config change, and governance (blocked / deprecated) is checked when a
 * workflow is validated, before anything runs.
 *
 * ```yaml
 * services:
 *   intent-fast:
 *     provider: openai                 # openai | anthropic | oip | http | onnx | local-*
 *     model: gpt-4o-mini
 *     version: "2024-07-18"
 *     endpoint: http://127.0.0.1:8000/v1
 *     credential: { env: OPENAI_API_KEY }   # a reference, never the secret
 *     price: { input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075 }
 *     limits: { requests_per_minute: 600, concurrency: 8 }
 *     timeout: 20s
 *     retry: { max_attempts: 2 }
 *     breaker: { failures: 5, window: 60s, cooldown: 30s }
 *     hedge: { after: p95 }            # start the next service when this one is slower than its p95
 *     owner: support-platform
 *     status: approved                 # approved | deprecated | blocked
 *     data_residency: eu               # where data sent to it is processed (read by policies)
 *     labels: { tier: gold }           # free-form, read by policies
 * ```
 *
 * `baton services set-status` records a status change in the store (who, why, when); the
 * latest such change overrides `status` here (see src/services/governance.ts).
 *
 * Parsed with zod so that every problem names its path (`services.intent-fast.price.input_per_mtok`).
 */
import { z } from 'zod';
import { BatonError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

const duration = z.union([z.string(), z.number().nonnegative()]).superRefine((v, ctx) => {
  try {
    parseDuration(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration; write e.g. "250ms", "5s", "2m"` });
  }
});
const money = z.number().nonnegative();

const ServiceSchema = z.strictObject({
  provider: z.string().min(1),
  model: z.string().min(1).optional(),
  version: z.union([z.string(), z.number()]).transform(String).optional(),
  description: z.string().optional(),
  endpoint: z.url({ message: 'must be a URL such as http://127.0.0.1:8000/v1' }).optional(),
  /** `{ env: NAME }`, or the shorthand `env:NAME`. */
  credential: z.union([z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }), z.string().regex(/^env:[A-Za-z_][A-Za-z0-9_]*$/, 'write `env:NAME` or `{ env: NAME }`; never the secret itself')]).optional(),
  price: z.strictObject({
    input_per_mtok: money.optional(),
    output_per_mtok: money.optional(),
    cached_input_per_mtok: money.optional(),
    per_call: money.optional(),
    currency: z.literal('USD').optional(),
  }).optional(),
  limits: z.strictObject({
    requests_per_minute: z.number().positive().optional(),
    tokens_per_minute: z.number().positive().optional(),
    concurrency: z.number().int().positive().optional(),
  }).optional(),
  timeout: duration.optional(),
  retry: z.strictObject({
    max_attempts: z.number().int().min(1).max(20).optional(),
    initial_delay: duration.optional(),
    max_delay: duration.optional(),
    multiplier: z.number().min(1).optional(),
    jitter: z.number().min(0).max(1).optional(),
  }).optional(),
  breaker: z.strictObject({
    failures: z.number().int().positive().optional(),
    window: duration.optional(),
    cooldown: duration.optional(),
  }).optional(),
  hedge: z.strictObject({
    after: z.union([z.string().regex(/^p(50|75|90|95|99)$/, 'write p50, p75, p90, p95, p99 or a duration'), duration]),
    min_samples: z.number().int().positive().optional(),
  }).optional(),
  max_tokens: z.number().int().positive().optional(),
  cache: z.union([z.boolean(), z.strictObject({ ttl: duration.optional() })]).optional(),
  owner: z.string().optional(),
  /** Its answers hold personal data or secrets: stored encrypted like a workflow's `sensitive:` mask fields. */
  sensitive_output: z.boolean().optional(),
  status: z.enum(['approved', 'deprecated', 'blocked']).optional(),
  /** Why a service is deprecated or blocked; shown in validation messages. */
  status_reason: z.string().optional(),
  /** Where data sent to the service is processed (`eu`, `us`…); read by policies. */
  data_residency: z.string().min(1).optional(),
  /** Free-form labels read by policies (`require: { service: { tier: gold } }`). */
  labels: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  options: z.record(z.string(), z.unknown()).optional(),
});

export type ServiceDoc = z.input<typeof ServiceSchema>;
export type ServicesDoc = Record<string, ServiceDoc>;

export interface Price {
  inputPerMTok: number;
  outputPerMTok: number;
  cachedInputPerMTok: number;
  perCall: number;
}

export interface ServiceConfig {
  name: string;
  provider: string;
  model: string;
  version?: string;
  description?: string;
  endpoint?: string;
  /** Environment variable holding the secret. */
  credentialEnv?: string;
  price: Price;
  limits: { requestsPerMinute?: number; tokensPerMinute?: number; concurrency?: number };
  timeoutMs: number;
  retry: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number; multiplier: number; jitter: number };
  breaker: { failures: number; windowMs: number; cooldownMs: number };
  hedge?: { percentile?: number; afterMs?: number; minSamples: number };
  maxTokens?: number;
  cache?: { ttlMs: number };
  owner?: string;
  /** Outputs of model steps using it are sensitive (stored encrypted, masked for readers). */
  sensitiveOutput?: boolean;
  status: 'approved' | 'deprecated' | 'blocked';
  statusReason?: string;
  /** Who set the status, when it comes from a recorded change (not the config file). */
  statusBy?: string;
  /** When the recorded status change was made (epoch ms). */
  statusAt?: number;
  dataResidency?: string;
  labels: Record<string, string>;
  options: Record<string, unknown>;
}

export const SERVICE_DEFAULTS = {
  timeoutMs: 60_000,
  retry: { maxAttempts: 2, initialDelayMs: 200, maxDelayMs: 10_000, multiplier: 2, jitter: 0.2 },
  breaker: { failures: 5, windowMs: 60_000, cooldownMs: 30_000 },
  cacheTtlMs: 24 * 3_600_000,
} as const;

/**
 * Validates the `services:` mapping. Throws one BATON_CONFIG_INVALID listing every problem
 * with its path; `where` names the file for the message.
 */
export function parseServices(raw: unknown, where?: string): ServiceConfig[] {
  if (raw === undefined || raw === null) return [];
  const parsed = z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'service names use letters, digits, `_`, `.` and `-`'), ServiceSchema).safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  services.${i.path.map(String).join('.')}: ${issueText(i)}`);
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `${where ? `${where}: ` : ''}${lines.length} problem${lines.length === 1 ? '' : 's'} in services:\n${lines.join('\n')}` });
  }
  return Object.entries(parsed.data).map(([name, s]) => toConfig(name, s));
}

function issueText(i: z.core.$ZodIssue): string {
  if (i.code === 'unrecognized_keys') return `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `\`${k}\``).join(', ')}`;
  return i.message;
}

function toConfig(name: string, s: z.output<typeof ServiceSchema>): ServiceConfig {
  const credentialEnv = s.credential === undefined ? undefined : typeof s.credential === 'string' ? s.credential.slice(4) : s.credential.env;
  const hedgeAfter = s.hedge?.after;
  const percentile = typeof hedgeAfter === 'string' && /^p\d+$/.test(hedgeAfter) ? Number(hedgeAfter.slice(1)) : undefined;
  return {
    name,
    provider: s.provider,
    model: s.model ?? name,
    version: s.version,
    description: s.description,
    endpoint: s.endpoint,
    credentialEnv,
    price: {
      inputPerMTok: s.price?.input_per_mtok ?? 0,
      outputPerMTok: s.price?.output_per_mtok ?? 0,
      cachedInputPerMTok: s.price?.cached_input_per_mtok ?? s.price?.input_per_mtok ?? 0,
      perCall: s.price?.per_call ?? 0,
    },
    limits: { requestsPerMinute: s.limits?.requests_per_minute, tokensPerMinute: s.limits?.tokens_per_minute, concurrency: s.limits?.concurrency },
    timeoutMs: s.timeout === undefined ? SERVICE_DEFAULTS.timeoutMs : parseDuration(s.timeout),
    retry: {
      maxAttempts: s.retry?.max_attempts ?? SERVICE_DEFAULTS.retry.maxAttempts,
      initialDelayMs: s.retry?.initial_delay === undefined ? SERVICE_DEFAULTS.retry.initialDelayMs : parseDuration(s.retry.initial_delay),
      maxDelayMs: s.retry?.max_delay === undefined ? SERVICE_DEFAULTS.retry.maxDelayMs : parseDuration(s.retry.max_delay),
      multiplier: s.retry?.multiplier ?? SERVICE_DEFAULTS.retry.multiplier,
      jitter: s.retry?.jitter ?? SERVICE_DEFAULTS.retry.jitter,
    },
    breaker: {
      failures: s.breaker?.failures ?? SERVICE_DEFAULTS.breaker.failures,
      windowMs: s.breaker?.window === undefined ? SERVICE_DEFAULTS.breaker.windowMs : parseDuration(s.breaker.window),
      cooldownMs: s.breaker?.cooldown === undefined ? SERVICE_DEFAULTS.breaker.cooldownMs : parseDuration(s.breaker.cooldown),
    },
    hedge: hedgeAfter === undefined ? undefined : { percentile, afterMs: percentile === undefined ? parseDuration(hedgeAfter) : undefined, minSamples: s.hedge?.min_samples ?? 20 },
    maxTokens: s.max_tokens,
    cache: s.cache === undefined || s.cache === false ? undefined : { ttlMs: s.cache === true || s.cache.ttl === undefined ? SERVICE_DEFAULTS.cacheTtlMs : parseDuration(s.cache.ttl) },
    owner: s.owner,
    ...(s.sensitive_output ? { sensitiveOutput: true } : {}),
    status: s.status ?? 'approved',
    statusReason: s.status_reason,
    dataResidency: s.data_residency,
    labels: s.labels ?? {},
    options: s.options ?? {},
  };
}
