/**
 * `openai`: the OpenAI chat-completions protocol, which most inference servers speak too
 * (vLLM, Ollama, llama.cpp, TGI, LM Studio): point `endpoint` at their `/v1`.
 *
 * Operations: `chat` (default; JSON via `response_format` when the request has a schema) and
 * `embed` (`/embeddings`). Service `options`:
 * - `structuredOutputs` (default true): send `response_format: json_schema`; false sends
 *   `json_object` for servers without schema support.
 * - `strictJsonSchema` (default false): OpenAI strict mode (every property required, no extras).
 * - `headers`: extra request headers.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { embedMany } from 'ai';
import { BatonError } from '../errors.js';
import { CallTrace, runChat, toBatonError, type SdkContext } from './ai-sdk.js';
import type { CallOptions, ModelRequest, ModelResponse, Provider, ProviderFactory, ProviderSetup } from './provider.js';

const OPERATIONS = ['chat', 'embed'] as const;

export const openaiProvider: ProviderFactory = (setup: ProviderSetup): Provider => {
  const endpoint = setup.endpoint ?? 'https://api.openai.com/v1';
  const structuredOutputs = setup.options.structuredOutputs !== false;
  const strictJsonSchema = setup.options.strictJsonSchema === true;
  const extraHeaders = stringRecord(setup.options.headers);
  const ctx: SdkContext = { service: setup.service, endpoint, protocol: 'OpenAI chat completions' };

  // A provider instance per call: cheap (closures only) and gives each call its own fetch trace.
  const sdk = (trace: CallTrace) =>
    createOpenAICompatible({
      name: 'openai',
      baseURL: endpoint,
      apiKey: setup.credential,
      headers: extraHeaders,
      includeUsage: true,
      supportsStructuredOutputs: structuredOutputs,
      fetch: trace.fetch,
    });

  async function chat(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
    const trace = new CallTrace();
    return runChat(
      {
        ctx,
        trace,
        model: sdk(trace).chatModel(setup.model),
        providerOptions: { openai: { strictJsonSchema } },
        sendSchema: structuredOutputs,
      },
      request,
      options,
    );
  }

  async function embed(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
    const input = request.input;
    const values = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((x) => typeof x === 'string') ? (input as string[]) : undefined;
    if (!values) {
      throw new BatonError('BATON_USAGE', { detail: `Service ${setup.service}: \`embed\` needs input: a string or an array of strings.` });
    }
    if (options.signal.aborted) throw options.signal.reason;
    const trace = new CallTrace();
    try {
      const result = await embedMany({
        model: sdk(trace).embeddingModel(setup.model),
        values,
        maxRetries: 0,
        abortSignal: options.signal,
        headers: { 'Idempotency-Key': options.idempotencyKey },
      });
      const body = result.responses?.[0]?.body as { model?: unknown } | undefined;
      return {
        output: { embeddings: result.embeddings },
        usage: { inputTokens: result.usage?.tokens ?? 0, outputTokens: 0, cachedInputTokens: 0 },
        model: typeof body?.model === 'string' ? body.model : setup.model,
      };
    } catch (err) {
      throw toBatonError(err, { ...ctx, protocol: 'OpenAI embeddings' }, trace, options.signal);
    }
  }

  return {
    name: 'openai',
    defaultOperation: 'chat',
    async call(request, options) {
      switch (request.operation) {
        case 'chat':
          return chat(request, options);
        case 'embed':
          return embed(request, options);
        default:
          throw new BatonError('BATON_MODEL_UNSUPPORTED', {
            service: setup.service,
            provider: 'openai',
            operation: request.operation,
            operations: OPERATIONS.join(', '),
          });
      }
    },
  };
};

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}
