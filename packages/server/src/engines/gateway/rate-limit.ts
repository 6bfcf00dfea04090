// The gateway's rate limits: sliding logs that are exact on one node (memory) and across every node sharing one Redis.
//
// The complaint this answers is Kong#5311: limits that stop being exact once several gateway nodes enforce them. The
// usual causes are counters kept per node or synced asynchronously (N nodes admit up to N × the limit) and a read, then
// a separate write, in the shared store (concurrent requests all read the same count). Here a limit is a sliding LOG,
// not a fixed window and not the approximate "sliding counter". A request is allowed iff, for every window
// it is counted in, fewer than `limit` requests were recorded in (nowMs − windowMs, nowMs]; it is then recorded in
// all of them, and a refused request is recorded in none. With Redis the test-and-record is one Lua script, so two
// nodes racing for the last slot cannot both win.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisConnection } from '../../storage/redis.js';
import { PalisadeError } from '@palisade/core';

/** One window to count a request in: at most `limit` requests in any `windowMs` span (a sliding log, exact). */
export interface WindowSpec {
  /** A short name used in headers, e.g. "global", "global-burst", "client", "client-burst", "endpoint:/auth/*". */
  policy: string;
  /** What is counted, e.g. "global", "client:usr_123", "endpoint:/auth/*:usr_123". */
  key: string;
  /** Integer ≥ 1. */
  limit: number;
  /** Integer ≥ 1. */
  windowMs: number;
}

export interface WindowState {
  policy: string;
  limit: number;
  windowMs: number;
  /** Requests this window would still admit now (after counting this one, when it was allowed). */
  remaining: number;
  /**
   * ms until a slot frees up: 0 when nothing is counted in the window; when remaining > 0, until the oldest counted
   * request leaves the window (another slot comes back then); when remaining = 0, until enough leave for one more
   * request to fit.
   */
  resetMs: number;
}

export interface LimitOutcome {
  allowed: boolean;
  /** ms to wait before a retry could pass every window (0 when allowed). */
  retryAfterMs: number;
  /** One state per window, in the order the windows were given. */
  windows: WindowState[];
  /** The policies of the windows that refused (empty when allowed). */
  exceeded: string[];
}

/**
 * Where requests are counted. Time comes from the caller (`nowMs`, milliseconds since the epoch): the gateway passes
 * its clock (tests freeze it). With several nodes the nodes are expected to be NTP-synced; a node whose clock runs
 * behind the others sees their newest requests as not yet past, and counts them (it never under-counts by skew).
 */
export interface SlidingWindowLimiter {
  /**
   * Atomically: if every window has room at `nowMs`, record the request (id `requestId`, must be unique) in all of them
   * and allow; else record it in none and refuse. Throws RangeError for an invalid window, and PAL_UNAVAILABLE when
   * the store cannot answer (the gateway decides whether to fail closed).
   */
  check(windows: readonly WindowSpec[], nowMs: number, requestId: string): Promise<LimitOutcome>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------------
// Shared by both implementations

/**
 * The log a window counts in. Windows of the same key but different lengths are separate logs (so `windowsFor`'s
 * "client" and "client-burst" windows may share the key `client:usr_123`); windows of the same key and length share
 * one log, which a request is recorded in once. (`:w` then digits ends every id, so an id names one key × length.)
 */
function logId(key: string, windowMs: number): string {
  return `${key}:w${windowMs}`;
}

function validate(windows: readonly WindowSpec[], nowMs: number, requestId: string): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new RangeError(`rate limit: nowMs must be a non-negative integer of milliseconds (got ${nowMs})`);
  if (typeof requestId !== 'string' || requestId.length === 0) throw new RangeError('rate limit: requestId must be a non-empty string');
  for (const w of windows) {
    if (!Number.isSafeInteger(w.limit) || w.limit < 1) throw new RangeError(`rate limit window "${w.policy}": limit must be an integer ≥ 1 (got ${w.limit})`);
    if (!Number.isSafeInteger(w.windowMs) || w.windowMs < 1) throw new RangeError(`rate limit window "${w.policy}": windowMs must be an integer ≥ 1 (got ${w.windowMs})`);
    if (typeof w.key !== 'string') throw new RangeError(`rate limit window "${w.policy}": key must be a string`);
  }
}

/** What the decision left in one log: how many requests it counts, and its oldest entries' times, oldest first. */
interface LogView {
  count: number;
  /** From `times[start]` on: at least the oldest max(1, count − (smallest limit on this log) + 1) times (all is fine). */
  times: readonly number[];
  start: number;
}

/** One log of a check: a key × window length, and the smallest limit checked against it. */
interface LogGroup {
  key: string;
  windowMs: number;
  minLimit: number;
}

/** Beyond this many windows, grouping goes through a Map rather than comparing every pair. */
const PAIRWISE_GROUPING_MAX = 16;

/** The logs of a check, in order of first appearance; `of[i]` is the index of window i's log. */
function groupLogs(windows: readonly WindowSpec[], of: number[]): LogGroup[] {
  const groups: LogGroup[] = [];
  const byId = windows.length > PAIRWISE_GROUPING_MAX ? new Map<string, number>() : null;
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i]!;
    let j: number;
    if (byId) {
      const id = logId(w.key, w.windowMs);
      j = byId.get(id) ?? groups.length;
      if (j === groups.length) byId.set(id, j);
    } else {
      j = 0;
      while (j < groups.length && (groups[j]!.windowMs !== w.windowMs || groups[j]!.key !== w.key)) j++;
    }
    if (j === groups.length) groups.push({ key: w.key, windowMs: w.windowMs, minLimit: w.limit });
    else if (w.limit < groups[j]!.minLimit) groups[j]!.minLimit = w.limit;
    of[i] = j;
  }
  return groups;
}

/** The outcome, from each log's state after the decision (the new request included when allowed). */
function outcomeOf(windows: readonly WindowSpec[], of: readonly number[], views: readonly LogView[], allowed: boolean, nowMs: number): LimitOutcome {
  const states: WindowState[] = [];
  const exceeded: string[] = [];
  let retryAfterMs = 0;
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i]!;
    const { count, times, start } = views[of[i]!]!;
    let resetMs = 0;
    if (count >= w.limit) {
      // the (count − limit + 1)-th oldest must leave before one more fits
      resetMs = times[start + count - w.limit]! + w.windowMs - nowMs;
    } else if (count > 0) {
      resetMs = times[start]! + w.windowMs - nowMs;
    }
    resetMs = Math.max(0, resetMs);
    states.push({ policy: w.policy, limit: w.limit, windowMs: w.windowMs, remaining: Math.max(0, w.limit - count), resetMs });
    if (!allowed && count >= w.limit) {
      if (!exceeded.includes(w.policy)) exceeded.push(w.policy);
      retryAfterMs = Math.max(retryAfterMs, resetMs);
    }
  }
  return { allowed, retryAfterMs: allowed ? 0 : Math.max(1, retryAfterMs), windows: states, exceeded };
}

const allowedEmpty = (): LimitOutcome => ({ allowed: true, retryAfterMs: 0, windows: [], exceeded: [] });

// ---------------------------------------------------------------------------------------------------------------------
// One node, in process

export interface MemorySlidingWindowLimiterOptions {
  /** Most logs (key × window length) held at once (default 100,000). */
  maxKeys?: number;
}

/** Index of the first element of sorted `a[from…]` greater than `x` (`a.length` when there is none). */
function upperBound(a: readonly number[], from: number, x: number): number {
  let lo = from;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface MemoryLog {
  key: string;
  windowMs: number;
  /**
   * Times of the counted requests, sorted, from `times[head]` on; the `head` entries before it have left the window
   * and are dropped in bulk once they outnumber the live ones (so dropping from the front is amortised O(1), not a
   * move of every live entry on every check). Live entries never outnumber the largest limit checked against the log,
   * so the array holds at most about twice that.
   */
  times: number[];
  head: number;
  /** The check that last looked this log up (a log of the check in progress is never swept or evicted). */
  mark: number;
  /** The next log of the same key (another window length), or null. */
  sibling: MemoryLog | null;
  /** Neighbours in use order (`older` is null for the least recently used). */
  older: MemoryLog | null;
  newer: MemoryLog | null;
}

const NO_TIMES: readonly number[] = [];

/**
 * The embedded default: one process's logs (key × window → sorted times), exact for a single node. Each log is
 * trimmed when touched and counts at most `limit` times (refused requests are not recorded), so memory is O(limit)
 * per live key. Logs whose newest entry has left their window are dropped as the limiter goes; when `maxKeys` live
 * logs exist, the least recently used one is dropped. Eviction can only under-count (a dropped client starts afresh)
 * and only on this node. Behind a load balancer every node counts alone, so N nodes admit up to N × the limit: use
 * RedisSlidingWindowLimiter, the exact multi-node form.
 */
export class MemorySlidingWindowLimiter implements SlidingWindowLimiter {
  /** key → its first log; the key's other window lengths follow through `sibling`. */
  readonly #byKey = new Map<string, MemoryLog>();
  /** Least and most recently used ends of the use-order list through every log. */
  #oldest: MemoryLog | null = null;
  #newest: MemoryLog | null = null;
  #size = 0;
  #checks = 0;
  readonly #maxKeys: number;

  constructor(opts: MemorySlidingWindowLimiterOptions = {}) {
    this.#maxKeys = opts.maxKeys ?? 100_000;
    if (!Number.isSafeInteger(this.#maxKeys) || this.#maxKeys < 1) throw new RangeError('MemorySlidingWindowLimiter: maxKeys must be a positive integer');
  }

  /** Live logs held (for tests and metrics). */
  get size(): number {
    return this.#size;
  }

  // Synchronous from start to end, so it is atomic with respect to every other check in this process.
  async check(windows: readonly WindowSpec[], nowMs: number, requestId: string): Promise<LimitOutcome> {
    validate(windows, nowMs, requestId);
    if (windows.length === 0) return allowedEmpty();
    const of: number[] = [];
    const groups = groupLogs(windows, of);
    const mark = ++this.#checks;
    const logs: (MemoryLog | null)[] = [];
    for (const g of groups) {
      const log = this.#find(g.key, g.windowMs);
      if (log) log.mark = mark;
      logs.push(log);
    }
    this.#sweep(nowMs, mark, 8);

    let allowed = true;
    for (let j = 0; j < groups.length; j++) {
      const log = logs[j];
      if (!log) continue;
      const cut = upperBound(log.times, log.head, nowMs - log.windowMs);
      if (cut > log.head) {
        if (cut === log.times.length) {
          log.times.length = 0;
          log.head = 0;
        } else if (cut * 2 > log.times.length) {
          log.times.splice(0, cut); // more dead than live: moving the live ones costs less than the drops it settles
          log.head = 0;
        } else {
          log.head = cut;
        }
      }
      this.#touch(log);
      if (log.times.length - log.head >= groups[j]!.minLimit) allowed = false;
    }

    const views: LogView[] = [];
    for (let j = 0; j < groups.length; j++) {
      let log = logs[j];
      if (allowed) {
        if (!log) {
          if (this.#size >= this.#maxKeys) this.#makeRoom(nowMs, mark);
          log = this.#add(groups[j]!.key, groups[j]!.windowMs, mark);
        }
        const t = log.times;
        if (t.length === log.head || t[t.length - 1]! <= nowMs) t.push(nowMs);
        else t.splice(upperBound(t, log.head, nowMs), 0, nowMs); // a caller whose clock went back
      }
      views.push(log ? { count: log.times.length - log.head, times: log.times, start: log.head } : { count: 0, times: NO_TIMES, start: 0 });
    }
    return outcomeOf(windows, of, views, allowed, nowMs);
  }

  #find(key: string, windowMs: number): MemoryLog | null {
    let log = this.#byKey.get(key) ?? null;
    while (log && log.windowMs !== windowMs) log = log.sibling;
    return log;
  }

  /** A new, empty log, the most recently used. */
  #add(key: string, windowMs: number, mark: number): MemoryLog {
    const first = this.#byKey.get(key) ?? null;
    const log: MemoryLog = { key, windowMs, times: [], head: 0, mark, sibling: first, older: this.#newest, newer: null };
    this.#byKey.set(key, log);
    if (this.#newest) this.#newest.newer = log;
    else this.#oldest = log;
    this.#newest = log;
    this.#size++;
    return log;
  }

  /** Makes `log` the most recently used. */
  #touch(log: MemoryLog): void {
    if (log === this.#newest) return;
    // unlink (it has a newer neighbour, since it is not the newest)
    log.newer!.older = log.older;
    if (log.older) log.older.newer = log.newer;
    else this.#oldest = log.newer;
    // append
    log.older = this.#newest;
    log.newer = null;
    this.#newest!.newer = log;
    this.#newest = log;
  }

  #delete(log: MemoryLog): void {
    if (log.older) log.older.newer = log.newer;
    else this.#oldest = log.newer;
    if (log.newer) log.newer.older = log.older;
    else this.#newest = log.older;
    log.older = log.newer = null;
    const first = this.#byKey.get(log.key)!;
    if (first === log) {
      if (log.sibling) this.#byKey.set(log.key, log.sibling);
      else this.#byKey.delete(log.key);
    } else {
      let prev = first;
      while (prev.sibling !== log) prev = prev.sibling!;
      prev.sibling = log.sibling;
    }
    log.sibling = null;
    this.#size--;
  }

  /** Drops logs whose newest entry has left their window, looking at no more than `budget` of the least recently used. */
  #sweep(nowMs: number, keep: number, budget: number): void {
    let looked = 0;
    for (let log = this.#oldest; log; ) {
      const next = log.newer;
      if (looked++ >= budget) return;
      if (log.mark !== keep) {
        const t = log.times;
        if (t.length === log.head || t[t.length - 1]! <= nowMs - log.windowMs) this.#delete(log);
      }
      log = next;
    }
  }

  /** Frees one place: an expired log if one is found, else the least recently used (never one of this check). */
  #makeRoom(nowMs: number, keep: number): void {
    this.#sweep(nowMs, keep, 64);
    if (this.#size < this.#maxKeys) return;
    for (let log = this.#oldest; log; log = log.newer) {
      if (log.mark === keep) continue;
      this.#delete(log);
      return;
    }
  }

  async close(): Promise<void> {
    this.#byKey.clear();
    this.#oldest = this.#newest = null;
    this.#size = 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Every node, one Redis

// KEYS[i]: one sliding log, a sorted set (score = the request's time in ms, member = its id).
// ARGV[1]: now; ARGV[2]: the request id; then for key i: ARGV[3i] = now − window (entries at or before it have left),
// ARGV[3i+1] = the window in ms, ARGV[3i+2] = the smallest limit checked against this log.
// Replies { allowed (1|0), then per key: its count after the decision, its oldest max(1, count − limit + 1) entries
// WITHSCORES }. Numbers that can be large (times) travel as strings, never through Lua's number formatting.
const CHECK_SCRIPT = `
local ok = true
local counts = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[3 * i])
  local c = redis.call('ZCARD', KEYS[i])
  counts[i] = c
  if c >= tonumber(ARGV[3 * i + 2]) then ok = false end
end
if ok then
  for i = 1, #KEYS do
    counts[i] = counts[i] + redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
    redis.call('PEXPIRE', KEYS[i], ARGV[3 * i + 1])
  end
end
local reply = { ok and 1 or 0 }
for i = 1, #KEYS do
  local stop = counts[i] - tonumber(ARGV[3 * i + 2])
  if stop < 0 then stop = 0 end
  reply[#reply + 1] = counts[i]
  reply[#reply + 1] = redis.call('ZRANGE', KEYS[i], 0, stop, 'WITHSCORES')
end
return reply
`;
const CHECK_SHA = createHash('sha1').update(CHECK_SCRIPT).digest('hex');

export interface RedisSlidingWindowLimiterOptions {
  /** Prepended to every key (default `palisade:rl:`). */
  prefix?: string;
}

/**
 * Sliding logs in Redis sorted sets, shared by every node: exact across nodes, because one Lua script trims every log
 * of the check (ZREMRANGEBYSCORE), counts them (ZCARD) and, only if all have room, records the request in each
 * (ZADD now requestId, PEXPIRE window), and Redis runs a script with nothing interleaved. Sent as EVALSHA, falling back
 * to EVAL when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH). A window's log is the sorted set
 * `<prefix><key>:w<windowMs>`, which expires `windowMs` after its newest request.
 *
 * All the keys of one check are sent to one Redis: a single server or a primary with replicas, not Redis Cluster, whose
 * multi-key scripts need every key in one hash slot (which keys of different clients are not).
 *
 * Either a URL (this limiter owns the connection) or an ioredis client (the caller owns it; close() leaves it open).
 * A Redis failure is PAL_UNAVAILABLE; the gateway decides whether to fail closed.
 */
export class RedisSlidingWindowLimiter implements SlidingWindowLimiter {
  readonly #conn: RedisConnection;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: string | Redis, opts: RedisSlidingWindowLimiterOptions = {}) {
    this.#prefix = opts.prefix ?? 'palisade:rl:';
    this.#conn = new RedisConnection(redis);
    this.#redis = this.#conn.redis;
  }

  async check(windows: readonly WindowSpec[], nowMs: number, requestId: string): Promise<LimitOutcome> {
    validate(windows, nowMs, requestId);
    if (windows.length === 0) return allowedEmpty();
    const of: number[] = [];
    const groups = groupLogs(windows, of);
    const keys = groups.map((g) => this.#prefix + logId(g.key, g.windowMs));
    const args: string[] = [String(nowMs), requestId];
    for (const g of groups) args.push(String(nowMs - g.windowMs), String(g.windowMs), String(g.minLimit));

    let reply: unknown;
    try {
      try {
        reply = await this.#redis.evalsha(CHECK_SHA, keys.length, ...keys, ...args);
      } catch (e) {
        if (!(e instanceof Error && e.message.includes('NOSCRIPT'))) throw e;
        reply = await this.#redis.eval(CHECK_SCRIPT, keys.length, ...keys, ...args);
      }
    } catch (e) {
      throw new PalisadeError('PAL_UNAVAILABLE', 'the rate limiter (Redis) is unavailable', { cause: e });
    }

    if (!Array.isArray(reply) || reply.length !== 1 + 2 * groups.length) {
      throw new PalisadeError('PAL_UNAVAILABLE', 'the rate limiter (Redis) is unavailable', { cause: new Error('unexpected reply from the rate limit script') });
    }
    const views: LogView[] = [];
    for (let i = 0; i < groups.length; i++) {
      const count = Number(reply[1 + 2 * i]);
      const range = reply[2 + 2 * i] as unknown[];
      const oldest: number[] = [];
      for (let j = 1; j < range.length; j += 2) oldest.push(Number(range[j])); // [member, score, member, score, ...]
      views.push({ count, times: oldest, start: 0 });
    }
    return outcomeOf(windows, of, views, reply[0] === 1, nowMs);
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// From the seed's rates to windows, and from outcomes to headers

/**
 * A rate as the seed writes it → windows: {rate: 60, per: 'minute', burst: 10} (here `{ requests: 60, per_ms: 60_000,
 * burst: 10 }`) gives [{limit 60, windowMs 60000}, {limit 10, windowMs 10000}]: the burst window is burst × (period /
 * rate), so "60/min burst 10" allows at most 10 in any 10 s and 60 in any minute. The burst window is named
 * `<policy>-burst` and counts the same key (windows of different lengths are separate logs). Its length is rounded up
 * to a whole millisecond (never looser than asked). No burst, or a burst ≥ the rate (which the long window already
 * implies), → one window.
 */
export function windowsFor(policy: string, key: string, rate: { requests: number; per_ms: number; burst?: number }): WindowSpec[] {
  const { requests, per_ms: perMs, burst } = rate;
  if (!Number.isSafeInteger(requests) || requests < 1) throw new RangeError(`rate limit "${policy}": requests must be an integer ≥ 1 (got ${requests})`);
  if (!Number.isSafeInteger(perMs) || perMs < 1) throw new RangeError(`rate limit "${policy}": per_ms must be an integer ≥ 1 (got ${perMs})`);
  if (burst !== undefined && (!Number.isSafeInteger(burst) || burst < 1)) throw new RangeError(`rate limit "${policy}": burst must be an integer ≥ 1 (got ${burst})`);
  const main: WindowSpec = { policy, key, limit: requests, windowMs: perMs };
  if (burst === undefined || burst >= requests) return [main];
  return [main, { policy: `${policy}-burst`, key, limit: burst, windowMs: Math.max(1, Math.ceil((burst * perMs) / requests)) }];
}

/** A Structured Field String (RFC 9651 §3.3.3): printable ASCII only, `"` and `\` escaped; anything else becomes `?`. */
function sfString(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const seconds = (ms: number): number => Math.ceil(ms / 1000);

/**
 * A policy name's header forms, cached: the gateway sends the same few policies (and the same windows) on every
 * request, so escaping them and spelling out their RateLimit-Policy items again each time is wasted work. The cache is
 * keyed by value (the gateway builds new window objects per request) and bounded, since the function is public.
 */
interface PolicyForms {
  /** The name as a Structured Field String. */
  sf: string;
  /** RateLimit-Policy items of this policy, by quota and window length. */
  items: { limit: number; windowMs: number; item: string }[];
}
const policyForms = new Map<string, PolicyForms>();
const MAX_CACHED_POLICIES = 1024;
const MAX_CACHED_ITEMS_PER_POLICY = 16;

function formsOf(policy: string): PolicyForms {
  let f = policyForms.get(policy);
  if (!f) {
    if (policyForms.size >= MAX_CACHED_POLICIES) policyForms.clear();
    f = { sf: sfString(policy), items: [] };
    policyForms.set(policy, f);
  }
  return f;
}

/** One window's RateLimit-Policy item: `"<policy>";q=<limit>;w=<whole seconds, ≥ 1>[;palisade-window-ms=<ms>]`. */
function policyItem(w: WindowState): string {
  const f = formsOf(w.policy);
  for (const c of f.items) if (c.limit === w.limit && c.windowMs === w.windowMs) return c.item;
  let item = `${f.sf};q=${w.limit};w=${Math.max(1, seconds(w.windowMs))}`;
  if (w.windowMs % 1000 !== 0) item += `;palisade-window-ms=${w.windowMs}`;
  if (f.items.length >= MAX_CACHED_ITEMS_PER_POLICY) f.items.length = 0;
  f.items.push({ limit: w.limit, windowMs: w.windowMs, item });
  return item;
}

/**
 * Whole RateLimit-Policy values by their items (the same item is always the same string, from policyItem): first
 * item → the lists of items starting with it, compared item by item, and their joined value.
 */
const policyHeaders = new Map<string, { items: string[]; value: string }[]>();
const MAX_CACHED_POLICY_HEADERS = 1024;
const MAX_CACHED_HEADERS_PER_FIRST_ITEM = 16;

function policyHeader(items: readonly string[]): string {
  let list = policyHeaders.get(items[0]!);
  if (list) {
    for (const c of list) {
      if (c.items.length !== items.length) continue;
      let same = true;
      for (let i = 1; i < items.length && same; i++) same = c.items[i] === items[i];
      if (same) return c.value;
    }
  } else {
    if (policyHeaders.size >= MAX_CACHED_POLICY_HEADERS) policyHeaders.clear();
    list = [];
    policyHeaders.set(items[0]!, list);
  }
  const value = items.join(', ');
  if (list.length >= MAX_CACHED_HEADERS_PER_FIRST_ITEM) list.length = 0;
  list.push({ items: items.slice(), value });
  return value;
}

/**
 * Response headers for an outcome, in the Structured Field form of draft-ietf-httpapi-ratelimit-headers-11:
 *
 *   RateLimit-Policy: "client";q=60;w=60, "client-burst";q=10;w=10     every window (quota, window in seconds)
 *   RateLimit: "client-burst";r=0;t=7                                   the most constraining window
 *   Retry-After: 7                                                      only when refused
 *
 * `w` is whole seconds (the draft has no sub-second windows), rounded up, which never advertises more than the limit
 * allows; a window that is not whole seconds also carries its exact length as `palisade-window-ms` (a vendor-prefixed
 * parameter, which the draft allows). RateLimit names the window with the lowest remaining quota, then the longest
 * reset; `t` is its reset in seconds, rounded up. Retry-After is retryAfterMs in whole seconds, rounded up, at least 1,
 * so it never points earlier than the end of the effective window (as the draft asks). No windows → no headers. Names
 * are lower-case, as Node sends them.
 */
export function rateLimitHeaders(outcome: LimitOutcome): Record<string, string> {
  const headers: Record<string, string> = {};
  if (outcome.windows.length > 0) {
    const items: string[] = [];
    for (const w of outcome.windows) {
      const item = policyItem(w);
      if (!items.includes(item)) items.push(item);
    }
    headers['ratelimit-policy'] = policyHeader(items);
    let tightest = outcome.windows[0]!;
    for (const w of outcome.windows) {
      if (w.remaining < tightest.remaining || (w.remaining === tightest.remaining && w.resetMs > tightest.resetMs)) tightest = w;
    }
    headers.ratelimit = `${formsOf(tightest.policy).sf};r=${tightest.remaining};t=${seconds(tightest.resetMs)}`;
  }
  if (!outcome.allowed) headers['retry-after'] = String(Math.max(1, seconds(outcome.retryAfterMs)));
  return headers;
}
