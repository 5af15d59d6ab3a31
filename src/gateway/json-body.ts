/**
 * JSON request bodies, read with the limits JSON.parse lacks. JSON.parse takes nesting far
 * deeper than the rest of the process can handle (JSON.stringify, storing, hashing overflow the
 * stack around 5,000 levels, a 10 KB body): such a body is refused before it is parsed.
 */
import { BatonError } from '../errors.js';

/** Deepest nesting of arrays and objects a request body may have. */
export const MAX_JSON_DEPTH = 1000;

/** Refuses JSON text nested deeper than MAX_JSON_DEPTH (a text this short cannot be). */
export function checkJsonDepth(text: string): void {
  if (text.length <= 2 * MAX_JSON_DEPTH) return;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > MAX_JSON_DEPTH) throw new BatonError('BATON_REQUEST_INVALID', { detail: `the JSON body is nested deeper than ${MAX_JSON_DEPTH} levels; flatten it.` });
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
}

/**
 * JSON.parse, refusing keys that would reach an object's prototype if the value were ever
 * merged with Object.assign (`__proto__`, `constructor.prototype`). The check walks only bodies
 * that mention either name.
 */
export function parseJsonBody(text: string): unknown {
  checkJsonDepth(text);
  const value = JSON.parse(text) as unknown;
  if (!text.includes('__proto__') && !text.includes('constructor')) return value;
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Object.prototype.hasOwnProperty.call(v, '__proto__')) throw new BatonError('BATON_REQUEST_INVALID', { detail: 'the body has a "__proto__" key, which is refused (it could change an object\'s prototype); rename it.' });
    const c = (v as Record<string, unknown>).constructor;
    if (Object.prototype.hasOwnProperty.call(v, 'constructor') && c !== null && typeof c === 'object' && Object.prototype.hasOwnProperty.call(c, 'prototype')) {
      throw new BatonError('BATON_REQUEST_INVALID', { detail: 'the body has a "constructor" key holding "prototype", which is refused; rename it.' });
    }
    stack.push(...Object.values(v as Record<string, unknown>));
  }
  return value;
}
