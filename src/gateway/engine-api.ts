/**
 * What the gateway asks of the engine, and nothing else.
 *
 * Every call is async and takes and returns plain data (no compiled workflows, no blob store,
 * no callbacks), so the same routes run beside the engine (`localEngine`, one thread) or on an
 * HTTP thread of their own that reaches the engine's thread over a MessagePort
 * (engine-link.ts, what `baton serve` does). Work that needs engine objects runs engine-side
 * as one call: `describeWorkflow`, `deliverWebhook`, the audit operations.
 *
 * The only non-call members: `info` (fixed facts about the engine, read once) and `on`/`off`
 * for step events (the streaming chat completions follow a run's steps).
 */
import type { Baton } from '../engine/engine.js';
import type { StepEvent } from '../engine/executor.js';
import type { Store } from '../store/store.js';
import { exportForReader, recordReveal } from '../audit/redaction.js';
import { purgeExpired, type PurgeOptions } from '../audit/retention.js';
import { verifyStore } from '../audit/verify.js';
import { describeWorkflow } from './console-api.js';
import { deliverWebhook } from './triggers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;
/** A function of the engine as the gateway sees it: the same arguments, always a promise. */
type Async<F extends Fn> = (...a: Parameters<F>) => Promise<Awaited<ReturnType<F>>>;
type AsyncAll<T> = { [K in keyof T]: T[K] extends Fn ? Async<T[K]> : never };

/** The store's calls the gateway makes (API keys and rate limits, reads of runs and versions). */
type StoreCalls = 'listApiKeys' | 'findApiKey' | 'takeTokens' | 'listRuns' | 'listVersions' | 'getVersion' | 'getRun' | 'getEvents' | 'getModelCalls' | 'costReport' | 'listPurged' | 'appendEvents';

type BatonCalls =
  | 'start' | 'run' | 'wait' | 'getRun' | 'getSteps' | 'listRuns' | 'register' | 'pause' | 'resume' | 'cancel' | 'retry' | 'replay'
  | 'signalRun' | 'sendEvent' | 'publish' | 'versions' | 'stageHistory' | 'diff' | 'promote' | 'serviceList' | 'setServiceStatus'
  | 'serviceHistory' | 'lineage';

export interface EngineInfo {
  /** `sqlite`, `postgres`… for GET /ready. */
  storeKind: string;
}

export type EngineApi = AsyncAll<Pick<Baton, BatonCalls>> & {
  readonly info: EngineInfo;
  store: AsyncAll<Pick<Store, StoreCalls>>;
  registry: AsyncAll<Pick<Baton['registry'], 'resolve'>>;
  tasks: AsyncAll<Pick<Baton['tasks'], 'poll' | 'heartbeat' | 'complete' | 'fail' | 'get'>>;
  approvals: AsyncAll<Pick<Baton['approvals'], 'list' | 'get' | 'decide'>>;
  schedules: AsyncAll<Pick<Baton['schedules'], 'get' | 'list' | 'trigger' | 'pause' | 'resume'>>;
  /** Prometheus text, or undefined when the engine was opened with metrics off. */
  metricsText(): Promise<string | undefined>;
  /** The configured model services' health (empty without a services file). */
  modelStatus(): Promise<ReturnType<NonNullable<Baton['models']>['status']>>;
  /** Names of the configured model services. */
  serviceNames(): Promise<string[]>;
  describeWorkflow: Async<OmitFirst<typeof describeWorkflow>>;
  deliverWebhook: Async<OmitFirst<typeof deliverWebhook>>;
  verifyAudit(runId?: string): Promise<Awaited<ReturnType<typeof verifyStore>>>;
  auditExport: Async<OmitFirst<typeof exportForReader>>;
  purgeExpired(opts: PurgeOptions): Promise<Awaited<ReturnType<typeof purgeExpired>>>;
  recordReveal(runId: string, by: string, via: string): Promise<void>;
  on(event: 'step', fn: (e: StepEvent) => void): void;
  off(event: 'step', fn: (e: StepEvent) => void): void;
};

type OmitFirst<F> = F extends (first: never, ...rest: infer R) => infer T ? (...a: R) => T : never;

const bind = <T extends object, K extends keyof T>(o: T, keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, async (...a: unknown[]) => (o[k] as Fn).apply(o, a)])) as unknown as AsyncAll<Pick<T, K>>;

/** The engine API of a Baton in this thread. */
export function localEngine(baton: Baton): EngineApi {
  return {
    info: { storeKind: baton.store.kind },
    ...bind(baton, ['start', 'run', 'wait', 'getRun', 'getSteps', 'listRuns', 'register', 'pause', 'resume', 'cancel', 'retry', 'replay', 'signalRun', 'sendEvent', 'publish', 'versions', 'stageHistory', 'diff', 'promote', 'serviceList', 'setServiceStatus', 'serviceHistory', 'lineage'] as const),
    store: bind(baton.store, ['listApiKeys', 'findApiKey', 'takeTokens', 'listRuns', 'listVersions', 'getVersion', 'getRun', 'getEvents', 'getModelCalls', 'costReport', 'listPurged', 'appendEvents'] as const),
    registry: bind(baton.registry, ['resolve'] as const),
    tasks: bind(baton.tasks, ['poll', 'heartbeat', 'complete', 'fail', 'get'] as const),
    approvals: bind(baton.approvals, ['list', 'get', 'decide'] as const),
    schedules: bind(baton.schedules, ['get', 'list', 'trigger', 'pause', 'resume'] as const),
    metricsText: async () => baton.metrics?.text(),
    modelStatus: async () => baton.models?.status() ?? [],
    serviceNames: async () => baton.models?.list().map((c) => c.name) ?? [],
    describeWorkflow: async (...a) => describeWorkflow(baton, ...a),
    deliverWebhook: async (...a) => deliverWebhook(baton, ...a),
    verifyAudit: (runId) => verifyStore(baton.store, runId),
    auditExport: async (...a) => exportForReader(baton, ...a),
    purgeExpired: (opts) => purgeExpired(baton, opts),
    recordReveal: (runId, by, via) => recordReveal(baton, runId, by, via),
    on: (event, fn) => void baton.on(event, fn),
    off: (event, fn) => void baton.off(event, fn),
  };
}
