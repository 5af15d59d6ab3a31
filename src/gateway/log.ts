/**
 * The gateway's log lines besides the access line. A gateway built with a logger (`baton serve`
 * always is) writes them there, scrubbed of secrets; one embedded without a logger writes only
 * what its operator must act on to stderr, and stays quiet about the rest.
 *
 * Whether there is a logger is a decorator, not a set of instances: routes registered in a
 * plugin's own scope (webhooks, CloudEvents, the OpenAI routes) see a child instance, which
 * inherits it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

const LOGGING = 'batonLogsErrors';

/** Marks a gateway as built with a logger. */
export function markLogging(app: FastifyInstance): void {
  app.decorate(LOGGING, true);
}

/** Logs `msg` with `fields`; without a logger, writes `stderrLine` (if given) to stderr. */
export function gatewayLog(req: FastifyRequest, level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string, stderrLine?: string): void {
  if ((req.server as unknown as Record<string, unknown>)[LOGGING] === true) req.log[level](fields, msg);
  else if (stderrLine !== undefined) process.stderr.write(`baton serve: ${stderrLine}\n`);
}
