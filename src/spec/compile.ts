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
  // The same problem can be found twice (a field compiled by the kind and as a common field).
  const add = (path: DocPath, message: string, atKey = false, severity?: 'warning') => {
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
    if (p && !problems.some((q) => formatPath(q.path) === formatPath(p.path) && q.message === p.message)) problems.push(p);
  }

  const doc = value as WorkflowDocument;
  const result = (): CompileResult => ({ problems: problems.map((p) => toProblem(p, opts.source)) });
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.steps)) return result();
  const structural = problems.length;
  // The compile below reads the document as the schema says it is. A document that already broke
  // the schema can trip it on a field of another type (`triggers: [null]`, `sensitive: ""`): its
  // schema problems are then the answer, never a crash.
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

    /** Compiles the fields every step shares, then the kind's own fields. */
    const structural = problems.map((p) => formatPath(p.path));
    const compileStep = (s: StepDoc | SubStepDoc, id: string, path: DocPath): CompiledStep | undefined => {
      if (!s || typeof s !== 'object') return undefined;
      // A step whose shape is already wrong is not compiled further: its fields cannot be trusted.
      const here = formatPath(path);
      if (structural.some((p) => p === here || p.startsWith(`${here}.`) || (p.startsWith(`${here}[`) && !here.endsWith(']')))) return undefined;
      const kind = STEP_KINDS.get(s.kind);
      if (!kind) return undefined; // reported by the structure check
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
        add(path, `cannot prepare ${s.kind} step: ${(e as Error).message}`);
        return undefined;
      }
      let retry = defaultRetry;
      let timeoutMs: number | undefined;
      try {
        const base = s.retry || doc.defaults?.retry ? defaultRetry : { ...defaultRetry, ...kind.defaultRetry };
        retry = retryPolicy(s.retry, base);
      } catch (e) {
        add([...path, 'retry'], (e as BatonError).message);
      }
      const timeout = s.timeout ?? doc.defaults?.timeout;
      if (timeout !== undefined) {
        try {
          timeoutMs = parseDuration(timeout);
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
    doc.steps.forEach((s, i) => {
      const path: DocPath = ['steps', i];
      if (!s || typeof s !== 'object' || typeof s.id !== 'string') return;
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
      (c.doc as StepDoc).needs?.forEach((n, j) => {
        if (n === id) add([...path, 'needs', j], `step "${id}" cannot need itself.`);
        else if (!pathOf.has(n)) add([...path, 'needs', j], `needs "${n}", but there is no step with that id${suggest(n, pathOf.keys())}.`);
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
          } else if (!pathOf.has(r)) add(where, `refers to steps.${r}, but there is no step with that id${suggest(r, pathOf.keys())}.`);
          else deps.add(r);
        }
      }
      c.deps = [...deps].filter((d) => steps.has(d));
      if (c.onError.action === 'route') {
        const target = c.onError.step;
        if (target === id) add([...path, 'on_error', 'route'], `step "${id}" cannot route its errors to itself.`);
        else if (!steps.has(target)) add([...path, 'on_error', 'route'], `routes errors to "${target}", but there is no step with that id${suggest(target, pathOf.keys())}.`);
        else steps.get(target)!.isHandler = true;
      }
    }
    for (const id of order) {
      const c = steps.get(id)!;
      if (c.isHandler && (c.doc as StepDoc).needs?.length) {
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
          if (x?.kind !== 'model') return;
          services.push({ name: x.service, field: [...base, 'service'] });
          x.fallback?.forEach((f, j) => services.push({ name: f, field: [...base, 'fallback', j] }));
        };
        collect(d, []);
        if (d.kind === 'map') collect(d.step, ['step']);
        byId.set(id, { id, kind: d.kind, path: pathOf.get(id)!, risk: d.risk, services, dependents: c.dependents });
      }
      for (const v of checkPolicies(opts.policies, doc.tags ?? [], byId, (n) => opts.services?.get(n))) add(v.path, v.message);
    }

    const inputValidator = compileSchema(doc.input, ['input']);
    const output = compileExpr(doc.output, ['output']);
    const concurrencyKey = compileExpr(doc.concurrency?.key, ['concurrency', 'key']);
    for (const r of concurrencyKey?.stepRefs ?? []) add(['concurrency', 'key'], `the concurrency key is computed before any step runs, so it cannot read steps.${r}; use the input.`);
    // A field of the wrong type is already a structural problem: it is not compiled further.
    const triggers = compileTriggers(Array.isArray(doc.triggers) ? doc.triggers : undefined, (p, m) => add(p, m), compileExpr);
    // An emit that starts its own workflow loops until the hop limit (steps/emit.ts) cuts it:
    // allowed (a bounded self-feeding workflow is legitimate), but rarely meant.
    doc.steps.forEach((s, i) => {
      const emits = [[s, ['steps', i]], [(s as { step?: unknown })?.step, ['steps', i, 'step']]] as Array<[unknown, DocPath]>;
      for (const [e, at] of emits) {
        if (!e || typeof e !== 'object' || (e as { kind?: unknown }).kind !== 'emit') continue;
        const { type, source } = e as { type?: unknown; source?: unknown };
        const self = triggers.find((t) => t.kind === 'cloudevent' && t.cloudevent.type === type
          && (t.cloudevent.source === undefined || t.cloudevent.source === (source ?? `baton://${doc.name}`) || (source === undefined && t.cloudevent.source.startsWith('baton://'))));
        if (self) add([...at, 'type'], `emits ${String(type)}, which this workflow's own trigger (${self.id}) starts it on: each run starts another, until the event has passed through ${MAX_EVENT_HOPS} emits and the emit step fails. Emit another type, or narrow the trigger with a source.`, false, 'warning');
      }
    });
    for (const r of output?.stepRefs ?? []) if (!pathOf.has(r)) add(['output'], `refers to steps.${r}, but there is no step with that id${suggest(r, pathOf.keys())}.`);
    (Array.isArray(doc.sensitive) ? doc.sensitive : []).forEach((f, i) => {
      const path = typeof f === 'string' ? f : f?.path;
      const m = typeof path === 'string' ? /^steps\.([^.]+)\.output/.exec(path) : null;
      if (m && !pathOf.has(m[1])) add(['sensitive', i], `marks steps.${m[1]}.output sensitive, but there is no step with that id${suggest(m[1], pathOf.keys())}.`);
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

function compileOnError(
  doc: OnErrorDoc | undefined,
  path: DocPath,
  compileExpr: (src: unknown, path: DocPath) => Expression | undefined,
): OnError {
  if (doc === undefined || doc === 'fail') return { action: 'fail' };
  if (doc === 'continue') return { action: 'continue' };
  if (typeof doc === 'object' && 'continue' in doc) return { action: 'continue', value: compileExpr(doc.continue, [...path, 'continue']) };
  if (typeof doc === 'object' && 'route' in doc) return { action: 'route', step: doc.route };
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

function structuralProblem(e: ErrorObject, root: unknown): { path: DocPath; message: string; atKey?: boolean } | undefined {
  const path = jsonPointerPath(e.instancePath);
  const here = path.length ? formatPath(path) : 'the document';
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = (e.params as { additionalProperty: string }).additionalProperty;
      const known = knownFields(e, root, path);
      return { path: [...path, prop], atKey: true, message: `unknown field "${prop}" in ${here}${suggest(prop, known)}.` };
    }
    case 'required':
      return { path, message: `${here} is missing the required field "${(e.params as { missingProperty: string }).missingProperty}".` };
    case 'discriminator': {
      const p = e.params as { error: string; tag: string; tagValue: unknown };
      if (p.error === 'mapping') {
        const kinds = [...STEP_KINDS.keys()].join(', ');
        return { path: [...path, 'kind'], message: `unknown step kind "${String(p.tagValue)}". Use one of: ${kinds}.` };
      }
      return { path, message: `${here} needs a string "kind" field.` };
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


function toProblem(p: { path: DocPath; message: string; atKey?: boolean; severity?: 'warning' }, source?: SourceDocument): Problem {
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
