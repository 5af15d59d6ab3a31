/**
 * The web console at `/console/`: the React app built by `npm run build` into `dist/console`,
 * served as static files with the SPA fallback (any other `/console/...` path is the app,
 * which routes in the browser). Its assets load without a key — they hold no data; the app
 * signs in with an API key and sends it on every API call. A browser opening `/` is sent to
 * the console; API clients keep getting the JSON index.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { BatonError } from '../errors.js';
import { problem } from './server.js';

/** dist/console, from src/gateway (tsx) or dist/gateway (built). */
export function consoleDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/console');
}

/** Every page the gateway serves to browsers (the console, /docs): not framed, not sniffed, no Referer. */
export const BROWSER_PAGE_HEADERS = { 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' } as const;

/**
 * The console holds an API key in the tab's session: no script but its own may run (CSP), no
 * other site may frame it (clickjacking a signed-in console, or a keyless gateway's), and
 * nothing is sniffed or leaked in a Referer. Style attributes are React's (the graph's SVG).
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  ...BROWSER_PAGE_HEADERS,
};

export async function registerConsole(app: FastifyInstance, dir = consoleDir()): Promise<void> {
  const index = resolve(dir, 'index.html');
  if (!existsSync(index)) {
    const missing = new BatonError('BATON_CONSOLE_NOT_BUILT', { path: index });
    app.get('/console', async (req, reply) => problem(reply, req, missing));
    app.get('/console/*', async (req, reply) => problem(reply, req, missing));
    return;
  }
  const html = readFileSync(index, 'utf8');
  await app.register(fastifyStatic, {
    root: dir, prefix: '/console/', index: false, wildcard: false, decorateReply: false, maxAge: 0,
    setHeaders: (res) => {
      for (const [k, v] of Object.entries(PAGE_HEADERS)) res.setHeader(k, v);
    },
  });
  const app_ = (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').headers(PAGE_HEADERS).send(html);
  app.get('/console', async (_req, reply) => reply.redirect('/console/', 302));
  app.get('/console/', app_);
  // wildcard: false registers one route per built file; every other path is a page of the app.
  app.get('/console/*', app_);
}
