/**
 * The service runtime: every model call goes through here, whatever the vendor. It owns, per
 * service and shared by every run on this worker, the provider instance, the circuit breaker,
 * the rate and concurrency limits and the latency tracker that hedging reads. For one step it
 * walks the chain of services (primary then fallbacks, or cheapest first in a cascade):
 *
 *   per service: cache? → budget reservation → limits → provider call under the service's
 *   timeout → answer checks (empty, JSON, schema, guard; a bad JSON answer is re-asked) →
 *   record the call (tokens, cost, latency, version) → retries with backoff honouring
 *   Retry-After → next service.
 *
 * A degraded answer and a broken stream are failures like a 500: the breaker counts them and
 * the chain moves on, so nothing truncated or off-schema flows downstream. Every call, failed
 * or not, is recorded through the `CallLedger` (the run's events and the cost tables).
 */
import { SpanKind, SpanStatusCode, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { ValidateFunction } from 'ajv';
import { genAiOperation, genAiProvider } from '../observability/genai.js';
import { BatonError, scrubSecret, serializeError, withoutSecret } from '../errors.js';
import type { ModelOperation, ModelRequest, ModelResponse, Provider, ProviderFactory } from '../providers/provider.js';
import { ServiceBreaker, type BreakerState } from '../resilience/breaker.js';
import { LatencyTracker, hedgeDelay } from '../resilience/hedge.js';
import { sleep } from '../resilience/limits.js';
import { LocalLimits, SharedLimits, type ServiceLimiter } from '../resilience/service-limits.js';
import { backoffDelay } from '../resilience/retry.js';
import { canonicalJson, contentHash } from '../spec/canonical.js';
import type { ModelCallRecord, ServiceStatusRecord, Store } from '../store/store.js';
import type { ServiceConfig } from './config.js';
import { fingerprint, withStatus, type PinnedService } from './governance.js';
import { callCost, estimateInputTokens, maxCallCost, roundUsd } from './pricing.js';
import { parseJsonAnswer, repairPrompt, schemaProblems } from './structured.js';
import { suggest } from '../util/suggest.js';

/** One model call as recorded in the run's history and the cost tables. */
export type CallRecord = ModelCallRecord;

/** The store methods that keep limits shared by a cluster. */
export type SharedLimitStore = Pick<Store, 'takeTokens' | 'acquireSlot' | 'releaseSlot'>;

/** Where calls are recorded and budgets kept: the engine implements it on the store. */
export interface CallLedger {
  /** Reserves `amount` USD of the run's budget; throws BATON_BUDGET_EXCEEDED when it does not fit. */
  reserve(runId: string, amount: number): Promise<void>;
  /** Records a call; `release` is the reservation it replaces (0 when none). */
  record(call: CallRecord, release: number): Promise<void>;
  cacheGet(key: string): Promise<unknown | undefined>;
  cachePut(key: string, value: unknown, ttlMs: number): Promise<void>;
}

/** What a model step asks for. */
export interface ModelCall {
  /** Services in the order written: `service` then `fallback`. */
  services: string[];
  strategy: 'fallback' | 'cascade';
  /** Unset: each service does its provider's default operation. */
  operation?: ModelOperation;
  /** For chat. */
  system?: string;
  messages?: ModelRequest['messages'];
  /** For every other operation (and chat when no prompt/messages are given). */
  input?: unknown;
  /** The JSON Schema a chat answer must fill (sent to the vendor) and its compiled validator. */
  schema?: Record<string, unknown> | boolean;
  validate?: ValidateFunction;
  /** The step's guard: false makes the answer degraded. */
  guard?: { source: string; check: (output: unknown) => Promise<boolean> };
  maxTokens?: number;
  temperature?: number;
  stream?: boolean;
  streamIdleMs?: number;
  /** Re-asks after an answer that is not valid JSON or breaks the schema. */
  repairAttempts: number;
  cache?: { ttlMs: number };
  run: { id: string; workflow: string; stepKey: string; attempt: number; idempotencyKey: string; budget?: number; configHash?: string };
  signal: AbortSignal;
  /** The step attempt's trace context (tracing on): each model call gets a span under it. */
  trace?: Context;
}

export interface ModelAnswer {
  output: unknown;
  service: string;
  calls: number;
  cost: number;
}

export interface ServiceStatus {
  name: string;
  provider: string;
  model: string;
  version?: string;
  status: ServiceConfig['status'];
  breaker: BreakerState;
  calls: number;
  failures: number;
  cacheHits: number;
  cacheMisses: number;
  p50Ms?: number;
  p95Ms?: number;
}

const DEFAULT_MAX_TOKENS = 1024;

class ServiceState {
  provider?: Provider;
  private creating?: Promise<Provider>;
  readonly breaker: ServiceBreaker;
  readonly latency = new LatencyTracker();
  readonly limits: ServiceLimiter;
  calls = 0;
  failures = 0;
  cacheHits = 0;
  cacheMisses = 0;
  /** The secret the provider was made with, kept only to scrub it out of the vendor's errors. */
  credential: string | undefined;

  constructor(readonly config: ServiceConfig, private readonly factory: ProviderFactory, private readonly baseDir: string, shared?: SharedLimitStore) {
    // Only failures the service is to blame for open its breaker.
    this.breaker = new ServiceBreaker(config.name, config.breaker, blamesService);
    // Limits shared by the cluster live in the store; otherwise in this process.
    this.limits = shared ? new SharedLimits(shared, `service:${config.name}`, config.limits, config.timeoutMs + 30_000) : new LocalLimits(config.limits);
  }

  /** The provider, created on first use; a missing credential fails the call, not the worker. */
  async get(): Promise<Provider> {
    if (this.provider) return this.provider;
    if (!this.creating) {
      const c = this.config;
      let credential: string | undefined;
      if (c.credentialEnv) {
        credential = process.env[c.credentialEnv];
        if (!credential) throw new BatonError('BATON_CREDENTIAL_MISSING', { service: c.name, env: c.credentialEnv });
      }
      this.credential = credential;
      this.creating = Promise.resolve(this.factory({ service: c.name, model: c.model, endpoint: c.endpoint, credential, options: c.options, baseDir: this.baseDir }));
      this.creating.then((p) => (this.provider = p), () => (this.creating = undefined));
    }
    return this.creating;
  }
}

/** Errors that say nothing about the service's health. */
const NOT_THE_SERVICE = new Set(['BATON_BUDGET_EXCEEDED', 'BATON_CREDENTIAL_MISSING', 'BATON_CIRCUIT_OPEN', 'BATON_CANCELLED', 'BATON_STEP_TIMEOUT', 'BATON_MODEL_UNSUPPORTED']);
/** Errors after which no other service is tried either. */
const STOPS_THE_CHAIN = new Set(['BATON_BUDGET_EXCEEDED', 'BATON_CANCELLED', 'BATON_STEP_TIMEOUT']);

export class ServiceRuntime {
  private readonly states = new Map<string, ServiceState>();
  /** Fingerprints of the configured services' pinned parts (see governance.ts). */
  private readonly fingerprints = new Map<string, string>();
  /** Services as pinned by runs admitted under another configuration: `name#fingerprint`. */
  private readonly pinnedStates = new Map<string, ServiceState>();
  /** Fingerprints of pinned snapshots' services (the engine caches snapshots, so each is computed once). */
  private readonly pinPrints = new WeakMap<PinnedService, string>();
  /** Recorded status changes (latest per service): they override the config file's status. */
  private overrides = new Map<string, ServiceStatusRecord>();
  /** Loads a run's pinned snapshot by hash (set by the engine). */
  pins?: (hash: string) => Promise<Record<string, PinnedService> | undefined>;
  /** Called before each step's calls (the engine refreshes status changes made elsewhere). */
  beforeInvoke?: () => Promise<void>;

  constructor(
    services: ServiceConfig[],
    private readonly providers: Readonly<Record<string, ProviderFactory>>,
    private readonly ledger: CallLedger,
    private readonly baseDir: string,
    /** When given, rate and concurrency limits are kept here and shared by every worker using it. */
    private readonly shared?: SharedLimitStore,
    /** Tracing on: a span per model call (GenAI semantic conventions). */
    private readonly tracer?: Tracer,
  ) {
    const unknown = services.filter((s) => !providers[s.provider]);
    if (unknown.length) {
      throw new BatonError('BATON_CONFIG_INVALID', {
        detail: unknown.map((s) => `services.${s.name}.provider: unknown provider "${s.provider}"${suggest(s.provider, Object.keys(providers))}; use one of: ${Object.keys(providers).sort().join(', ')}`).join('\n'),
      });
    }
    for (const s of services) {
      this.states.set(s.name, new ServiceState(s, providers[s.provider], baseDir, shared));
      this.fingerprints.set(s.name, fingerprint(s));
    }
  }

  /** A service's configuration as validation sees it: the file's, with any recorded status change applied. */
  config(name: string): ServiceConfig | undefined {
    const c = this.states.get(name)?.config;
    return c && withStatus(c, this.overrides.get(name));
  }

  list(): ServiceConfig[] {
    return [...this.states.keys()].map((n) => this.config(n)!);
  }

  /** Replaces the recorded status changes in force (latest per service). */
  setStatusOverrides(latest: Map<string, ServiceStatusRecord>): void {
    this.overrides = latest;
  }

  /** The status in force: a recorded change, else the config file's, else (a service only pinned) approved. */
  statusOf(name: string): { status: ServiceConfig['status']; reason?: string; by?: string } {
    const o = this.overrides.get(name);
    if (o) return { status: o.status, reason: o.reason, by: o.by };
    const c = this.states.get(name)?.config;
    return c ? { status: c.status, reason: c.statusReason } : { status: 'approved' };
  }

  status(): ServiceStatus[] {
    return [...this.states.values()].map((s) => ({
      name: s.config.name, provider: s.config.provider, model: s.config.model, version: s.config.version, status: this.statusOf(s.config.name).status,
      breaker: s.breaker.state, calls: s.calls, failures: s.failures, cacheHits: s.cacheHits, cacheMisses: s.cacheMisses,
      p50Ms: s.latency.percentile(50), p95Ms: s.latency.percentile(95),
    }));
  }

  breaker(name: string): ServiceBreaker | undefined {
    return this.states.get(name)?.breaker;
  }

  async close(): Promise<void> {
    await Promise.all([...this.states.values(), ...this.pinnedStates.values()].map((s) => s.provider?.close?.().catch(() => undefined)));
  }

  /** Runs the chain for one step attempt. */
  async invoke(call: ModelCall): Promise<ModelAnswer> {
    await this.beforeInvoke?.();
    const pinned = call.run.configHash && this.pins ? await this.pins(call.run.configHash) : undefined;
    const all = call.services.map((n) => this.stateFor(n, pinned?.[n]));
    // A service blocked since the run started is passed over; the step fails only when none is left.
    const chain = all.filter((st) => this.statusOf(st.config.name).status !== 'blocked');
    for (const st of all.filter((x) => !chain.includes(x))) {
      // Recorded (never called) so that the run's history says why the service was passed over.
      await this.ledger.record({ ...this.base(st, call, call.operation ?? 'chat', false), outcome: 'skipped', error: serializeError(this.blocked(st.config.name)) }, 0);
    }
    if (chain.length === 0) throw this.blocked(call.services[0]);
    if (call.strategy === 'cascade') {
      // Cheapest first for this request; ties keep the written order (sort is stable).
      const cost = new Map(chain.map((s) => [s, maxCallCost(this.request(s, call), s.config.price, this.maxTokens(s, call))]));
      chain.sort((a, b) => cost.get(a)! - cost.get(b)!);
    }
    const counter = { n: 0 };
    const failures: Array<{ service: string; error: unknown }> = [];
    const answer = await this.from(chain, 0, call, call.signal, failures, counter, false);
    return { ...answer, calls: counter.n };
  }

  private blocked(name: string): BatonError {
    const s = this.statusOf(name);
    const why = [s.reason, s.by && `blocked by ${s.by}`].filter(Boolean).join('; ');
    return new BatonError('BATON_SERVICE_BLOCKED', { service: name, reason: why ? ` (${why})` : '' });
  }

  /**
   * The state a call to `name` uses: the configured service when the run is not pinned or its
   * pin matches the config; otherwise one built from the pinned snapshot (its own provider,
   * breaker and limits), so a run keeps calling what it started with.
   */
  private stateFor(name: string, pin: PinnedService | undefined): ServiceState {
    const current = this.states.get(name);
    if (!pin) {
      if (!current) throw new BatonError('BATON_SERVICE_UNKNOWN', { service: name, known: [...this.states.keys()].join(', ') || '(none)' });
      return current;
    }
    let fp = this.pinPrints.get(pin);
    if (fp === undefined) this.pinPrints.set(pin, (fp = fingerprint(pin)));
    if (current && this.fingerprints.get(name) === fp) return current;
    const key = `${name}#${fp}`;
    let st = this.pinnedStates.get(key);
    if (!st) {
      const factory = this.providers[pin.provider];
      if (!factory) throw new BatonError('BATON_SERVICE_UNKNOWN', { service: name, known: `(this run is pinned to provider "${pin.provider}", which this process does not have)` });
      st = new ServiceState({ ...pin, status: 'approved' }, factory, this.baseDir, this.shared);
      this.pinnedStates.set(key, st);
    }
    return st;
  }

  /**
   * Tries services `i..` in order. With hedging on service `i`, the rest of the chain is started
   * as well once `i` has been slower than its hedge delay; the first good answer wins and the
   * other side is aborted.
   */
  private async from(
    chain: ServiceState[], i: number, call: ModelCall, signal: AbortSignal,
    failures: Array<{ service: string; error: unknown }>, counter: { n: number }, hedged: boolean,
  ): Promise<Omit<ModelAnswer, 'calls'>> {
    if (i >= chain.length) throw this.allFailed(call, failures);
    const st = chain[i];
    const delay = i + 1 < chain.length && st.config.hedge ? hedgeDelay(st.config.hedge, st.latency) : undefined;
    if (delay === undefined) {
      try {
        return await this.tryService(st, call, signal, counter, hedged);
      } catch (e) {
        failures.push({ service: st.config.name, error: e });
        if (stopsChain(e, signal)) throw e;
        return this.from(chain, i + 1, call, signal, failures, counter, hedged);
      }
    }
    // Hedged: both sides run under their own controllers so the loser can be stopped.
    const mine = child(signal);
    const rest = child(signal);
    return new Promise((resolve, reject) => {
      let done = false;
      let pending = 1;
      let restStarted = false;
      let lastError: unknown;
      const win = (a: Omit<ModelAnswer, 'calls'>, loser: AbortController) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        loser.abort(new BatonError('BATON_CANCELLED', { runId: call.run.id }));
        resolve(a);
      };
      const lose = (e: unknown) => {
        lastError = e;
        if (--pending === 0 && !done) {
          done = true;
          // Both sides failed: one error naming every service tried, unless the last failure ends everything anyway.
          reject(stopsChain(lastError, signal) ? lastError : this.allFailed(call, failures));
        }
      };
      // `asHedge`: started by the timer while service i still runs (recorded as a hedge), or
      // after service i failed (a plain fallback).
      const startRest = (asHedge: boolean) => {
        if (restStarted || done) return;
        restStarted = true;
        pending++;
        this.from(chain, i + 1, call, rest.signal, failures, counter, asHedge || hedged).then((a) => win(a, mine), lose);
      };
      const timer = setTimeout(() => startRest(true), delay);
      this.tryService(st, call, mine.signal, counter, hedged).then(
        (a) => win(a, rest),
        (e) => {
          if (done) return;
          failures.push({ service: st.config.name, error: e });
          if (stopsChain(e, signal)) {
            clearTimeout(timer);
            done = true;
            rest.abort(e);
            return reject(e);
          }
          clearTimeout(timer);
          startRest(false);
          lose(e);
        },
      );
    });
  }

  private allFailed(call: ModelCall, failures: Array<{ service: string; error: unknown }>): BatonError {
    // With one service there is nothing to sum up: its own error says it best.
    if (failures.length === 1 && failures[0].error instanceof BatonError) return failures[0].error;
    const detail = failures.map((f) => `${f.service}: ${(f.error as Error).message}`).join(' | ') || 'no service was tried';
    // Worth a step retry only if some failure was transient.
    const retryable = failures.some((f) => serializeError(f.error).retryable);
    return new BatonError('BATON_ALL_SERVICES_FAILED', { step: call.run.stepKey, detail, failures: failures.map((f) => ({ service: f.service, error: serializeError(f.error) })) }, { retryable, cause: failures.at(-1)?.error });
  }

  /** One service: cache, then attempts with backoff (honouring Retry-After), each through the breaker. */
  private async tryService(st: ServiceState, call: ModelCall, signal: AbortSignal, counter: { n: number }, hedged: boolean): Promise<Omit<ModelAnswer, 'calls'>> {
    const cfg = st.config;
    const provider = await this.providerFor(st, call, hedged);
    const operation = call.operation ?? provider.defaultOperation;
    const request = this.request(st, call, operation);
    // A service whose answers are sensitive is never cached: the cache would keep them in clear.
    const cache = cfg.sensitiveOutput ? undefined : (call.cache ?? cfg.cache);
    const key = cache ? cacheKey(cfg, request) : undefined;
    if (key) {
      const hit = await this.ledger.cacheGet(key);
      if (hit !== undefined) {
        st.cacheHits++;
        await this.ledger.record({ ...this.base(st, call, operation, hedged), outcome: 'cache_hit' }, 0);
        return { output: hit, service: cfg.name, cost: 0 };
      }
      st.cacheMisses++;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await st.breaker.execute(() => this.answer(st, provider, call, request, signal, counter, hedged));
        if (key) await this.ledger.cachePut(key, res.output, cache!.ttlMs);
        return res;
      } catch (e) {
        if (e instanceof BatonError && e.code === 'BATON_CIRCUIT_OPEN') {
          await this.ledger.record({ ...this.base(st, call, operation, hedged), outcome: 'skipped', error: serializeError(e) }, 0);
          throw e;
        }
        const err = serializeError(e);
        // A degraded answer was already re-asked where that helps (bad JSON); asking the same
        // service the same question again is not worth it: the next service is.
        if (stopsChain(e, signal) || !err.retryable || err.code === 'BATON_OUTPUT_DEGRADED' || attempt >= cfg.retry.maxAttempts) throw e;
        const retryAfter = typeof err.details?.retryAfterMs === 'number' ? err.details.retryAfterMs : 0;
        await sleep(Math.max(backoffDelay(cfg.retry, attempt), retryAfter), signal);
      }
    }
  }

  private async providerFor(st: ServiceState, call: ModelCall, hedged: boolean): Promise<Provider> {
    try {
      return await st.get();
    } catch (e) {
      // Recorded like any failed call so the run's history says why this service was passed over.
      await this.ledger.record({ ...this.base(st, call, call.operation ?? 'chat', hedged), outcome: 'error', error: serializeError(e) }, 0);
      throw e;
    }
  }

  /**
   * One answer from one service: the call, plus re-asks while the JSON is unusable. Throws a
   * degraded-output error when the answer is empty, off-schema after its re-asks, or fails the guard.
   */
  private async answer(
    st: ServiceState, provider: Provider, call: ModelCall, first: ModelRequest, signal: AbortSignal, counter: { n: number }, hedged: boolean,
  ): Promise<Omit<ModelAnswer, 'calls'>> {
    let request = first;
    let total = 0;
    for (let repair = 0; ; repair++) {
      const { response, cost, record, reserved } = await this.callOnce(st, provider, call, request, signal, counter, hedged);
      total += cost;
      let checked: Awaited<ReturnType<ServiceRuntime['check']>>;
      try {
        checked = await this.check(call, request, response);
      } catch (e) {
        // A guard that cannot be evaluated is the workflow's fault, not the service's.
        await this.ledger.record({ ...record, outcome: 'error', error: serializeError(e) }, reserved);
        throw e;
      }
      const canRepair = !checked.ok && checked.repairable && repair < call.repairAttempts && request.operation === 'chat';
      // In a cascade a failed guard is the cheap tier saying "not sure": the answer is passed
      // over, but the service is healthy, so its breaker does not count it.
      const escalation = !checked.ok && checked.guard && call.strategy === 'cascade';
      const degraded = checked.ok ? undefined : new BatonError('BATON_OUTPUT_DEGRADED', { service: st.config.name, detail: checked.problem, ...(escalation ? { escalation: true } : {}) });
      await this.ledger.record(degraded ? { ...record, outcome: 'degraded', error: serializeError(degraded) } : record, reserved);
      if (checked.ok) return { output: checked.output, service: st.config.name, cost: roundUsd(total) };
      if (!canRepair) {
        if (!escalation) st.failures++;
        throw degraded;
      }
      request = { ...request, messages: [...(request.messages ?? []), { role: 'assistant', content: String(response.output ?? '') }, { role: 'user', content: repairPrompt(checked.problem) }] };
    }
  }

  /** Checks an answer; `repairable` problems (bad JSON, schema) may be re-asked, others (guard, empty) may not. */
  private async check(call: ModelCall, request: ModelRequest, response: ModelResponse): Promise<{ ok: true; output: unknown } | { ok: false; problem: string; repairable: boolean; guard?: boolean }> {
    let output = response.output;
    if (output === undefined || output === null || (typeof output === 'string' && output.trim() === '')) {
      return { ok: false, problem: 'the answer is empty', repairable: false };
    }
    if (request.operation === 'chat' && call.validate && typeof output === 'string') {
      const parsed = parseJsonAnswer(output);
      if (!parsed.ok) return { ok: false, problem: parsed.problem, repairable: true };
      output = parsed.value;
    }
    if (call.validate) {
      const problems = schemaProblems(call.validate, output);
      if (problems) return { ok: false, problem: `the answer does not match output_schema: ${problems}`, repairable: request.operation === 'chat' };
    }
    if (call.guard && !(await call.guard.check(output))) {
      return { ok: false, problem: `guard \`${call.guard.source}\` is false for this answer`, repairable: false, guard: true };
    }
    return { ok: true, output };
  }

  /** The call itself: budget, limits, timeout, and the record of it whatever happens. */
  private async callOnce(
    st: ServiceState, provider: Provider, call: ModelCall, request: ModelRequest, signal: AbortSignal, counter: { n: number }, hedged: boolean,
  ): Promise<{ response: ModelResponse; cost: number; record: CallRecord; reserved: number }> {
    const cfg = st.config;
    const n = ++counter.n;
    const maxTokens = request.maxTokens ?? this.maxTokens(st, call);
    const reserved = call.run.budget !== undefined ? maxCallCost(request, cfg.price, maxTokens) : 0;
    if (call.run.budget !== undefined) await this.ledger.reserve(call.run.id, reserved);
    const estTokens = estimateInputTokens(request) + maxTokens;
    let release: (() => void) | undefined;
    const started = Date.now();
    let response: ModelResponse | undefined;
    const span = this.tracer && call.trace ? this.startCallSpan(st, call, request, hedged) : undefined;
    try {
      release = await st.limits.acquire(estTokens, signal);
      st.calls++;
      const ac = child(signal);
      const timer = setTimeout(() => ac.abort(new BatonError('BATON_MODEL_TIMEOUT', { service: cfg.name, timeoutMs: cfg.timeoutMs })), cfg.timeoutMs);
      try {
        response = await provider.call(request, { signal: ac.signal, idempotencyKey: `${call.run.idempotencyKey}:${n}`, streamIdleMs: call.streamIdleMs });
      } catch (e) {
        // A provider that stops on abort throws its own AbortError: report why it was aborted.
        // A vendor that echoes the key in its error does not get it stored, returned or logged.
        throw withoutSecret(ac.signal.aborted && !signal.aborted ? ac.signal.reason : e, st.credential);
      } finally {
        clearTimeout(timer);
      }
      // Nor one that echoes it in an answer (its text, the model name it reports).
      const secret = st.credential;
      if (secret && secret.length >= 6 && JSON.stringify(response).includes(secret)) response = scrubSecret(response, secret) as ModelResponse;
      const latency = Date.now() - started;
      st.latency.record(latency);
      st.limits.settle(estTokens, response.usage.inputTokens + response.usage.cachedInputTokens + response.usage.outputTokens);
      const cost = callCost(response.usage, cfg.price);
      const record: CallRecord = { ...this.base(st, call, request.operation, hedged), ...usageOf(response), cost, latencyMs: latency, outcome: 'ok' };
      if (request.stream) record.stream = true;
      if (response.finishReason) record.finishReason = response.finishReason;
      if (response.model) record.servedBy = response.model;
      if (span) {
        span.setAttributes({
          'gen_ai.response.model': response.model ?? cfg.model,
          'gen_ai.usage.input_tokens': response.usage.inputTokens + response.usage.cachedInputTokens,
          'gen_ai.usage.output_tokens': response.usage.outputTokens,
          'baton.cost_usd': cost,
        });
        if (response.usage.cachedInputTokens) span.setAttribute('gen_ai.usage.cache_read.input_tokens', response.usage.cachedInputTokens);
        if (response.finishReason) span.setAttribute('gen_ai.response.finish_reasons', [response.finishReason]);
      }
      // Recorded by the caller once the answer is checked (ok or degraded).
      return { response, cost, record, reserved };
    } catch (e) {
      if (span) {
        const err = serializeError(e);
        span.setAttribute('error.type', err.code ?? 'error');
        span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
      }
      if (blamesService(e)) st.failures++;
      const cancelled = signal.aborted;
      await this.ledger.record({ ...this.base(st, call, request.operation, hedged), latencyMs: Date.now() - started, outcome: cancelled ? 'cancelled' : 'error', error: serializeError(cancelled ? signal.reason : e), stream: request.stream || undefined }, reserved);
      throw e;
    } finally {
      release?.();
      span?.end();
    }
  }

  /** `chat <model>` (or `embeddings <model>`…): the GenAI semantic conventions' client span. */
  private startCallSpan(st: ServiceState, call: ModelCall, request: ModelRequest, hedged: boolean): Span {
    const cfg = st.config;
    const op = genAiOperation(request.operation);
    const span = this.tracer!.startSpan(`${op} ${cfg.model}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': op,
        'gen_ai.provider.name': genAiProvider(cfg.provider),
        'gen_ai.request.model': cfg.model,
        'baton.service': cfg.name,
        'baton.run_id': call.run.id,
        'baton.step.key': call.run.stepKey,
        ...(request.maxTokens !== undefined ? { 'gen_ai.request.max_tokens': request.maxTokens } : {}),
        ...(request.temperature !== undefined ? { 'gen_ai.request.temperature': request.temperature } : {}),
        ...(hedged ? { 'baton.hedge': true } : {}),
      },
    }, call.trace);
    return span;
  }

  private base(st: ServiceState, call: ModelCall, operation: ModelOperation, hedged: boolean): CallRecord {
    const c = st.config;
    const r: CallRecord = {
      runId: call.run.id, workflow: call.run.workflow, stepKey: call.run.stepKey, attempt: call.run.attempt,
      service: c.name, provider: c.provider, model: c.model, operation, outcome: 'ok',
      inputTokens: 0, outputTokens: 0, cachedTokens: 0, cost: 0, latencyMs: 0, at: Date.now(),
    };
    if (c.version !== undefined) r.version = c.version;
    if (hedged) r.hedge = true;
    return r;
  }

  private maxTokens(st: ServiceState, call: ModelCall): number {
    return call.maxTokens ?? st.config.maxTokens ?? DEFAULT_MAX_TOKENS;
  }

  /** The request for one service: chat gets the conversation, other operations the input. */
  private request(st: ServiceState, call: ModelCall, operation?: ModelOperation): ModelRequest {
    const op = operation ?? call.operation ?? st.provider?.defaultOperation ?? 'chat';
    const r: ModelRequest = { operation: op };
    if (op === 'chat') {
      if (call.system !== undefined) r.system = call.system;
      r.messages = call.messages ?? [{ role: 'user', content: typeof call.input === 'string' ? call.input : JSON.stringify(call.input ?? null) }];
      if (call.schema !== undefined) r.schema = call.schema as Record<string, unknown>;
      if (call.stream) r.stream = true;
    } else {
      r.input = call.input ?? call.messages?.at(-1)?.content;
    }
    r.maxTokens = this.maxTokens(st, call);
    if (call.temperature !== undefined) r.temperature = call.temperature;
    return r;
  }
}

function usageOf(r: ModelResponse): Pick<CallRecord, 'inputTokens' | 'outputTokens' | 'cachedTokens'> {
  return { inputTokens: r.usage.inputTokens, outputTokens: r.usage.outputTokens, cachedTokens: r.usage.cachedInputTokens };
}

/** The response cache key: the service's identity (model and version included) and the request. */
function cacheKey(cfg: ServiceConfig, request: ModelRequest): string {
  return contentHash(canonicalJson({ service: cfg.name, provider: cfg.provider, model: cfg.model, version: cfg.version ?? null, request }));
}

function child(parent: AbortSignal): AbortController {
  const ac = new AbortController();
  if (parent.aborted) ac.abort(parent.reason);
  else parent.addEventListener('abort', () => ac.abort(parent.reason), { once: true });
  return ac;
}

function stopsChain(e: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (e instanceof BatonError && STOPS_THE_CHAIN.has(e.code));
}

/** Whether a failure counts against the service's health (its breaker and failure count). */
function blamesService(e: unknown): boolean {
  if (isAbort(e)) return false;
  if (!(e instanceof BatonError)) return true;
  return !NOT_THE_SERVICE.has(e.code) && e.details.escalation !== true;
}

function isAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AbortError' || (e instanceof BatonError && e.code === 'BATON_CANCELLED'));
}
