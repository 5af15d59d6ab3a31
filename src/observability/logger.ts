/**
 * Structured logs: pino JSON lines (one object per line: time, level, msg, and run_id / step
 * where they apply). Secrets never reach the output: known fields are redacted by pino, and
 * every line is scrubbed of anything shaped like an API key (`bk_…`) or a bearer token on its
 * way out, whatever field it hid in (a URL, an error message, a request body echoed by a bug).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Baton } from '../engine/engine.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Fields whose value is replaced by `[redacted]` wherever they appear (one level deep, and in headers). */
const REDACT = [
  'authorization', 'password', 'secret', 'token', 'apiKey', 'api_key', 'credential', 'lease_token', 'leaseToken',
  '*.authorization', '*.password', '*.secret', '*.token', '*.apiKey', '*.api_key', '*.credential', '*.lease_token', '*.leaseToken',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'headers.authorization', 'headers["x-api-key"]',
];

/** `bk_<id>_<secret>` API keys, bearer tokens and `sk-…` vendor keys, wherever they appear in a line. */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/bk_[0-9A-Za-z]{6,}_[A-Za-z0-9_-]+/g, 'bk_[redacted]'],
  [/(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]'],
  [/\bsk-[A-Za-z0-9_-]{8,}/g, 'sk-[redacted]'],
];

/**
 * Any of the shapes above, in one pass (case-insensitive: a superset of each): most lines hold
 * none and skip the three replacements. Made from the patterns, so a new one is tested too.
 */
const MAYBE_SECRET = new RegExp(SECRET_PATTERNS.map(([re]) => re.source).join('|'), 'i');

export function scrubSecrets(line: string): string {
  if (!MAYBE_SECRET.test(line)) return line;
  let out = line;
  for (const [re, by] of SECRET_PATTERNS) out = out.replace(re, by);
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (default stdout); tests pass a stream to read them. */
  stream?: DestinationStream;
  /** Added to every line (e.g. `{ component: 'serve' }`). */
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid, ...opts.base },
      redact: { paths: REDACT, censor: '[redacted]' },
      // The last line of defence: every serialised line is scrubbed before it is written.
      hooks: { streamWrite: scrubSecrets },
      formatters: { level: (label) => ({ level: label }) },
    },
    // maxWrite: sonic-boom measures the UTF-8 length of its whole pending chunk on every line
    // it appends, so a chunk allowed to grow to the default 16 KiB makes each line cost more
    // the more lines wait; 4 KiB chunks keep that small (a gateway's access line: about 2 µs
    // less CPU a request) and still gather some 30 lines a write.
    opts.stream ?? pino.destination({ fd: 1, sync: false, maxWrite: 4096 }),
  );
}

/** The URL of a request as logged: the path, and the query's names only (values may be secrets). */
export function loggedUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const names = [...new URLSearchParams(url.slice(q + 1)).keys()];
  return names.length ? `${url.slice(0, q)}?${names.map((n) => `${n}=…`).join('&')}` : url.slice(0, q);
}

/**
 * Logs a Baton's run lifecycle (debug: started, finished; error: failed) and, at debug level
 * only, its step attempts (listening to step events costs a little on the hot path). Returns
 * a function that stops logging.
 */
export function logLifecycle(baton: Baton, log: Logger): () => void {
  const onRun = (e: { runId: string; status: string; error?: { code?: string; message?: string } }) => {
    if (e.status === 'failed') log.error({ run_id: e.runId, status: e.status, err_code: e.error?.code, err: e.error?.message }, 'run failed');
    else log.debug({ run_id: e.runId, status: e.status }, `run ${e.status}`);
  };
  const onStep = (e: { runId: string; key: string; status: string; attempt: number; durationMs?: number; error?: { code?: string; message?: string } }) => {
    const fields = { run_id: e.runId, step: e.key, attempt: e.attempt, status: e.status, ms: e.durationMs, err_code: e.error?.code, err: e.error?.message };
    if (e.status === 'failed') log.warn(fields, 'step failed');
    else log.debug(fields, `step ${e.status}`);
  };
  baton.on('run', onRun);
  if (log.isLevelEnabled('debug')) baton.on('step', onStep);
  return () => {
    baton.off('run', onRun);
    baton.off('step', onStep);
  };
}
