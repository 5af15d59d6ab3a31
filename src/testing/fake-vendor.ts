/**
 * A fake model vendor: a real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions
 * and Anthropic messages wire protocols (JSON and SSE) closely enough for the official SDKs,
 * with answers, latency, usage and faults programmable per model. Tests, benchmarks and demos
 * point a service's `endpoint` at it:
 *
 * - OpenAI-compatible: `endpoint: ${vendor.url}/v1`
 * - Anthropic:          `endpoint: ${vendor.url}/v1`
 *
 * Nothing here is mocked: requests travel over sockets, faults are what a broken vendor or a
 * broken proxy really sends (a 503 page, a body cut in half, a stream that stops mid-answer).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

export type Protocol = 'openai' | 'anthropic';

export type FaultKind =
  | '400'
  | '401'
  | '500'
  | '503'
  | '429'
  | 'timeout'
  | 'malformed'
  | 'html'
  | 'low-confidence'
  | 'empty'
  | 'stream-cut'
  | 'stream-stall';

export interface FaultSpec {
  kind: FaultKind;
  /** `429`: the `Retry-After` header in seconds (default: the vendor's `retryAfterSec`, 1). `null` sends none. */
  retryAfterSec?: number | null;
  /** `html`: the HTTP status of the page (default 200; 502 for a gateway error page). */
  status?: number;
  /** Error faults: the message in the error body. */
  message?: string;
}

export type Fault = FaultKind | FaultSpec;

/** What the reply function sees: the request, normalised across protocols. */
export interface VendorRequest {
  protocol: Protocol;
  model: string;
  system?: string;
  messages: Array<{ role: string; content: string }>;
  /** The text of the last user message. */
  prompt: string;
  /** JSON was asked for (response_format, output_config.format or a forced `json` tool). */
  json: boolean;
  /** How JSON was asked for: OpenAI `response_format`, Anthropic `output_config.format`, or a forced Anthropic `json` tool. */
  jsonVia?: 'response_format' | 'output_config' | 'tool';
  /** The JSON Schema the answer must fill, when one was given. */
  schema?: unknown;
  stream: boolean;
  maxTokens?: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

export interface UsageOverride {
  /** Input tokens not served from cache. */
  inputTokens?: number;
  outputTokens?: number;
  /** Input tokens served from the prompt cache. */
  cachedInputTokens?: number;
}

export interface ModelBehavior {
  /** The answer; an object is sent as JSON text. Default: deterministic from the prompt (and schema). */
  reply?: (req: VendorRequest) => string | object;
  /** Delay before answering (before the first byte of a stream). */
  latencyMs?: number;
  /** Streaming: delay between chunks (default 0). */
  chunkDelayMs?: number;
  /** Usage reported instead of the estimate (~4 characters a token). */
  usage?: UsageOverride;
}

export interface LoggedRequest {
  /** 1-based sequence number. */
  seq: number;
  at: number;
  method: string;
  path: string;
  protocol: Protocol | 'other';
  model?: string;
  stream: boolean;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: unknown;
  /** The fault served to this request, if any. */
  fault?: FaultKind;
}

export interface FakeVendorOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, requests must carry it (`Authorization: Bearer` / `x-api-key`) or get a 401. */
  apiKey?: string;
  /** Default `Retry-After` seconds for `429` faults (default 1). */
  retryAfterSec?: number;
  /** Random source for `faultRate` (default Math.random); pass a seeded one for reproducible runs. */
  random?: () => number;
}

interface QueuedFault {
  fault: FaultSpec;
  remaining: number;
}

interface RateFault {
  fault: FaultSpec;
  rate: number;
}

interface Reply {
  text: string;
  /** Anthropic json-tool mode: the object to send as tool input. */
  toolInput?: unknown;
  finishReason: 'stop' | 'length';
  usage: Required<UsageOverride>;
}

const ANY = '*';

export class FakeVendor {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly behaviors = new Map<string, ModelBehavior>();
  private readonly queues = new Map<string, QueuedFault[]>();
  private readonly rates = new Map<string, RateFault[]>();
  private readonly counts = new Map<string, number>();
  private readonly opts: FakeVendorOptions;
  private seq = 0;
  private baseUrl = '';
  /** Every request received, oldest first. */
  readonly log: LoggedRequest[] = [];

  constructor(options: FakeVendorOptions = {}) {
    this.opts = options;
  }

  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:40123`. Valid after `start()`. */
  get url(): string {
    if (!this.baseUrl) throw new Error('FakeVendor: call start() first');
    return this.baseUrl;
  }

  async start(): Promise<this> {
    if (this.server) return this;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          sendJson(res, 500, { error: { message: `fake vendor bug: ${String(err)}`, type: 'server_error', code: null } });
        } else {
          res.destroy();
        }
      });
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.baseUrl = `http://${host}:${addr.port}`;
    return this;
  }

  /** Stops listening and destroys every open socket (hanging `timeout` / `stream-stall` answers included). */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Programs what model `name` answers (`'*'`: every model without its own behaviour). Merges with earlier settings. */
  model(name: string, behavior: ModelBehavior): this {
    this.behaviors.set(name, { ...this.behaviors.get(name), ...behavior });
    return this;
  }

  /** Queues a fault for the next `times` requests to model `name` (`'*'`: any model). Queued faults are served in order. */
  fault(name: string, fault: Fault, times = Infinity): this {
    if (!(times > 0)) return this;
    const q = this.queues.get(name) ?? [];
    q.push({ fault: toSpec(fault), remaining: times });
    this.queues.set(name, q);
    return this;
  }

  /** Serves `fault` to a share `rate` (0..1) of the requests to model `name` that no queued fault took. */
  faultRate(name: string, fault: Fault, rate: number): this {
    const spec = toSpec(fault);
    const list = (this.rates.get(name) ?? []).filter((r) => r.fault.kind !== spec.kind);
    if (rate > 0) list.push({ fault: spec, rate: Math.min(1, rate) });
    this.rates.set(name, list);
    return this;
  }

  /** Removes every queued and rate fault of model `name` (no name: of every model). */
  heal(name?: string): this {
    if (name === undefined) {
      this.queues.clear();
      this.rates.clear();
    } else {
      this.queues.delete(name);
      this.rates.delete(name);
    }
    return this;
  }

  /** Requests received for model `name` (no name: all requests, any path). */
  calls(name?: string): number {
    if (name === undefined) return this.log.length;
    return this.counts.get(name) ?? 0;
  }

  /** The logged requests for model `name` (no name: all). */
  requests(name?: string): LoggedRequest[] {
    return name === undefined ? [...this.log] : this.log.filter((r) => r.model === name);
  }

  /** The most recent logged request (for model `name` when given). */
  lastRequest(name?: string): LoggedRequest | undefined {
    const list = this.requests(name);
    return list[list.length - 1];
  }

  /** Forgets behaviours, faults, counters and the log. */
  reset(): this {
    this.behaviors.clear();
    this.queues.clear();
    this.rates.clear();
    this.counts.clear();
    this.log.length = 0;
    this.seq = 0;
    return this;
  }

  // ---------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    const headers = lowerHeaders(req);
    let body: unknown = undefined;
    let bodyError: string | undefined;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch (e) {
        bodyError = (e as Error).message;
        body = raw;
      }
    }
    const protocol: Protocol | 'other' =
      path === '/v1/messages' ? 'anthropic' : path.startsWith('/v1/') ? 'openai' : 'other';
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const model = typeof b.model === 'string' ? b.model : undefined;
    const entry: LoggedRequest = {
      seq: ++this.seq,
      at: Date.now(),
      method,
      path,
      protocol,
      model,
      stream: b.stream === true,
      headers,
      body,
    };
    this.log.push(entry);
    if (model !== undefined) this.counts.set(model, (this.counts.get(model) ?? 0) + 1);

    if (method === 'GET' && path === '/v1/models') {
      const ids = new Set([...this.behaviors.keys(), ...this.counts.keys()].filter((n) => n !== ANY));
      sendJson(res, 200, { object: 'list', data: [...ids].map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake-vendor' })) });
      return;
    }
    if (method === 'GET' && (path === '/' || path === '/health')) {
      sendJson(res, 200, { ok: true });
      return;
    }
    const route =
      method === 'POST' && path === '/v1/chat/completions'
        ? 'chat'
        : method === 'POST' && path === '/v1/embeddings'
          ? 'embeddings'
          : method === 'POST' && path === '/v1/messages'
            ? 'messages'
            : undefined;
    if (!route) {
      if (protocol === 'anthropic') sendAnthropicError(res, 404, 'not_found_error', `Not found: ${method} ${path}`);
      else sendOpenAIError(res, 404, 'invalid_request_error', `Unknown request URL: ${method} ${path}.`, 'unknown_url');
      return;
    }
    const anth = route === 'messages';

    // --- authentication and protocol checks, as the real vendors do them ---
    if (anth) {
      const key = headers['x-api-key'];
      if (!key || (this.opts.apiKey !== undefined && key !== this.opts.apiKey)) {
        sendAnthropicError(res, 401, 'authentication_error', key ? 'invalid x-api-key' : 'x-api-key header is required');
        return;
      }
      if (!headers['anthropic-version']) {
        sendAnthropicError(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
        return;
      }
    } else if (this.opts.apiKey !== undefined && headers['authorization'] !== `Bearer ${this.opts.apiKey}`) {
      sendOpenAIError(res, 401, 'invalid_request_error', 'Incorrect API key provided.', 'invalid_api_key');
      return;
    }
    if (bodyError !== undefined || typeof body !== 'object' || body === null) {
      const msg = `We could not parse the JSON body of your request. (${bodyError ?? 'not an object'})`;
      if (anth) sendAnthropicError(res, 400, 'invalid_request_error', msg);
      else sendOpenAIError(res, 400, 'invalid_request_error', msg, null);
      return;
    }
    if (!model) {
      if (anth) sendAnthropicError(res, 400, 'invalid_request_error', 'model: Field required');
      else sendOpenAIError(res, 400, 'invalid_request_error', 'you must provide a model parameter', null);
      return;
    }
    if (anth && typeof b.max_tokens !== 'number') {
      sendAnthropicError(res, 400, 'invalid_request_error', 'max_tokens: Field required');
      return;
    }

    const fault = this.pickFault(model);
    if (fault) entry.fault = fault.kind;
    const behavior = this.behaviors.get(model) ?? this.behaviors.get(ANY) ?? {};

    if (fault && (await this.serveErrorFault(fault, anth, res))) return;

    if (behavior.latencyMs) {
      await sleep(behavior.latencyMs);
      if (res.destroyed || res.writableEnded) return;
    }

    if (route === 'embeddings') {
      this.answerEmbeddings(b, model, behavior, fault, res);
      return;
    }

    const vreq = anth ? normalizeAnthropic(b, model, headers) : normalizeOpenAI(b, model, headers);
    const reply = makeReply(vreq, behavior, fault);
    if (fault?.kind === 'malformed') {
      if (vreq.stream) {
        res.writeHead(200, sseHeaders());
        res.end(anth ? 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_x","ty\n\n' : 'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","choi\n\n');
      } else {
        const full = JSON.stringify(anth ? anthropicMessage(model, reply) : openaiCompletion(model, reply));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(full.slice(0, Math.max(1, Math.floor(full.length / 2))));
      }
      return;
    }
    if (vreq.stream) {
      await (anth ? this.streamAnthropic(model, reply, behavior, fault, res) : this.streamOpenAI(model, vreq, reply, behavior, fault, res));
      return;
    }
    const answer = JSON.stringify(anth ? anthropicMessage(model, reply) : openaiCompletion(model, reply));
    if (fault?.kind === 'stream-cut' || fault?.kind === 'stream-stall') {
      // Not streaming: the body starts (headers promise it all), then the connection drops or goes silent.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.write(answer.slice(0, Math.floor(answer.length / 2)));
      if (fault.kind === 'stream-cut') {
        await sleep(20);
        res.socket?.destroy();
      }
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  }

  private pickFault(model: string): FaultSpec | undefined {
    for (const key of [model, ANY]) {
      const q = this.queues.get(key);
      if (q && q.length > 0) {
        const head = q[0];
        head.remaining -= 1;
        if (head.remaining <= 0) q.shift();
        return head.fault;
      }
    }
    const random = this.opts.random ?? Math.random;
    for (const key of [model, ANY]) {
      for (const r of this.rates.get(key) ?? []) {
        if (random() < r.rate) return r.fault;
      }
    }
    return undefined;
  }

  /** Faults that replace the answer entirely. Returns true when the response was handled. */
  private async serveErrorFault(fault: FaultSpec, anth: boolean, res: ServerResponse): Promise<boolean> {
    switch (fault.kind) {
      case '400':
        if (anth) sendAnthropicError(res, 400, 'invalid_request_error', fault.message ?? 'messages: invalid request');
        else sendOpenAIError(res, 400, 'invalid_request_error', fault.message ?? 'Invalid request.', null);
        return true;
      case '401':
        if (anth) sendAnthropicError(res, 401, 'authentication_error', fault.message ?? 'invalid x-api-key');
        else sendOpenAIError(res, 401, 'invalid_request_error', fault.message ?? 'Incorrect API key provided.', 'invalid_api_key');
        return true;
      case '500':
        if (anth) sendAnthropicError(res, 500, 'api_error', fault.message ?? 'Internal server error');
        else sendOpenAIError(res, 500, 'server_error', fault.message ?? 'The server had an error while processing your request. Sorry about that!', null);
        return true;
      case '503':
        if (anth) sendAnthropicError(res, 503, 'overloaded_error', fault.message ?? 'Overloaded');
        else sendOpenAIError(res, 503, 'server_error', fault.message ?? 'The engine is currently overloaded, please try again later.', null);
        return true;
      case '429': {
        const secs = fault.retryAfterSec === undefined ? (this.opts.retryAfterSec ?? 1) : fault.retryAfterSec;
        const extra: Record<string, string> = secs === null ? {} : { 'retry-after': String(secs) };
        if (anth) sendAnthropicError(res, 429, 'rate_limit_error', fault.message ?? 'Number of request tokens has exceeded your per-minute rate limit', extra);
        else sendOpenAIError(res, 429, 'requests', fault.message ?? 'Rate limit reached for requests. Please try again later.', 'rate_limit_exceeded', extra);
        return true;
      }
      case 'html': {
        const status = fault.status ?? 200;
        const title = status === 200 ? 'Sign in - Corporate Proxy' : `${status} ${statusText(status)}`;
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<!DOCTYPE html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1><p>${fault.message ?? 'nginx'}</p></body></html>\n`);
        return true;
      }
      case 'timeout':
        // Never answer: the client gives up (its abort closes the socket) or close() destroys it.
        return true;
      default:
        return false;
    }
  }

  private answerEmbeddings(b: Record<string, unknown>, model: string, behavior: ModelBehavior, fault: FaultSpec | undefined, res: ServerResponse): void {
    const input = b.input;
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : undefined;
    if (!texts) {
      sendOpenAIError(res, 400, 'invalid_request_error', "'input' is a required property", null);
      return;
    }
    const dims = typeof b.dimensions === 'number' && b.dimensions > 0 ? Math.floor(b.dimensions) : 64;
    if (fault?.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.');
      return;
    }
    const tokens = behavior.usage?.inputTokens ?? texts.reduce((n, t) => n + estimate(t), 0);
    sendJson(res, 200, {
      object: 'list',
      data: texts.map((t, index) => ({ object: 'embedding', index, embedding: fault?.kind === 'empty' ? [] : embedText(t, dims) })),
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  }

  private async streamOpenAI(model: string, vreq: VendorRequest, reply: Reply, behavior: ModelBehavior, fault: FaultSpec | undefined, res: ServerResponse): Promise<void> {
    const id = `chatcmpl-${this.seq}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices, ...extra })}\n\n`;
    const pieces = splitText(reply.text);
    res.writeHead(200, sseHeaders());
    const events: string[] = [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])];
    for (const p of pieces) events.push(chunk([{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }]));
    events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: reply.finishReason }]));
    const so = vreq.body.stream_options as { include_usage?: boolean } | undefined;
    if (so?.include_usage) events.push(chunk([], { usage: openaiUsage(reply.usage) }));
    events.push('data: [DONE]\n\n');
    await this.writeEvents(res, events, behavior, fault, pieces.length);
  }

  private async streamAnthropic(model: string, reply: Reply, behavior: ModelBehavior, fault: FaultSpec | undefined, res: ServerResponse): Promise<void> {
    const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const u = reply.usage;
    res.writeHead(200, sseHeaders());
    const events: string[] = [
      ev('message_start', {
        message: {
          id: `msg_fake${this.seq}`,
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: u.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: u.cachedInputTokens, output_tokens: 1 },
        },
      }),
    ];
    let count: number;
    if (reply.toolInput !== undefined) {
      const json = JSON.stringify(reply.toolInput);
      const pieces = splitText(json, 12);
      count = pieces.length;
      events.push(ev('content_block_start', { index: 0, content_block: { type: 'tool_use', id: `toolu_fake${this.seq}`, name: 'json', input: {} } }));
      events.push(ev('ping', {}));
      for (const p of pieces) events.push(ev('content_block_delta', { index: 0, delta: { type: 'input_json_delta', partial_json: p } }));
    } else {
      const pieces = splitText(reply.text);
      count = pieces.length;
      events.push(ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
      events.push(ev('ping', {}));
      for (const p of pieces) events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } }));
    }
    events.push(ev('content_block_stop', { index: 0 }));
    const stop = reply.toolInput !== undefined ? 'tool_use' : reply.finishReason === 'length' ? 'max_tokens' : 'end_turn';
    events.push(ev('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: u.outputTokens } }));
    events.push(ev('message_stop', {}));
    await this.writeEvents(res, events, behavior, fault, count, 3);
  }

  /**
   * Writes SSE events. `stream-cut` destroys the socket half-way through the content;
   * `stream-stall` sends the first content chunk and then goes silent (until the client gives up).
   */
  private async writeEvents(res: ServerResponse, events: string[], behavior: ModelBehavior, fault: FaultSpec | undefined, contentCount: number, headCount = 1): Promise<void> {
    let limit = events.length;
    if (fault?.kind === 'stream-cut') limit = headCount + Math.max(1, Math.floor(contentCount / 2));
    if (fault?.kind === 'stream-stall') limit = headCount + 1;
    for (let i = 0; i < Math.min(limit, events.length); i++) {
      if (res.destroyed) return;
      res.write(events[i]);
      if (behavior.chunkDelayMs && i < events.length - 1) await sleep(behavior.chunkDelayMs);
    }
    if (fault?.kind === 'stream-cut') {
      // Let the written chunks leave, then drop the connection without the terminating chunk.
      await sleep(20);
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'stream-stall') return; // silence; the socket stays open
    res.end();
  }
}

// --- building answers ---------------------------------------------------------------------

function toSpec(f: Fault): FaultSpec {
  return typeof f === 'string' ? { kind: f } : { ...f };
}

function makeReply(req: VendorRequest, behavior: ModelBehavior, fault: FaultSpec | undefined): Reply {
  let value: string | object;
  if (fault?.kind === 'empty') value = '';
  else if (behavior.reply) value = behavior.reply(req);
  else if (req.json) value = synthesize(req.schema, 'answer', req.prompt, 0) as object;
  else value = `Answer from ${req.model}: ${req.prompt}`;

  if (fault?.kind === 'low-confidence') {
    let obj: Record<string, unknown>;
    if (typeof value === 'string') {
      try {
        const parsed: unknown = JSON.parse(value);
        obj = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : { answer: parsed };
      } catch {
        obj = { answer: value };
      }
    } else {
      obj = Array.isArray(value) ? { answer: value } : { ...(value as Record<string, unknown>) };
    }
    obj.confidence = 0.1;
    value = obj;
  }

  let text = typeof value === 'string' ? value : JSON.stringify(value);
  let finishReason: Reply['finishReason'] = 'stop';
  if (req.maxTokens !== undefined && req.maxTokens > 0 && estimate(text) > req.maxTokens) {
    text = text.slice(0, req.maxTokens * 4);
    finishReason = 'length';
  }
  const inputText = [req.system ?? '', ...req.messages.map((m) => m.content)].join('\n');
  const u = behavior.usage ?? {};
  const usage = {
    inputTokens: u.inputTokens ?? estimate(inputText),
    outputTokens: u.outputTokens ?? (text ? estimate(text) : 0),
    cachedInputTokens: u.cachedInputTokens ?? 0,
  };
  const reply: Reply = { text, finishReason, usage };
  if (req.jsonVia === 'tool' && finishReason === 'stop' && text !== '') {
    // json-tool mode: the answer is the input of a forced `json` tool call.
    try {
      reply.toolInput = JSON.parse(text);
    } catch {
      /* not JSON: answer as text */
    }
  }
  return reply;
}

/** A deterministic value that fills `schema`, with strings taken from the prompt. */
function synthesize(schema: unknown, key: string, prompt: string, depth: number): unknown {
  const snippet = prompt.replace(/\s+/g, ' ').trim().slice(0, 60) || 'ok';
  if (depth > 8) return null;
  if (!schema || typeof schema !== 'object') {
    return depth === 0 ? { answer: snippet, confidence: 0.9 } : snippet;
  }
  const s = schema as Record<string, unknown>;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[hash(prompt + key) % s.enum.length];
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = s[k];
    if (Array.isArray(list) && list.length > 0) {
      const first = list.find((x) => !(x && typeof x === 'object' && (x as { type?: unknown }).type === 'null')) ?? list[0];
      return synthesize(first, key, prompt, depth + 1);
    }
  }
  let type = s.type;
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') ?? type[0];
  if (type === undefined) type = s.properties ? 'object' : s.items ? 'array' : 'string';
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (s.properties ?? {}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(props)) out[k] = synthesize(v, k, prompt, depth + 1);
      return out;
    }
    case 'array': {
      const n = Math.max(1, typeof s.minItems === 'number' ? s.minItems : 1);
      return Array.from({ length: n }, () => synthesize(s.items, key, prompt, depth + 1));
    }
    case 'number':
    case 'integer': {
      const min = typeof s.minimum === 'number' ? s.minimum : undefined;
      const max = typeof s.maximum === 'number' ? s.maximum : undefined;
      let v = /confidence|score|probability|prob/i.test(key) ? 0.9 : 1;
      if (type === 'integer') v = Math.round(v) || 1;
      if (min !== undefined && v < min) v = min;
      if (max !== undefined && v > max) v = max;
      return v;
    }
    case 'boolean':
      return true;
    case 'null':
      return null;
    default: {
      if (s.format === 'date-time') return '2024-01-01T00:00:00Z';
      if (s.format === 'date') return '2024-01-01';
      if (s.format === 'email') return 'someone@example.com';
      if (s.format === 'uri' || s.format === 'url') return 'https://example.com/';
      let str = snippet;
      const minLength = typeof s.minLength === 'number' ? s.minLength : 0;
      const maxLength = typeof s.maxLength === 'number' ? s.maxLength : Infinity;
      while (str.length < minLength) str += ` ${snippet}`;
      return str.slice(0, maxLength);
    }
  }
}

function normalizeOpenAI(b: Record<string, unknown>, model: string, headers: Record<string, string>): VendorRequest {
  const msgs = Array.isArray(b.messages) ? (b.messages as Array<{ role?: string; content?: unknown }>) : [];
  const system = msgs.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => contentText(m.content)).join('\n');
  const messages = msgs.filter((m) => m.role !== 'system' && m.role !== 'developer').map((m) => ({ role: String(m.role), content: contentText(m.content) }));
  const rf = b.response_format as { type?: string; json_schema?: { schema?: unknown } } | undefined;
  const json = rf?.type === 'json_schema' || rf?.type === 'json_object';
  const maxTokens = typeof b.max_completion_tokens === 'number' ? b.max_completion_tokens : typeof b.max_tokens === 'number' ? b.max_tokens : undefined;
  return {
    protocol: 'openai',
    model,
    system: system || undefined,
    messages,
    prompt: lastUser(messages),
    json,
    jsonVia: json ? 'response_format' : undefined,
    schema: rf?.type === 'json_schema' ? rf.json_schema?.schema : undefined,
    stream: b.stream === true,
    maxTokens,
    headers,
    body: b,
  };
}

function normalizeAnthropic(b: Record<string, unknown>, model: string, headers: Record<string, string>): VendorRequest {
  const msgs = Array.isArray(b.messages) ? (b.messages as Array<{ role?: string; content?: unknown }>) : [];
  const messages = msgs.map((m) => ({ role: String(m.role), content: contentText(m.content) }));
  const system = b.system === undefined ? undefined : contentText(b.system);
  const fmt = (b.output_config as { format?: { type?: string; schema?: unknown } } | undefined)?.format;
  const tools = Array.isArray(b.tools) ? (b.tools as Array<{ name?: string; input_schema?: unknown }>) : [];
  const jsonTool = tools.find((t) => t.name === 'json');
  const json = fmt?.type === 'json_schema' || jsonTool !== undefined;
  return {
    protocol: 'anthropic',
    model,
    system: system || undefined,
    messages,
    prompt: lastUser(messages),
    json,
    jsonVia: fmt?.type === 'json_schema' ? 'output_config' : jsonTool ? 'tool' : undefined,
    schema: fmt?.schema ?? jsonTool?.input_schema,
    stream: b.stream === true,
    maxTokens: typeof b.max_tokens === 'number' ? b.max_tokens : undefined,
    headers,
    body: b,
  };
}

function contentText(c: unknown): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
  return c === undefined || c === null ? '' : JSON.stringify(c);
}

function lastUser(messages: Array<{ role: string; content: string }>): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i].role === 'user') return messages[i].content;
  return '';
}

function openaiUsage(u: Required<UsageOverride>) {
  return {
    prompt_tokens: u.inputTokens + u.cachedInputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.cachedInputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cachedInputTokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function openaiCompletion(model: string, reply: Reply) {
  return {
    id: `chatcmpl-${hash(reply.text + model).toString(36)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    system_fingerprint: 'fp_fake',
    choices: [{ index: 0, message: { role: 'assistant', content: reply.text, refusal: null }, logprobs: null, finish_reason: reply.finishReason }],
    usage: openaiUsage(reply.usage),
  };
}

function anthropicMessage(model: string, reply: Reply) {
  const u = reply.usage;
  return {
    id: `msg_${hash(reply.text + model).toString(36)}`,
    type: 'message',
    role: 'assistant',
    model,
    content:
      reply.toolInput !== undefined
        ? [{ type: 'tool_use', id: `toolu_${hash(reply.text).toString(36)}`, name: 'json', input: reply.toolInput }]
        : [{ type: 'text', text: reply.text }],
    stop_reason: reply.toolInput !== undefined ? 'tool_use' : reply.finishReason === 'length' ? 'max_tokens' : 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: u.inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: u.cachedInputTokens, output_tokens: u.outputTokens },
  };
}

/** A bag-of-words embedding: texts sharing words get close vectors (unit length). */
function embedText(text: string, dims: number): number[] {
  const v = new Array<number>(dims).fill(0);
  const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? [text];
  for (const w of words) {
    const h = hash(w);
    v[h % dims] += 1;
    v[(h >>> 8) % dims] += 0.5;
  }
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => Math.round((x / norm) * 1e6) / 1e6);
}

// --- HTTP helpers ---------------------------------------------------------------------------

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendOpenAIError(res: ServerResponse, status: number, type: string, message: string, code: string | null, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { message, type, param: null, code } }, headers);
}

function sendAnthropicError(res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { type: 'error', error: { type, message } }, { 'request-id': `req_fake${Date.now()}`, ...headers });
}

function sseHeaders(): Record<string, string> {
  return { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' };
}

function statusText(status: number): string {
  return ({ 200: 'OK', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' } as Record<number, string>)[status] ?? 'Error';
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function splitText(text: string, size?: number): string[] {
  if (text === '') return [];
  if (size) {
    const out: string[] = [];
    for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
    return out;
  }
  return text.match(/\S+\s*|\s+/g) ?? [text];
}

function estimate(text: string): number {
  return Math.ceil(text.length / 4);
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- standalone -------------------------------------------------------------------------

/**
 * `node dist/testing/fake-vendor.js [--port 8787] [--host 127.0.0.1] [--api-key KEY]
 *   [--fault model=kind[:times]]... [--fault-rate model=kind:rate]... [--latency model=ms]...`
 * Prints the base URL, serves until SIGINT/SIGTERM. Returns the started vendor.
 */
export async function main(argv: string[] = process.argv.slice(2), out: (line: string) => void = (l) => console.log(l)): Promise<FakeVendor> {
  const opts: FakeVendorOptions = {};
  const setups: Array<(v: FakeVendor) => void> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') && arg.startsWith('--') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`fake-vendor: ${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--port':
        opts.port = Number(value());
        break;
      case '--host':
        opts.host = value();
        break;
      case '--api-key':
        opts.apiKey = value();
        break;
      case '--retry-after':
        opts.retryAfterSec = Number(value());
        break;
      case '--fault': {
        const [model, rest = ''] = splitOnce(value(), '=');
        const [kind, times] = rest.split(':');
        setups.push((v) => v.fault(model, kind as FaultKind, times ? Number(times) : Infinity));
        break;
      }
      case '--fault-rate': {
        const [model, rest = ''] = splitOnce(value(), '=');
        const [kind, rate] = rest.split(':');
        setups.push((v) => v.faultRate(model, kind as FaultKind, Number(rate)));
        break;
      }
      case '--latency': {
        const [model, ms = '0'] = splitOnce(value(), '=');
        setups.push((v) => v.model(model, { latencyMs: Number(ms) }));
        break;
      }
      case '--help':
      case '-h':
        out('usage: fake-vendor [--port N] [--host H] [--api-key K] [--retry-after S] [--fault model=kind[:times]] [--fault-rate model=kind:rate] [--latency model=ms]');
        break;
      default:
        throw new Error(`fake-vendor: unknown argument ${arg}`);
    }
  }
  const vendor = new FakeVendor(opts);
  for (const s of setups) s(vendor);
  await vendor.start();
  out(vendor.url);
  return vendor;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + sep.length)];
}

const invokedDirectly = (() => {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main()
    .then((vendor) => {
      const stop = () => {
        void vendor.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(2);
    });
}
