/** Shared by the replay tests (engine, gateway, CLI): the workflow they replay and an HTTP service that counts calls. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The triage workflow; `threshold` and `prompt` are what later versions change. */
export function triage(srv: string, o: { threshold?: number; prompt?: string } = {}): string {
  return `
name: triage
steps:
  - id: lookup
    kind: http
    url: "${srv}/customers/{{ input.customer }}"
    # Names its run: a replay still counts it as the same request.
    headers: { x-run: "{{ run.id }}" }
  - id: classify
    kind: model
    service: llm
    prompt: "${o.prompt ?? 'Classify'}: {{ input.text }} (tier {{ steps.lookup.output.body.tier }})"
    output_schema: { type: object, required: [label, score], properties: { label: { type: string }, score: { type: number } } }
  - id: decide
    kind: transform
    expression: '{ "escalate": steps.classify.output.score > ${o.threshold ?? 0.8}, "label": steps.classify.output.label }'
  - id: page
    kind: http
    when: "steps.decide.output.escalate"
    method: POST
    url: "${srv}/page"
    input: "steps.classify.output"
output: '{ "decision": steps.decide.output, "paged": steps.page.output.body.paged }'
`;
}

/** A local HTTP service that counts the requests it gets. */
export async function countingServer(): Promise<{ url: string; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url?.startsWith('/reject')) res.statusCode = 400;
      res.end(JSON.stringify(req.url?.startsWith('/customers/') ? { tier: 'gold' } : { paged: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
