import { PalisadeError } from '@palisade/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js';

function setup(opts: Omit<CircuitBreakerOptions, 'now'> = {}) {
  const clock = { t: 1_000_000 };
  const cb = new CircuitBreaker('framework', { ...opts, now: () => clock.t });
  const changes: Array<[CircuitState, CircuitState]> = [];
  cb.onChange = (from, to) => changes.push([from, to]);
  return { cb, clock, changes };
}

function refusal(cb: CircuitBreaker): PalisadeError {
  try {
    cb.acquire();
  } catch (e) {
    if (e instanceof PalisadeError) return e;
    throw e;
  }
  throw new Error('expected PAL_GATEWAY_CIRCUIT_OPEN, the request was let through');
}

const fail = (cb: CircuitBreaker, n: number) => {
  for (let i = 0; i < n; i++) cb.acquire().failure();
};

describe('CircuitBreaker', () => {
  it('starts closed and lets requests through', () => {
    const { cb } = setup();
    expect(cb.state).toBe('closed');
    for (let i = 0; i < 100; i++) cb.acquire().success();
    expect(cb.state).toBe('closed');
  });

  it('opens at exactly the threshold of consecutive failures (default 5)', () => {
    const { cb, changes } = setup();
    fail(cb, 4);
    expect(cb.state).toBe('closed');
    fail(cb, 1);
    expect(cb.state).toBe('open');
    expect(changes).toEqual([['closed', 'open']]);
  });

  it('counts failures consecutively: a success resets the count', () => {
    const { cb } = setup({ failureThreshold: 3 });
    fail(cb, 2);
    cb.acquire().success();
    fail(cb, 2);
    expect(cb.state).toBe('closed');
    fail(cb, 1);
    expect(cb.state).toBe('open');
  });

  it('refuses while open, with the upstream and the whole seconds until the probe', () => {
    const { cb, clock } = setup({ failureThreshold: 1, openMs: 30_000 });
    fail(cb, 1);
    let e = refusal(cb);
    expect(e.code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    expect(e.status).toBe(503);
    expect(e.extensions).toEqual({ upstream: 'framework', retry_after_seconds: 30 });
    clock.t += 100;
    expect(refusal(cb).extensions.retry_after_seconds).toBe(30); // 29.9 s rounds up
    clock.t += 28_900;
    expect(refusal(cb).extensions.retry_after_seconds).toBe(1);
    clock.t += 999;
    e = refusal(cb); // 1 ms left: still at least 1 s
    expect(e.extensions.retry_after_seconds).toBe(1);
    expect(cb.state).toBe('open');
    clock.t += 1;
    const probe = cb.acquire();
    expect(cb.state).toBe('half_open');
    probe.success();
    expect(cb.state).toBe('closed');
  });

  it('retry_after_seconds is at least 1 even for a short openMs', () => {
    const { cb } = setup({ failureThreshold: 1, openMs: 10 });
    fail(cb, 1);
    expect(refusal(cb).extensions.retry_after_seconds).toBe(1);
  });

  it('half-open allows exactly one probe by default; the others are refused until it reports', () => {
    const { cb, clock } = setup({ failureThreshold: 1, openMs: 1000 });
    fail(cb, 1);
    clock.t += 1000;
    const probe = cb.acquire();
    expect(cb.state).toBe('half_open');
    const e = refusal(cb);
    expect(e.code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    expect(e.extensions).toEqual({ upstream: 'framework', retry_after_seconds: 1 });
    probe.success();
    expect(cb.state).toBe('closed');
    cb.acquire();
    cb.acquire();
  });

  it('half-open allows exactly halfOpenProbes concurrent probes', () => {
    const { cb, clock } = setup({ failureThreshold: 1, openMs: 1000, halfOpenProbes: 3 });
    fail(cb, 1);
    clock.t += 1000;
    const probes = [cb.acquire(), cb.acquire(), cb.acquire()];
    expect(refusal(cb).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    probes[0]?.release(); // frees one slot, decides nothing
    expect(cb.state).toBe('half_open');
    const fourth = cb.acquire();
    expect(refusal(cb).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    fourth.success();
    expect(cb.state).toBe('closed');
    // the other probes belong to the half-open period that ended: their outcomes are ignored
    probes[1]?.failure();
    probes[2]?.failure();
    expect(cb.state).toBe('closed');
  });

  it('a failed probe re-opens the circuit for a fresh openMs', () => {
    const { cb, clock, changes } = setup({ failureThreshold: 2, openMs: 5000 });
    fail(cb, 2);
    clock.t += 7000; // well past the first openMs
    cb.acquire().failure();
    expect(cb.state).toBe('open');
    expect(refusal(cb).extensions.retry_after_seconds).toBe(5);
    clock.t += 4999;
    expect(refusal(cb).extensions.retry_after_seconds).toBe(1);
    clock.t += 1;
    cb.acquire().success();
    expect(cb.state).toBe('closed');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('after recovering, counting starts again from zero', () => {
    const { cb, clock } = setup({ failureThreshold: 3, openMs: 1000 });
    fail(cb, 3);
    clock.t += 1000;
    cb.acquire().success();
    fail(cb, 2);
    expect(cb.state).toBe('closed');
    fail(cb, 1);
    expect(cb.state).toBe('open');
  });

  it('release() counts neither as a success nor as a failure', () => {
    const { cb, clock } = setup({ failureThreshold: 2, openMs: 1000 });
    cb.acquire().failure();
    cb.acquire().release(); // would reset the count if it were a success
    cb.acquire().failure();
    expect(cb.state).toBe('open');
    clock.t += 1000;
    cb.acquire().release(); // a released probe leaves the circuit half-open, and frees the slot
    expect(cb.state).toBe('half_open');
    cb.acquire().failure();
    expect(cb.state).toBe('open');
  });

  it("a ticket's outcome counts once: later calls on it are ignored", () => {
    const { cb, clock } = setup({ failureThreshold: 2, openMs: 1000 });
    const t = cb.acquire();
    t.failure();
    t.failure();
    t.failure();
    expect(cb.state).toBe('closed');
    const u = cb.acquire();
    u.release();
    u.failure();
    expect(cb.state).toBe('closed');
    const v = cb.acquire();
    v.success(); // resets
    v.failure();
    cb.acquire().failure();
    expect(cb.state).toBe('closed');
    cb.acquire().failure();
    expect(cb.state).toBe('open');
    clock.t += 1000;
    const probe = cb.acquire();
    probe.success();
    probe.failure();
    expect(cb.state).toBe('closed');
  });

  it('a request sent while closed that fails after the circuit opened is ignored; one that succeeds late does not close it', () => {
    const { cb, clock } = setup({ failureThreshold: 2, openMs: 1000 });
    const slowA = cb.acquire();
    const slowB = cb.acquire();
    fail(cb, 2);
    expect(cb.state).toBe('open');
    slowA.failure();
    clock.t += 1000;
    const probe = cb.acquire();
    expect(cb.state).toBe('half_open');
    slowB.success(); // from before the circuit opened: not a probe
    expect(cb.state).toBe('half_open');
    expect(refusal(cb).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    probe.failure();
    expect(cb.state).toBe('open');
  });

  it('late failures of requests sent while closed neither extend the open period nor re-open a half-open circuit', () => {
    const { cb, clock, changes } = setup({ failureThreshold: 2, openMs: 10_000 });
    const stale = Array.from({ length: 4 }, () => cb.acquire());
    fail(cb, 2);
    clock.t += 5000;
    stale[0]?.failure();
    stale[1]?.failure();
    expect(refusal(cb).extensions.retry_after_seconds).toBe(5);
    clock.t += 5000;
    const probe = cb.acquire();
    stale[2]?.failure();
    stale[3]?.failure();
    expect(cb.state).toBe('half_open');
    probe.success();
    expect(cb.state).toBe('closed');
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('a probe that is never settled gives its slot back after openMs', () => {
    const { cb, clock } = setup({ failureThreshold: 1, openMs: 2000 });
    fail(cb, 1);
    clock.t += 2000;
    const lost = cb.acquire();
    clock.t += 1999;
    expect(refusal(cb).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    clock.t += 1;
    const next = cb.acquire();
    lost.release(); // late: must not free the new probe's slot
    expect(refusal(cb).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
    next.success();
    expect(cb.state).toBe('closed');
  });

  it('the onChange sequence, and a throwing listener does not disturb the breaker', () => {
    const { cb, clock, changes } = setup({ failureThreshold: 1, openMs: 10 });
    fail(cb, 1);
    clock.t += 10;
    cb.acquire().success();
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
    cb.onChange = () => {
      throw new Error('metrics down');
    };
    expect(() => fail(cb, 1)).not.toThrow();
    expect(cb.state).toBe('open');
  });

  it('refuses nonsensical options', () => {
    expect(() => new CircuitBreaker('x', { failureThreshold: 0 })).toThrow(RangeError);
    expect(() => new CircuitBreaker('x', { failureThreshold: 1.5 })).toThrow(RangeError);
    expect(() => new CircuitBreaker('x', { halfOpenProbes: 0 })).toThrow(RangeError);
    expect(() => new CircuitBreaker('x', { openMs: -1 })).toThrow(RangeError);
    expect(() => new CircuitBreaker('x', { openMs: Number.NaN })).toThrow(RangeError);
  });

  it('never lets more than halfOpenProbes probes out at once, and never lets anything through while open (model check)', () => {
    type Op = { kind: 'acquire' } | { kind: 'settle'; pick: number; outcome: 'success' | 'failure' | 'release' } | { kind: 'tick'; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ kind: 'acquire' as const }),
      fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), outcome: fc.constantFrom('success' as const, 'failure' as const, 'release' as const) }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 1500 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(op, { maxLength: 80 }), (threshold, probes, ops) => {
        const { cb, clock } = setup({ failureThreshold: threshold, openMs: 1000, halfOpenProbes: probes });
        const open: Array<{ t: ReturnType<CircuitBreaker['acquire']>; probe: boolean; at: number }> = [];
        let openedAt = -Infinity;
        for (const o of ops) {
          if (o.kind === 'tick') clock.t += o.ms;
          else if (o.kind === 'acquire') {
            const before = cb.state;
            let t;
            try {
              t = cb.acquire();
            } catch (e) {
              expect((e as PalisadeError).code).toBe('PAL_GATEWAY_CIRCUIT_OPEN');
              expect((e as PalisadeError).extensions.retry_after_seconds).toBeGreaterThanOrEqual(1);
              continue;
            }
            if (before === 'open') expect(clock.t - openedAt).toBeGreaterThanOrEqual(1000);
            const probe = cb.state === 'half_open';
            open.push({ t, probe, at: clock.t });
            if (probe) {
              const live = open.filter((x) => x.probe && clock.t - x.at < 1000).length;
              expect(live).toBeLessThanOrEqual(probes);
            }
          } else if (open.length > 0) {
            const [x] = open.splice(o.pick % open.length, 1);
            const before = cb.state;
            x?.t[o.outcome]();
            if (before !== 'open' && cb.state === 'open') openedAt = clock.t;
          }
          if (cb.state !== 'half_open') for (const x of open) x.probe = false;
        }
      }),
      { numRuns: 500 },
    );
  });
});
