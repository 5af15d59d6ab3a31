/** Small waiting helpers shared by tests that watch runs move (state, not wall time, is asserted). */
import type { BatonError } from '../../src/index.js';

/** Polls `f` every 25 ms until it gives a truthy value, which it returns; throws after `ms`. */
export async function until<T>(f: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The Baton error code `p` rejects with, or 'resolved'. */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as BatonError).code;
  }
  return 'resolved';
}
