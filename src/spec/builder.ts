/**
 * A typed builder that produces the same `WorkflowDocument` a YAML file would, with types that
 * flow end to end: each step's output type is inferred from its function (or its zod output
 * schema), and `ctx.steps.<id>.output.<field>` only compiles for steps and fields that exist.
 *
 * References are written as functions of a typed context, `(ctx) => ctx.steps.classify.output.label`.
 * The builder calls each once at build time with recording proxies and turns what it returns
 * into a JSONata expression, so the document stays declarative and the engine sees no closures.
 * Raw JSONata strings are accepted everywhere as an escape hatch.
 */
import { z } from 'zod';
import type { FunctionContext, StepFunction } from '../steps/kind.js';
import type { Duration, JsonSchema, OnErrorDoc, RetryPolicyDoc, StepDoc, SubStepDoc, WorkflowDocument } from './types.js';

/** What expressions see, typed by the workflow's input and the steps declared so far. */
export interface Ctx<I, S> {
  input: I;
  steps: { [K in keyof S]: { output: S[K]; status: string } };
  vars: Record<string, unknown>;
}

/** A reference builder, or a raw JSONata string. */
export type Ref<I, S, R> = ((ctx: Ctx<I, S>) => R) | string;

interface Common<S> {
  description?: string;
  needs?: Array<keyof S & string>;
  /** JSONata condition; false skips the step and what depends only on it. */
  when?: string;
  /** JSONata quality gate over `output`. */
  guard?: string;
  retry?: RetryPolicyDoc;
  timeout?: Duration;
  on_error?: OnErrorDoc;
}

type NewId<S, K extends string> = K extends keyof S ? never : K;
type With<S, K extends string, O> = S & { [P in K]: O };

export interface HttpOutput<B> {
  status: number;
  headers: Record<string, string>;
  body: B;
}

const PATH = Symbol('baton.ref.path');

/** A proxy that remembers the property path used to reach it. */
function recorder(path: string[]): unknown {
  return new Proxy(Object.create(null) as object, {
    get(_t, prop) {
      if (prop === PATH) return path;
      if (typeof prop === 'symbol') return undefined;
      return recorder([...path, prop]);
    },
  });
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Turns what a reference function returned into JSONata. */
export function toJsonata(value: unknown): string {
  if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
    const path = (value as { [PATH]?: string[] })[PATH];
    if (path) return path.map((p) => (NAME.test(p) ? p : `\`${p.replace(/`/g, '')}\``)).join('.');
    if (Array.isArray(value)) return `[${value.map(toJsonata).join(', ')}]`;
    return `{ ${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${JSON.stringify(k)}: ${toJsonata(v)}`).join(', ')} }`;
  }
  if (value === undefined) return 'null';
  return JSON.stringify(value);
}

function expr<I, S, R>(ref: Ref<I, S, R>): string {
  if (typeof ref === 'string') return ref;
  return toJsonata(ref(recorder([]) as Ctx<I, S>));
}

function jsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema) as Record<string, unknown>;
  return rest;
}

function common<S>(c: Common<S>): Partial<StepDoc> {
  const out: Record<string, unknown> = {};
  for (const k of ['description', 'needs', 'when', 'guard', 'retry', 'timeout', 'on_error'] as const) if (c[k] !== undefined) out[k] = c[k];
  return out as Partial<StepDoc>;
}

export class WorkflowBuilder<I, S extends object> {
  private readonly steps: StepDoc[] = [];
  private readonly fns: Record<string, StepFunction> = {};
  private outputExpr?: string;

  constructor(private readonly name: string, private readonly head: Omit<WorkflowDocument, 'steps' | 'name'>) {}

  /** A `function` step; its output type is the function's (awaited) return type. */
  fn<K extends string, In, O>(
    id: NewId<S, K>,
    def: Common<S> & { input?: Ref<I, S, In>; run: (input: In, ctx: FunctionContext) => O | Promise<O>; output?: z.ZodType<Awaited<O>> },
  ): WorkflowBuilder<I, With<S, K, Awaited<O>>> {
    const fname = `${this.name}.${id}`;
    this.fns[fname] = def.run as StepFunction;
    const step: StepDoc = { id, kind: 'function', function: fname, ...common(def) } as StepDoc;
    if (def.input !== undefined) step.input = expr(def.input);
    if (def.output) step.output_schema = jsonSchema(def.output);
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, Awaited<O>>>;
  }

  /** A `transform` step: the output is the expression's value. */
  transform<K extends string, O>(id: NewId<S, K>, def: Common<S> & { expression: ((ctx: Ctx<I, S>) => O); output?: z.ZodType<O> }): WorkflowBuilder<I, With<S, K, O>>;
  transform<K extends string, O = unknown>(id: NewId<S, K>, def: Common<S> & { expression: string; output?: z.ZodType<O> }): WorkflowBuilder<I, With<S, K, O>>;
  transform<K extends string, O>(id: NewId<S, K>, def: Common<S> & { expression: Ref<I, S, O>; output?: z.ZodType<O> }): WorkflowBuilder<I, With<S, K, O>> {
    const step = { id, kind: 'transform', expression: expr(def.expression), ...common(def) } as StepDoc;
    if (def.output) step.output_schema = jsonSchema(def.output);
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, O>>;
  }

  /** An `http` step; the body type comes from the zod schema when given. */
  http<K extends string, B = unknown>(
    id: NewId<S, K>,
    def: Common<S> & { url: string; method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD'; headers?: Record<string, string>; input?: Ref<I, S, unknown>; body?: z.ZodType<B> },
  ): WorkflowBuilder<I, With<S, K, HttpOutput<B>>> {
    const step = { id, kind: 'http', url: def.url, ...common(def) } as StepDoc & { method?: string; headers?: Record<string, string> };
    if (def.method) step.method = def.method;
    if (def.headers) step.headers = def.headers;
    if (def.input !== undefined) step.input = expr(def.input);
    if (def.body) step.output_schema = { type: 'object', properties: { body: jsonSchema(def.body) } };
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, HttpOutput<B>>>;
  }

  /** A `map` step running `each` for every item, `concurrency` at a time; output = results in order. */
  map<K extends string, Item, O>(
    id: NewId<S, K>,
    def: Common<S> & { over: Ref<I, S, Item[]>; concurrency?: number; each: (item: Item, ctx: FunctionContext) => O | Promise<O> },
  ): WorkflowBuilder<I, With<S, K, Array<Awaited<O>>>> {
    const fname = `${this.name}.${id}`;
    this.fns[fname] = def.each as StepFunction;
    const sub: SubStepDoc = { kind: 'function', function: fname, input: 'item' };
    const step = { id, kind: 'map', over: expr(def.over), step: sub, ...common(def) } as StepDoc & { concurrency?: number };
    if (def.concurrency !== undefined) step.concurrency = def.concurrency;
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, Array<Awaited<O>>>>;
  }

  /** A durable `wait`: a duration, or an event matched by a correlation key (output: its payload). */
  wait<K extends string, P = unknown>(
    id: NewId<S, K>,
    def: Common<S> & ({ duration: Duration } | { event: string; key?: Ref<I, S, unknown> }),
  ): WorkflowBuilder<I, With<S, K, P>> {
    const step = { id, kind: 'wait', ...common(def) } as StepDoc & Record<string, unknown>;
    if ('duration' in def) step.duration = def.duration;
    else {
      step.event = def.event;
      if (def.key !== undefined) step.key = expr(def.key);
    }
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, P>>;
  }

  /** A child run of a registered workflow (`name` or `name@hash`). */
  child<K extends string, O = unknown>(id: NewId<S, K>, def: Common<S> & { workflow: string; input?: Ref<I, S, unknown> }): WorkflowBuilder<I, With<S, K, O>> {
    const step = { id, kind: 'workflow', workflow: def.workflow, ...common(def) } as StepDoc;
    if (def.input !== undefined) step.input = expr(def.input);
    this.steps.push(step);
    return this as unknown as WorkflowBuilder<I, With<S, K, O>>;
  }

  /** Sets the run output expression. */
  output<R>(ref: Ref<I, S, R>): this {
    this.outputExpr = expr(ref);
    return this;
  }

  /** The document (validate and register it like any other) and the functions its steps call. */
  build(): { document: WorkflowDocument; functions: Record<string, StepFunction> } {
    const document: WorkflowDocument = { name: this.name, ...this.head, steps: [...this.steps] };
    if (this.outputExpr !== undefined) document.output = this.outputExpr;
    return { document, functions: { ...this.fns } };
  }
}

/**
 * Starts a typed workflow.
 *
 * @example
 * const { document, functions } = workflow('triage', { input: z.object({ text: z.string() }) })
 *   .fn('intent', { input: (c) => c.input.text, run: async (text) => ({ label: text.includes('refund') ? 'billing' : 'other' }) })
 *   .transform('route', { expression: (c) => ({ queue: c.steps.intent.output.label }) })
 *   .build();
 * const baton = await Baton.open({ functions });
 * const run = await baton.run(await baton.register(document), { text: 'refund please' });
 */
export function workflow<T extends z.ZodType | undefined = undefined>(
  name: string,
  opts: { input?: T; description?: string; vars?: Record<string, unknown> } = {},
): WorkflowBuilder<T extends z.ZodType ? z.infer<T> : unknown, {}> {
  const head: Omit<WorkflowDocument, 'steps' | 'name'> = {};
  if (opts.description) head.description = opts.description;
  if (opts.input) head.input = jsonSchema(opts.input);
  if (opts.vars) head.vars = opts.vars;
  return new WorkflowBuilder(name, head);
}
