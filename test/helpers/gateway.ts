/**
 * The gateway as the tests build it: over the engine link (src/gateway/engine-link.ts), within
 * the test's thread. `baton serve` runs the same routes on an HTTP thread that reaches the
 * engine's thread over that link, so every route test also checks that its arguments, results
 * and errors cross it (cloned, errors rebuilt) and that it calls nothing outside the engine API.
 */
import type { FastifyInstance } from 'fastify';
import type { Baton } from '../../src/engine/engine.js';
import { localEngine } from '../../src/gateway/engine-api.js';
import { linkedInThread } from '../../src/gateway/engine-link.js';
import * as server from '../../src/gateway/server.js';

export async function createGateway(baton: Baton, opts?: server.GatewayOptions): Promise<FastifyInstance> {
  const link = linkedInThread(localEngine(baton));
  const app = await server.createGateway(link, opts);
  app.addHook('onClose', async () => link.close());
  return app;
}

export function buildGateway(baton: Baton, opts?: server.GatewayOptions, given?: FastifyInstance): FastifyInstance {
  const link = linkedInThread(localEngine(baton));
  const app = server.buildGateway(link, opts, given);
  app.addHook('onClose', async () => link.close());
  return app;
}
