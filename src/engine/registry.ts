/**
 * Workflow versions: registering a document stores it immutably under `name@hash`; a run is
 * pinned to the version it started on. Child workflows are pinned too: one referenced by file
 * is registered first, one referenced by name resolves to its latest version, and either way
 * the reference is rewritten to a version id before hashing, so a change in a child makes a
 * new parent version.
 */
import { dirname, resolve } from 'node:path';
import { BatonError, type Problem } from '../errors.js';
import { canonicalJson, contentHash, versionIdOf } from '../spec/canonical.js';
import { compileOrThrow, toProblem, type CompiledWorkflow, type CompileOptions } from '../spec/compile.js';
import { readSource, type SourceDocument } from '../spec/parse.js';
import type { StepDoc, WorkflowDocument } from '../spec/types.js';
import type { Store, VersionRecord } from '../store/store.js';
import { DEFAULT_NAMESPACE, qualifiedName } from './namespaces.js';
import { hookPath, triggersOf, unsetWebhookSecrets, type Listening, type WebhookTrigger } from './triggers.js';
import type { CompiledTrigger } from '../spec/triggers.js';

const FILE_REF = /\.(ya?ml|json)$/i;

/** The stages a version can be promoted through; every registered version starts in draft. */
export const STAGES = ['draft', 'staging', 'production'] as const;
export type Stage = (typeof STAGES)[number];
const STAGE_REF = /^(.+)@(draft|staging|production)$/;

/**
 * How long a name's latest version is remembered. Starting by name is the gateway's hot path;
 * a version registered in this process is seen at once, one registered by another process of
 * a cluster within this time.
 */
const LATEST_TTL_MS = 1000;

export class WorkflowRegistry {
  private readonly compiled = new Map<string, CompiledWorkflow>();
  private readonly latest = new Map<string, { versionId: string; at: number }>();
  /** The triggers of every workflow's latest version, remembered as names are (LATEST_TTL_MS). */
  private listeningCache: { at: number; list: Promise<Array<Listening<CompiledTrigger>>> } | undefined;

  constructor(
    private readonly store: Store,
    /** What documents are checked against: registered functions, configured services. */
    private readonly known: () => Pick<CompileOptions, 'functions' | 'services' | 'policies'>,
    /** Called after each registration (children included): keeps schedules in step with the document. */
    private readonly onRegistered?: (rec: VersionRecord, wf: CompiledWorkflow) => Promise<void>,
    /** Told once per version of a stored version this Baton cannot compile, whose triggers are then not listened to. */
    private readonly onUnreadable?: (e: unknown, versionId: string) => void,
  ) {}

  /** Versions already reported to onUnreadable. */
  private readonly unreadable = new Set<string>();

  /**
   * What listens for webhooks and CloudEvents: the triggers of every workflow's latest version.
   * Each webhook request and published event asks, and reading it means reading every version:
   * it is remembered for a second (one registered here is seen at once, elsewhere within that).
   */
  listening(): Promise<Array<Listening<CompiledTrigger>>> {
    const now = Date.now();
    if (this.listeningCache && now - this.listeningCache.at < LATEST_TTL_MS) return this.listeningCache.list;
    const list = this.store.latestVersions().then((latest) => this.triggersOfReadable(latest));
    this.listeningCache = { at: now, list };
    list.catch(() => {
      if (this.listeningCache?.list === list) this.listeningCache = undefined;
    });
    return list;
  }

  /**
   * Validates (every problem at once, with positions when `source` is given) and registers.
   * Warnings (a deprecated service) do not stop registration; they are returned.
   * In a namespace other than `default` the version is stored as `<namespace>/<name>`.
   */
  async register(value: unknown, source?: SourceDocument, namespace = DEFAULT_NAMESPACE): Promise<VersionRecord & { warnings: Problem[] }> {
    const known = this.known();
    const checked = compileOrThrow(value, { source, ...known });
    const doc = structuredClone(value) as WorkflowDocument;
    const name = qualifiedName(namespace, doc.name);
    const warnings = [...checked.warnings, ...this.secretWarnings(doc, namespace, checked, source)];
    // Webhook paths are checked twice: here, so that a refused document registers none of its
    // children, and in the insert's own transaction, where two registrations at one instant
    // (any processes) are serialised, so that they cannot both take one path.
    const pathsFree = this.hookPathCheck(name, namespace, checked);
    pathsFree?.(await this.store.latestVersions());
    await this.resolveChildren(doc, namespace, source);
    const canonical = canonicalJson(doc);
    const hash = contentHash(canonical);
    const rec = await this.store.putVersion({ versionId: versionIdOf(name, hash), name, hash, document: canonical, source: source?.file }, pathsFree);
    this.latest.delete(name);
    this.listeningCache = undefined;
    if (!this.compiled.has(rec.versionId)) this.compiled.set(rec.versionId, compileOrThrow(doc, known));
    await this.onRegistered?.(rec, this.compiled.get(rec.versionId)!);
    return { ...rec, warnings };
  }

  /**
   * A warning for each webhook whose secret variable this process does not have: registered,
   * it listens, but every delivery is refused until the gateway that receives it has the
   * variable (the register command may run elsewhere, hence "this process").
   */
  private secretWarnings(doc: WorkflowDocument, namespace: string, wf: CompiledWorkflow, source?: SourceDocument): Problem[] {
    const unset = unsetWebhookSecrets(wf.triggers.map((trigger) => ({ trigger })));
    return unset.map(({ trigger, variable }) => {
      const t = trigger as WebhookTrigger;
      const i = (doc.triggers ?? []).findIndex((d) => d?.webhook?.path === t.webhook.path);
      const path = hookPath({ versionId: '', workflow: doc.name, namespace, trigger: t });
      return toProblem({
        path: ['triggers', i, 'webhook', 'secret'],
        severity: 'warning',
        message: `environment variable ${variable} is not set in this process: the webhook /hooks/${path} refuses every delivery (401 BATON_WEBHOOK_REFUSED) until the gateway that receives it has ${variable} set.`,
      }, source);
    });
  }

  /**
   * What a version declaring webhook paths must pass, given the latest version of every
   * workflow (undefined for one without webhooks): none of its paths is declared by another
   * workflow's latest version. Accepted, such a path would leave both without a webhook (the
   * /hooks handler does not guess between them). A new version of the same workflow may keep
   * or move its paths. Synchronous: it runs inside the store's write transaction.
   */
  private hookPathCheck(name: string, namespace: string, wf: CompiledWorkflow): ((latest: VersionRecord[]) => void) | undefined {
    const mine = wf.triggers.filter((t): t is WebhookTrigger => t.kind === 'webhook');
    if (!mine.length) return undefined;
    return (latest) => {
      const held = this.triggersOfReadable(latest.filter((v) => v.name !== name))
        .filter((l): l is Listening<WebhookTrigger> => l.trigger.kind === 'webhook');
      for (const t of mine) {
        const path = hookPath({ versionId: '', workflow: name, namespace, trigger: t });
        const holder = held.find((l) => hookPath(l) === path);
        if (holder) throw new BatonError('BATON_WEBHOOK_PATH_TAKEN', { path, workflow: holder.workflow, name });
      }
    };
  }

  async registerFile(file: string, namespace = DEFAULT_NAMESPACE): Promise<VersionRecord & { warnings: Problem[] }> {
    const src = readSource(file);
    return this.register(src.value, src, namespace);
  }

  /** The compiled form of a registered version (compiled once per process). */
  async get(versionId: string): Promise<CompiledWorkflow> {
    const hit = this.compiled.get(versionId);
    if (hit) return hit;
    const rec = await this.store.getVersion(versionId);
    if (!rec) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref: versionId });
    return this.compiledOf(rec);
  }

  /**
   * The triggers of `versions`, leaving out versions this Baton cannot compile (stored by a newer
   * Baton, or by hand): one such version must not silence every other workflow's webhooks and
   * CloudEvents, nor refuse every registration of a webhook. Each is reported once.
   */
  private triggersOfReadable(versions: VersionRecord[]): Array<Listening<CompiledTrigger>> {
    const readable = versions.filter((v) => {
      try {
        this.compiledOf(v);
        return true;
      } catch (e) {
        if (!this.unreadable.has(v.versionId)) {
          this.unreadable.add(v.versionId);
          this.onUnreadable?.(e, v.versionId);
        }
        return false;
      }
    });
    return triggersOf(readable, (v) => this.compiledOf(v));
  }

  /** The compiled form of a stored version (compiled once per process). */
  private compiledOf(rec: VersionRecord): CompiledWorkflow {
    const hit = this.compiled.get(rec.versionId);
    if (hit) return hit;
    // Functions are checked at call time here: a worker may serve versions registered elsewhere.
    const wf = compileOrThrow(JSON.parse(rec.document));
    this.compiled.set(rec.versionId, wf);
    return wf;
  }

  /**
   * `name` (latest version), `namespace/name`, a version id (`name@hash`) or `name@stage`
   * (`name@production`: the version promoted to that stage; `name@draft`: the latest) to a
   * version id. A plain name is looked up in `namespace` first, then in the shared default
   * namespace; so is the name of `name@stage`.
   */
  async resolve(ref: string, namespace = DEFAULT_NAMESPACE): Promise<string> {
    const staged = STAGE_REF.exec(ref);
    if (staged) {
      const [, name, stage] = staged;
      if (stage === 'draft') return this.resolve(name, namespace);
      const names = name.includes('/') || namespace === DEFAULT_NAMESPACE ? [name] : [qualifiedName(namespace, name), name];
      for (const n of names) {
        const rec = await this.store.stageVersion(n, stage);
        if (rec) return rec.versionId;
      }
      // Say "nothing promoted" only when the workflow exists at all.
      await this.resolve(name, namespace);
      throw new BatonError('BATON_STAGE_EMPTY', { name, stage });
    }
    if (ref.includes('@')) {
      // Versions are immutable: one compiled here exists.
      if (this.compiled.has(ref)) return ref;
      const rec = await this.store.getVersion(ref);
      if (!rec) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref });
      return rec.versionId;
    }
    const own = ref.includes('/') || namespace === DEFAULT_NAMESPACE ? undefined : await this.latestOf(qualifiedName(namespace, ref));
    const versionId = own ?? (await this.latestOf(ref));
    if (!versionId) throw new BatonError('BATON_WORKFLOW_NOT_FOUND', { ref });
    return versionId;
  }

  private async latestOf(name: string): Promise<string | undefined> {
    const now = Date.now();
    const hit = this.latest.get(name);
    if (hit && now - hit.at < LATEST_TTL_MS) return hit.versionId;
    const rec = await this.store.latestVersion(name);
    if (rec) this.latest.set(name, { versionId: rec.versionId, at: now });
    else this.latest.delete(name);
    return rec?.versionId;
  }

  private async resolveChildren(doc: WorkflowDocument, namespace: string, source?: SourceDocument): Promise<void> {
    const visit = async (s: StepDoc | undefined) => {
      if (!s) return;
      if (s.kind === 'workflow' && FILE_REF.test(s.workflow)) {
        const base = source && source.file !== '<input>' ? dirname(source.file) : process.cwd();
        const child = await this.registerFile(resolve(base, s.workflow), namespace);
        s.workflow = child.versionId;
      } else if (s.kind === 'workflow') {
        // A name means its latest version *now*: pinned into this version, so a parent run
        // never picks up a child registered after it started.
        s.workflow = await this.resolve(s.workflow, namespace);
      }
      if (s.kind === 'map') await visit(s.step as StepDoc);
    };
    for (const s of doc.steps) await visit(s);
  }
}
