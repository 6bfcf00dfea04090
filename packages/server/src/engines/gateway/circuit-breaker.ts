/**
 * Per-upstream circuit breaking: stop sending to an upstream that keeps failing, give it a cool-down, then let a
 * few probe requests decide whether it is back.
 *
 * The model is the usual three states (Hystrix, resilience4j's count-based breaker, Envoy's consecutive-5xx outlier
 * detection):
 *
 * - `closed`: requests flow; failures are counted consecutively, a success resets the count, and the
 *   `failureThreshold`-th consecutive failure opens the circuit;
 * - `open`: every request is refused (PAL_GATEWAY_CIRCUIT_OPEN, with `Retry-After`) until `openMs` has passed; the
 *   next request after that moves the circuit to `half_open` (no timer runs: a quiet upstream costs nothing);
 * - `half_open`: up to `halfOpenProbes` requests are let through at once as probes, the rest refused; the first probe
 *   outcome decides: a success closes the circuit, a failure opens it again for a fresh `openMs`.
 *
 * Each request holds a ticket and reports one outcome on it: `success()`, `failure()`, or `release()` when there is
 * no outcome (the client went away), which counts for nothing but frees a probe slot. Only the first call on a ticket
 * counts. An outcome only counts in the state it was acquired in: a request sent while closed that fails after the
 * circuit opened, or succeeds after it went half-open, is ignored, so only probes decide a half-open circuit.
 *
 * A probe whose ticket is never settled (a bug in the caller) would hold its slot forever and wedge the circuit in
 * `half_open`; a probe slot is therefore reclaimed after `openMs`.
 *
 * What counts as a failure (connection errors, timeouts, 5xx; not 4xx) is the caller's decision.
 */
import { PalisadeError } from '@palisade/core';

export interface CircuitBreakerOptions {
  /** consecutive failures that open the circuit (default 5) */
  failureThreshold?: number;
  /** ms the circuit stays open before one probe (default 30000) */
  openMs?: number;
  /** concurrent probes allowed while half-open (default 1) */
  halfOpenProbes?: number;
  now?: () => number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitTicket {
  success(): void;
  failure(): void;
  /** neither: the client went away before an outcome */
  release(): void;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`CircuitBreaker: ${name} must be a positive integer, got ${value}`);
  return value;
}

export class CircuitBreaker {
  /** Optional listener for state changes (metrics/logs); a listener that throws does not disturb the breaker. */
  onChange?: (from: CircuitState, to: CircuitState) => void;

  readonly name: string;
  private readonly failureThreshold: number;
  private readonly openMs: number;
  private readonly halfOpenProbes: number;
  private readonly now: () => number;

  private current: CircuitState = 'closed';
  /** Bumped on every transition; a ticket's outcome counts only in the epoch it was acquired in. */
  private epoch = 0;
  private consecutiveFailures = 0;
  private openedAt = 0;
  /** Half-open probes in flight: ticket id → when it was acquired. */
  private readonly probes = new Map<number, number>();
  private nextTicket = 0;

  constructor(name: string, opts: CircuitBreakerOptions = {}) {
    this.name = name;
    this.failureThreshold = positiveInteger('failureThreshold', opts.failureThreshold ?? 5);
    this.openMs = opts.openMs ?? 30_000;
    if (!Number.isFinite(this.openMs) || this.openMs < 0) throw new RangeError(`CircuitBreaker: openMs must be a non-negative number, got ${this.openMs}`);
    this.halfOpenProbes = positiveInteger('halfOpenProbes', opts.halfOpenProbes ?? 1);
    this.now = opts.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.current;
  }

  /**
   * Ask to send one request: returns a ticket, or throws PAL_GATEWAY_CIRCUIT_OPEN with extensions
   * { upstream: name, retry_after_seconds } (whole seconds, ≥1) while open or while half-open probes are all taken.
   */
  acquire(): CircuitTicket {
    const now = this.now();
    if (this.current === 'open') {
      const remaining = this.openedAt + this.openMs - now;
      if (remaining > 0) this.refuse(Math.min(remaining, this.openMs));
      this.transition('half_open');
    }
    if (this.current === 'half_open') {
      for (const [id, at] of this.probes) if (now - at >= this.openMs) this.probes.delete(id);
      // A probe is under way: its outcome is expected within the upstream's timeout, so ask to retry soon.
      if (this.probes.size >= this.halfOpenProbes) this.refuse(1000);
    }
    return this.ticket(now);
  }

  private ticket(now: number): CircuitTicket {
    const id = this.nextTicket++;
    const epoch = this.epoch;
    const probe = this.current === 'half_open';
    if (probe) this.probes.set(id, now);
    let settled = false;
    const settle = (outcome: 'success' | 'failure' | 'release') => {
      if (settled) return;
      settled = true;
      if (epoch !== this.epoch) return;
      if (probe) {
        this.probes.delete(id);
        if (outcome === 'success') this.transition('closed');
        else if (outcome === 'failure') this.trip();
      } else if (outcome === 'success') {
        this.consecutiveFailures = 0;
      } else if (outcome === 'failure') {
        if (++this.consecutiveFailures >= this.failureThreshold) this.trip();
      }
    };
    return { success: () => settle('success'), failure: () => settle('failure'), release: () => settle('release') };
  }

  private trip(): void {
    this.openedAt = this.now();
    this.transition('open');
  }

  private refuse(waitMs: number): never {
    throw new PalisadeError('PAL_GATEWAY_CIRCUIT_OPEN', `Upstream ${this.name} is failing; the gateway has stopped sending to it for now`, {
      extensions: { upstream: this.name, retry_after_seconds: Math.max(1, Math.ceil(waitMs / 1000)) },
    });
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    this.current = to;
    this.epoch++;
    this.consecutiveFailures = 0;
    this.probes.clear();
    if (from === to || !this.onChange) return;
    try {
      this.onChange(from, to);
    } catch {
      // metrics and logs must not decide whether a request is proxied
    }
  }
}
