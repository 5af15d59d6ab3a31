/**
 * What the network and inference providers share (OIP, generic HTTP, ONNX): one fetch with
 * typed errors, abort checks, option parsing and input descriptions.
 */
import { BatonError } from '../errors.js';
import { httpStatusError, type ModelOperation } from './provider.js';

/**
 * One `fetch` that either resolves with the body of a 2xx answer or throws exactly one typed
 * error: the signal's reason when aborted, BATON_MODEL_NETWORK when the server cannot be
 * reached, the shared HTTP status error otherwise.
 */
export async function fetchText(service: string, url: string, init: RequestInit, signal: AbortSignal): Promise<string> {
  throwIfAborted(signal);
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw networkError(service, url, err);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw networkError(service, url, err);
  }
  throwIfAborted(signal);
  if (!res.ok) throw httpStatusError(service, res.status, text, res.headers.get('retry-after'));
  return text;
}

export function networkError(service: string, url: string, err: unknown): BatonError {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code;
  const msg = cause?.message ?? (err instanceof Error ? err.message : String(err));
  const detail = code && !msg.includes(code) ? `${code}: ${msg}` : msg;
  let endpoint = url;
  try {
    const u = new URL(url);
    endpoint = `${u.protocol}//${u.host}`;
  } catch {
    /* keep the raw url */
  }
  return new BatonError('BATON_MODEL_NETWORK', { service, endpoint, detail }, { cause: err });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

const ALL_OPERATIONS: readonly ModelOperation[] = ['chat', 'embed', 'classify', 'sentiment', 'entities', 'retrieve', 'ocr', 'anomaly', 'infer'];

/** `options.operation` checked against what the provider does; `infer` when unset. */
export function defaultOp(service: string, provider: string, value: unknown, operations: readonly ModelOperation[] = ALL_OPERATIONS): ModelOperation {
  if (value === undefined || value === null) return operations.includes('infer') ? 'infer' : operations[0];
  if (typeof value !== 'string' || !operations.includes(value as ModelOperation)) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (${provider}): \`options.operation\` is ${JSON.stringify(value)}; use one of ${operations.join(', ')}` });
  }
  return value as ModelOperation;
}

export function stringRecord(service: string, provider: string, key: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string' || typeof v === 'number')) {
    throw new BatonError('BATON_CONFIG_INVALID', { detail: `service ${service} (${provider}): \`options.${key}\` must map names to strings` });
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

/**
 * A request Baton cannot even send (the step's input has the wrong form). Not retryable: the
 * same input fails the same way. The errors table has no input code for models, so this is
 * BATON_MODEL_UNSUPPORTED with the reason in place of the operation.
 */
export function badInput(service: string, provider: string, operation: ModelOperation, operations: readonly ModelOperation[], detail: string): never {
  throw new BatonError('BATON_MODEL_UNSUPPORTED', { service, provider, operation, operations: `${operations.join(', ')} (but not on this input: ${detail})`, input: detail });
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}
