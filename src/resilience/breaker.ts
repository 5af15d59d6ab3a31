/**
 * One circuit breaker per service, shared by every run on this worker. The state machine
 * (closed → open → half-open probe → closed/open) is cockatiel's; Baton adds the rule that
 * opens it — N failures within a sliding time window — and the meaning of "failure": any
 * error the service is to blame for, including a degraded answer (schema violation, failed
 * guard, empty answer) and a broken stream. Cancellations and losing a hedged race are not
 * the service's fault and are not counted.
 *
 * While open, and while a half-open probe is in flight, calls are refused at once
 * (BATON_CIRCUIT_OPEN) instead of queueing behind the probe, so a fallback starts immediately.
 */
import { circuitBreaker, CircuitState, handleWhen, type CircuitBreakerPolicy, type IBreaker } from 'cockatiel';
import { BatonError } from '../errors.js';

/** Opens after `failures` failures within the last `windowMs`; a success in half-open resets it. */
export class WindowBreaker implements IBreaker {
  private failuresAt: number[] = [];
  constructor(private readonly failures: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  get state(): unknown {
    return { failuresAt: this.failuresAt };
  }
  set state(v: unknown) {
    this.failuresAt = [...((v as { failuresAt?: number[] })?.failuresAt ?? [])];
  }

  success(state: CircuitState): void {
    if (state === CircuitState.HalfOpen) this.failuresAt = [];
  }

  failure(state: CircuitState): boolean {
    const t = this.now();
    if (state === CircuitState.HalfOpen) return true;
    this.failuresAt.push(t);
    while (this.failuresAt.length && this.failuresAt[0] <= t - this.windowMs) this.failuresAt.shift();
    if (this.failuresAt.length >= this.failures) {
      this.failuresAt = [];
      return true;
    }
    return false;
  }

  /** Failures currently inside the window. */
  recent(): number {
    const t = this.now();
    return this.failuresAt.filter((f) => f > t - this.windowMs).length;
  }
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerSettings {
  failures: number;
  windowMs: number;
  cooldownMs: number;
}

export class ServiceBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private readonly counter: WindowBreaker;
  private openedAt = 0;
  /** Transitions, newest last, for `baton services` and tests. */
  readonly transitions: Array<{ state: BreakerState; at: number }> = [];

  constructor(private readonly service: string, private readonly settings: BreakerSettings, counts: (e: unknown) => boolean) {
    this.counter = new WindowBreaker(settings.failures, settings.windowMs);
    this.policy = circuitBreaker(handleWhen(counts), { breaker: this.counter, halfOpenAfter: settings.cooldownMs });
    this.policy.onBreak(() => {
      this.openedAt = Date.now();
      this.transitions.push({ state: 'open', at: this.openedAt });
    });
    this.policy.onHalfOpen(() => this.transitions.push({ state: 'half-open', at: Date.now() }));
    this.policy.onReset(() => this.transitions.push({ state: 'closed', at: Date.now() }));
  }

  get state(): BreakerState {
    const s = this.policy.state;
    if (s === CircuitState.Closed) return 'closed';
    if (s === CircuitState.HalfOpen) return 'half-open';
    // cockatiel reports Open until the next call after the cooldown turns it half-open.
    return 'open';
  }

  /** Runs `fn` through the breaker; refuses at once while open or probing. */
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    const s = this.policy.state;
    const retryInMs = Math.max(0, this.openedAt + this.settings.cooldownMs - Date.now());
    if (s === CircuitState.HalfOpen || (s === CircuitState.Open && retryInMs > 0)) {
      throw new BatonError('BATON_CIRCUIT_OPEN', { service: this.service, failures: this.settings.failures, retryInMs });
    }
    return this.policy.execute(() => fn());
  }
}
