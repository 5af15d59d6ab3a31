/**
 * The console's one way to the gateway: the API key (kept in sessionStorage, so it leaves with
 * the tab) goes as `Authorization: Bearer` on every request — also on the run's event stream,
 * read with fetch instead of EventSource so the key never lands in a URL or a server log.
 */
const KEY = 'baton.key';

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}
export function setKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export interface Problem {
  status: number;
  code?: string;
  title?: string;
  detail?: string;
  problems?: Array<{ path?: string; message: string }>;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem, readonly retryAfterMs?: number) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
  }
}

function headers(extra?: Record<string, string>): Record<string, string> {
  const key = storedKey();
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; key?: string } = {}): Promise<T> {
  const h = headers(init.body !== undefined ? { 'content-type': 'application/json' } : {});
  if (init.key) h.authorization = `Bearer ${init.key}`;
  const res = await fetch(path, { method: init.method ?? 'GET', headers: h, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError({ status: res.status, ...(body ?? {}) });
  return body as T;
}

export interface Whoami {
  auth: 'on' | 'off';
  key: { id: string; name: string; role: string; namespaces: string[] } | null;
  can: { run: boolean; approve: boolean; register: boolean; admin: boolean };
}

export interface Run {
  run_id: string;
  workflow: string;
  version_id: string;
  status: string;
  namespace: string;
  output: unknown;
  error: { code?: string; message?: string } | null;
  cost: number;
  created_at: string;
  finished_at: string | null;
}

export interface StepRow {
  key: string;
  status: string;
  attempt: number;
  output: unknown;
  error: { code?: string; message?: string } | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface VersionRow {
  version_id: string;
  name: string;
  namespace: string;
  seq: number;
  created_at: string;
}

export interface GraphStep {
  id: string;
  kind: string;
  deps: string[];
  dependents: string[];
  handler: boolean;
  when: string | null;
  services: string[];
  strategy: string | null;
  approvers: { roles?: string[]; users?: string[] } | null;
  on_error: unknown;
}

export interface VersionDetail extends VersionRow {
  document: Record<string, unknown> & { steps?: Array<Record<string, unknown>> };
  steps: GraphStep[];
}

export interface RunEvent {
  id: number;
  type: string;
  step: string | null;
  at: string;
  data: Record<string, any> | null;
}

export interface Approval {
  id: string;
  status: string;
  run_id: string;
  step: string;
  namespace: string;
  workflow: string;
  approvers: unknown;
  evidence: unknown;
  summary: string | null;
  form: Record<string, any> | null;
  deadline_at: string | null;
  decided_by: string | null;
  decided_at: string | null;
  answer: unknown;
  created_at: string;
}

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/**
 * Follows a run's Server-Sent Events from `after`, calling `onEvent` for each, until the run
 * ends (the server's `end` event) or `signal` aborts. A dropped connection, or a stream the
 * server closed without `end` (a gateway stopping or restarting), is picked up again from the
 * last event id, so nothing is missed or repeated.
 */
export async function followEvents(runId: string, onEvent: (e: RunEvent) => void, signal: AbortSignal, after = 0): Promise<void> {
  let last = after;
  let delay = RETRY_FIRST_MS;
  while (!signal.aborted) {
    try {
      const res = await fetch(`/runs/${encodeURIComponent(runId)}/events${last ? `?after=${last}` : ''}`, { headers: headers({ accept: 'text/event-stream' }), signal });
      if (!res.ok || !res.body) {
        const problem = await res.json().catch(() => ({})) as Partial<Problem>;
        throw new ApiError({ ...problem, status: res.status, detail: `event stream: ${problem.detail ?? `HTTP ${res.status}`}` }, retryAfterMs(res));
      }
      delay = RETRY_FIRST_MS; // answered: a later drop starts over from a second
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break; // closed without `end`: follow again from the last id
        buf += value;
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const chunk = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          if (chunk.split('\n').includes('event: end')) return; // the run ended
          const data = chunk.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          const e = JSON.parse(data) as RunEvent;
          if (typeof e.id !== 'number') continue;
          last = e.id;
          onEvent(e);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      // A refusal that asking again will not change (401, 403, 404) ends following, and the
      // page says so; a timeout (408), a rate limit (429), a server error or a dropped
      // connection is asked again, less often each time, or when the server says to.
      if (e instanceof ApiError && !retryable(e.problem.status)) throw e;
      if (e instanceof ApiError && e.retryAfterMs !== undefined) delay = Math.max(delay, e.retryAfterMs);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15_000;

/** Whether asking again later may succeed: timeouts, rate limits and server errors. */
export function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A `Retry-After` in seconds, as milliseconds (capped at the longest pause between tries). */
function retryAfterMs(res: Response): number | undefined {
  const s = Number(res.headers.get('retry-after'));
  return Number.isFinite(s) && s > 0 ? Math.min(s * 1000, RETRY_MAX_MS) : undefined;
}

export function fmtCost(c: number | undefined | null): string {
  if (!c) return '$0';
  return c < 0.01 ? `$${c.toFixed(5)}` : `$${c.toFixed(2)}`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
