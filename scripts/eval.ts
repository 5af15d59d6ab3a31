/**
 * `npm run eval -- <app> [options]`: runs an example application's whole labelled set through
 * its workflow and prints its quality figures, throughput and cost. Each application keeps its
 * own evaluation in examples/<app>/eval.ts (a default-exported function taking the remaining
 * arguments), so that the data, the metrics and the workflow live side by side.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..');
const apps = readdirSync(join(root, 'examples')).filter((d) => existsSync(join(root, 'examples', d, 'eval.ts')));
const [app, ...rest] = process.argv.slice(2);
if (!app || !apps.includes(app)) {
  process.stderr.write(`usage: npm run eval -- <app> [options]\napps with a labelled set: ${apps.join(', ') || '(none)'}\n`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(join(root, 'examples', app, 'eval.ts')).href)) as { default: (args: string[]) => Promise<number | void> };
process.exitCode = (await mod.default(rest)) ?? 0;
