/**
 * What every built-in local model shares: the operation check, the error shapes, path
 * resolution against the config directory, abort handling and the usage report. Kept here so
 * each model file only holds its model; nothing in this file loads a library.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { BatonError } from '../../errors.js';
export { isRecord } from '../shared.js';
import { estimateTokens, type CallOptions, type ModelOperation, type ModelRequest, type ModelResponse, type ModelUsage, type Provider, type ProviderSetup } from '../provider.js';

/** `BATON_MODEL_LOCAL` for a service: bad options, missing files, bad input. */
export function localError(setup: ProviderSetup, detail: string, cause?: unknown): BatonError {
  return new BatonError('BATON_MODEL_LOCAL', { service: setup.service, detail }, cause === undefined ? {} : { cause });
}

/** Throws unless the request asks for the one operation this provider does; throws if already aborted. */
export function begin(setup: ProviderSetup, provider: string, operation: ModelOperation, request: ModelRequest, options: CallOptions): void {
  if (request.operation !== operation) {
    throw new BatonError('BATON_MODEL_UNSUPPORTED', { service: setup.service, provider, operation: request.operation, operations: operation });
  }
  options?.signal?.throwIfAborted();
}

/** Usage for a local call: no billing, but the runtime still wants token counts. */
export function usage(inputText: string, output: unknown): ModelUsage {
  return { inputTokens: estimateTokens(inputText), outputTokens: output === undefined ? 0 : estimateTokens(JSON.stringify(output)), cachedInputTokens: 0 };
}

/** A provider for a model that maps one text to one result (classifier, sentiment, entities). */
export function textModel(setup: ProviderSetup, name: string, operation: ModelOperation, run: (text: string) => unknown): Provider {
  return {
    name,
    defaultOperation: operation,
    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      begin(setup, name, operation, request, options);
      const text = textInput(setup, operation, request.input);
      const output = run(text);
      return { output, usage: usage(text, output), model: setup.model };
    },
  };
}

/** `options[key]` resolved against the config directory; throws a helpful error if it does not exist. */
export function resolveOptionPath(setup: ProviderSetup, key: string, value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw localError(setup, `options.${key} must be a path (string), got ${describe(value)}; point it at ${what}`);
  }
  const abs = isAbsolute(value) ? value : resolve(setup.baseDir, value);
  if (!existsSync(abs)) {
    throw localError(setup, `options.${key} ${value} does not exist (resolved to ${abs}); point it at ${what}`);
  }
  return abs;
}

/** The string an operation works on: the input itself, or `input.text`. */
export function textInput(setup: ProviderSetup, operation: string, input: unknown): string {
  if (typeof input === 'string') return input;
  if (input && typeof input === 'object' && typeof (input as { text?: unknown }).text === 'string') return (input as { text: string }).text;
  throw localError(setup, `\`${operation}\` needs input to be a string (or { text: string }), got ${describe(input)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value === '' ? 'an empty string' : `the string "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}
