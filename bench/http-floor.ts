/**
 * The floor under the gateway's figure: an HTTP server doing no work at all, measured with the
 * same load as the gateway (`bench/gateway.ts`). At 50 requests in flight on one event loop,
 * what a request costs the server is paid about 50 times over in the p50; so these servers'
 * p50 at 50 is the least any HTTP layer built on them adds on this machine.
 *
 * `node --import tsx bench/http-floor.ts node|fastify` listens on a free loopback port, prints
 * `listening http://…`, and answers `POST /runs` with a run-shaped JSON body after parsing the
 * request's JSON (Fastify: with the gateway's body schema, as `POST /runs` has).
 */
import http from 'node:http';
import Fastify from 'fastify';

const ANSWER = { run_id: 'run_mxbzk4eh81ca447aaa73', workflow: 'trivial', version_id: 'trivial@6edc3e6f24a4cf1e', status: 'completed', namespace: 'default', cost: 0, created_at: '2026-12-06T15:22:36.887Z', output: 2, error: null, finished_at: '2026-12-06T15:22:36.890Z' };

async function nodeServer(): Promise<string> {
  const body = JSON.stringify(ANSWER);
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      JSON.parse(text);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function fastifyServer(): Promise<string> {
  const app = Fastify({ logger: false });
  app.post('/runs', {
    schema: {
      body: { type: 'object', required: ['workflow'], additionalProperties: false, properties: { workflow: { type: 'string', minLength: 1 }, input: {}, id: { type: 'string' }, namespace: { type: 'string' }, priority: { type: 'integer' }, budget: { type: 'number' }, wait: { type: 'number', minimum: 0 } } },
    },
  }, async (_req, reply) => reply.code(200).header('location', `/runs/${ANSWER.run_id}`).send(ANSWER));
  return app.listen({ port: 0, host: '127.0.0.1' });
}

const kind = process.argv[2];
if (kind !== 'node' && kind !== 'fastify') {
  process.stderr.write('usage: http-floor.ts node|fastify\n');
  process.exit(2);
}
const url = await (kind === 'node' ? nodeServer() : fastifyServer());
process.stdout.write(`listening ${url}\n`);
