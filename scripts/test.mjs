// `npm test`: builds the CLI (the end-to-end tests run the real `baton` command), runs every
// vitest suite, and closes with the plain line `N passed, N failed` that CI reads.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'baton-test-'));
const extra = process.argv.slice(2);

/** One vitest run; returns its counts. */
function vitest(name, args) {
  const report = join(dir, `${name}.json`);
  const run = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], { stdio: 'inherit' });
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    const r = JSON.parse(readFileSync(report, 'utf8'));
    passed = r.numPassedTests;
    // Failed tests, plus files that failed without a failed test (an import error, a crash in a hook).
    failed = r.numFailedTests + (r.testResults ?? []).filter((t) => t.status === 'failed' && !t.assertionResults?.some((a) => a.status === 'failed')).length;
    skipped = r.numPendingTests + (r.numTodoTests ?? 0);
  } catch {
    failed = 1;
  }
  if (run.status !== 0 && failed === 0) failed = 1;
  return { passed, failed, skipped };
}

// The chaos test restarts PostgreSQL, so it runs on its own after everything else.
const parts = extra.length ? [vitest('selected', extra)] : [vitest('suites', ['--exclude', 'test/chaos/**']), vitest('chaos', ['test/chaos'])];
rmSync(dir, { recursive: true, force: true });
const total = parts.reduce((a, p) => ({ passed: a.passed + p.passed, failed: a.failed + p.failed, skipped: a.skipped + p.skipped }), { passed: 0, failed: 0, skipped: 0 });
console.log(`${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}`);
process.exit(total.failed === 0 ? 0 : 1);
