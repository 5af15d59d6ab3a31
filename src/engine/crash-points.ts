/**
 * Named pause points for crash tests: when BATON_CRASH_AT names a point (comma-separated) and a
 * random draw below BATON_CRASH_RATE (default 0.01) hits, the process kills itself with SIGKILL
 * right there, as a power cut would. Off (one env read at load) in normal runs.
 */
const points = new Set((process.env.BATON_CRASH_AT ?? '').split(',').filter(Boolean));
const rate = Number(process.env.BATON_CRASH_RATE ?? '0.01');

export type CrashPoint = 'before-execute' | 'after-execute' | 'before-commit' | 'after-commit' | 'after-admit';

export function crashPoint(name: CrashPoint): void {
  if (points.size === 0) return;
  if ((points.has(name) || points.has('*')) && Math.random() < rate) process.kill(process.pid, 'SIGKILL');
}
