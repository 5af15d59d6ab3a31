/**
 * Webhook signatures are compared in constant time: the comparison goes through
 * crypto.timingSafeEqual for every digest of the right length (a wrong one included), and a
 * digest of another length is refused before any comparison (its length is public anyway).
 * Not a timing measurement (flaky on a shared machine): the call itself is checked.
 */
import { createHmac } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const calls = vi.hoisted(() => ({ n: 0 }));
vi.mock('node:crypto', async (orig) => {
  const actual = await orig<typeof import('node:crypto')>();
  return {
    ...actual,
    default: actual,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      calls.n++;
      return actual.timingSafeEqual(a, b);
    },
  };
});

const { verifySignature } = await import('../../src/gateway/triggers.js');

const SECRET = 'whsec_test_0123456789';
const hook = { trigger: { webhook: { secret: 'env:BATON_TEST_WEBHOOK_SECRET', header: 'x-hub-signature-256', algorithm: 'sha256' } } } as never;
const body = Buffer.from('{"action":"opened"}');
const good = createHmac('sha256', SECRET).update(body).digest('hex');
const verify = (sig: string | undefined) => verifySignature(hook, 'gh', body, sig === undefined ? {} : { 'x-hub-signature-256': sig });

describe('webhook signature check', () => {
  beforeEach(() => {
    process.env.BATON_TEST_WEBHOOK_SECRET = SECRET;
    calls.n = 0;
  });
  afterEach(() => {
    delete process.env.BATON_TEST_WEBHOOK_SECRET;
  });

  it('a right signature passes through timingSafeEqual', () => {
    expect(() => verify(`sha256=${good}`)).not.toThrow();
    expect(() => verify(good)).not.toThrow();
    expect(calls.n).toBe(2);
  });

  it('wrong signatures of the right length are compared in constant time and refused', () => {
    const wrong = [good.replace(/^./, (c) => (c === '0' ? '1' : '0')), good.replace(/.$/, (c) => (c === '0' ? '1' : '0')), '0'.repeat(64), 'f'.repeat(64)];
    for (const w of wrong) expect(() => verify(`sha256=${w}`)).toThrow(expect.objectContaining({ code: 'BATON_WEBHOOK_SIGNATURE' }));
    expect(calls.n).toBe(wrong.length);
  });

  it('other lengths, non-hex and missing headers are refused with a typed error', () => {
    for (const w of [good.slice(0, 62), `${good}00`, 'zz'.repeat(32), '', 'sha256=', `sha1=${good}`]) {
      expect(() => verify(w)).toThrow(expect.objectContaining({ code: 'BATON_WEBHOOK_SIGNATURE' }));
    }
    expect(() => verify(undefined)).toThrow(expect.objectContaining({ code: 'BATON_WEBHOOK_SIGNATURE' }));
    delete process.env.BATON_TEST_WEBHOOK_SECRET;
    expect(() => verify(good)).toThrow(expect.objectContaining({ code: 'BATON_WEBHOOK_SECRET_MISSING' }));
  });

  it('the secret never appears in the error', () => {
    try {
      verify('0'.repeat(64));
    } catch (e) {
      expect(JSON.stringify({ m: (e as Error).message, ...(e as object) })).not.toContain(SECRET);
    }
  });
});
