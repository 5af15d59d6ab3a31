/**
 * Writes the generated artifacts: the workflow JSON Schema and the error code reference.
 * `npm run generate` after changing step kinds or the error table; a test fails when the
 * committed files differ from what this produces.
 */
import { writeFileSync } from 'node:fs';
import { renderErrorDocs, renderSchema } from '../src/spec/artifacts.js';

writeFileSync(new URL('../schema/workflow.schema.json', import.meta.url), renderSchema());
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorDocs());
console.log('wrote schema/workflow.schema.json and docs/errors.md');
