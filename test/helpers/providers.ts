/** Shared by the provider tests: call options, awaiting a typed failure, a port nobody listens on. */
import { createServer } from 'node:http';
import { expect } from 'vitest';
import { BatonError } from '../../src/errors.js';
import type { CallOptions } from '../../src/providers/provider.js';

export function callOptions(over: Partial<CallOptions> = {}): CallOptions {
  return { signal: new AbortController().signal, idempotencyKey: 'run9:classify:2', ...over };
}

/** The BatonError `p` rejects with (the test fails if it resolves or rejects with anything else). */
export async function failure(p: Promise<unknown>): Promise<BatonError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BatonError);
  return err as BatonError;
}

/** A port nobody listens on. */
export async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
