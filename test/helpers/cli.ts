/** Running the `baton` command from tests, as a user's shell would. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '../..');
export const bin = join(root, 'bin/baton.js');

/** The CLI runs from dist/ exactly as an installed package would: built once when missing. */
export function ensureBuilt(): void {
  if (existsSync(join(root, 'dist/cli/main.js'))) return;
  const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('build failed');
}

/** `baton <args>` in `cwd`, run to its end (no colours). */
export function runBaton(cwd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
