/**
 * What the OpenAPI document says beyond what @fastify/swagger derives from the route schemas:
 * how callers authenticate, that errors are `application/problem+json` (the media type they are
 * served with), and the request bodies of the routes that read raw text or bytes themselves
 * (workflow documents, CloudEvents, webhooks, events), which have no body schema for Fastify
 * to validate. Applied to the generated document (`transformObject`), so route code stays as is.
 */

type Json = Record<string, any>;

/** Routes anyone may call: no key (webhooks prove themselves by their HMAC signature). */
const PUBLIC_PATHS = new Set(['/', '/health', '/ready', '/hooks/*', '/hooks/{*}']);

const anyJson = { description: 'Any JSON value.' };

/** Bodies of the routes that parse their own. */
const REQUEST_BODIES: Record<string, Record<string, Json>> = {
  '/workflows': {
    post: {
      required: true,
      description: 'A workflow document (schema/workflow.schema.json), as JSON or YAML. Problems come back with line and column either way.',
      content: {
        'application/json': { schema: { type: 'object', description: 'The workflow document.' } },
        'application/yaml': { schema: { type: 'string', description: 'The workflow document as YAML (also text/yaml, application/x-yaml, text/plain).' } },
      },
    },
  },
  '/events/{name}/{key}': {
    post: {
      required: false,
      description: 'The event payload: what the waiting step gets as its output (null when absent).',
      content: { 'application/json': { schema: anyJson } },
    },
  },
  '/cloudevents': {
    post: {
      required: true,
      description: 'CloudEvents 1.0 over HTTP: structured mode (one event), batch mode (an array), or binary mode (attributes in ce-* headers, the body is the data).',
      content: {
        'application/cloudevents+json': { schema: { type: 'object', required: ['specversion', 'id', 'source', 'type'], properties: { specversion: { const: '1.0' }, id: { type: 'string' }, source: { type: 'string' }, type: { type: 'string' }, subject: { type: 'string' }, time: { type: 'string', format: 'date-time' }, data: {} } } },
        'application/cloudevents-batch+json': { schema: { type: 'array', items: { type: 'object' } } },
        'application/json': { schema: { description: 'Binary mode: the event data; attributes in ce-specversion, ce-id, ce-source, ce-type (ce-subject) headers.' } },
      },
    },
  },
  '/hooks/{*}': {
    post: {
      required: false,
      description: "The webhook's payload, signed: X-Baton-Signature (or the trigger's header) is sha256=<hex HMAC-SHA256 of the exact body bytes with the trigger's secret>.",
      content: { 'application/json': { schema: anyJson } },
    },
  },
};

export function documentGateway(doc: Json): Json {
  doc.components ??= {};
  doc.components.securitySchemes = {
    apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from `baton keys create` (bk_<id>_<secret>). Needed once the gateway has keys (`--auth auto`), always with `--auth required`.' },
  };
  doc.security = [{ apiKey: [] }];
  for (const [path, ops] of Object.entries(doc.paths ?? {}) as Array<[string, Json]>) {
    for (const [method, op] of Object.entries(ops) as Array<[string, Json]>) {
      if (typeof op !== 'object' || op === null || !op.responses) continue;
      if (PUBLIC_PATHS.has(path)) op.security = [];
      const body = REQUEST_BODIES[path]?.[method];
      if (body && !op.requestBody) op.requestBody = body;
      for (const [status, response] of Object.entries(op.responses) as Array<[string, Json]>) {
        // (The OpenAI-compatible routes answer errors in OpenAI's shape, as plain JSON.)
        if (path.startsWith('/v1/') || !/^[45]/.test(status) || !response.content?.['application/json']) continue;
        // Errors are served as problem JSON (RFC 9457), and documented so.
        response.content = { 'application/problem+json': response.content['application/json'] };
      }
    }
  }
  return doc;
}
