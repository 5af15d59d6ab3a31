/**
 * `anthropic`: the Anthropic messages protocol. `endpoint` is the base including `/v1`
 * (default `https://api.anthropic.com/v1`). Operation: `chat` only; a request with a schema
 * asks for JSON the way the model supports it (`output_config.format` or a forced `json`
 * tool), and the answer comes back as raw text for the caller to parse.
 *
 * Service `options`: `structuredOutputMode` (`auto` | `outputFormat` | `jsonTool`, default
 * `auto`), `headers` (extra request headers).
 */
import { createAnthropic } from '@ai-sdk/anthropic';
import { BatonError } from '../errors.js';
import { CallTrace, runChat, type SdkContext } from './ai-sdk.js';
import type { Provider, ProviderFactory, ProviderSetup } from './provider.js';

export const anthropicProvider: ProviderFactory = (setup: ProviderSetup): Provider => {
  const endpoint = setup.endpoint ?? 'https://api.anthropic.com/v1';
  const ctx: SdkContext = { service: setup.service, endpoint, protocol: 'Anthropic messages' };
  const mode = setup.options.structuredOutputMode;
  const providerOptions =
    mode === 'auto' || mode === 'outputFormat' || mode === 'jsonTool' ? { anthropic: { structuredOutputMode: mode } } : undefined;
  const headers = stringRecord(setup.options.headers);

  return {
    name: 'anthropic',
    defaultOperation: 'chat',
    async call(request, options) {
      if (request.operation !== 'chat') {
        throw new BatonError('BATON_MODEL_UNSUPPORTED', { service: setup.service, provider: 'anthropic', operation: request.operation, operations: 'chat' });
      }
      const trace = new CallTrace();
      const sdk = createAnthropic({
        baseURL: endpoint,
        // Always a string: the SDK would otherwise read ANTHROPIC_API_KEY behind the config's back.
        apiKey: setup.credential ?? '',
        headers,
        fetch: trace.fetch,
      });
      return runChat({ ctx, trace, model: sdk.messages(setup.model), providerOptions }, request, options);
    },
  };
};

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}
