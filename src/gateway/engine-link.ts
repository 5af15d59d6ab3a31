/**
 * The engine link: the gateway's engine calls (EngineApi) carried over a MessagePort.
 *
 * `baton serve` runs its HTTP layer (sockets, parsing, routing, validation, serialisation,
 * the access log) on a thread of its own and keeps the engine on the main thread. Every
 * request costs the HTTP layer some 25 µs of CPU; on the engine's thread that was paid by
 * every other request queued behind it (at 50 in flight, about a millisecond each). Over the
 * link the engine's thread pays a message in and a message out instead.
 *
 * - `serveEngine(api, port)`, engine side: runs each call on the API and answers.
 * - `remoteEngine(port, info)`, HTTP side: an EngineApi whose calls cross the port.
 *
 * Messages are gathered per turn of the event loop and posted as one array, so a busy link
 * costs one wake-up per batch, not per call. Only paths of the API are served: a name that is
 * not one of its functions is refused, whatever the other side sends. BatonErrors cross with
 * their code and details and are rebuilt, so the gateway answers the same problem either way.
 * An AbortSignal argument (a task poll's "the client went away") crosses as an id and is
 * aborted over the link.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { BatonError, type ErrorCode } from '../errors.js';
import type { StepEvent } from '../engine/executor.js';
import type { EngineApi, EngineInfo } from './engine-api.js';

type Message =
  | { t: 'call'; id: number; path: string; args: unknown[] }
  | { t: 'ok'; id: number; value: unknown }
  | { t: 'err'; id: number; error: WireError }
  | { t: 'abort'; signal: number }
  | { t: 'on' | 'off'; event: 'step' }
  | { t: 'event'; event: 'step'; payload: unknown };

interface WireError {
  message: string;
  stack?: string;
  baton?: { code: ErrorCode; details: Record<string, unknown>; problems: BatonError['problems']; retryable: boolean };
}

/** An AbortSignal argument as it crosses. */
interface WireSignal {
  __abortSignal: number;
}

/** Messages for the other side, posted together once this turn of the event loop is done. */
class Outbox {
  private queue: Message[] = [];
  private scheduled = false;

  constructor(private readonly port: MessagePort) {}

  send(m: Message): void {
    this.queue.push(m);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    try {
      this.port.postMessage(batch);
    } catch {
      // One message that cannot be cloned (a function in a result) must not sink the others.
      for (const m of batch) {
        try {
          this.port.postMessage([m]);
        } catch (e) {
          if (m.t === 'ok') this.port.postMessage([{ t: 'err', id: m.id, error: { message: `the engine's answer could not cross to the HTTP thread: ${(e as Error).message}` } }]);
        }
      }
    }
  };
}

function toWire(e: unknown): WireError {
  if (e instanceof BatonError) return { message: e.message, stack: e.stack, baton: { code: e.code, details: cloneable(e.details), problems: e.problems, retryable: e.retryable } };
  const err = e instanceof Error ? e : new Error(String(e));
  return { message: err.message, stack: err.stack };
}

function fromWire(w: WireError): Error {
  if (w.baton) {
    const e = new BatonError(w.baton.code, w.baton.details, { problems: w.baton.problems, retryable: w.baton.retryable });
    if (w.stack) e.stack = w.stack;
    return e;
  }
  const e = new Error(w.message);
  if (w.stack) e.stack = w.stack;
  return e;
}

/** Error details are data, but one may hold a value that cannot be cloned: it crosses as text. */
function cloneable(details: Record<string, unknown>): Record<string, unknown> {
  try {
    structuredClone(details);
    return details;
  } catch {
    return Object.fromEntries(Object.entries(details).map(([k, v]) => [k, typeof v === 'object' && v !== null ? String(v) : typeof v === 'function' ? '[function]' : v]));
  }
}

/** The API's function at `path` (`start`, `store.getRun`…), own properties only. */
function lookup(api: EngineApi, path: string): ((...a: unknown[]) => Promise<unknown>) | undefined {
  let at: unknown = api;
  let owner: unknown = api;
  for (const part of path.split('.')) {
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, part)) return undefined;
    owner = at;
    at = (at as Record<string, unknown>)[part];
  }
  return typeof at === 'function' && path !== 'on' && path !== 'off' ? (at as (...a: unknown[]) => Promise<unknown>).bind(owner) : undefined;
}

/** Serves `api` to the other end of `port`. Returns a function that stops serving. */
export function serveEngine(api: EngineApi, port: MessagePort): () => void {
  const out = new Outbox(port);
  const signals = new Map<number, AbortController>();
  /** An argument as the API takes it: a crossed signal (at the top, or a field) made a live one. */
  const revive = (v: unknown, used: number[]): unknown => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const n = (v as WireSignal).__abortSignal;
    if (typeof n === 'number') {
      const ac = new AbortController();
      signals.set(n, ac);
      used.push(n);
      return ac.signal;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const x = o[k] as WireSignal | null;
      if (x !== null && typeof x === 'object' && typeof x.__abortSignal === 'number') o[k] = revive(x, used);
    }
    return o;
  };
  const forwardStep = (payload: unknown) => out.send({ t: 'event', event: 'step', payload });
  let forwarding = false;
  const onBatch = (batch: Message[]) => {
    for (const m of batch) {
      if (m.t === 'call') {
        const fn = lookup(api, m.path);
        if (!fn) {
          out.send({ t: 'err', id: m.id, error: { message: `"${m.path}" is not a call of the engine API` } });
          continue;
        }
        const used: number[] = [];
        fn(...m.args.map((a) => revive(a, used))).then(
          (value) => out.send({ t: 'ok', id: m.id, value }),
          (e) => out.send({ t: 'err', id: m.id, error: toWire(e) }),
        ).finally(() => {
          for (const n of used) signals.delete(n);
        });
      } else if (m.t === 'abort') {
        signals.get(m.signal)?.abort();
        signals.delete(m.signal);
      } else if (m.t === 'on' && !forwarding) {
        forwarding = true;
        api.on('step', forwardStep);
      } else if (m.t === 'off' && forwarding) {
        forwarding = false;
        api.off('step', forwardStep);
      }
    }
  };
  port.on('message', onBatch);
  return () => {
    port.off('message', onBatch);
    if (forwarding) api.off('step', forwardStep);
    for (const ac of signals.values()) ac.abort();
    signals.clear();
  };
}

/** An EngineApi whose calls are served at the other end of `port`. `close()` ends it. */
export function remoteEngine(port: MessagePort, info: EngineInfo): EngineApi & { close(): void } {
  const out = new Outbox(port);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  const events = new EventEmitter();
  let next = 1;
  let nextSignal = 1;
  let closed = false;

  const call = (path: string, args: unknown[]): Promise<unknown> => {
    if (closed) return Promise.reject(new Error('the engine link is closed (the server is stopping)'));
    const cleanups: Array<() => void> = [];
    const wire = (v: unknown): unknown => {
      if (!(v instanceof AbortSignal)) return v;
      const n = nextSignal++;
      const onAbort = () => out.send({ t: 'abort', signal: n });
      if (v.aborted) onAbort();
      else {
        v.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => v.removeEventListener('abort', onAbort));
      }
      return { __abortSignal: n } satisfies WireSignal;
    };
    // Signals go at the top level or as a field of an options object (tasks.poll({ signal })).
    const sent = args.map((a) => (a !== null && typeof a === 'object' && !Array.isArray(a) && !(a instanceof AbortSignal)
      ? (Object.values(a).some((x) => x instanceof AbortSignal) ? Object.fromEntries(Object.entries(a).map(([k, x]) => [k, wire(x)])) : a)
      : wire(a)));
    const id = next++;
    return new Promise<unknown>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      out.send({ t: 'call', id, path, args: sent });
    }).finally(() => {
      for (const c of cleanups) c();
    });
  };

  port.on('message', (batch: Message[]) => {
    for (const m of batch) {
      if (m.t === 'ok' || m.t === 'err') {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.t === 'ok') p?.resolve(m.value);
        else p?.reject(fromWire(m.error));
      } else if (m.t === 'event') {
        events.emit(m.event, m.payload);
      }
    }
  });

  const group = (prefix: string) => new Proxy({}, {
    get: (_t, prop) => (typeof prop === 'string' && prop !== 'then' ? (...args: unknown[]) => call(`${prefix}${prop}`, args) : undefined),
  });
  const groups = { store: group('store.'), registry: group('registry.'), tasks: group('tasks.'), approvals: group('approvals.'), schedules: group('schedules.') };
  const own = {
    info,
    on: (event: 'step', fn: (e: StepEvent) => void) => {
      if (events.listenerCount(event) === 0) out.send({ t: 'on', event });
      events.on(event, fn);
    },
    off: (event: 'step', fn: (e: StepEvent) => void) => {
      events.off(event, fn);
      if (events.listenerCount(event) === 0) out.send({ t: 'off', event });
    },
    close: () => {
      closed = true;
      port.close();
      for (const p of pending.values()) p.reject(new Error('the engine link closed (the server is stopping)'));
      pending.clear();
    },
    ...groups,
  };
  return new Proxy(own, {
    get: (t, prop) => {
      if (typeof prop !== 'string' || prop === 'then') return undefined;
      if (Object.hasOwn(t, prop)) return (t as Record<string, unknown>)[prop];
      return (...args: unknown[]) => call(prop, args);
    },
    has: (_t, prop) => typeof prop === 'string' && prop !== 'then',
  }) as unknown as EngineApi & { close(): void };
}

/**
 * The engine API of `api` seen through a link within this thread: what the HTTP thread sees,
 * without the thread. The gateway's tests run over it so that every route is exercised with
 * cloned arguments, results and errors exactly as `baton serve` carries them.
 */
export function linkedInThread(api: EngineApi): EngineApi & { close(): void } {
  const { port1, port2 } = new MessageChannel();
  const stop = serveEngine(api, port2);
  const remote = remoteEngine(port1, api.info);
  // Like the gateway's own handles, the link alone does not keep a process alive.
  port1.unref();
  port2.unref();
  const closeRemote = remote.close;
  return Object.assign(remote, {
    close: () => {
      stop();
      closeRemote();
      port2.close();
    },
  });
}
