/**
 * What stops a web page in the user's browser from driving a gateway on their machine.
 *
 * A page of any site may send "simple" requests (a POST with `text/plain`, a form) to
 * `http://127.0.0.1:8080` without a CORS preflight; it cannot read the answer, but the request
 * acts. A gateway without keys (a laptop's, `--auth auto` before any key exists) would register
 * the page's workflow or wake a waiting step. Browsers name the page's origin in `Origin` on
 * such requests, so a request that changes anything and comes from another origin is refused.
 * Clients that are not browsers send no `Origin` and are not concerned.
 *
 * DNS rebinding gets around that check (the attacker's name is made to resolve to 127.0.0.1,
 * so the page is "same origin"): a gateway listening on loopback therefore answers only to the
 * loopback names in `Host`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BatonError } from '../errors.js';

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '::1'];

/** The host name of a Host header (`[::1]:8080` → `::1`, `Example.com.:80` → `example.com`). */
function hostName(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * Whether the page's origin is this gateway: the same host and port as the request's Host
 * (default ports read as such: `Origin: http://127.0.0.1` is `Host: 127.0.0.1:80`), or a name
 * the operator allowed (the public name of a reverse proxy in front of it).
 */
function originAllowed(origin: string, host: string | undefined, allowed: ReadonlySet<string> | undefined): boolean {
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false; // `null` (a sandboxed frame, a file:// page) or garbage: not this origin
  }
  // A loopback origin must match exactly, port included: another local app's page is not this one.
  const name = hostName(o.hostname);
  if (allowed?.has(name) && !LOOPBACK_HOSTS.includes(name)) return true;
  if (host === undefined) return false;
  try {
    return new URL(`${o.protocol}//${host}`).host === o.host;
  } catch {
    return false;
  }
}

/**
 * An onRequest hook refusing cross-origin requests that change something and, when
 * `allowedHosts` is given, requests whose Host is not one of them (a request without Host, an
 * HTTP/1.0 probe, is no browser's). Allowed names other than loopback's also count as this
 * gateway's origin (a reverse proxy that rewrites Host). Synchronous: it runs on every
 * request, keyless gateways included.
 */
export function browserGuard(allowedHosts: readonly string[] | undefined, refuse: (reply: FastifyReply, req: FastifyRequest, e: BatonError) => void) {
  // Given as names, not Host headers (no port): `::1` or `[::1]`, `Example.com.`.
  const allowed = allowedHosts && new Set(allowedHosts.map((h) => h.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '')));
  return (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const host = req.headers.host;
    if (allowed && host !== undefined && !allowed.has(hostName(host))) {
      return refuse(reply, req, new BatonError('BATON_HOST_NOT_ALLOWED', { host }));
    }
    const origin = req.headers.origin;
    if (origin !== undefined && req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS' && !originAllowed(origin, host, allowed)) {
      return refuse(reply, req, new BatonError('BATON_CROSS_ORIGIN', { origin }));
    }
    done();
  };
}
