/**
 * Turning a model's text into the structured data a step promised. Models wrap JSON in code
 * fences, add a sentence before it, leave a trailing comma or stop mid-object; `jsonrepair`
 * fixes what can be fixed mechanically. What still does not parse, or parses but breaks the
 * schema, is a degraded answer: the caller re-asks the same service with the errors quoted
 * (a bounded number of times) and then falls back, instead of passing bad data downstream.
 */
import { jsonrepair } from 'jsonrepair';
import type { ValidateFunction } from 'ajv';

export type Parsed = { ok: true; value: unknown; repaired: boolean } | { ok: false; problem: string };

export function parseJsonAnswer(text: string): Parsed {
  const body = extractJson(text);
  if (body === undefined) return { ok: false, problem: 'the answer contains no JSON object or array' };
  try {
    return { ok: true, value: JSON.parse(body), repaired: body !== text.trim() };
  } catch {
    try {
      return { ok: true, value: JSON.parse(jsonrepair(body)), repaired: true };
    } catch (e) {
      return { ok: false, problem: `the answer is not valid JSON (${(e as Error).message.split('\n')[0]})` };
    }
  }
}

/** The JSON part of an answer: inside a ```json fence if there is one, else from the first { or [ on. */
function extractJson(text: string): string | undefined {
  const fence = /```(?:json|JSON)?\s*\n?([\s\S]*?)(?:```|$)/.exec(text);
  const inner = (fence ? fence[1] : text).trim();
  const start = inner.search(/[{[]/);
  if (start < 0) return undefined;
  return inner.slice(start);
}

/** Validates against the step's schema; returns a short list of what is wrong, or undefined. */
export function schemaProblems(validate: ValidateFunction, value: unknown): string | undefined {
  if (validate(value)) return undefined;
  return (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ');
}

/** The follow-up message that asks the model to correct its answer. */
export function repairPrompt(problem: string): string {
  return `Your previous answer could not be used: ${problem}. Reply again with only the corrected JSON, no prose and no code fences.`;
}
