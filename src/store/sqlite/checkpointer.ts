/**
 * WAL checkpoints on a thread of their own, for long-running processes (`baton serve`,
 * `baton worker`).
 *
 * A busy store writes megabytes of WAL a second; a PASSIVE checkpoint of one second of it took
 * 30-40 ms, and on the engine's thread that stalled every run and request in flight (the
 * gateway's p99 at 50 concurrent requests: 46 ms with, 8 ms without). A second connection
 * checkpoints just as well (WAL allows one checkpointer beside the writer and readers; PASSIVE
 * never waits for them), so the copying runs here, on its own thread; the engine's thread only
 * finishes each pass (see onBackfilled). On close the store stops this thread first, then
 * truncates the WAL itself.
 */
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// The thread's code, evaluated as CommonJS: there is no file to find, whether Baton runs from
// its sources or its build. The driver is required by absolute path (resolved here).
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage('backfilled');
  } catch (e) {
    // Busy: the next tick tries again; the WAL only grows meanwhile.
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export class CheckpointThread {
  private readonly worker: Worker;
  private exited = false;

  /**
   * `onBackfilled` runs after each pass. The writer keeps appending while this thread copies,
   * so a pass never reaches the end of the WAL, and SQLite starts the WAL over only once a
   * checkpoint has: the store then checkpoints the few frames written meanwhile itself, between
   * two transactions (a millisecond or so), and the WAL stays small.
   */
  constructor(path: string, intervalMs: number, onBackfilled: () => void, onError: (e: Error) => void) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(THREAD, { eval: true, workerData: { path, intervalMs, driver } });
    // Like the timer it replaces, it does not keep a process alive on its own.
    this.worker.unref();
    this.worker.once('exit', () => (this.exited = true));
    this.worker.on('error', onError);
    this.worker.on('message', (m) => {
      if (m === 'backfilled') onBackfilled();
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const exit = once(this.worker, 'exit');
    // Waited for: the process must not end (nothing else may be pending) before the thread has.
    this.worker.ref();
    this.worker.postMessage('stop');
    await exit;
  }
}
