import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isPalisadeError } from '@palisade/core';
import { getFreePort, requireService } from '@palisade/testkit';
import {
  MemorySlidingWindowLimiter,
  RedisSlidingWindowLimiter,
  rateLimitHeaders,
  windowsFor,
  type LimitOutcome,
  type SlidingWindowLimiter,
  type WindowSpec,
} from './rate-limit.js';

const redisUrl = inject('redisUrl');
if (!redisUrl) requireService('redis', 'gateway rate limits across nodes');

// Every test freezes its own clock: nothing here waits on real time, and no assertion is about speed.
const T0 = 1_800_000_000_000;

// One prefix for this run's Redis keys (deleted in afterAll), and request ids unique within the run.
const PREFIX = `palisade:rl:test:${randomUUID()}:`;
let seq = 0;
const rid = (): string => `req-${++seq}`;
let keySeq = 0;
const freshKey = (what: string): string => `${what}:${++keySeq}`;

const opened: SlidingWindowLimiter[] = [];
function track<T extends SlidingWindowLimiter>(l: T): T {
  opened.push(l);
  return l;
}

afterAll(async () => {
  await Promise.allSettled(opened.map((l) => l.close()));
  if (!redisUrl) return;
  const admin = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await admin.quit();
  }
});

interface Impl {
  name: string;
  available: boolean;
  /**
   * Two gateway nodes that share their counts: for memory one instance (a single node is the only place its counts
   * live); for Redis two limiters on two connections, as two processes would have.
   */
  nodes(): { a: SlidingWindowLimiter; b: SlidingWindowLimiter };
}

const IMPLS: Impl[] = [
  {
    name: 'memory',
    available: true,
    nodes: () => {
      const l = track(new MemorySlidingWindowLimiter());
      return { a: l, b: l };
    },
  },
  {
    name: 'redis',
    available: redisUrl !== null,
    nodes: () => ({ a: track(new RedisSlidingWindowLimiter(redisUrl!, { prefix: PREFIX })), b: track(new RedisSlidingWindowLimiter(redisUrl!, { prefix: PREFIX })) }),
  },
];

/** Checks `n` requests at once (not awaiting one before sending the next), alternating between the given nodes. */
async function burst(nodes: readonly SlidingWindowLimiter[], windows: readonly WindowSpec[], now: number, n: number): Promise<LimitOutcome[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => nodes[i % nodes.length]!.check(windows, now, rid())));
}

const allowedCount = (outcomes: readonly LimitOutcome[]): number => outcomes.filter((o) => o.allowed).length;

/** Asserts that no span of `windowMs` (half-open, as the limiter counts) holds more than `limit` of the sorted `times`. */
function expectAtMost(times: readonly number[], limit: number, windowMs: number): void {
  for (let i = 0; i + limit < times.length; i++) {
    if (times[i + limit]! - times[i]! < windowMs) {
      expect.fail(`${limit + 1} requests allowed within ${windowMs} ms: from ${times[i]! - T0} to ${times[i + limit]! - T0} (ms after T0)`);
    }
  }
}

describe.each(IMPLS)('sliding-window rate limits ($name)', ({ available, nodes }) => {
  describe.skipIf(!available)('', () => {
    let a: SlidingWindowLimiter;
    beforeAll(() => {
      a = nodes().a;
    });

    it('frozen clock: exactly `limit` are allowed, the next is refused for the whole window', async () => {
      const w: WindowSpec = { policy: 'client', key: freshKey('client:usr_1'), limit: 10, windowMs: 60_000 };
      for (let i = 0; i < 10; i++) {
        const o = await a.check([w], T0, rid());
        expect(o).toEqual({ allowed: true, retryAfterMs: 0, exceeded: [], windows: [{ policy: 'client', limit: 10, windowMs: 60_000, remaining: 9 - i, resetMs: 60_000 }] });
      }
      const refused = await a.check([w], T0, rid());
      expect(refused).toEqual({ allowed: false, retryAfterMs: 60_000, exceeded: ['client'], windows: [{ policy: 'client', limit: 10, windowMs: 60_000, remaining: 0, resetMs: 60_000 }] });
      expect(rateLimitHeaders(refused)).toEqual({ 'ratelimit-policy': '"client";q=10;w=60', ratelimit: '"client";r=0;t=60', 'retry-after': '60' });

      const almost = await a.check([w], T0 + 59_999, rid());
      expect(almost.allowed).toBe(false);
      expect(almost.retryAfterMs).toBe(1);
      // all ten were at T0, so at T0 + window they have all left: (now − window, now] no longer holds T0
      const after = await burst([a], [w], T0 + 60_000, 12);
      expect(allowedCount(after)).toBe(10);
    });

    it('slides: only the requests that left the window free their slots (not a fixed window)', async () => {
      const w: WindowSpec = { policy: 'client', key: freshKey('client:usr_2'), limit: 10, windowMs: 1000 };
      for (let i = 0; i < 10; i++) expect((await a.check([w], T0 + 100 * i, rid())).allowed).toBe(true); // spread over the window

      const before = await a.check([w], T0 + 999, rid());
      expect(before).toMatchObject({ allowed: false, retryAfterMs: 1 });

      // at T0 + 1000 only the request of T0 has left: one slot, where a fixed window would have reset all ten
      expect((await a.check([w], T0 + 1000, rid())).allowed).toBe(true);
      const second = await a.check([w], T0 + 1000, rid());
      expect(second).toMatchObject({ allowed: false, retryAfterMs: 100 }); // the next oldest, T0 + 100, leaves at T0 + 1100
      expect((await a.check([w], T0 + 1050, rid())).retryAfterMs).toBe(50);

      const at1100 = await burst([a], [w], T0 + 1100, 5);
      expect(allowedCount(at1100)).toBe(1);

      // now T0+200 … T0+900, T0+1000, T0+1100 are counted
      expect(await a.check([w], T0 + 1150, rid())).toMatchObject({ allowed: false, retryAfterMs: 50 });
      expect(await a.check([w], T0 + 1200, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 0, resetMs: 100 }] }); // T0+300 leaves next
      // with room left, resetMs is when the oldest counted request leaves: (T0+650, T0+1650] holds 700 … 1200, six
      expect(await a.check([w], T0 + 1650, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 3, resetMs: 50 }] });
    });

    it('a refused request is recorded in no window, and windows are all-or-nothing', async () => {
      const key = freshKey('client:usr_3');
      const long: WindowSpec = { policy: 'client', key, limit: 20, windowMs: 60_000 };
      const short: WindowSpec = { policy: 'client-burst', key, limit: 5, windowMs: 1000 };
      const ws = [long, short];

      const first = await burst([a], ws, T0, 8);
      expect(allowedCount(first)).toBe(5);
      const refusedByBurst = await a.check(ws, T0, rid());
      expect(refusedByBurst).toEqual({
        allowed: false,
        retryAfterMs: 1000,
        exceeded: ['client-burst'],
        windows: [
          { policy: 'client', limit: 20, windowMs: 60_000, remaining: 15, resetMs: 60_000 }, // 5 counted, not 9
          { policy: 'client-burst', limit: 5, windowMs: 1000, remaining: 0, resetMs: 1000 },
        ],
      });

      expect(allowedCount(await burst([a], ws, T0 + 1000, 8))).toBe(5);
      expect(allowedCount(await burst([a], ws, T0 + 2000, 8))).toBe(5);
      expect(allowedCount(await burst([a], ws, T0 + 3000, 5))).toBe(5); // the long window is now full: 20

      // both full: wait for the later of the two
      const both = await a.check(ws, T0 + 3000, rid());
      expect(both).toMatchObject({ allowed: false, exceeded: ['client', 'client-burst'], retryAfterMs: 57_000 });

      // the long window refuses while the burst window has room: nothing is recorded in the burst window either
      for (let i = 0; i < 3; i++) {
        const o = await a.check(ws, T0 + 4000, rid());
        expect(o).toEqual({
          allowed: false,
          retryAfterMs: 56_000,
          exceeded: ['client'],
          windows: [
            { policy: 'client', limit: 20, windowMs: 60_000, remaining: 0, resetMs: 56_000 },
            { policy: 'client-burst', limit: 5, windowMs: 1000, remaining: 5, resetMs: 0 },
          ],
        });
      }
      // once the first five leave the long window, five fit again: the refusals above consumed nothing
      expect(allowedCount(await burst([a], ws, T0 + 60_000, 8))).toBe(5);
    });

    it('two limits on the same key and window count one log, in which a request is recorded once', async () => {
      const key = freshKey('endpoint:/auth/*:usr_4');
      const ws: WindowSpec[] = [
        { policy: 'endpoint:/auth/*', key, limit: 5, windowMs: 10_000 },
        { policy: 'strict', key, limit: 3, windowMs: 10_000 },
      ];
      expect(allowedCount(await burst([a], ws, T0, 6))).toBe(3);
      const o = await a.check(ws, T0, rid());
      expect(o.windows.map((w) => w.remaining)).toEqual([2, 0]);
      expect(o.exceeded).toEqual(['strict']);
    });

    it('the seed limit 60/min burst 10: 10 at once, 10 more every 10 s, never over 60 a minute (3 minutes of attempts every 100 ms)', async () => {
      const ws = windowsFor('client', freshKey('client:usr_5'), { requests: 60, per_ms: 60_000, burst: 10 });
      expect(allowedCount(await burst([a], ws, T0, 15))).toBe(10);
      const times = Array.from({ length: 10 }, () => T0);
      for (let t = T0 + 100; t < T0 + 180_000; t += 100) {
        const o = await a.check(ws, t, rid());
        if (o.allowed) times.push(t);
        else expect(o.exceeded.length).toBeGreaterThan(0);
      }
      expect(times.filter((t) => t > T0 && t < T0 + 10_000)).toEqual([]);
      expect(times.filter((t) => t >= T0 + 10_000 && t < T0 + 20_000)).toHaveLength(10);
      expectAtMost(times, 10, 10_000);
      expectAtMost(times, 60, 60_000);
      expect(times).toHaveLength(180); // 10 per 10 s is also 60 per minute: both limits are reached, neither exceeded
    });

    it('the seed limit global 1000/s burst 100: 100 per 100 ms, 1000 per second', async () => {
      const ws = windowsFor('global', freshKey('global'), { requests: 1000, per_ms: 1000, burst: 100 });
      expect(ws.map((w) => [w.policy, w.limit, w.windowMs])).toEqual([
        ['global', 1000, 1000],
        ['global-burst', 100, 100],
      ]);
      const { a: n1, b: n2 } = nodes();
      const times: number[] = [];
      for (let t = T0; t < T0 + 3000; t += 50) {
        const outcomes = await burst([n1, n2], ws, t, 120);
        for (const o of outcomes) if (o.allowed) times.push(t);
        const expected = (t - T0) % 100 === 0 ? 100 : 0;
        expect(allowedCount(outcomes)).toBe(expected);
      }
      expectAtMost(times, 100, 100);
      expectAtMost(times, 1000, 1000);
      expect(times).toHaveLength(3000);
    });

    it('exact across nodes: 400 concurrent checks split between two nodes, limit 50 → exactly 50 allowed', async () => {
      const { a: n1, b: n2 } = nodes();
      const w: WindowSpec = { policy: 'client', key: freshKey('client:usr_6'), limit: 50, windowMs: 60_000 };
      const outcomes = await burst([n1, n2], [w], T0, 400);
      expect(allowedCount(outcomes)).toBe(50);
      // each allowed request saw a distinct number of remaining slots: 49 … 0
      expect(outcomes.filter((o) => o.allowed).map((o) => o.windows[0]!.remaining).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(outcomes.filter((o) => !o.allowed).every((o) => o.retryAfterMs === 60_000 && o.exceeded[0] === 'client')).toBe(true);
      expect((await n2.check([w], T0 + 1, rid())).allowed).toBe(false);
      expect((await n1.check([w], T0 + 60_000, rid())).allowed).toBe(true);
    });

    it('no windows: allowed, no headers', async () => {
      const o = await a.check([], T0, rid());
      expect(o).toEqual({ allowed: true, retryAfterMs: 0, windows: [], exceeded: [] });
      expect(rateLimitHeaders(o)).toEqual({});
    });

    it('many windows in one check (beyond the pairwise grouping): shared logs still count a request once', async () => {
      const base = freshKey('client:usr_many');
      // 12 logs (6 keys × 2 lengths), each named by two windows with different limits: 24 windows
      const ws: WindowSpec[] = [];
      for (let k = 0; k < 6; k++) {
        for (const windowMs of [1000, 60_000]) {
          ws.push({ policy: `p${k}-${windowMs}`, key: `${base}:${k}`, limit: 10 + k, windowMs });
          ws.push({ policy: `q${k}-${windowMs}`, key: `${base}:${k}`, limit: 20, windowMs });
        }
      }
      ws.push(ws.shift()!); // the first log is named first and last
      expect(allowedCount(await burst([a], ws, T0, 12))).toBe(10); // the smallest limit is 10 (key 0)
      const o = await a.check(ws, T0, rid());
      expect(o.allowed).toBe(false);
      expect(o.windows.map((w) => w.remaining)).toEqual(ws.map((w) => w.limit - 10));
      expect(o.exceeded).toEqual(['p0-60000', 'p0-1000']);
      expect(o.retryAfterMs).toBe(60_000);
    });

    it('rejects invalid windows with RangeError, before counting anything', async () => {
      const key = freshKey('client:usr_7');
      const ok: WindowSpec = { policy: 'client', key, limit: 1, windowMs: 1000 };
      for (const bad of [
        { ...ok, limit: 0 },
        { ...ok, limit: 1.5 },
        { ...ok, limit: Number.NaN },
        { ...ok, windowMs: 0 },
        { ...ok, windowMs: -1000 },
        { ...ok, windowMs: 0.5 },
      ]) {
        await expect(a.check([ok, bad], T0, rid())).rejects.toBeInstanceOf(RangeError);
      }
      await expect(a.check([ok], Number.NaN, rid())).rejects.toBeInstanceOf(RangeError);
      await expect(a.check([ok], T0, '')).rejects.toBeInstanceOf(RangeError);
      expect((await a.check([ok], T0, rid())).allowed).toBe(true); // the rejected calls recorded nothing
    });
  });
});

describe.skipIf(!redisUrl)('Redis specifics', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(redisUrl!);
  });
  afterAll(async () => {
    await admin.quit();
  });

  it('keys carry the prefix and expire with their window', async () => {
    const l = track(new RedisSlidingWindowLimiter(redisUrl!, { prefix: PREFIX }));
    const key = freshKey('client:usr_8');
    await l.check(windowsFor('client', key, { requests: 60, per_ms: 60_000, burst: 10 }), T0, rid());
    const long = `${PREFIX}${key}:w60000`;
    const short = `${PREFIX}${key}:w10000`;
    expect(await admin.zrange(long, '0', '-1', 'WITHSCORES')).toEqual([`req-${seq}`, String(T0)]);
    expect(await admin.zcard(short)).toBe(1);
    const [pttlLong, pttlShort] = await Promise.all([admin.pttl(long), admin.pttl(short)]);
    expect(pttlLong).toBeGreaterThan(0);
    expect(pttlLong).toBeLessThanOrEqual(60_000);
    expect(pttlShort).toBeGreaterThan(0);
    expect(pttlShort).toBeLessThanOrEqual(10_000);
  });

  it('falls back to EVAL when Redis has forgotten the script (NOSCRIPT)', async () => {
    const l = track(new RedisSlidingWindowLimiter(redisUrl!, { prefix: PREFIX }));
    const w: WindowSpec = { policy: 'client', key: freshKey('client:usr_9'), limit: 2, windowMs: 1000 };
    expect((await l.check([w], T0, rid())).allowed).toBe(true);
    await admin.script('FLUSH');
    expect((await l.check([w], T0, rid())).allowed).toBe(true);
    expect((await l.check([w], T0, rid())).allowed).toBe(false);
  });

  it('a caller-owned connection is left open by close()', async () => {
    const client = new Redis(redisUrl!);
    try {
      const l = new RedisSlidingWindowLimiter(client, { prefix: PREFIX });
      expect((await l.check([{ policy: 'p', key: freshKey('owned'), limit: 1, windowMs: 1000 }], T0, rid())).allowed).toBe(true);
      await l.close();
      expect(await client.ping()).toBe('PONG');
    } finally {
      await client.quit();
    }
  });
});

describe('Redis unreachable', () => {
  it('fails with PAL_UNAVAILABLE instead of hanging', async () => {
    const port = await getFreePort(); // nothing listens there
    const l = new RedisSlidingWindowLimiter(`redis://127.0.0.1:${port}`, { prefix: PREFIX });
    try {
      const e: unknown = await l.check([{ policy: 'client', key: 'client:usr_10', limit: 5, windowMs: 1000 }], T0, rid()).then(
        () => null,
        (err: unknown) => err,
      );
      expect(isPalisadeError(e) && e.code).toBe('PAL_UNAVAILABLE');
      expect((e as Error).message).toBe('the rate limiter (Redis) is unavailable');
      expect((e as Error).cause).toBeInstanceOf(Error);
    } finally {
      await l.close();
    }
  });
});

describe('memory limiter specifics', () => {
  it('two in-process limiters are two nodes that count alone (the reason for Redis)', async () => {
    const n1 = track(new MemorySlidingWindowLimiter());
    const n2 = track(new MemorySlidingWindowLimiter());
    const w: WindowSpec = { policy: 'client', key: 'client:usr_11', limit: 50, windowMs: 60_000 };
    expect(allowedCount(await burst([n1, n2], [w], T0, 400))).toBe(100);
  });

  it('drops logs whose newest entry has left the window, before any live one', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 2 }));
    const short: WindowSpec = { policy: 'p', key: 'short', limit: 5, windowMs: 1000 };
    const long: WindowSpec = { policy: 'p', key: 'long', limit: 5, windowMs: 60_000 };
    await l.check([short], T0, rid());
    await l.check([long], T0, rid());
    await l.check([{ ...long, key: 'third' }], T0 + 2000, rid()); // `short` expired at T0 + 1000
    expect(l.size).toBe(2);
    expect((await l.check([long], T0 + 2000, rid())).windows[0]!.remaining).toBe(3); // still counts the first
  });

  it('when maxKeys live logs exist, drops the least recently used (which can only under-count)', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 2 }));
    const w = (key: string): WindowSpec => ({ policy: 'p', key, limit: 5, windowMs: 60_000 });
    await l.check([w('a')], T0, rid());
    await l.check([w('b')], T0, rid());
    await l.check([w('a')], T0 + 1, rid()); // a is now the most recently used
    await l.check([w('c')], T0 + 2, rid()); // b goes
    expect(l.size).toBe(2);
    expect((await l.check([w('a')], T0 + 3, rid())).windows[0]!.remaining).toBe(2); // a kept its two
    expect((await l.check([w('b')], T0 + 4, rid())).windows[0]!.remaining).toBe(4); // b starts afresh
  });

  it('keeps at most `limit` times per log', async () => {
    const l = track(new MemorySlidingWindowLimiter());
    const w: WindowSpec = { policy: 'p', key: 'k', limit: 3, windowMs: 1000 };
    expect(allowedCount(await burst([l], [w], T0, 1000))).toBe(3);
    expect(allowedCount(await burst([l], [w], T0 + 1000, 1000))).toBe(3);
    expect(l.size).toBe(1);
  });

  it('drops from the front of a log exactly, on either side of its compaction (dead prefix at, then past, half)', async () => {
    const l = track(new MemorySlidingWindowLimiter());
    const w: WindowSpec = { policy: 'p', key: 'front', limit: 4, windowMs: 10 };
    for (let i = 0; i < 4; i++) expect((await l.check([w], T0 + i, rid())).allowed).toBe(true); // T0 … T0+3
    // at T0+11, T0 and T0+1 have left: two of four gone (exactly half)
    expect(await l.check([w], T0 + 11, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 1, resetMs: 1 }] }); // T0+2 leaves at T0+12
    expect(await l.check([w], T0 + 11, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 0, resetMs: 1 }] });
    expect(await l.check([w], T0 + 11, rid())).toMatchObject({ allowed: false, retryAfterMs: 1 });
    // at T0+13, T0+2 and T0+3 leave too: T0+11 ×2 remain
    expect(await l.check([w], T0 + 13, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 1, resetMs: 8 }] });
    expect(await l.check([w], T0 + 14, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 0, resetMs: 7 }] });
    expect(await l.check([w], T0 + 20, rid())).toMatchObject({ allowed: false, retryAfterMs: 1, windows: [{ remaining: 0, resetMs: 1 }] });
    // at T0+21 the two of T0+11 leave (half again): T0+13, T0+14, T0+21
    expect(await l.check([w], T0 + 21, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 1, resetMs: 2 }] });
    // a clock that went back to T0+5 (before the two that left) records its request first among the live ones
    expect(await l.check([w], T0 + 5, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 0, resetMs: 10 }] });
    // at T0+22 that request of T0+5 has left (past half): T0+13, T0+14, T0+21, and this one
    expect(await l.check([w], T0 + 22, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 0, resetMs: 1 }] });
    expect(await l.check([w], T0 + 22, rid())).toMatchObject({ allowed: false, retryAfterMs: 1 });
    // everything leaves at once, then the log starts again
    expect(await l.check([w], T0 + 1000, rid())).toMatchObject({ allowed: true, windows: [{ remaining: 3, resetMs: 10 }] });
    expect(l.size).toBe(1);
  });

  it('stays exact through many trims of long logs (matches a plain sliding log, step by step)', async () => {
    const l = track(new MemorySlidingWindowLimiter());
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 48_271) % 2_147_483_647; // Park–Miller: deterministic, the same steps on every run
      return Math.floor((seed / 2_147_483_647) * n);
    };
    // the reference: per log, the times of the allowed requests still in its window (a plain array, trimmed naively)
    const reference = new Map<string, number[]>();
    const live = (w: WindowSpec, now: number): number[] => {
      const id = `${w.key}:w${w.windowMs}`;
      const times = reference.get(id) ?? [];
      reference.set(id, times);
      while (times.length > 0 && times[0]! <= now - w.windowMs) times.shift();
      return times;
    };
    const refusedBy = new Set<string>();
    let now = T0;
    for (let step = 0; step < 8000; step++) {
      const r = random(1000);
      now += r < 1 ? 1500 : r < 10 ? 60 : r < 60 ? 4 : r < 400 ? 1 : 0; // bursts, a trickle, and rare pauses that empty every log
      const client = `c${random(3)}`;
      const ws: WindowSpec[] = [];
      if (random(4) > 0) ws.push({ policy: 'global', key: 'g', limit: 150, windowMs: 1000 }, { policy: 'global-burst', key: 'g', limit: 40, windowMs: 100 });
      if (random(4) > 0) ws.push({ policy: 'client', key: client, limit: 60, windowMs: 1000 });
      if (random(2) > 0) ws.push({ policy: 'client-strict', key: client, limit: 45, windowMs: 1000 }); // the same log as "client"
      if (random(2) > 0) ws.push({ policy: 'endpoint', key: `e:${client}`, limit: 4, windowMs: 37 });
      if (ws.length === 0) continue;

      const fits = ws.every((w) => live(w, now).length < w.limit);
      const o = await l.check(ws, now, rid());
      expect(o.allowed).toBe(fits);
      if (fits) for (const times of new Set(ws.map((w) => live(w, now)))) times.push(now);
      const expected = ws.map((w) => {
        const times = live(w, now);
        const resetMs = times.length >= w.limit ? times[times.length - w.limit]! + w.windowMs - now : times.length > 0 ? times[0]! + w.windowMs - now : 0;
        return { policy: w.policy, limit: w.limit, windowMs: w.windowMs, remaining: Math.max(0, w.limit - times.length), resetMs };
      });
      expect(o.windows).toEqual(expected);
      const full = fits ? [] : expected.filter((e) => e.remaining === 0);
      expect(o.exceeded).toEqual(full.map((e) => e.policy));
      expect(o.retryAfterMs).toBe(fits ? 0 : Math.max(1, ...full.map((e) => e.resetMs)));
      for (const e of full) refusedBy.add(e.policy);
    }
    expect([...refusedBy].sort()).toEqual(['client', 'client-strict', 'endpoint', 'global', 'global-burst']); // every window was filled
  });

  it('evicts by use order whether a log was trimmed or not, and a key keeps its other window lengths', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 3 }));
    const long: WindowSpec = { policy: 'c', key: 'k', limit: 5, windowMs: 60_000 };
    const short: WindowSpec = { policy: 'c-burst', key: 'k', limit: 4, windowMs: 10 };
    for (let i = 0; i < 4; i++) expect((await l.check([long, short], T0 + i, rid())).allowed).toBe(true);
    // at T0+12 three of the short log's four have left (trimmed, past half), one is still live
    expect((await l.check([long, short], T0 + 12, rid())).windows.map((w) => w.remaining)).toEqual([0, 2]);
    await l.check([{ ...long, key: 'x' }], T0 + 13, rid()); // three logs: k (long), k (short), x
    await l.check([short], T0 + 14, rid()); // the short log is the most recently used; k's long log the least
    await l.check([{ ...long, key: 'y' }], T0 + 15, rid()); // no log has expired: k's long log goes
    expect(l.size).toBe(3);
    expect((await l.check([short], T0 + 16, rid())).windows[0]).toMatchObject({ remaining: 1, resetMs: 6 }); // kept: 12, 12, 14, 16
    expect((await l.check([long], T0 + 17, rid())).windows[0]!.remaining).toBe(4); // afresh (x goes to make room)
    expect(l.size).toBe(3);
    // k's two logs and y: y goes, then k's short log (now the least recently used) when another key comes
    await l.check([{ ...long, key: 'z' }], T0 + 18, rid());
    await l.check([long], T0 + 19, rid());
    await l.check([{ ...long, key: 'w' }], T0 + 20, rid());
    expect(l.size).toBe(3);
    expect((await l.check([long], T0 + 21, rid())).windows[0]!.remaining).toBe(2); // k's long log kept its three
    expect((await l.check([long, short], T0 + 22, rid())).windows.map((w) => w.remaining)).toEqual([1, 3]); // the short one is new
  });

  it('sweeps a log that emptied after trims, and its key keeps its other log', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 3 }));
    const long: WindowSpec = { policy: 'c', key: 'k', limit: 50, windowMs: 60_000 };
    const short: WindowSpec = { policy: 'c-burst', key: 'k', limit: 50, windowMs: 10 };
    for (let t = T0; t < T0 + 40; t++) await l.check([long, short], t, rid()); // the short log is trimmed on each
    await l.check([{ ...long, key: 'x' }], T0 + 100, rid());
    await l.check([{ ...long, key: 'y' }], T0 + 100, rid()); // room is made by sweeping the short log (expired), not evicting
    expect(l.size).toBe(3);
    expect((await l.check([long, short], T0 + 101, rid())).windows.map((w) => w.remaining)).toEqual([9, 49]);
  });

  it('drops expired logs as it goes, without waiting for maxKeys', async () => {
    const l = track(new MemorySlidingWindowLimiter());
    await l.check([{ policy: 'p', key: 'short', limit: 5, windowMs: 1000 }], T0, rid());
    await l.check([{ policy: 'p', key: 'long', limit: 5, windowMs: 60_000 }], T0, rid());
    expect(l.size).toBe(2);
    await l.check([{ policy: 'p', key: 'other', limit: 5, windowMs: 60_000 }], T0 + 1000, rid()); // `short` has expired
    expect(l.size).toBe(2);
  });

  it('never evicts a log of the check in progress, even past maxKeys', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 1 }));
    const w = (key: string): WindowSpec => ({ policy: 'p', key, limit: 5, windowMs: 60_000 });
    await l.check([w('a')], T0, rid());
    await l.check([w('a'), w('b')], T0 + 1, rid()); // a exists, b is new: nothing else to drop
    expect(l.size).toBe(2);
    expect((await l.check([w('a'), w('b'), w('c')], T0 + 2, rid())).windows.map((x) => x.remaining)).toEqual([2, 3, 4]);
    expect(l.size).toBe(3);
    // past maxKeys, each new log makes room for itself alone: a (least recently used) goes, b and c stay
    expect((await l.check([w('d')], T0 + 3, rid())).windows[0]!.remaining).toBe(4);
    expect(l.size).toBe(3);
    expect((await l.check([w('b'), w('c'), w('a')], T0 + 4, rid())).windows.map((x) => x.remaining)).toEqual([2, 3, 4]); // a afresh; d goes
    expect(l.size).toBe(3);
  });

  it('a key with several window lengths loses only the evicted one', async () => {
    const l = track(new MemorySlidingWindowLimiter({ maxKeys: 4 }));
    const w = (windowMs: number): WindowSpec => ({ policy: `p${windowMs}`, key: 'k', limit: 5, windowMs });
    await l.check([w(60_000), w(120_000), w(180_000)], T0, rid());
    await l.check([w(60_000), w(180_000)], T0 + 1, rid()); // the 120 s log is the least recently used
    await l.check([{ policy: 'q', key: 'x', limit: 5, windowMs: 60_000 }], T0 + 2, rid());
    await l.check([{ policy: 'q', key: 'y', limit: 5, windowMs: 60_000 }], T0 + 3, rid()); // the 120 s log goes
    expect(l.size).toBe(4);
    expect((await l.check([w(60_000), w(120_000), w(180_000)], T0 + 4, rid())).windows.map((x) => x.remaining)).toEqual([2, 4, 2]);
  });

  it('rejects maxKeys < 1', () => {
    expect(() => new MemorySlidingWindowLimiter({ maxKeys: 0 })).toThrow(RangeError);
  });
});

describe('windowsFor', () => {
  it('a rate with a burst is two windows; the burst window is burst × (period / rate)', () => {
    expect(windowsFor('client', 'client:usr_123', { requests: 60, per_ms: 60_000, burst: 10 })).toEqual([
      { policy: 'client', key: 'client:usr_123', limit: 60, windowMs: 60_000 },
      { policy: 'client-burst', key: 'client:usr_123', limit: 10, windowMs: 10_000 },
    ]);
  });

  it('no burst, or a burst the rate already implies, is one window', () => {
    expect(windowsFor('global', 'global', { requests: 1000, per_ms: 1000 })).toEqual([{ policy: 'global', key: 'global', limit: 1000, windowMs: 1000 }]);
    expect(windowsFor('global', 'global', { requests: 60, per_ms: 60_000, burst: 60 })).toHaveLength(1);
    expect(windowsFor('global', 'global', { requests: 60, per_ms: 60_000, burst: 100 })).toHaveLength(1);
  });

  it('rounds a fractional burst window up to a whole millisecond', () => {
    expect(windowsFor('c', 'k', { requests: 7, per_ms: 60_000, burst: 2 })[1]!.windowMs).toBe(17_143); // 17142.86
    expect(windowsFor('c', 'k', { requests: 1_000_000, per_ms: 1000, burst: 1 })[1]!.windowMs).toBe(1);
  });

  it('rejects rates that are not positive integers', () => {
    expect(() => windowsFor('c', 'k', { requests: 0, per_ms: 1000 })).toThrow(RangeError);
    expect(() => windowsFor('c', 'k', { requests: 1.5, per_ms: 1000 })).toThrow(RangeError);
    expect(() => windowsFor('c', 'k', { requests: 10, per_ms: 0 })).toThrow(RangeError);
    expect(() => windowsFor('c', 'k', { requests: 10, per_ms: 1000, burst: 0 })).toThrow(RangeError);
    expect(() => windowsFor('c', 'k', { requests: 10, per_ms: 1000, burst: 2.5 })).toThrow(RangeError);
  });
});

describe('rateLimitHeaders (draft-ietf-httpapi-ratelimit-headers-11)', () => {
  const client = { policy: 'client', limit: 60, windowMs: 60_000 };
  const clientBurst = { policy: 'client-burst', limit: 10, windowMs: 10_000 };

  it('allowed: every policy, the window with the least remaining, no Retry-After', () => {
    const h = rateLimitHeaders({
      allowed: true,
      retryAfterMs: 0,
      exceeded: [],
      windows: [
        { ...client, remaining: 59, resetMs: 60_000 },
        { ...clientBurst, remaining: 9, resetMs: 10_000 },
      ],
    });
    expect(h).toEqual({ 'ratelimit-policy': '"client";q=60;w=60, "client-burst";q=10;w=10', ratelimit: '"client-burst";r=9;t=10' });
  });

  it('refused: the exhausted window with the longest reset, and Retry-After in whole seconds rounded up', () => {
    const h = rateLimitHeaders({
      allowed: false,
      retryAfterMs: 11_001,
      exceeded: ['client', 'client-burst'],
      windows: [
        { ...clientBurst, remaining: 0, resetMs: 4_500 },
        { ...client, remaining: 0, resetMs: 11_001 },
      ],
    });
    expect(h.ratelimit).toBe('"client";r=0;t=12');
    expect(h['retry-after']).toBe('12');
  });

  it('Retry-After is at least 1', () => {
    const refused = (retryAfterMs: number): LimitOutcome => ({ allowed: false, retryAfterMs, exceeded: ['client'], windows: [{ ...client, remaining: 0, resetMs: retryAfterMs }] });
    expect(rateLimitHeaders(refused(1))['retry-after']).toBe('1');
    expect(rateLimitHeaders(refused(0))['retry-after']).toBe('1');
    expect(rateLimitHeaders(refused(1000))['retry-after']).toBe('1');
    expect(rateLimitHeaders(refused(1001))['retry-after']).toBe('2');
  });

  it('equal remaining: the longer reset is the more constraining', () => {
    const h = rateLimitHeaders({
      allowed: true,
      retryAfterMs: 0,
      exceeded: [],
      windows: [
        { policy: 'a', limit: 5, windowMs: 1000, remaining: 3, resetMs: 200 },
        { policy: 'b', limit: 50, windowMs: 60_000, remaining: 3, resetMs: 30_500 },
        { policy: 'c', limit: 9, windowMs: 1000, remaining: 3, resetMs: 900 },
      ],
    });
    expect(h.ratelimit).toBe('"b";r=3;t=31');
  });

  it('a window shorter than a second is advertised as w=1 with its exact length as a vendor parameter', () => {
    const ws = windowsFor('global', 'global', { requests: 1000, per_ms: 1000, burst: 100 });
    const h = rateLimitHeaders({ allowed: true, retryAfterMs: 0, exceeded: [], windows: ws.map((w) => ({ policy: w.policy, limit: w.limit, windowMs: w.windowMs, remaining: w.limit - 1, resetMs: w.windowMs })) });
    expect(h['ratelimit-policy']).toBe('"global";q=1000;w=1, "global-burst";q=100;w=1;palisade-window-ms=100');
    expect(h.ratelimit).toBe('"global-burst";r=99;t=1');
  });

  it('the same policy with another quota or window, another order, or a repeated window: each spelled as it is', () => {
    const o = (ws: { policy: string; limit: number; windowMs: number }[]): LimitOutcome => ({ allowed: true, retryAfterMs: 0, exceeded: [], windows: ws.map((w) => ({ ...w, remaining: 1, resetMs: 1000 })) });
    const a = { policy: 'client', limit: 60, windowMs: 60_000 };
    const b = { policy: 'client-burst', limit: 10, windowMs: 10_000 };
    for (let i = 0; i < 2; i++) {
      expect(rateLimitHeaders(o([a, b]))['ratelimit-policy']).toBe('"client";q=60;w=60, "client-burst";q=10;w=10');
      expect(rateLimitHeaders(o([b, a]))['ratelimit-policy']).toBe('"client-burst";q=10;w=10, "client";q=60;w=60');
      expect(rateLimitHeaders(o([a]))['ratelimit-policy']).toBe('"client";q=60;w=60');
      expect(rateLimitHeaders(o([a, b, a, { ...b }]))['ratelimit-policy']).toBe('"client";q=60;w=60, "client-burst";q=10;w=10');
      expect(rateLimitHeaders(o([{ ...a, limit: 61 }, b]))['ratelimit-policy']).toBe('"client";q=61;w=60, "client-burst";q=10;w=10');
      expect(rateLimitHeaders(o([{ ...a, windowMs: 1500 }, b]))['ratelimit-policy']).toBe('"client";q=60;w=2;palisade-window-ms=1500, "client-burst";q=10;w=10');
    }
  });

  it('many distinct policies and windows: every header still right', () => {
    for (let i = 0; i < 3000; i++) {
      const h = rateLimitHeaders({
        allowed: true,
        retryAfterMs: 0,
        exceeded: [],
        windows: [
          { policy: 'global', limit: 1000 + (i % 40), windowMs: 1000, remaining: 5, resetMs: 1000 },
          { policy: `endpoint:/e${i}`, limit: 5, windowMs: 1000 * (1 + (i % 3)), remaining: 1, resetMs: 1000 },
        ],
      });
      expect(h).toEqual({ 'ratelimit-policy': `"global";q=${1000 + (i % 40)};w=1, "endpoint:/e${i}";q=5;w=${1 + (i % 3)}`, ratelimit: `"endpoint:/e${i}";r=1;t=1` });
    }
  });

  it('policy names are valid Structured Field Strings (escaped; no CR/LF or non-ASCII reaches a header)', () => {
    const h = rateLimitHeaders({ allowed: true, retryAfterMs: 0, exceeded: [], windows: [{ policy: 'endpoint:/a"b\\c\r\nX-Evil: 1é', limit: 5, windowMs: 1000, remaining: 4, resetMs: 1000 }] });
    expect(h['ratelimit-policy']).toBe('"endpoint:/a\\"b\\\\c??X-Evil: 1?";q=5;w=1');
    expect(h.ratelimit).toBe('"endpoint:/a\\"b\\\\c??X-Evil: 1?";r=4;t=1');
  });
});
