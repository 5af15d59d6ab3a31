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

export async function registerConsole(app: FastifyInstance, dir = consoleDir()): Promise<void> {
  const index = resolve(dir, 'index.html');
  // Browsers asking for `/` get the console; API clients (Accept: application/json, curl's */*) the index.
  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'GET' && req.url === '/' && (req.headers.accept ?? '').includes('text/html')) await reply.redirect('/console/', 302);
  });
  if (!existsSync(index)) {
    const missing = new BatonError('BATON_CONSOLE_NOT_BUILT', { path: index });
    app.get('/console', async (req, reply) => problem(reply, req, missing));
    app.get('/console/*', async (req, reply) => problem(reply, req, missing));
    return;
  }
  const html = readFileSync(index, 'utf8');
  await app.register(fastifyStatic, { root: dir, prefix: '/console/', index: false, wildcard: false, decorateReply: false, maxAge: 0 });
  const app_ = (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(html);
  app.get('/console', async (_req, reply) => reply.redirect('/console/', 302));
  app.get('/console/', app_);
  // wildcard: false registers one route per built file; every other path is a page of the app.
  app.get('/console/*', app_);
}
