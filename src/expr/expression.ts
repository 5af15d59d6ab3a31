/**
 * JSONata expressions: compiled once per workflow version, evaluated with a time, depth and
 * sequence-length limit (JSONata's own guardrails, checked at every evaluation step).
 *
 * Expressions see only the context object they are given ({ input, steps, vars, run, ... });
 * JSONata has no access to the process, the file system or the network.
 */
import jsonata from 'jsonata';
import { BatonError } from '../errors.js';

export interface ExpressionLimits {
  timeoutMs: number;
  maxDepth: number;
  maxSequence: number;
}

export const DEFAULT_LIMITS: ExpressionLimits = { timeoutMs: 1000, maxDepth: 200, maxSequence: 1_000_000 };

interface JsonataNode {
  type: string;
  value?: unknown;
  position?: number;
  steps?: JsonataNode[];
  [k: string]: unknown;
}

/** A compiled expression. `evaluate` never throws anything but a BatonError. */
export class Expression {
  readonly source: string;
  /** Step ids this expression reads through `steps.<id>`. */
  readonly stepRefs: ReadonlySet<string>;
  private readonly compiled: jsonata.Expression;
  /** Set for plain dotted paths (`steps.a.output.text`): read without the interpreter. */
  private readonly path: string[] | undefined;

  private constructor(source: string, compiled: jsonata.Expression, limits: ExpressionLimits) {
    this.source = source;
    this.compiled = compiled;
    this.limits = limits;
    // `$eval` would run text from the data (a run input, a model answer) as an expression:
    // code injection into every expression that passes data to it. Shadowed by a refusal.
    compiled.assign('eval', () => {
      throw Object.assign(new Error('$eval is disabled in Baton expressions (it would run data as code).'), { code: 'BATON_EVAL_DISABLED' });
    });
    const ast = compiled.ast() as unknown as JsonataNode;
    this.stepRefs = collectStepRefs(ast);
    this.path = plainPath(ast);
  }

  private readonly limits: ExpressionLimits;

  /**
   * Compiles `source`. Throws BATON_EXPR_COMPILE with the character position on a syntax error.
   */
  static compile(source: string, limits: ExpressionLimits = DEFAULT_LIMITS): Expression {
    let compiled: jsonata.Expression;
    try {
      compiled = jsonata(source, { timeout: limits.timeoutMs, stack: limits.maxDepth, sequence: limits.maxSequence } as never);
    } catch (e) {
      const je = e as { message?: string; position?: number; token?: string };
      const at = typeof je.position === 'number' ? ` (at character ${je.position})` : '';
      throw new BatonError('BATON_EXPR_COMPILE', { detail: `${je.message ?? String(e)}${at}`, position: je.position });
    }
    return new Expression(source, compiled, limits);
  }

  /**
   * Evaluates over `context`. `where` names the place for error messages (`step classify: input`).
   * JSONata's "no match" (undefined) is returned as undefined.
   */
  async evaluate(context: Record<string, unknown>, where: string): Promise<unknown> {
    if (this.path) {
      const fast = walkPath(context, this.path);
      if (fast !== NOT_PLAIN) return fast;
    }
    // JSONata's time limit is wall-clock. A process that was hardly running meanwhile (an
    // overloaded host, a container throttled by its CPU quota, a long GC pause) hits it with a
    // trivial expression, and the step would fail for good (BATON_EXPR_TIMEOUT is not retried).
    // A runaway expression burns CPU the whole time: so a timeout after which this process used
    // less than half the limit in CPU is the machine's doing, and the expression is evaluated
    // again (at most twice; expressions are pure, the discarded attempt changed nothing).
    for (let starved = 0; ; starved++) {
      const cpu = cpuMark();
      try {
        return normalise(await this.compiled.evaluate(context));
      } catch (e) {
        if (starved < 2 && (e as { code?: string }).code === 'D1012') {
          const used = process.cpuUsage(cpu);
          if ((used.user + used.system) / 1000 < this.limits.timeoutMs / 2) continue;
        }
        throw toEvalError(e, where, this.limits);
      }
    }
  }
}

/**
 * The process's CPU time at most 50 ms ago: a reading (a getrusage call) per evaluation would
 * cost every expression about a microsecond, for a check that matters only after a timeout.
 */
let cpuSample = { at: -Infinity, cpu: process.cpuUsage() };
function cpuMark(): NodeJS.CpuUsage {
  const now = performance.now();
  if (now - cpuSample.at > 50) cpuSample = { at: now, cpu: process.cpuUsage() };
  return cpuSample.cpu;
}

const NOT_PLAIN = Symbol('not-plain');

/**
 * Reads a dotted path the way JSONata would, as long as every value on the way is a plain
 * object (no arrays, where JSONata maps and flattens). Anything else falls back to JSONata.
 */
function walkPath(root: unknown, path: string[]): unknown {
  let cur: unknown = root;
  for (const name of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return cur === undefined ? undefined : NOT_PLAIN;
    cur = (cur as Record<string, unknown>)[name];
    if (cur === undefined) return undefined;
  }
  if (Array.isArray(cur)) return NOT_PLAIN;
  return cur;
}

function plainPath(ast: JsonataNode): string[] | undefined {
  if (ast.type === 'name' && typeof ast.value === 'string' && !hasExtras(ast)) return [ast.value];
  if (ast.type !== 'path' || !ast.steps || ast.keepSingletonArray) return undefined;
  const out: string[] = [];
  for (const s of ast.steps) {
    if (s.type !== 'name' || typeof s.value !== 'string' || hasExtras(s)) return undefined;
    out.push(s.value);
  }
  return out;
}

function hasExtras(n: JsonataNode): boolean {
  return Boolean(n.stages || n.predicate || n.group || n.focus || n.index || n.tuple || n.keepArray);
}

/**
 * Finds `steps.<id>` anywhere in the tree. A loop over a list of nodes still to see, not
 * recursion: a deeply nested expression that JSONata's parser took must not overflow the stack
 * here (found by the fuzz test: 500 nested objects, on a stack already deep).
 */
function collectStepRefs(ast: JsonataNode): Set<string> {
  const refs = new Set<string>();
  const todo: unknown[] = [ast];
  while (todo.length > 0) {
    const n = todo.pop();
    // Children go on the list last-first, so that refs are found in the order they are written.
    if (Array.isArray(n)) {
      for (let i = n.length - 1; i >= 0; i--) todo.push(n[i]);
      continue;
    }
    if (!n || typeof n !== 'object') continue;
    const node = n as JsonataNode;
    if (node.type === 'path' && Array.isArray(node.steps) && node.steps.length >= 2) {
      const [first, second] = node.steps;
      if (first.type === 'name' && first.value === 'steps' && second.type === 'name' && typeof second.value === 'string') {
        refs.add(second.value);
      }
    }
    const children = Object.entries(node).filter(([k, v]) => k !== 'position' && k !== 'value' && k !== 'type' && v && typeof v === 'object');
    for (let i = children.length - 1; i >= 0; i--) todo.push(children[i][1]);
  }
  return refs;
}

/** JSONata sequences carry a `sequence` flag and may be frozen; callers get plain data. */
function normalise(v: unknown): unknown {
  if (Array.isArray(v) && (v as { sequence?: boolean }).sequence) return Array.from(v, normalise);
  return v;
}

function toEvalError(e: unknown, where: string, limits: ExpressionLimits): BatonError {
  const je = e as { code?: string; message?: string; position?: number };
  // JSONata's guardrail codes: D1012 time limit, D1011 depth limit (see its evaluate()).
  if (je.code === 'D1012') return new BatonError('BATON_EXPR_TIMEOUT', { where, limitMs: limits.timeoutMs });
  if (je.code === 'D1011') return new BatonError('BATON_EXPR_DEPTH', { where, limit: limits.maxDepth });
  const at = typeof je.position === 'number' ? ` (at character ${je.position})` : '';
  return new BatonError('BATON_EXPR_EVAL', { where, detail: `${je.message ?? String(e)}${at}` });
}

/**
 * Compiles each distinct source once. One cache per workflow version, so limits that a
 * version sets apply to its own expressions only.
 */
export class ExpressionCache {
  private readonly map = new Map<string, Expression>();
  constructor(readonly limits: ExpressionLimits = DEFAULT_LIMITS) {}
  get(source: string): Expression {
    let e = this.map.get(source);
    if (!e) {
      e = Expression.compile(source, this.limits);
      this.map.set(source, e);
    }
    return e;
  }
}

/**
 * A string with `{{ expr }}` parts (used for URLs and headers). Each part is an expression;
 * values are turned to text by `encode`.
 */
export class Template {
  private readonly parts: Array<string | Expression>;
  readonly stepRefs: ReadonlySet<string>;
  constructor(readonly source: string, cache: ExpressionCache) {
    this.parts = [];
    const refs = new Set<string>();
    const re = /\{\{(.*?)\}\}/gs;
    let last = 0;
    for (let m = re.exec(source); m; m = re.exec(source)) {
      if (m.index > last) this.parts.push(source.slice(last, m.index));
      const e = cache.get(m[1].trim());
      for (const r of e.stepRefs) refs.add(r);
      this.parts.push(e);
      last = m.index + m[0].length;
    }
    if (last < source.length) this.parts.push(source.slice(last));
    this.stepRefs = refs;
  }
  async render(context: Record<string, unknown>, where: string, encode: (v: unknown) => string = (v) => String(v)): Promise<string> {
    let out = '';
    for (const p of this.parts) {
      if (typeof p === 'string') out += p;
      else {
        const v = await p.evaluate(context, where);
        out += v === undefined || v === null ? '' : encode(typeof v === 'object' ? JSON.stringify(v) : v);
      }
    }
    return out;
  }
}
