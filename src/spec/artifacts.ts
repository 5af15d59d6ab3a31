/** Text of the generated, committed artifacts (see scripts/generate.ts). */
import { ERRORS, type ErrorSpec } from '../errors.js';
import { WORKFLOW_SCHEMA } from './compile.js';

export function renderSchema(): string {
  return `${JSON.stringify(WORKFLOW_SCHEMA, null, 2)}\n`;
}

export function renderErrorDocs(): string {
  const rows = Object.entries(ERRORS).map(([code, e]: [string, ErrorSpec]) => {
    const status = e.loggedOnly ? `log only (callers: \`${e.loggedOnly}\`)` : String(e.status);
    return `| \`${code}\` | ${status} | ${e.retryable ? 'yes' : 'no'} | ${e.message.replace(/\|/g, '\\|')} |`;
  });
  return [
    '# Error codes',
    '',
    'Every error a user can cause carries one of these stable codes (generated from `src/errors.ts`;',
    'do not edit by hand: run `npm run generate`). `retryable` is what retry policies read.',
    'The CLI prints `error[CODE]: message` and exits 2 for document, input and usage errors, 1 for',
    'failed runs. `{name}` parts are filled in with the details of each case.',
    '',
    '| code | HTTP status | retryable | message |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
