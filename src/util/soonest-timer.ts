/**
 * One unref'd timer that fires at the soonest time it was asked for: asking for a later time
 * while an earlier one is pending changes nothing; asking for an earlier one moves it. The
 * worker's polls, the scheduler's ticks and the approvals sweep all wake this way, so that
 * many "look again" requests cost one timer.
 */
export class SoonestTimer {
  private timer: NodeJS.Timeout | undefined;
  private due = Infinity;

  constructor(private readonly fire: () => void) {}

  /** Fire in `delayMs`, unless it is already due sooner. */
  arm(delayMs: number): void {
    const due = Date.now() + delayMs;
    if (this.timer && due >= this.due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = Infinity;
      this.fire();
    }, delayMs);
    this.timer.unref();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due = Infinity;
  }
}
