/**
 * What a call costs, from the usage the vendor reported and the service's prices (USD per
 * million tokens, plus a flat per-call price for models billed per request). Cached input
 * tokens are billed at their own price. Costs are rounded to 1e-9 USD so that sums over many
 * calls stay exact enough to compare with hand-computed values.
 */
import type { ModelRequest, ModelUsage } from '../providers/provider.js';
import type { Price } from './config.js';

export function callCost(usage: ModelUsage, price: Price): number {
  const c = (usage.inputTokens * price.inputPerMTok + usage.outputTokens * price.outputPerMTok + usage.cachedInputTokens * price.cachedInputPerMTok) / 1e6 + price.perCall;
  return roundUsd(c);
}

export function roundUsd(v: number): number {
  return Math.round(v * 1e9) / 1e9;
}

/** Tokens a request's input will take, estimated before the call (for budgets and cascades). */
export function estimateInputTokens(req: ModelRequest): number {
  let chars = req.system?.length ?? 0;
  for (const m of req.messages ?? []) chars += m.content.length + 4;
  if (req.input !== undefined) chars += typeof req.input === 'string' ? req.input.length : (JSON.stringify(req.input)?.length ?? 0);
  if (req.schema !== undefined) chars += JSON.stringify(req.schema).length;
  return Math.ceil(chars / 4);
}

/**
 * The most a call may cost: the estimated input at the full price and the whole output budget
 * (`maxTokens`) at the output price. A budget reserves this before the call, so concurrent
 * branches cannot overspend together; the reservation is replaced by the real cost afterwards.
 */
export function maxCallCost(req: ModelRequest, price: Price, maxTokens: number): number {
  return callCost({ inputTokens: estimateInputTokens(req), outputTokens: maxTokens, cachedInputTokens: 0 }, price);
}
