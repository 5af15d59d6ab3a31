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

/** The host name of a Host header (`[::1]:8080` → `::1`, `Example.com:80` → `example.com`). */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false; // `null` (a sandboxed frame, a file:// page) or garbage: not this origin
  }
}

/**
 * An onRequest hook refusing cross-origin requests that change something and, when
 * `allowedHosts` is given, requests whose Host is not one of them. Synchronous: it runs on
 * every request, keyless gateways included.
 */
export function browserGuard(allowedHosts: readonly string[] | undefined, refuse: (reply: FastifyReply, req: FastifyRequest, e: BatonError) => void) {
  const allowed = allowedHosts && new Set(allowedHosts.map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')));
  return (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const host = req.headers.host;
    if (allowed && !allowed.has(hostName(host ?? ''))) {
      return refuse(reply, req, new BatonError('BATON_HOST_NOT_ALLOWED', { host: String(host ?? '') }));
    }
    const origin = req.headers.origin;
    if (origin !== undefined && req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS' && !sameOrigin(origin, host)) {
      return refuse(reply, req, new BatonError('BATON_CROSS_ORIGIN', { origin }));
    }
    done();
  };
}
