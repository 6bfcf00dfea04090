import { describe, expect, it } from 'vitest';
import { DekCache, GCM_RANDOM_IV_LIMIT, type CachedKey } from './dek-cache.js';

/** A cached key for tests: its id, and whether the cache destroyed it. */
class TestKey implements CachedKey {
  destroyed = false;
  constructor(readonly id: string) {}
  destroy(): void {
    this.destroyed = true;
  }
}

function counter() {
  let calls = 0;
  const keys: TestKey[] = [];
  const fetch = async (): Promise<TestKey> => {
    calls++;
    const k = new TestKey(String(calls));
    await new Promise((r) => setTimeout(r, 5));
    keys.push(k);
    return k;
  };
  return { fetch, calls: () => calls, keys };
}
const id = (k: TestKey) => k.id;

describe('DEK cache (max age, messages, bytes; one fetch for concurrent callers)', () => {
  it('reuses a key up to maxMessages; the next message gets exactly one fresh key; the used-up key is destroyed', async () => {
    const c = new DekCache<TestKey>({ maxMessages: 3 });
    const k = counter();
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push(await c.acquire('n', 10, k.fetch, id));
    expect(ids).toEqual(['1', '1', '1', '2', '2', '2', '3']);
    expect(k.calls()).toBe(3);
    expect(k.keys.map((x) => x.destroyed)).toEqual([true, true, false]);
    // take: the synchronous hit, counted like acquire
    expect(c.take('n', 10)?.id).toBe('3');
    expect(c.take('n', 10)?.id).toBe('3');
    expect(c.take('n', 10)).toBeUndefined();
    expect(c.take('other', 10)).toBeUndefined();
  });

  it('concurrent acquires share one fetch (aws-encryption-sdk-javascript#421/#1665), and never overshoot maxMessages', async () => {
    const c = new DekCache<TestKey>({ maxMessages: 10 });
    const k = counter();
    const got = await Promise.all(Array.from({ length: 1000 }, () => c.acquire('n', 1, k.fetch, (key) => (expect(key.destroyed).toBe(false), key.id))));
    expect(k.calls()).toBe(100);
    const per = new Map<string, number>();
    for (const g of got) per.set(g, (per.get(g) ?? 0) + 1);
    expect([...per.values()].every((n) => n === 10)).toBe(true);
    const c2 = new DekCache<TestKey>();
    const k2 = counter();
    await Promise.all(Array.from({ length: 1000 }, () => c2.acquire('n', 1, k2.fetch, id)));
    expect(k2.calls()).toBe(1);
  });

  it('maxBytes: a message that does not fit takes a fresh key; one larger than the limit gets an uncached key, destroyed after use', async () => {
    const c = new DekCache<TestKey>({ maxBytes: 100 });
    const k = counter();
    expect(await c.acquire('n', 60, k.fetch, id)).toBe('1');
    expect(await c.acquire('n', 40, k.fetch, id)).toBe('1'); // exactly at the limit is fine
    expect(await c.acquire('n', 1, k.fetch, id)).toBe('2');
    expect(await c.acquire('n', 101, k.fetch, (key) => (expect(key.destroyed).toBe(false), key.id))).toBe('3');
    expect(k.keys[2]!.destroyed).toBe(true);
    expect(await c.acquire('n', 1, k.fetch, id)).toBe('2');
  });

  it('maxAge: an old key encrypts nothing new; names are separate entries', async () => {
    let t = 0;
    const c = new DekCache<TestKey>({ maxAgeMs: 1000 }, () => t);
    const k = counter();
    await c.acquire('a', 1, k.fetch, id);
    t = 999;
    expect(await c.acquire('a', 1, k.fetch, id)).toBe('1');
    expect(await c.acquire('b', 1, k.fetch, id)).toBe('2');
    t = 1000;
    expect(c.take('a', 1)).toBeUndefined();
    expect(await c.acquire('a', 1, k.fetch, id)).toBe('3');
    expect(c.stats().encrypt.a).toMatchObject({ messages: 1, bytes: 1 });
  });

  it('accept: a cached key it refuses is replaced by one fresh key (even if that one is refused too)', async () => {
    const c = new DekCache<TestKey>();
    const k = counter();
    await c.acquire('n', 1, k.fetch, id);
    expect(await c.acquire('n', 1, k.fetch, id, (x) => x.id === '1')).toBe('1');
    expect(await c.acquire('n', 1, k.fetch, id, (x) => x.id !== '1')).toBe('2');
    expect(await c.acquire('n', 1, k.fetch, id, () => false)).toBe('3');
    expect(k.calls()).toBe(3);
    expect(c.take('n', 1, () => false)).toBeUndefined(); // refused: dropped
    expect(k.keys[2]!.destroyed).toBe(true);
  });

  it('maxMessages may not exceed 2^32 (NIST SP 800-38D: random IVs under one AES-GCM key)', () => {
    expect(GCM_RANDOM_IV_LIMIT).toBe(2 ** 32);
    expect(() => new DekCache({ maxMessages: 2 ** 32 + 1 })).toThrow(/at most 2\^32/);
    expect(() => new DekCache({ maxMessages: Infinity })).toThrow(/at most 2\^32/);
    expect(new DekCache({ maxMessages: 2 ** 32 }).limits.maxMessages).toBe(2 ** 32);
    expect(new DekCache().limits.maxMessages).toBe(1_000_000);
  });

  it('decryption keys: one unwrap for concurrent callers, found by any of their ids, kept for decryptMaxAgeMs, at most decryptMaxEntries', async () => {
    let t = 0;
    const c = new DekCache<TestKey>({ decryptMaxAgeMs: 1000, decryptMaxEntries: 2 }, () => t);
    let unwraps = 0;
    const made: TestKey[] = [];
    const unwrap = async () => {
      unwraps++;
      await new Promise((r) => setTimeout(r, 5));
      const k = new TestKey(`u${unwraps}`);
      made.push(k);
      return k;
    };
    const got = await Promise.all(Array.from({ length: 500 }, () => c.unwrap(['h1', 'j1'], unwrap, id)));
    expect(unwraps).toBe(1);
    expect(new Set(got)).toEqual(new Set(['u1']));
    expect(c.get('h1')?.id).toBe('u1');
    expect(c.get('j1', 1)?.id).toBe('u1');
    expect(c.get('j1')).toBeUndefined(); // ids are per index
    t = 1000;
    expect(c.get('j1', 1)).toBeUndefined(); // too old: dropped, destroyed
    expect(made[0]!.destroyed).toBe(true);
    await c.unwrap(['h1', 'j1'], unwrap, id);
    expect(unwraps).toBe(2);
    await c.unwrap(['h2'], unwrap, id);
    await c.unwrap(['h3'], unwrap, id);
    expect(c.stats().decryptEntries).toBe(2);
    expect(c.get('j1', 1)).toBeUndefined(); // evicted as least recently used, by every id
    expect(await c.unwrap(['h1', 'j1'], unwrap, id)).toBe('u5');
    await expect(c.unwrap(['h9'], async () => Promise.reject(new Error('kms down')), id)).rejects.toThrow('kms down');
    expect(await c.unwrap(['h9'], unwrap, id)).toBe('u6'); // a failure is not cached
    // put: the same key again is kept; another key under the same id replaces (and destroys) the old one
    const k = c.get('h9')!;
    c.put(['h9'], k);
    expect(k.destroyed).toBe(false);
    c.put(['h9'], new TestKey('other'));
    expect(k.destroyed).toBe(true);
    c.clear();
    expect(c.stats()).toEqual({ encrypt: {}, decryptEntries: 0 });
  });

  it('a key dropped between its unwrap and a waiting caller\'s turn is not used: the caller looks again', async () => {
    // Right after 'a' is put (before the caller waiting for it resumes), another key takes the only place: 'a' is dropped and destroyed.
    class Squeezed extends DekCache<TestKey> {
      squeeze = true;
      override put(ids: readonly string[], key: TestKey): void {
        super.put(ids, key);
        if (ids[0] === 'a' && this.squeeze) {
          this.squeeze = false;
          queueMicrotask(() => super.put(['b'], new TestKey('b')));
        }
      }
    }
    const c = new Squeezed({ decryptMaxEntries: 1 });
    const made: TestKey[] = [];
    const unwrap = async () => {
      const k = new TestKey(`u${made.length + 1}`);
      made.push(k);
      return k;
    };
    const seen: boolean[] = [];
    expect(await c.unwrap(['a'], unwrap, (k) => (seen.push(k.destroyed), k.id))).toBe('u2');
    expect(made.map((k) => k.destroyed)).toEqual([true, false]);
    expect(seen).toEqual([false]);
  });
});
