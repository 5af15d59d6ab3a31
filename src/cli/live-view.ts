/**
 * Progress of one run in the terminal. On a TTY it redraws a block of lines in place (each
 * step's state and duration, a spinner while running), like a modern test runner; otherwise it
 * prints one plain line per change, which logs and CI read well.
 */
import type { StepEvent } from '../engine/executor.js';
import { formatDuration } from '../util/duration.js';

const SPIN = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const ICON: Record<string, string> = {
  pending: '○', running: '●', succeeded: '✓', failed: '✗', skipped: '↷', waiting: '◷', retrying: '↻', cancelled: '⊘',
};
const COLOR: Record<string, string> = {
  succeeded: '\x1b[32m', failed: '\x1b[31m', skipped: '\x1b[90m', waiting: '\x1b[36m', retrying: '\x1b[33m', running: '\x1b[33m', pending: '\x1b[90m', cancelled: '\x1b[90m',
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

interface Row {
  key: string;
  status: string;
  attempt: number;
  startedAt?: number;
  durationMs?: number;
  note?: string;
  items?: { done: number; total: number };
}

export class LiveView {
  private readonly rows = new Map<string, Row>();
  private drawn = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly title: string,
    steps: string[],
    private readonly tty = Boolean(out.isTTY),
  ) {
    for (const s of steps) this.rows.set(s, { key: s, status: 'pending', attempt: 1 });
  }

  start(runId: string): void {
    if (this.tty) {
      this.out.write(`\x1b[1m${this.title}\x1b[0m ${DIM}${runId}${RESET}\n`);
      this.timer = setInterval(() => this.draw(), 80);
      this.timer.unref();
      this.draw();
    } else this.out.write(`${this.title} ${runId}\n`);
  }

  update(e: StepEvent): void {
    // Map items are folded into their map step's row as a counter.
    const m = /^(.*)\[(\d+)\]$/.exec(e.key);
    if (m) {
      const parent = this.rows.get(m[1]);
      if (parent && (e.status === 'succeeded' || e.status === 'failed' || e.status === 'skipped')) {
        parent.items = { done: (parent.items?.done ?? 0) + 1, total: parent.items?.total ?? 0 };
        if (!this.tty) this.line(parent, `item ${m[2]} ${e.status}`);
      }
      return;
    }
    const row = this.rows.get(e.key) ?? { key: e.key, status: 'pending', attempt: 1 };
    this.rows.set(e.key, row);
    if (e.status === 'running' && row.startedAt === undefined) row.startedAt = e.at;
    row.status = e.status;
    row.attempt = e.attempt;
    // The longer of the last attempt and the time since the step first ran (waits, retries).
    if (e.durationMs !== undefined && (e.status === 'succeeded' || e.status === 'failed' || e.status === 'skipped')) row.durationMs = Math.max(e.durationMs, row.startedAt ? e.at - row.startedAt : 0);
    if (e.items !== undefined) row.items = { done: row.items?.done ?? 0, total: e.items };
    if (e.error) row.note = e.error.message;
    else if (e.status === 'succeeded') row.note = undefined;
    if (!this.tty) this.line(row);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty) this.draw();
  }

  private line(r: Row, extra?: string): void {
    const dur = r.durationMs !== undefined ? ` ${formatDuration(r.durationMs)}` : '';
    const att = r.attempt > 1 ? ` (attempt ${r.attempt})` : '';
    this.out.write(`  ${ICON[r.status] ?? '?'} ${r.key} ${extra ?? r.status}${att}${dur}${r.note && !extra ? ` — ${r.note}` : ''}\n`);
  }

  private draw(): void {
    this.frame++;
    const width = Math.max(...[...this.rows.keys()].map((k) => k.length), 4);
    const lines: string[] = [];
    for (const r of this.rows.values()) {
      const icon = r.status === 'running' ? SPIN[this.frame % SPIN.length] : ICON[r.status] ?? '?';
      const elapsed = (r.status === 'running' || r.status === 'waiting') && r.startedAt ? formatDuration(Date.now() - r.startedAt) : r.durationMs !== undefined ? formatDuration(r.durationMs) : '';
      const items = r.items && r.items.total ? ` ${r.items.done}/${r.items.total} items` : '';
      const att = r.attempt > 1 ? ` attempt ${r.attempt}` : '';
      const note = r.note && r.status !== 'succeeded' ? ` ${DIM}${r.note.slice(0, 70)}${RESET}` : '';
      lines.push(`  ${COLOR[r.status] ?? ''}${icon}${RESET} ${r.key.padEnd(width)}  ${COLOR[r.status] ?? ''}${r.status.padEnd(9)}${RESET} ${DIM}${elapsed.padStart(7)}${RESET}${items}${att}${note}`);
    }
    let s = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    this.out.write(s);
    this.drawn = lines.length;
  }
}
