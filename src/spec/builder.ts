/**
 * A typed builder that produces the same `WorkflowDocument` a YAML file would, with types that
 * flow end to end: each step's output type is inferred from its function (or its zod output
 * schema), and `ctx.steps.<id>.output.<field>` only compiles for steps and fields that exist.
 *
 * References are written as functions of a typed context, `(ctx) => ctx.steps.classify.output.label`.
 * The builder calls each once at build time with recording proxies and turns what it returns
 * into a JSONata expression, so the document stays plain data and the engine sees no closures.
 * Raw JSONata strings are accepted everywhere as an escape hatch (typed through `expr<T>()`).
 */
import { z } from 'zod';
import type { StepStatus } from '../engine/states.js';
import { BatonError } from '../errors.js';
import type { FunctionContext, PublishedEvent, StepFunction } from '../steps/kind.js';
import type { ApprovalStepDoc, Duration, HttpStepDoc, JsonSchema, ModelStepDoc, OnErrorDoc, TaskStepDoc, RetryPolicyDoc, StepDoc, WorkflowDocument } from './types.js';

/** What expressions see, typed by the workflow's input, the steps declared so far and the vars. */
export interface Ctx<I = unknown, S = {}, V = Record<string, unknown>> {
  input: I;
  steps: { [K in keyof S]: { output: S[K]; status: StepStatus } };
  vars: V;
  run: { id: string; workflow: string; version: string; created_at: string };
}

/** Inside a map's sub-step: the current element and its position. */
export type ItemCtx<C, T> = C & { item: T; index: number };

/** Raw JSONata that carries the type of its value (see `expr`). */
export type Expr<T> = string & { readonly __type?: T };

/** A reference: a function of the typed context (recorded into JSONata), or raw JSONata. */
export type Ref<C, R> = ((ctx: C) => R) | Expr<R> | string;

/**
 * Raw JSONata with the type of its value stated by the author, for what a reference function
 * cannot express (arithmetic, conditions, JSONata functions). The type is trusted, not checked.
 */
export function expr<T = unknown>(source: string): Expr<T> {
  return source as Expr<T>;
}

/** Fields every step shares. `O` is the step's own output, which a guard reads as `output`. */
export interface Common<C, S, O> {
  description?: string;
  /** Extra ordering; steps read through `ctx.steps` are dependencies already. */
  needs?: Array<keyof S & string>;
  /** False skips the step. */
  when?: Ref<C, boolean>;
  /** A quality gate over `output`; false fails the attempt (and retries it). */
  guard?: Ref<C & { output: O }, boolean>;
  retry?: RetryPolicyDoc;
  timeout?: Duration;
  on_error?: OnErrorDoc;
  output_schema?: JsonSchema;
}

/** A zod schema's output type, or `F` when no schema is given. */
type Out<Z, F> = Z extends z.ZodType ? z.output<Z> : F;

export interface FunctionDef<C, S, In, R, Z> extends Common<C, S, Out<Z, Awaited<R>>> {
  kind: 'function';
  /** What the function receives (absent: undefined). */
  input?: Ref<C, In>;
  /** Registered as `<workflow>.<step id>`. */
  fn: (input: In, ctx: FunctionContext) => R;
  /** Checked by the engine on every output; also the step's output type. */
  output?: Z & NoInfer<Fits<Awaited<R>, Z>>;
}

/** A schema that rejects what the step produces is a compile error (unless that is `unknown`). */
type Fits<T, Z> = unknown extends T ? unknown : Z extends z.ZodType ? (T extends z.input<Z> ? unknown : { 'this schema rejects the type produced': T }) : unknown;

export interface TransformDef<C, S, O, Z> extends Common<C, S, Out<Z, O>> {
  kind: 'transform';
  expression: Ref<C, O>;
  output?: Z & NoInfer<Fits<O, Z>>;
}

export interface HttpOutput<B> {
  status: number;
  headers: Record<string, string>;
  body: B;
}

/** The document's http fields (url, method, headers, query, response), plus typed input and body. */
export interface HttpDef<C, S, Z> extends Common<C, S, HttpOutput<Out<Z, unknown>>>, Pick<HttpStepDoc, 'kind' | 'url' | 'method' | 'headers' | 'query' | 'response'> {
  /** The request body. */
  input?: Ref<C, unknown>;
  /** Schema of the response body: checked, and the type of `output.body`. */
  body?: Z;
}

export interface WaitDef<C, S> extends Common<C, S, unknown> {
  kind: 'wait';
  duration?: Duration;
  until?: Ref<C, string | number>;
  event?: string;
  key?: Ref<C, unknown>;
  /** With `event`: take an event for the key that arrived up to this long before the wait armed. */
  lookback?: Duration;
}

/** Publishes a CloudEvent (output: the event). */
export interface EmitDef<C, S> extends Common<C, S, unknown> {
  kind: 'emit';
  type: string;
  source?: string;
  subject?: Ref<C, string | number>;
  data?: Ref<C, unknown>;
  sink?: string;
  sink_mode?: 'structured' | 'binary';
}

/** What an `emit` step outputs: the CloudEvent it published, with its data typed. */
export type EmittedEvent<D = unknown> = Omit<PublishedEvent, 'data' | 'traceparent'> & { data: D };

/**
 * A model call. The output type is the zod `output` schema's (which also becomes the step's
 * output_schema, so the model is asked for JSON that fills it), or `unknown` without one.
 */
export interface ModelDef<C, S, Z> extends Common<C, S, Out<Z, unknown>>, Pick<ModelStepDoc, 'service' | 'fallback' | 'strategy' | 'operation' | 'system' | 'prompt' | 'max_tokens' | 'temperature' | 'stream' | 'stream_idle' | 'repair_attempts' | 'cache'> {
  kind: 'model';
  /** What non-chat operations get (classifiers, retrieval, OCR, inference). */
  input?: Ref<C, unknown>;
  output?: Z;
}

/**
 * A task for an external worker (any language, polling `POST /tasks/poll`). The output type is
 * the zod `output` schema's, which also becomes the step's output_schema (checked when the
 * worker completes), or `unknown` without one.
 */
export interface TaskDef<C, S, Z> extends Common<C, S, Out<Z, unknown>>, Pick<TaskStepDoc, 'task_type' | 'lease'> {
  kind: 'task';
  /** What the worker gets (default: the run input). */
  input?: Ref<C, unknown>;
  output?: Z;
}

/** What an approval step outputs: the answer. `F`: the form's fields (given with an approval). */
export type ApprovalAnswer<F = {}> = Partial<F> & { decision: 'approve' | 'reject'; reason?: string; decided_by: string; decided_at: string };

/**
 * A human checkpoint. The zod `form` becomes the step's answer form (Baton adds `decision` and
 * `reason`) and types its output: the answer.
 */
export interface ApprovalDef<C, S, Z> extends Common<C, S, ApprovalAnswer<Out<Z, {}>>>, Pick<ApprovalStepDoc, 'approvers' | 'summary' | 'deadline' | 'on_expiry' | 'reminders' | 'reject_fails' | 'notify'> {
  kind: 'approval';
  input?: Ref<C, unknown>;
  /** What the approver sees (default: the step input, else the run input). */
  evidence?: Ref<C, unknown>;
  /** The answer's fields (a corrected amount, a label). */
  form?: Z;
}

export interface ChildDef<C, S> extends Common<C, S, unknown> {
  kind: 'workflow';
  workflow: string;
  input?: Ref<C, unknown>;
}

export interface MapDef<C, S, Item, D> extends Common<C, S, unknown> {
  kind: 'map';
  over: Ref<C, readonly Item[]>;
  /** At most this many items at once (engine default 10). */
  concurrency?: number;
  step: D;
}

/**
 * Every kind with its types widened: the last overload of `step`. It must reject whatever the
 * typed overloads reject (it returns `never`), so it carries the same schema check.
 */
type AnyStepDef<C, S, R, O, Z> =
  | FunctionDef<C, S, unknown, R, Z>
  | TransformDef<C, S, O, Z>
  | HttpDef<C, S, z.ZodType | undefined>
  | MapDef<C, S, unknown, WithInput<FunctionDef<ItemCtx<C, unknown>, {}, unknown, R, Z>> | TransformDef<ItemCtx<C, unknown>, {}, O, Z>>
  | ModelDef<C, S, z.ZodType | undefined>
  | TaskDef<C, S, z.ZodType | undefined>
  | ApprovalDef<C, S, z.ZodType | undefined>
  | WaitDef<C, S>
  | ChildDef<C, S>
  | EmitDef<C, S>;

/** A function step that states its input (without one the function receives undefined). */
type WithInput<D> = D & { input: NonNullable<D extends { input?: infer T } ? T : never> };

/** An id not declared yet; a repeated one fails to compile with this message as the expected type. */
type NewId<S, K extends string> = K extends keyof S ? `step "${K}" is already declared` : K;
/** `S` plus step `K`, flattened so that editors show `{ a: ...; b: ... }` rather than nested intersections. */
type With<S, K extends string, O> = { [P in keyof S | K]: P extends K ? O : P extends keyof S ? S[P] : never };

const PATH = Symbol('baton.ref.path');
const RESERVED = new Set(['and', 'or', 'in', 'true', 'false', 'null', 'function']);

function refError(detail: string): BatonError {
  return new BatonError('BATON_DOC_INVALID', { detail: `typed builder: ${detail}` });
}

/**
 * A proxy that remembers the property path used to reach it. Anything but reading a property
 * (calling, converting to text or a number, spreading) would silently compute with a stand-in
 * at build time, so it throws and points at raw JSONata instead.
 */
function recorder(path: readonly string[]): unknown {
  const shown = () => path.join('.') || 'ctx';
  const refuse = (what: string) => () => {
    throw refError(`a reference can only select values, not ${what} (\`${shown()}\`); write that as raw JSONata with expr<T>('...').`);
  };
  return new Proxy(function ref() {}, {
    get(_t, prop) {
      if (prop === PATH) return path;
      if (prop === Symbol.toPrimitive) return refuse('compute with them (operators, template strings)');
      if (prop === Symbol.iterator) return refuse('iterate or spread them');
      if (typeof prop === 'symbol') return undefined;
      return recorder([...path, prop]);
    },
    apply: refuse('call methods on them'),
    ownKeys: refuse('spread or enumerate them'),
    has: refuse('test them with `in`'),
  });
}

/** One path step as JSONata: `.name`, ``.`odd name` `` or `[0]` (a numeric key is read as an index). */
function pathStep(name: string): string {
  if (/^(0|[1-9][0-9]*)$/.test(name)) return `[${name}]`;
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !RESERVED.has(name)) return `.${name}`;
  if (name.includes('`')) throw refError(`JSONata cannot name a field containing a backtick (${JSON.stringify(name)}).`);
  return `.\`${name}\``;
}

/**
 * Turns what a reference function returned into JSONata: recorded paths become paths, objects
 * `{"k": ...}`, arrays `[...]`, the rest JSON literals. As in a YAML document, JSONata splices a
 * referenced array into an enclosing array literal (`[input.tags, "x"]` is one flat array).
 */
export function toJsonata(value: unknown): string {
  if (typeof value === 'function' && (value as { [PATH]?: unknown })[PATH]) {
    const [root, ...rest] = (value as unknown as { [PATH]: string[] })[PATH];
    return root === undefined ? '$' : root + rest.map(pathStep).join('');
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw refError(`${value} has no JSONata literal.`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : toJsonata(v))).join(', ')}]`;
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto === Object.prototype || proto === null) {
    const fields = Object.entries(value as object).filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `${JSON.stringify(k)}: ${toJsonata(v)}`).join(', ')}}`;
  }
  const what = value === undefined ? 'undefined' : ((proto as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? typeof value);
  throw refError(`a reference function returned ${what}, which is neither a reference nor plain JSON.`);
}

function expression<C, R>(ref: Ref<C, R>): string {
  return typeof ref === 'string' ? ref : toJsonata(ref(recorder([]) as C));
}

function jsonSchema(schema: z.ZodType): JsonSchema {
  // The document carries draft 2020-12 implicitly; a `$schema` key would differ from YAML-written ones.
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema) as Record<string, unknown>;
  return rest;
}

type AnyDef = Record<string, unknown> & { kind: string };
const EXPRESSIONS = new Set(['when', 'guard', 'input', 'expression', 'over', 'until', 'key', 'subject', 'data', 'evidence']);
const MAPPED = new Set(['fn', 'output', 'body', 'step', 'form']);

/** The document form of a step definition: references recorded, schemas converted, functions registered. */
function stepDoc(def: AnyDef, fname: string, fns: Record<string, StepFunction>): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: def.kind };
  for (const [k, v] of Object.entries(def)) {
    if (v === undefined || k === 'kind') continue;
    if (EXPRESSIONS.has(k)) out[k] = expression(v as Ref<unknown, unknown>);
    else if (!MAPPED.has(k)) out[k] = v;
  }
  if (def.kind === 'function') {
    out.function = fname;
    fns[fname] = def.fn as StepFunction;
  }
  if (def.output) out.output_schema = jsonSchema(def.output as z.ZodType);
  if (def.body) out.output_schema = { type: 'object', properties: { body: jsonSchema(def.body as z.ZodType) }, required: ['body'] };
  if (def.kind === 'map') out.step = stepDoc(def.step as AnyDef, fname, fns);
  if (def.form) out.form = jsonSchema(def.form as z.ZodType);
  return out;
}

export interface Built {
  document: WorkflowDocument;
  /** Register these with the engine (`Baton.open({ functions })`). */
  functions: Record<string, StepFunction>;
}

/** Immutable: every call returns a new builder, so a shared prefix can be extended two ways. */
export class WorkflowBuilder<I, S extends object, V> {
  private constructor(
    private readonly head: Omit<WorkflowDocument, 'steps'>,
    private readonly steps: readonly StepDoc[],
    private readonly fns: Readonly<Record<string, StepFunction>>,
  ) {}

  /** @internal Use `workflow()`. */
  static start<I, V>(head: Omit<WorkflowDocument, 'steps'>): WorkflowBuilder<I, {}, V> {
    return new WorkflowBuilder(head, [], {});
  }

  step<K extends string, In, R, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: WithInput<FunctionDef<Ctx<I, S, V>, S, In, R, Z>>,
  ): WorkflowBuilder<I, With<S, K, Out<Z, Awaited<R>>>, V>;
  step<K extends string, R, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: FunctionDef<Ctx<I, S, V>, S, undefined, R, Z> & { input?: undefined },
  ): WorkflowBuilder<I, With<S, K, Out<Z, Awaited<R>>>, V>;
  step<K extends string, O, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: TransformDef<Ctx<I, S, V>, S, O, Z>,
  ): WorkflowBuilder<I, With<S, K, Out<Z, O>>, V>;
  step<K extends string, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: HttpDef<Ctx<I, S, V>, S, Z>,
  ): WorkflowBuilder<I, With<S, K, HttpOutput<Out<Z, unknown>>>, V>;
  step<K extends string, Item, In, R, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: MapDef<Ctx<I, S, V>, S, Item, WithInput<FunctionDef<ItemCtx<Ctx<I, S, V>, Item>, {}, In, R, Z>>>,
  ): WorkflowBuilder<I, With<S, K, Array<Out<Z, Awaited<R>>>>, V>;
  step<K extends string, Item, O, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: MapDef<Ctx<I, S, V>, S, Item, TransformDef<ItemCtx<Ctx<I, S, V>, Item>, {}, O, Z>>,
  ): WorkflowBuilder<I, With<S, K, Array<Out<Z, O>>>, V>;
  /** A wait's output is the event payload (`P`); a child step's is the child run's output (`P`). */
  step<K extends string, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: ModelDef<Ctx<I, S, V>, S, Z>,
  ): WorkflowBuilder<I, With<S, K, Out<Z, unknown>>, V>;
  step<K extends string, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: TaskDef<Ctx<I, S, V>, S, Z>,
  ): WorkflowBuilder<I, With<S, K, Out<Z, unknown>>, V>;
  step<K extends string, Z extends z.ZodType | undefined = undefined>(
    id: NewId<S, K>, def: ApprovalDef<Ctx<I, S, V>, S, Z>,
  ): WorkflowBuilder<I, With<S, K, ApprovalAnswer<Out<Z, {}>>>, V>;
  step<K extends string, P = unknown>(id: NewId<S, K>, def: WaitDef<Ctx<I, S, V>, S> | ChildDef<Ctx<I, S, V>, S>): WorkflowBuilder<I, With<S, K, P>, V>;
  /** An emit's output is the CloudEvent it published (`D`: its data). */
  step<K extends string, D = unknown>(id: NewId<S, K>, def: EmitDef<Ctx<I, S, V>, S>): WorkflowBuilder<I, With<S, K, EmittedEvent<D>>, V>;
  // Last, so that a definition no overload accepts is reported against the union of all
  // kinds, which TypeScript narrows by `kind` into a message about the field actually wrong.
  step<K extends string, R, O, Z extends z.ZodType | undefined>(id: NewId<S, K>, def: AnyStepDef<Ctx<I, S, V>, S, R, O, Z>): never;
  step(id: string, def: { kind: string }): unknown {
    const fns = { ...this.fns };
    const doc = { id, ...stepDoc(def as AnyDef, `${this.head.name}.${id}`, fns) } as unknown as StepDoc;
    return new WorkflowBuilder(this.head, [...this.steps, doc], fns);
  }

  /** The run's output (default: the outputs of the final steps, by id). */
  output<R>(ref: Ref<Ctx<I, S, V>, R>): WorkflowBuilder<I, S, V> {
    return new WorkflowBuilder({ ...this.head, output: expression(ref) }, this.steps, this.fns);
  }

  /** The document (validate and register it like any other) and the functions its steps call. */
  build(): Built {
    const { output, ...head } = this.head;
    const document: WorkflowDocument = { ...head, steps: [...this.steps] };
    if (output !== undefined) document.output = output;
    return { document, functions: { ...this.fns } };
  }
}

/**
 * Starts a typed workflow. The input type comes from the zod schema (which also becomes the
 * document's `input` JSON Schema); each `.step()` adds its output type to what later references see.
 *
 * @example
 * const { document, functions } = workflow('triage', { input: z.object({ text: z.string() }) })
 *   .step('intent', { kind: 'function', input: (c) => c.input.text, fn: async (text) => ({ label: text.includes('refund') ? 'billing' : 'other' }) })
 *   .step('route', { kind: 'transform', expression: (c) => ({ queue: c.steps.intent.output.label }) }) // c.steps.intnet: compile error
 *   .output((c) => c.steps.route.output)
 *   .build();
 * const baton = await Baton.open({ functions });
 * const run = await baton.run(await baton.register(document), { text: 'refund please' });
 */
export function workflow<T extends z.ZodType | undefined = undefined, V extends Record<string, unknown> = Record<string, unknown>>(
  name: string,
  opts: { input?: T; description?: string; vars?: V } = {},
): WorkflowBuilder<Out<T, unknown>, {}, V> {
  const head: Omit<WorkflowDocument, 'steps'> = { name };
  if (opts.description !== undefined) head.description = opts.description;
  if (opts.input) head.input = jsonSchema(opts.input);
  if (opts.vars) head.vars = opts.vars;
  return WorkflowBuilder.start(head);
}
