import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BatonError, ERRORS, RETIRED_CODES, deserializeError, serializeError } from '../../src/errors.js';
import { renderErrorDocs } from '../../src/spec/artifacts.js';

describe('error table', () => {
  it('keeps docs/errors.md in step with the table', () => {
    expect(readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')).toBe(renderErrorDocs());
  });

  it('a code written to logs only names the code callers get instead, which exists', () => {
    const logged = Object.entries(ERRORS).filter(([, e]) => 'loggedOnly' in e);
    expect(logged.map(([c]) => c).sort()).toEqual(['BATON_WEBHOOK_SECRET_MISSING', 'BATON_WEBHOOK_SIGNATURE']);
    for (const [, e] of logged) expect(Object.keys(ERRORS)).toContain((e as { loggedOnly: string }).loggedOnly);
  });

  it('never reuses a retired code', () => {
    for (const c of RETIRED_CODES) expect(Object.keys(ERRORS)).not.toContain(c);
  });

  it('fills message templates and keeps the retryable flag', () => {
    const e = new BatonError('BATON_STEP_TIMEOUT', { step: 'x', timeoutMs: 5 });
    expect(e.message).toBe('Step x did not finish within 5 ms.');
    expect(e.retryable).toBe(true);
    expect(e.status).toBe(504);
  });

  it('round-trips failures with their cause chain through the stored form', () => {
    const inner = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const e = new BatonError('BATON_HTTP_NETWORK', { method: 'GET', url: 'http://x', detail: 'socket hang up' }, { cause: inner });
    const s = serializeError(e);
    expect(s).toMatchObject({ code: 'BATON_HTTP_NETWORK', retryable: true, cause: { code: 'ECONNRESET', message: 'socket hang up' } });
    const back = deserializeError(JSON.parse(JSON.stringify(s)));
    expect(back.code).toBe('BATON_HTTP_NETWORK');
    expect((back.cause as { code: string }).code).toBe('ECONNRESET');
  });

  it('lets user code mark an error as not retryable', () => {
    expect(serializeError(Object.assign(new Error('bad'), { retryable: false })).retryable).toBe(false);
    expect(serializeError('plain string').message).toBe('plain string');
  });
});
