/**
 * Validates a workflow document and compiles it into the form the engine executes.
 *
 * Validation reports ALL problems at once, each with its document path (and, through
 * `SourceDocument.locate`, its line and column): structure against the JSON Schema, unknown
 * kinds and fields, duplicate ids, references to missing steps, cycles (named), expressions
 * that do not compile, output/input schemas that are not valid JSON Schema.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { BatonError, type Problem } from '../errors.js';
import { DEFAULT_LIMITS, ExpressionCache, Template, type Expression } from '../expr/expression.js';
import { STEP_KINDS } from '../steps/index.js';
import { MAX_EVENT_HOPS } from '../steps/emit.js';
import type { PreparedStep, ServiceCatalog, StepKind } from '../steps/kind.js';
import { NO_RETRY, retryPolicy, type RetryPolicy } from '../resilience/retry.js';
import { parseDuration } from '../util/duration.js';
import { suggest } from '../util/suggest.js';
import { buildWorkflowSchema, COMMON_STEP_FIELDS } from './schema.js';
import { formatPath, type DocPath, type SourceDocument } from './parse.js';
import { compileTriggers, type CompiledTrigger } from './triggers.js';
import { checkPolicies, type Policy, type PolicyStep } from '../services/policies.js';
import type { JsonSchema, OnErrorDoc, StepDoc, SubStepDoc, WorkflowDocument } from './types.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** The published schema, built from the step kind table. */
export const WORKFLOW_SCHEMA = buildWorkflowSchema([...STEP_KINDS.values()].map((k) => k.schema));

let documentValidator: ValidateFunction | undefined;
function validateStructure(value: unknown): ErrorObject[] {
  documentValidator ??= newAjv({ discriminator: true, verbose: true }).compile(WORKFLOW_SCHEMA);
  return documentValidator(value) ? [] : (documentValidator.errors ?? []);
}

/** An Ajv instance for user-supplied schemas (input and output schemas). */
export function newAjv(extra: { discriminator?: boolean; verbose?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, ...extra });
  addFormats(ajv);
  return ajv;
}

export type OnError = { action: 'fail' } | { action: 'continue'; value?: Expression } | { action: 'route'; step: string };

/** One step, ready to execute. Map sub-steps are `CompiledStep`s too (without deps). */
export interface CompiledStep {
  id: string;
  doc: StepDoc | SubStepDoc;
  kind: StepKind<never>;
  prepared: PreparedStep;
  when?: Expression;
  input?: Expression;
  guard?: Expression;
  outputValidator?: ValidateFunction;
  retry: RetryPolicy;
  timeoutMs?: number;
  onError: OnError;
  /** Steps that must finish first: `needs` plus every `steps.X` referenced. */
  deps: string[];
  /** Steps that list this one among their deps. */
  dependents: string[];
  /** Runs only when another step's `on_error.route` sends it. */
  isHandler: boolean;
  /** For map steps: the per-item sub-step. */
  sub?: CompiledStep;
}

export interface CompiledWorkflow {
  name: string;
  doc: WorkflowDocument;
  steps: Map<string, CompiledStep>;
  /** Step ids in document order. */
  order: string[];
  inputValidator?: ValidateFunction;
  output?: Expression;
  /** `concurrency.key`, evaluated over the run's input at admission. */
  concurrencyKey?: Expression;
  /** Schedules, webhooks and CloudEvents that start its runs. */
  triggers: CompiledTrigger[];
  /** Steps nothing depends on: their outputs form the default run output (handlers only if they ran). */
  sinks: string[];
  inlineOutputBytes: number;
  expressions: ExpressionCache;
  /** Problems that did not stop compilation (a deprecated service). */
  warnings: Problem[];
  /** Some step calls model services (its run's cost lives in the store, not in memory). */
  callsModels: boolean;
}

export interface CompileOptions {
  /** Registered function names; when given, unknown names are problems. */
  functions?: ReadonlySet<string>;
  /** Configured model services; when given, unknown and blocked ones are problems, deprecated ones warnings. */
  services?: ServiceCatalog;
  /** Governance policies (baton.config.yaml `policies:`); violations are problems at the offending step. */
  policies?: readonly Policy[];
  source?: SourceDocument;
}

export interface CompileResult {
  problems: Problem[];
  workflow?: CompiledWorkflow;
}

/** Validates and compiles; never throws for document problems (they are returned). */
export function compileWorkflow(value: unknown, opts: CompileOptions = {}): CompileResult {
  const problems: Array<{ path: DocPath; message: string; atKey?: boolean; severity?: 'warning' }> = [];
  // Parts of the document that broke the schema (a field of the wrong type, an unknown or a
  // missing field). The checks below still read everything else; what they find at or inside a
  // broken part is a consequence of its schema problem, already reported, so it is not repeated.
  const broken: DocPath[] = [];
  // The same problem can be found twice (a field compiled by the kind and as a common field).
  const add = (path: DocPath, message: string, atKey = false, severity?: 'warning') => {
    if (broken.some((b) => isWithin(path, b) || (isWithin(b, path) && !isContainer(path)))) return;
    if (!problems.some((p) => p.message === message && formatPath(p.path) === formatPath(path))) problems.push({ path, message, atKey, severity });
  };

  const errors = validateStructure(value);
  // An anyOf that failed (durations, on_error) is reported once with its description,
  // instead of once per branch ("must match pattern", "must be number").
  const anyOfPaths = new Map<string, string>();
  for (const e of errors) {
    const d = (e.parentSchema as { description?: string } | undefined)?.description;
    if (e.keyword === 'anyOf' && d) anyOfPaths.set(e.instancePath, d);
  }
  for (const e of errors) {
    const anyOf = anyOfPaths.get(e.instancePath);
    if (anyOf !== undefined && e.keyword !== 'anyOf') continue;
    const p = anyOf !== undefined
      ? { path: jsonPointerPath(e.instancePath), message: `${formatPath(jsonPointerPath(e.instancePath))} is not valid. ${anyOf}` }
      : structuralProblem(e, value);
    if (!p) continue;
    broken.push(p.brokenPath ?? p.path);
    if (!problems.some((q) => formatPath(q.path) === formatPath(p.path) && q.message === p.message)) problems.push({ path: p.path, message: p.message, atKey: p.atKey });
  }

  const doc = value as WorkflowDocument;
  const result = (): CompileResult => ({ problems: problems.map((p) => toProblem(p, opts.source)) });
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.steps)) return result();
  const structural = problems.length;
  // The checks below run on a broken document too (every problem at once), guarding each read of
  // a field that may have another type. Should one still trip on a field of another type, the
  // problems found so far (the schema's among them) are the answer, never a crash.
  try {
    return compileChecked();
  } catch (e) {
    if (e instanceof BatonError || structural === 0) throw e;
    return result();
  }

  function compileChecked(): CompileResult {

    let limitMs = DEFAULT_LIMITS.timeoutMs;
    if (doc.limits?.expression_timeout !== undefined) {
      try {
        limitMs = parseDuration(doc.limits.expression_timeout);
      } catch (e) {
        add(['limits', 'expression_timeout'], (e as BatonError).message);
      }
    }
    const expressions = new ExpressionCache({ ...DEFAULT_LIMITS, timeoutMs: limitMs });
    const ajv = newAjv();

    let defaultRetry = NO_RETRY;
    try {
      defaultRetry = retryPolicy(doc.defaults?.retry, NO_RETRY);
    } catch (e) {
      add(['defaults', 'retry'], (e as BatonError).message);
    }

    const compileExpr = (src: unknown, path: DocPath): Expression | undefined => {
      if (typeof src !== 'string') return undefined;
      try {
        return expressions.get(src);
      } catch (e) {
        add(path, (e as BatonError).message);
        return undefined;
      }
    };
    const compileSchema = (schema: unknown, path: DocPath): ValidateFunction | undefined => {
      if (schema === undefined || (typeof schema !== 'object' && typeof schema !== 'boolean')) return undefined;
      try {
        return ajv.compile(schema as JsonSchema as object);
      } catch (e) {
        add(path, `not a valid JSON Schema: ${(e as Error).message}`);
        return undefined;
      }
    };

    // A workflow default applies to every step that sets none: reported once, where it is written.
    let defaultTimeoutMs: number | undefined;
    if (doc.defaults?.timeout !== undefined) {
      try {
        defaultTimeoutMs = parseDuration(doc.defaults.timeout);
      } catch (e) {
        add(['defaults', 'timeout'], (e as BatonError).message);
      }
    }

    /**
     * Compiles the fields every step shares, then the kind's own fields. A step that broke the
     * schema is compiled too, so its references and expressions are checked with everyone else's;
     * problems inside its broken fields are dropped by `add` (their schema problem says it).
     */
    const compileStep = (s: StepDoc | SubStepDoc, id: string, path: DocPath): CompiledStep | undefined => {
      if (!s || typeof s !== 'object' || Array.isArray(s)) return undefined;
      const stepBroken = broken.some((b) => isWithin(b, path));
      // An unknown or missing kind is a schema problem; the common fields are still checked.
      const kind = STEP_KINDS.get(s.kind) ?? UNKNOWN_KIND;
      let prepared: PreparedStep;
      try {
        prepared = kind.prepare(s as never, {
          expressions,
          functions: opts.functions,
          path: formatPath(path),
          services: opts.services,
          problem: (rel, message) => add(rel ? [...path, ...relPath(rel)] : path, message),
          warn: (rel, message) => add(rel ? [...path, ...relPath(rel)] : path, message, false, 'warning'),
          expression: (rel, src) => compileExpr(src, [...path, ...relPath(rel)]),
          schema: (rel, schema) => compileSchema(schema, [...path, ...relPath(rel)]),
          template: (rel, src) => {
            if (src === undefined) return undefined;
            try {
              return new Template(src, expressions);
            } catch (e) {
              add([...path, ...relPath(rel)], (e as BatonError).message);
              return undefined;
            }
          },
        });
      } catch (e) {
        // A kind reads its fields as the schema says they are: on a step that broke the schema,
        // a failure here is a consequence of the problem already reported.
        if (!stepBroken) add(path, `cannot prepare ${s.kind} step: ${(e as Error).message}`);
        prepared = NOT_PREPARED;
      }
      let retry = defaultRetry;
      let timeoutMs: number | undefined;
      try {
        const base = s.retry || doc.defaults?.retry ? defaultRetry : { ...defaultRetry, ...kind.defaultRetry };
        retry = retryPolicy(s.retry, base);
      } catch (e) {
        add([...path, 'retry'], (e as BatonError).message);
      }
      if (s.timeout === undefined) timeoutMs = defaultTimeoutMs;
      else {
        try {
          timeoutMs = parseDuration(s.timeout);
        } catch (e) {
          add([...path, 'timeout'], (e as BatonError).message);
        }
      }
      return {
        id,
        doc: s,
        kind,
        prepared,
        when: compileExpr(s.when, [...path, 'when']),
        input: compileExpr(s.input, [...path, 'input']),
        guard: compileExpr(s.guard, [...path, 'guard']),
        outputValidator: compileSchema(s.output_schema, [...path, 'output_schema']),
        retry,
        timeoutMs,
        onError: compileOnError(s.on_error, [...path, 'on_error'], compileExpr),
        deps: [],
        dependents: [],
        isHandler: false,
      };
    };

    // Pass 1: ids and per-step compilation.
    const steps = new Map<string, CompiledStep>();
    const order: string[] = [];
    const pathOf = new Map<string, DocPath>();
    // Steps without a usable id (a schema problem) are not in the graph; a reference that finds
    // no step may have meant one of them, and says so.
    const idless: DocPath[] = [];
    const noSuchStep = (name: string) => {
      const hint = suggest(name, pathOf.keys());
      if (hint || !idless.length) return hint;
      return ` (${idless.map(formatPath).join(', ')} ${idless.length === 1 ? 'has' : 'have'} no id)`;
    };
    doc.steps.forEach((s, i) => {
      const path: DocPath = ['steps', i];
      if (!s || typeof s !== 'object' || typeof s.id !== 'string') {
        idless.push(path);
        return;
      }
      if (pathOf.has(s.id)) {
        add([...path, 'id'], `duplicate step id "${s.id}" (first used at ${formatPath(pathOf.get(s.id)!)}). Step ids must be unique.`);
        return;
      }
      pathOf.set(s.id, path);
      const c = compileStep(s, s.id, path);
      if (!c) return;
      if (s.kind === 'map' && (s as { step?: SubStepDoc }).step) {
        c.sub = compileStep((s as { step: SubStepDoc }).step, s.id, [...path, 'step']);
      }
      steps.set(s.id, c);
      order.push(s.id);
    });

    // Pass 2: references, dependencies and error routes.
    for (const id of order) {
      const c = steps.get(id)!;
      const path = pathOf.get(id)!;
      const deps = new Set<string>();
      const needs: unknown = (c.doc as StepDoc).needs;
      (Array.isArray(needs) ? needs : []).forEach((n: unknown, j) => {
        if (typeof n !== 'string') return; // a schema problem
        if (n === id) add([...path, 'needs', j], `step "${id}" cannot need itself.`);
        else if (!pathOf.has(n)) add([...path, 'needs', j], `needs "${n}", but there is no step with that id${noSuchStep(n)}.`);
        else deps.add(n);
      });
      const refSets: Array<[DocPath, Iterable<string>]> = [];
      for (const f of ['when', 'input', 'guard'] as const) if (c[f]) refSets.push([[...path, f], c[f]!.stepRefs]);
      refSets.push([path, c.prepared.stepRefs]);
      if (c.sub) {
        for (const f of ['when', 'input', 'guard'] as const) if (c.sub[f]) refSets.push([[...path, 'step', f], c.sub[f]!.stepRefs]);
        refSets.push([[...path, 'step'], c.sub.prepared.stepRefs]);
      }
      for (const [where, refs] of refSets) {
        for (const r of refs) {
          if (r === id) {
            // A guard reads the step's own output through `output`, not steps.<self>.
            add(where, `step "${id}" refers to its own output through steps.${id}; use \`output\` in a guard instead.`);
          } else if (!pathOf.has(r)) add(where, `refers to steps.${r}, but there is no step with that id${noSuchStep(r)}.`);
          else deps.add(r);
        }
      }
      c.deps = [...deps].filter((d) => steps.has(d));
      if (c.onError.action === 'route') {
        const target = c.onError.step;
        if (target === id) add([...path, 'on_error', 'route'], `step "${id}" cannot route its errors to itself.`);
        else if (!steps.has(target)) add([...path, 'on_error', 'route'], `routes errors to "${target}", but there is no step with that id${noSuchStep(target)}.`);
        else steps.get(target)!.isHandler = true;
      }
    }
    for (const id of order) {
      const c = steps.get(id)!;
      const needs: unknown = (c.doc as StepDoc).needs;
      if (c.isHandler && Array.isArray(needs) && needs.length) {
        add([...pathOf.get(id)!, 'needs'], `step "${id}" is an error handler (an on_error.route target); it runs only when routed to, so it cannot have needs.`);
      }
      // A handler is scheduled by a route only, never by its dependencies finishing.
      if (!c.isHandler) for (const d of c.deps) steps.get(d)!.dependents.push(id);
    }

    // Pass 3: cycles.
    for (const cycle of findCycles(order, (id) => steps.get(id)!.deps)) {
      add(pathOf.get(cycle[0])!, `dependency cycle: ${[...cycle, cycle[0]].join(' → ')}. Steps form a directed acyclic graph; remove one of these dependencies.`);
    }

    // Pass 4: governance policies (they read the graph, so they come after it is known).
    if (opts.policies?.length) {
      const byId = new Map<string, PolicyStep>();
      for (const id of order) {
        const c = steps.get(id)!;
        const d = c.doc as StepDoc;
        const services: PolicyStep['services'] = [];
        const collect = (x: StepDoc | SubStepDoc | undefined, base: Array<string | number>) => {
          if (!x || typeof x !== 'object' || x.kind !== 'model') return;
          if (typeof x.service === 'string') services.push({ name: x.service, field: [...base, 'service'] });
          const fallback: unknown = x.fallback;
          if (Array.isArray(fallback)) fallback.forEach((f: unknown, j) => typeof f === 'string' && services.push({ name: f, field: [...base, 'fallback', j] }));
        };
        collect(d, []);
        if (d.kind === 'map') collect(d.step, ['step']);
        byId.set(id, { id, kind: d.kind, path: pathOf.get(id)!, risk: d.risk, services, dependents: c.dependents });
      }
      // "Needs a step of kind X downstream" reads the graph; with a step that broke the schema (a
      // `needs` of another type, an unknown field meant as an expression) the graph may lack edges,
      // and such a finding would be a consequence, not a problem. Per-step requirements still apply.
      const graphSound = !broken.some((b) => b[0] === 'steps');
      const policies = graphSound ? opts.policies : opts.policies.map((p) => ({ ...p, require: { ...p.require, downstreamKind: undefined } }));
      const tags = Array.isArray(doc.tags) ? doc.tags.filter((t): t is string => typeof t === 'string') : [];
      for (const v of checkPolicies(policies, tags, byId, (n) => opts.services?.get(n))) add(v.path, v.message);
    }

    const inputValidator = compileSchema(doc.input, ['input']);
    const output = compileExpr(doc.output, ['output']);
    const concurrencyKey = compileExpr(doc.concurrency?.key, ['concurrency', 'key']);
    for (const r of concurrencyKey?.stepRefs ?? []) add(['concurrency', 'key'], `the concurrency key is computed before any step runs, so it cannot read steps.${r}; use the input.`);
    // A field of the wrong type is already a structural problem: it is not compiled further.
    const triggers = compileTriggers(Array.isArray(doc.triggers) ? doc.triggers : undefined, (p, m) => add(p, m), compileExpr);
    // An emit that starts its own workflow loops until the hop limit (steps/emit.ts) cuts it:
    // allowed (a bounded self-feeding workflow is legitimate), but rarely meant.
    (Array.isArray(doc.steps) ? doc.steps : []).forEach((s, i) => {
      const emits = [[s, ['steps', i]], [(s as { step?: unknown })?.step, ['steps', i, 'step']]] as Array<[unknown, DocPath]>;
      for (const [e, at] of emits) {
        if (!e || typeof e !== 'object' || (e as { kind?: unknown }).kind !== 'emit') continue;
        const { type, source } = e as { type?: unknown; source?: unknown };
        const self = triggers.find((t) => t.kind === 'cloudevent' && t.cloudevent.type === type
          && (t.cloudevent.source === undefined || t.cloudevent.source === (source ?? `baton://${doc.name}`) || (source === undefined && t.cloudevent.source.startsWith('baton://'))));
        if (self) add([...at, 'type'], `emits ${String(type)}, which this workflow's own trigger (${self.id}) starts it on: each run starts another, until the event has passed through ${MAX_EVENT_HOPS} emits and the emit step fails. Emit another type, or narrow the trigger with a source.`, false, 'warning');
      }
    });
    for (const r of output?.stepRefs ?? []) if (!pathOf.has(r)) add(['output'], `refers to steps.${r}, but there is no step with that id${noSuchStep(r)}.`);
    (Array.isArray(doc.sensitive) ? doc.sensitive : []).forEach((f, i) => {
      const path = typeof f === 'string' ? f : f?.path;
      const m = typeof path === 'string' ? /^steps\.([^.]+)\.output/.exec(path) : null;
      if (m && !pathOf.has(m[1])) add(['sensitive', i], `marks steps.${m[1]}.output sensitive, but there is no step with that id${noSuchStep(m[1])}.`);
    });

    if (problems.some((p) => p.severity !== 'warning')) return result();
    const sinks = order.filter((id) => steps.get(id)!.dependents.length === 0);
    return {
      problems: problems.map((p) => toProblem(p, opts.source)),
      workflow: {
        name: doc.name,
        doc,
        steps,
        order,
        inputValidator,
        output,
        concurrencyKey,
        triggers,
        sinks,
        inlineOutputBytes: doc.limits?.inline_output_bytes ?? 256 * 1024,
        expressions,
        warnings: problems.map((p) => toProblem(p, opts.source)),
        callsModels: [...steps.values()].some((c) => c.kind.name === 'model' || c.sub?.kind.name === 'model'),
      },
    };
}
}

/** Stands in for an unknown step kind (a schema problem): such a step is checked, never run. */
const NOT_PREPARED: PreparedStep = {
  stepRefs: new Set(),
  execute: () => Promise.reject(new Error('a step that did not compile cannot run')),
};
const UNKNOWN_KIND: StepKind<never> = {
  name: '(unknown kind)',
  schema: { kind: '(unknown kind)', description: '', properties: {}, required: [] },
  recordsStart: false,
  prepare: () => NOT_PREPARED,
};

/** `path` is `within` or inside it. */
function isWithin(path: DocPath, within: DocPath): boolean {
  return within.length <= path.length && within.every((seg, i) => seg === path[i]);
}

/**
 * The document, a step, a map's sub-step or a trigger: a problem of the whole (a missing step, a
 * cycle, a trigger with two sources) stands beside the schema problems of its fields.
 */
function isContainer(path: DocPath): boolean {
  if (path.length === 0) return true;
  if (path.length === 2 && path[0] === 'triggers' && typeof path[1] === 'number') return true;
  if (path[0] !== 'steps' || typeof path[1] !== 'number') return false;
  return path.length === 2 || (path.length === 3 && path[2] === 'step');
}

function compileOnError(
  doc: OnErrorDoc | undefined,
  path: DocPath,
  compileExpr: (src: unknown, path: DocPath) => Expression | undefined,
): OnError {
  if (doc === undefined || doc === 'fail') return { action: 'fail' };
  if (doc === 'continue') return { action: 'continue' };
  if (doc && typeof doc === 'object' && 'continue' in doc) return { action: 'continue', value: compileExpr(doc.continue, [...path, 'continue']) };
  // A route that is not a string is a schema problem: nothing to resolve.
  if (doc && typeof doc === 'object' && 'route' in doc) return typeof doc.route === 'string' ? { action: 'route', step: doc.route } : { action: 'fail' };
  return { action: 'fail' };
}

/** Every elementary cycle reachable, reported once each (by Tarjan's strongly connected components). */
export function findCycles(nodes: string[], edges: (n: string) => string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges(v)) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(orderCycle(comp, edges));
    }
  };
  for (const n of nodes) if (!idx.has(n)) strong(n);
  return out;
}

/** Orders a strongly connected component as a readable path a → b → c (following edges). */
function orderCycle(comp: string[], edges: (n: string) => string[]): string[] {
  const set = new Set(comp);
  const start = [...comp].sort()[0];
  const pathOut = [start];
  const seen = new Set([start]);
  let cur = start;
  for (;;) {
    const next = edges(cur).find((n) => set.has(n) && !seen.has(n));
    if (!next) break;
    pathOut.push(next);
    seen.add(next);
    cur = next;
  }
  // `needs` edges point from a step to what it waits for; show the flow direction instead,
  // starting from the alphabetically first step so the message is stable.
  const flow = pathOut.reverse();
  const at = flow.indexOf(start);
  return [...flow.slice(at), ...flow.slice(0, at)];
}

function jsonPointerPath(pointer: string): DocPath {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/**
 * The problem an Ajv error gives, if any. `brokenPath` is the part of the document it makes
 * untrustworthy when that is not `path` itself: the missing field (not the whole step), the `kind`.
 */
function structuralProblem(e: ErrorObject, root: unknown): { path: DocPath; message: string; atKey?: boolean; brokenPath?: DocPath } | undefined {
  const path = jsonPointerPath(e.instancePath);
  const here = path.length ? formatPath(path) : 'the document';
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = (e.params as { additionalProperty: string }).additionalProperty;
      const known = knownFields(e, root, path);
      return { path: [...path, prop], atKey: true, message: `unknown field "${prop}" in ${here}${suggest(prop, known)}.` };
    }
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { path, brokenPath: [...path, missing], message: `${here} is missing the required field "${missing}".` };
    }
    case 'discriminator': {
      const p = e.params as { error: string; tag: string; tagValue: unknown };
      if (p.error === 'mapping') {
        const kinds = [...STEP_KINDS.keys()].join(', ');
        return { path: [...path, 'kind'], message: `unknown step kind "${String(p.tagValue)}". Use one of: ${kinds}.` };
      }
      return { path, brokenPath: [...path, 'kind'], message: `${here} needs a string "kind" field.` };
    }
    case 'oneOf':
    case 'anyOf':
    case 'if':
      return undefined; // the branch errors say more
    case 'enum':
      if (path[path.length - 1] === 'kind') return undefined; // the discriminator error names the kinds
      return { path, message: `${here} must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}.` };
    case 'const':
      return undefined;
    case 'pattern':
      if (path[path.length - 1] === 'id') return { path, message: `step id ${JSON.stringify(valueAt(root, path))} must start with a letter or _ and contain only letters, digits and _ (it is used as steps.<id> in expressions).` };
      if (path[0] === 'name' && path.length === 1) return { path, message: `workflow name ${JSON.stringify(valueAt(root, path))} may contain only letters, digits, "_", "." and "-".` };
      return { path, message: `${here} ${e.message}` };
    default:
      return { path, message: `${here} ${e.message}` };
  }
}

/** Field names allowed where an unknown field was found, for "did you mean". */
function knownFields(e: ErrorObject, root: unknown, path: DocPath): string[] {
  const schema = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
  if (schema?.properties) return Object.keys(schema.properties);
  void root;
  void path;
  return Object.keys(COMMON_STEP_FIELDS);
}

function valueAt(root: unknown, path: DocPath): unknown {
  let v = root;
  for (const seg of path) v = (v as Record<string | number, unknown> | undefined)?.[seg];
  return v;
}


export function toProblem(p: { path: DocPath; message: string; atKey?: boolean; severity?: 'warning' }, source?: SourceDocument): Problem {
  const out: Problem = { path: formatPath(p.path), message: p.message };
  if (p.severity) out.severity = p.severity;
  if (source) {
    const pos = source.locate(p.path, p.atKey);
    out.file = source.file;
    out.line = pos.line;
    out.column = pos.column;
  }
  return out;
}

/** Compiles or throws one BATON_DOC_INVALID carrying every problem. */
export function compileOrThrow(value: unknown, opts: CompileOptions = {}): CompiledWorkflow {
  const r = compileWorkflow(value, opts);
  if (!r.workflow) {
    const n = r.problems.length;
    throw new BatonError('BATON_DOC_INVALID', { detail: `${opts.source?.file ?? 'workflow'}: ${n} problem${n === 1 ? '' : 's'}:\n${r.problems.map((p) => `  ${p.file ? `${p.file}:${p.line}:${p.column}: ` : `${p.path}: `}${p.message}`).join('\n')}` }, { problems: r.problems });
  }
  return r.workflow;
}

/** `fallback.0` → ['fallback', 0]: numeric parts are array indexes. */
function relPath(rel: string): DocPath {
  return rel.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}
