/**
 * SSRF: `http` steps (and emit sinks, approval notify URLs, which share the engine's fetch) go
 * through the egress guard. Real local servers: a denied request records BATON_EGRESS_DENIED on
 * the step and the server receives NOTHING; an allowed one works. Metadata is always denied.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EgressGuard } from '../../src/security/egress.js';
import { BatonError } from '../../src/errors.js';
import { engineSuite } from '../helpers/stores.js';

interface Srv { server: Server; port: number; hits: string[] }
const servers: Srv[] = [];
async function serve(host: string, handler?: (url: string) => { status: number; location?: string }): Promise<Srv> {
  const s: Srv = { server: undefined as never, port: 0, hits: [] };
  s.server = createServer((req, res) => {
    s.hits.push(req.url ?? '');
    const h = handler?.(req.url ?? '') ?? { status: 200 };
    res.writeHead(h.status, { 'content-type': 'application/json', ...(h.location ? { location: h.location } : {}) });
    res.end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((r) => s.server.listen(0, host, r));
  s.port = (s.server.address() as AddressInfo).port;
  servers.push(s);
  return s;
}
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.server.close(r));
});

const wf = (url: string) => `
name: egress
steps:
  - id: call
    kind: http
    url: "${url}"
    retry: { max_attempts: 1 }
output: "steps.call.output.body"
`;

describe('egress guard rules', () => {
  const denied = async (g: EgressGuard, url: string) => {
    try {
      await g.check(new URL(url));
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(BatonError);
      expect((e as BatonError).code).toBe('BATON_EGRESS_DENIED');
      return (e as BatonError).message;
    }
  };
  it('metadata and link-local are denied always, even with everything else allowed', async () => {
    const open = new EgressGuard(undefined);
    const wide = new EgressGuard({ allow: ['169.254.0.0/16', 'metadata.google.internal'], allow_loopback: true, allow_private: true });
    for (const g of [open, wide]) {
      for (const u of ['http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://metadata.google.internal/computeMetadata/v1/', 'http://[fe80::1]/', 'http://[::ffff:169.254.169.254]/', 'http://0.0.0.0:80/']) {
        expect(await denied(g, u), u).toMatch(/always denied/);
      }
    }
    expect(await denied(open, 'file:///etc/passwd')).toMatch(/scheme file:/);
  });
  it('default (no network section): loopback and private allowed; strict: denied unless allowed', async () => {
    const open = new EgressGuard(undefined);
    expect(await denied(open, 'http://127.0.0.1:1/')).toBeUndefined();
    expect(await denied(open, 'http://10.1.2.3/')).toBeUndefined();
    const strict = new EgressGuard(EgressGuard.parse({}));
    expect(await denied(strict, 'http://127.0.0.1:1/')).toMatch(/loopback is denied/);
    expect(await denied(strict, 'http://[::1]:1/')).toMatch(/loopback is denied/);
    expect(await denied(strict, 'http://[::ffff:127.0.0.1]:1/')).toMatch(/loopback is denied/);
    // A name is resolved and its addresses checked: localhost is loopback whatever it is called.
    expect(await denied(strict, 'http://localhost:1/')).toMatch(/loopback is denied/);
    expect(await denied(strict, 'http://192.168.1.1/')).toMatch(/private addresses are denied/);
    expect(await denied(strict, 'http://172.20.0.1/')).toMatch(/private/);
    expect(await denied(new EgressGuard({ allow_loopback: true }), 'http://127.0.0.1:1/')).toBeUndefined();
    expect(await denied(new EgressGuard({ allow_private: true }), 'http://10.9.9.9/')).toBeUndefined();
  });
  it('an allow list admits only what it names; a listed name that resolves to loopback still needs loopback allowed', async () => {
    const g = new EgressGuard(EgressGuard.parse({ allow: ['10.0.0.0/8', '127.0.0.1', '*.example.com', 'localhost'] }));
    expect(await denied(g, 'http://10.20.30.40/')).toBeUndefined();
    expect(await denied(g, 'http://127.0.0.1:9/')).toBeUndefined();
    expect(await denied(g, 'http://127.0.0.2:9/')).toMatch(/not in network.allow/);
    expect(await denied(g, 'http://192.168.0.1/')).toMatch(/not in network.allow/);
    expect(await denied(g, 'http://8.8.8.8/')).toMatch(/not in network.allow/);
    // DNS rebinding shape: the name is allowed, the address it resolves to is loopback.
    expect(await denied(new EgressGuard({ allow: ['localhost'] }), 'http://localhost:9/')).toMatch(/loopback is denied/);
    // Listing the address itself (an IP or CIDR entry) admits it, whatever name leads there.
    expect(await denied(g, 'http://localhost:9/')).toBeUndefined();
  });
  it('connections are pinned: the lookup at connect time refuses a denied address even when the pre-check passed (DNS rebinding)', async () => {
    const s = await serve('127.0.0.1');
    // A guard whose pre-check is skipped, as if DNS had answered a public address at check time.
    class Rebound extends EgressGuard {
      override async check(): Promise<void> {}
    }
    const f = new Rebound({ allow: ['localhost'] }).wrap(globalThis.fetch);
    const err = await f(`http://localhost:${s.port}/rebound`).then(() => undefined, (e: Error & { cause?: unknown }) => e);
    expect(err).toBeDefined();
    const cause = err instanceof BatonError ? err : err!.cause;
    expect(cause).toBeInstanceOf(BatonError);
    expect((cause as BatonError).code).toBe('BATON_EGRESS_DENIED');
    expect(s.hits).toEqual([]);
    // The same guard lets it through once loopback is allowed: the refusal was the rule, not the socket.
    const ok = await new Rebound({ allow: ['localhost'], allow_loopback: true }).wrap(globalThis.fetch)(`http://localhost:${s.port}/fine`);
    expect(ok.status).toBe(200);
    expect(s.hits).toEqual(['/fine']);
  });

  it('a bad network section is a clear config error', () => {
    expect(() => EgressGuard.parse({ allow: 'x' })).toThrow(/allow` must be a list/);
    expect(() => EgressGuard.parse({ allow: ['10.0.0.0/99'] })).toThrow(/not a host name, IP or CIDR/);
    expect(() => EgressGuard.parse({ alow: [] })).toThrow(/unknown field `alow`/);
    expect(() => EgressGuard.parse({ allow_loopback: 'yes' })).toThrow(/true or false/);
  });
});

describe('http steps through the egress guard (real sockets)', () => {
  const suite = engineSuite('sqlite', 'baton-egress-');

  it('denied: the step fails with BATON_EGRESS_DENIED naming host and rule, the server receives nothing', async () => {
    const s = await serve('127.0.0.1');
    const b = await suite.baton({ network: { allow: ['api.example.com'] } });
    const r = await b.run(await b.register(wf(`http://127.0.0.1:${s.port}/secret`)), {});
    expect(r.status).toBe('failed');
    expect(JSON.stringify(r.error)).toContain('BATON_EGRESS_DENIED');
    const steps = await b.getSteps(r.id);
    const call = steps.find((x) => x.key === 'call')!;
    expect(call.error).toMatchObject({ code: 'BATON_EGRESS_DENIED' });
    expect(JSON.stringify(call.error)).toMatch(/127\.0\.0\.1.*not in network\.allow/);
    expect(call.attempt).toBe(1); // not retried: denial is final
    expect(s.hits).toEqual([]);
  });

  it('allowed: the same server is reached when listed (and by default)', async () => {
    const s = await serve('127.0.0.1');
    const b = await suite.baton({ network: { allow: ['127.0.0.1'] } });
    const r = await b.run(await b.register(wf(`http://127.0.0.1:${s.port}/ok`)), {});
    expect(r.status).toBe('completed');
    expect(r.output).toEqual({ ok: true });
    const d = await suite.baton();
    const r2 = await d.run(await d.register(wf(`http://127.0.0.1:${s.port}/ok2`)), {});
    expect(r2.status).toBe('completed');
    expect(s.hits).toEqual(['/ok', '/ok2']);
  });

  it('a redirect to a denied address is refused before it is followed', async () => {
    const other = await serve('127.0.0.2');
    const s = await serve('127.0.0.1', (u) => (u === '/go' ? { status: 302, location: `http://127.0.0.2:${other.port}/inside` } : u === '/meta' ? { status: 307, location: 'http://169.254.169.254/latest/meta-data/' } : { status: 200 }));
    const b = await suite.baton({ network: { allow: ['127.0.0.1'] } });
    const r = await b.run(await b.register(wf(`http://127.0.0.1:${s.port}/go`)), {});
    expect(r.status).toBe('failed');
    expect(JSON.stringify(r.error)).toMatch(/BATON_EGRESS_DENIED.*127\.0\.0\.2|127\.0\.0\.2.*BATON_EGRESS_DENIED/s);
    const d = await suite.baton();
    const r2 = await d.run(await d.register(wf(`http://127.0.0.1:${s.port}/meta`)), {});
    expect(r2.status).toBe('failed');
    expect(JSON.stringify(r2.error)).toMatch(/always denied/);
    expect(s.hits).toEqual(['/go', '/meta']);
    expect(other.hits).toEqual([]);
  });

  it('emit sinks and approval notify URLs go through the same guard', async () => {
    const s = await serve('127.0.0.1');
    const b = await suite.baton({ network: { allow: ['api.example.com'] } });
    const r = await b.run(await b.register(`
name: announce
steps:
  - id: tell
    kind: emit
    type: order.created
    data: "{ 'n': 1 }"
    sink: http://127.0.0.1:${s.port}/sink
    retry: { max_attempts: 1 }
`), {});
    expect(r.status).toBe('failed');
    expect(JSON.stringify(r.error)).toMatch(/BATON_EGRESS_DENIED/);
    // An approval whose reminders POST to a denied URL: reminders are recorded, nothing is sent.
    const v = await b.register(`
name: gated
steps:
  - id: check
    kind: approval
    approvers: { roles: [approver] }
    summary: ok?
    deadline: 30s
    reminders: { every: 100ms }
    notify: http://127.0.0.1:${s.port}/notify
`);
    const id = await b.start(v, {});
    for (let i = 0; i < 400 && (await b.getEvents(id)).filter((e) => e.type === 'approval.reminder').length < 2; i++) await new Promise((res) => setTimeout(res, 25));
    expect((await b.getEvents(id)).filter((e) => e.type === 'approval.reminder').length).toBeGreaterThanOrEqual(2);
    await b.cancel(id);
    expect(s.hits).toEqual([]);
  });

  it('a network section in baton.config.yaml is read (and a bad one refused)', async () => {
    const { findConfig } = await import('../../src/cli/config.js');
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const f = join(suite.dir, 'baton.config.yaml');
    writeFileSync(f, 'network:\n  allow: [api.example.com, 10.0.0.0/8]\n  allow_loopback: true\n');
    expect(findConfig(f, []).network).toEqual({ allow: ['api.example.com', '10.0.0.0/8'], allow_loopback: true, allow_private: undefined });
    writeFileSync(f, 'network:\n  allow: [10.0.0.0/40]\n');
    expect(() => findConfig(f, [])).toThrow(/network: `10.0.0.0\/40` is not a host name, IP or CIDR/);
  });

  it('the metadata address is denied by default, without any network section', async () => {
    const b = await suite.baton();
    const r = await b.run(await b.register(wf('http://169.254.169.254/latest/meta-data/iam/')), {});
    expect(r.status).toBe('failed');
    expect(JSON.stringify(r.error)).toMatch(/BATON_EGRESS_DENIED/);
  });
});
