/**
 * Egress guard for the requests Baton makes on a workflow's behalf: `http` steps, `emit` sinks
 * and approval notify URLs. A workflow author (or whoever controls a step input that ends up in
 * a URL) must not be able to reach the cloud metadata service, the gateway's own loopback
 * port or the private network unless the operator allowed it.
 *
 * Rules, in order:
 *   1. Link-local and metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254,
 *      metadata.google.internal) are ALWAYS denied.
 *   2. With `network.allow` set, the host (name, `*.suffix`, IP or CIDR) must match an entry.
 *   3. Loopback and private addresses are denied when a `network:` section is given (strict
 *      egress) unless `allow_loopback` / `allow_private` says otherwise or an IP/CIDR entry of
 *      `allow` names them. Without any `network:` section they stay allowed: embedded and dev
 *      use talks to services on 127.0.0.1.
 *
 * Names are resolved first and EVERY resolved address is checked; the connection then goes to
 * an address checked at connect time (the dispatcher's lookup re-checks), so a DNS answer that
 * changes between check and connect (rebinding) cannot slip through. Redirects are followed by
 * hand, each hop checked like the first.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { BatonError } from '../errors.js';

export interface NetworkPolicy {
  /** Hosts, `*.suffix` patterns, IPs or CIDRs requests may go to. Absent: any public address. */
  allow?: string[];
  /** Loopback (127.0.0.0/8, ::1) allowed. Default: true without a `network:` section, false with one. */
  allow_loopback?: boolean;
  /** Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) allowed. Same default. */
  allow_private?: boolean;
}

const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata', 'metadata.goog']);

function list(entries: Array<[string, number, 'ipv4' | 'ipv6']>): BlockList {
  const b = new BlockList();
  for (const [net, prefix, type] of entries) b.addSubnet(net, prefix, type);
  return b;
}
const METADATA = list([['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6'], ['fd00:ec2::254', 128, 'ipv6'], ['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']]);
const LOOPBACK = list([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]);
const PRIVATE = list([['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['fc00::', 7, 'ipv6']]);

/** IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is checked as the IPv4 address it is. */
function plain(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (m) return { address: m[1], type: 'ipv4' };
  return { address: a, type: isIP(a) === 6 ? 'ipv6' : 'ipv4' };
}

export class EgressGuard {
  private readonly strict: boolean;
  private readonly names: string[] = [];
  private readonly nets = new BlockList();
  private readonly hasAllow: boolean;
  private readonly allowLoopback: boolean;
  private readonly allowPrivate: boolean;

  constructor(readonly policy: NetworkPolicy | undefined) {
    this.strict = policy !== undefined;
    this.allowLoopback = policy?.allow_loopback ?? !this.strict;
    this.allowPrivate = policy?.allow_private ?? !this.strict;
    this.hasAllow = (policy?.allow?.length ?? 0) > 0;
    for (const e of policy?.allow ?? []) {
      const [net, prefix] = e.split('/');
      const kind = isIP(net);
      if (kind) {
        const p = plain(net);
        this.nets.addSubnet(p.address, prefix === undefined ? (p.type === 'ipv4' ? 32 : 128) : Number(prefix), p.type);
      } else this.names.push(e.toLowerCase());
    }
  }

  /** Parses a `network:` section (baton.config.yaml or Baton.open), or BATON_CONFIG_INVALID. */
  static parse(raw: unknown, where = 'network'): NetworkPolicy | undefined {
    if (raw === undefined || raw === null) return undefined;
    const bad = (d: string) => new BatonError('BATON_CONFIG_INVALID', { detail: `${where}: ${d}` });
    if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('expected a mapping with allow, allow_loopback, allow_private.');
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['allow', 'allow_loopback', 'allow_private'].includes(k)) throw bad(`unknown field \`${k}\`; known: allow, allow_loopback, allow_private.`);
    if (r.allow !== undefined && (!Array.isArray(r.allow) || r.allow.some((x) => typeof x !== 'string' || x === ''))) throw bad('`allow` must be a list of host names, *.suffix patterns, IPs or CIDRs.');
    for (const e of (r.allow as string[] | undefined) ?? []) {
      const [net, prefix, more] = e.split('/');
      if (more !== undefined || (prefix !== undefined && (!isIP(net) || !/^\d+$/.test(prefix) || Number(prefix) > (isIP(net) === 4 ? 32 : 128)))) throw bad(`\`${e}\` is not a host name, IP or CIDR.`);
    }
    for (const k of ['allow_loopback', 'allow_private'] as const) if (r[k] !== undefined && typeof r[k] !== 'boolean') throw bad(`\`${k}\` must be true or false.`);
    return { allow: r.allow as string[] | undefined, allow_loopback: r.allow_loopback as boolean | undefined, allow_private: r.allow_private as boolean | undefined };
  }

  private nameAllowed(host: string): boolean {
    return this.names.some((n) => (n.startsWith('*.') ? host.endsWith(n.slice(1)) : host === n));
  }

  /** Why `address` (reached through `host`) is denied, or undefined when it is allowed. */
  deniedAddress(host: string, address: string): string | undefined {
    const p = plain(address);
    if (METADATA.check(p.address, p.type)) return 'link-local / cloud metadata addresses are always denied';
    const listed = this.nets.check(p.address, p.type);
    if (this.hasAllow && !listed && !this.nameAllowed(host)) return 'not in network.allow';
    if (!listed && LOOPBACK.check(p.address, p.type) && !this.allowLoopback) return 'loopback is denied (set network.allow_loopback: true or list it in network.allow)';
    if (!listed && PRIVATE.check(p.address, p.type) && !this.allowPrivate) return 'private addresses are denied (set network.allow_private: true or list the range in network.allow)';
    return undefined;
  }

  /** Checks a URL before any connection: its scheme, its name, and every address it resolves to. */
  async check(url: URL): Promise<void> {
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
    const deny = (address: string, rule: string) => new BatonError('BATON_EGRESS_DENIED', { host, address, rule });
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw deny('-', `scheme ${url.protocol} is not http or https`);
    if (METADATA_NAMES.has(host)) throw deny(host, 'cloud metadata host names are always denied');
    if (this.hasAllow && !this.nameAllowed(host) && !isIP(host)) {
      // A name not listed may still resolve into a listed CIDR: check the addresses below.
    }
    const addresses = isIP(host) ? [host] : await resolveAll(host);
    for (const a of addresses) {
      const why = this.deniedAddress(host, a);
      if (why) throw deny(a, why);
    }
  }

  /**
   * A fetch that checks every hop and pins the connection to checked addresses. `inner` is the
   * fetch to call (the engine's, possibly a test's).
   */
  wrap(inner: typeof fetch): typeof fetch {
    const guard = this;
    const dispatcher = pinnedDispatcher(this);
    return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      let url = new URL(typeof input === 'string' || input instanceof URL ? input.toString() : input.url);
      let opts: RequestInit = { ...init };
      for (let hop = 0; hop <= 5; hop++) {
        await guard.check(url);
        const res = await inner(url, { ...opts, redirect: 'manual', ...(dispatcher && inner === globalThis.fetch ? { dispatcher } : {}) } as RequestInit);
        const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
        if (!location || init?.redirect === 'manual') return res;
        await res.body?.cancel();
        url = new URL(location, url);
        // 303 (and 301/302 after POST, as browsers do) becomes a GET without a body.
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && opts.method && opts.method !== 'GET' && opts.method !== 'HEAD')) opts = { ...opts, method: 'GET', body: undefined };
      }
      throw new BatonError('BATON_EGRESS_DENIED', { host: url.hostname, address: '-', rule: 'more than 5 redirects' });
    }) as typeof fetch;
  }
}

async function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (err, addrs: LookupAddress[]) => (err ? reject(err) : resolve(addrs.map((a) => a.address))));
  });
}

/**
 * Node's fetch (undici) connects through a dispatcher; one whose DNS lookup drops denied
 * addresses makes the connection go to a checked address even if the name's answer changed
 * since `check`. Built from the class of Node's own global dispatcher (no extra dependency);
 * undefined if that is not available, and then the pre-check alone applies.
 */
function pinnedDispatcher(guard: EgressGuard): unknown {
  const g = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')] as { constructor: new (o: unknown) => unknown } | undefined;
  if (!g) return undefined;
  const lookup = (host: string, o: { all?: boolean; family?: number }, cb: (err: Error | null, a: LookupAddress[] | string, f?: number) => void) => {
    dnsLookup(host, { all: true, family: o.family as 4 | 6 | undefined }, (err, addrs: LookupAddress[]) => {
      if (err) return cb(err, []);
      for (const a of addrs) {
        const why = guard.deniedAddress(host.toLowerCase(), a.address);
        if (why) return cb(new BatonError('BATON_EGRESS_DENIED', { host, address: a.address, rule: why }), []);
      }
      if (o.all) cb(null, addrs);
      else cb(null, addrs[0].address, addrs[0].family);
    });
  };
  return new g.constructor({ connect: { lookup } });
}

/** Makes sure Node's fetch has created its global dispatcher, so `pinnedDispatcher` finds its class. */
export async function primeFetch(): Promise<void> {
  if ((globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')]) return;
  try {
    await fetch('data:,');
  } catch {
    /* nothing to do: the pre-check still applies */
  }
}
