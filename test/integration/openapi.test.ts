/**
 * The OpenAPI document against the gateway that serves it: valid OpenAPI 3.1 (checked by a
 * validator of the specification's own schema), every route in it, errors documented with the
 * media type they are served with, how to authenticate, and request bodies for the routes that
 * read their own (workflow documents, CloudEvents, events, webhooks).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway } from '../../src/gateway/server.js';
import { engineSuite } from '../helpers/stores.js';

describe('the OpenAPI document', () => {
  const suite = engineSuite('sqlite', 'baton-openapi-');
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('is valid OpenAPI 3.1 and says what the gateway does', async () => {
    const b = await suite.baton();
    app = await createGateway(b, { auth: 'off' });
    const routes: string[] = [];
    app.addHook('onRoute', (r) => {
      const hidden = (r.schema as { hide?: boolean } | undefined)?.hide;
      for (const m of [r.method].flat()) if (m !== 'HEAD' && !hidden && !r.url.startsWith('/docs') && !r.url.startsWith('/console')) routes.push(`${m.toLowerCase()} ${r.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}')}`);
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>>; components: Record<string, any>; security?: unknown };

    const validator = new Validator();
    const res = await validator.validate(doc as never);
    expect(res.errors ?? [], JSON.stringify(res.errors)?.slice(0, 2000)).toEqual([]);
    expect(res.valid).toBe(true);
    expect(validator.version).toBe('3.1');

    // Every route the gateway serves is in the document.
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)));
    expect(routes.filter((r) => !documented.has(r))).toEqual([]);

    // Errors: documented as the problem JSON they are served as (the OpenAI routes keep OpenAI's shape).
    const errorTypes = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths)) {
      if (p.startsWith('/v1/')) continue;
      for (const op of Object.values(ops)) for (const [status, r] of Object.entries(op.responses ?? {}) as Array<[string, any]>) if (/^[45]/.test(status)) for (const t of Object.keys(r.content ?? {})) errorTypes.add(t);
    }
    expect([...errorTypes]).toEqual(['application/problem+json']);
    const missing = await fetch(`${base}/runs/run_missing`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');

    // How to authenticate: a bearer key everywhere but the public routes.
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/health'].get.security).toEqual([]);
    expect(doc.paths['/runs'].post.security).toBeUndefined();

    // Bodies of the routes that read their own.
    expect(Object.keys(doc.paths['/workflows'].post.requestBody.content)).toEqual(expect.arrayContaining(['application/json', 'application/yaml']));
    expect(Object.keys(doc.paths['/cloudevents'].post.requestBody.content)).toEqual(expect.arrayContaining(['application/cloudevents+json', 'application/cloudevents-batch+json']));
    expect(doc.paths['/events/{name}/{key}'].post.requestBody).toBeDefined();
    // The namespace an event goes to, for keys of several namespaces (and * keys that want one).
    for (const p of ['/events/{name}/{key}', '/cloudevents']) {
      expect(doc.paths[p].post.parameters, p).toContainEqual(expect.objectContaining({ in: 'query', name: 'namespace', schema: { type: 'string' }, description: expect.stringContaining('BATON_NAMESPACE_REQUIRED') }));
    }
    expect(doc.paths['/runs'].post.requestBody.content['application/json'].schema.required).toEqual(['workflow']);
  });
});
