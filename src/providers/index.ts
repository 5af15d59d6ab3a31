/**
 * The table of providers by the name a service's `provider:` field uses. A new vendor
 * protocol is one file and one line here. Network providers load their SDKs on first use
 * so that a workflow of local models does not pay for them.
 */
import type { ProviderFactory } from './provider.js';
import { LOCAL_PROVIDERS } from './local/index.js';

const lazy = (load: () => Promise<ProviderFactory>): ProviderFactory => async (setup) => (await load())(setup);

export const PROVIDERS: Readonly<Record<string, ProviderFactory>> = {
  openai: lazy(async () => (await import('./openai.js')).openaiProvider),
  anthropic: lazy(async () => (await import('./anthropic.js')).anthropicProvider),
  oip: lazy(async () => (await import('./oip.js')).oipProvider),
  http: lazy(async () => (await import('./http-json.js')).httpJsonProvider),
  onnx: lazy(async () => (await import('./onnx.js')).onnxProvider),
  ...LOCAL_PROVIDERS,
};
