import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DekCache, type DataKey } from './dek-cache.js';

function counter() {
  let calls = 0;
  const fetch = async (): Promise<DataKey> => {
    calls++;
    await new Promise((r) => setTimeout(r, 5));
    return { dek: randomBytes(32), wrapped: { key_id: 'key_x', key_version: 1, algorithm: 'AES-256-GCM', iv: '', tag: '', ciphertext: String(calls) } };
  };
  return { fetch, calls: () => calls };
}

describe('DEK cache (max age, messages, bytes; one fetch for concurrent callers)', () => {
  it('reuses a key up to maxMessages; the next message gets exactly one fresh key', async () => {
    const c = new DekCache({ maxMessages: 3 });
    const k = counter();
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await c.acquire('n', 10, k.fetch)).wrapped.ciphertext);
    expect(ids).toEqual(['1', '1', '1', '2', '2', '2', '3']);
    expect(k.calls()).toBe(3);
  });

  it('concurrent acquires share one fetch (aws-encryption-sdk-javascript#421/#1665), and never overshoot maxMessages', async () => {
    const c = new DekCache({ maxMessages: 10 });
    const k = counter();
    const got = await Promise.all(Array.from({ length: 1000 }, () => c.acquire('n', 1, k.fetch)));
    expect(k.calls()).toBe(100);
    const per = new Map<string, number>();
    for (const g of got) per.set(g.wrapped.ciphertext, (per.get(g.wrapped.ciphertext) ?? 0) + 1);
    expect([...per.values()].every((n) => n === 10)).toBe(true);
    const c2 = new DekCache();
    const k2 = counter();
    await Promise.all(Array.from({ length: 1000 }, () => c2.acquire('n', 1, k2.fetch)));
    expect(k2.calls()).toBe(1);
  });

  it('maxBytes: a message that does not fit takes a fresh key; one larger than the limit gets an uncached key', async () => {
    const c = new DekCache({ maxBytes: 100 });
    const k = counter();
    expect((await c.acquire('n', 60, k.fetch)).wrapped.ciphertext).toBe('1');
    expect((await c.acquire('n', 40, k.fetch)).wrapped.ciphertext).toBe('1'); // exactly at the limit is fine
    expect((await c.acquire('n', 1, k.fetch)).wrapped.ciphertext).toBe('2');
    expect((await c.acquire('n', 101, k.fetch)).wrapped.ciphertext).toBe('3');
    expect((await c.acquire('n', 1, k.fetch)).wrapped.ciphertext).toBe('2');
  });

  it('maxAge: an old key encrypts nothing new; names are separate entries', async () => {
    let t = 0;
    const c = new DekCache({ maxAgeMs: 1000 }, () => t);
    const k = counter();
    await c.acquire('a', 1, k.fetch);
    t = 999;
    expect((await c.acquire('a', 1, k.fetch)).wrapped.ciphertext).toBe('1');
    expect((await c.acquire('b', 1, k.fetch)).wrapped.ciphertext).toBe('2');
    t = 1000;
    expect((await c.acquire('a', 1, k.fetch)).wrapped.ciphertext).toBe('3');
    expect(c.stats().encrypt.a).toMatchObject({ messages: 1, bytes: 1 });
  });

  it('accept: a cached key it refuses is replaced by one fresh key (even if that one is refused too)', async () => {
    const c = new DekCache();
    const k = counter();
    await c.acquire('n', 1, k.fetch);
    expect((await c.acquire('n', 1, k.fetch, { accept: (x) => x.wrapped.ciphertext === '1' })).wrapped.ciphertext).toBe('1');
    expect((await c.acquire('n', 1, k.fetch, { accept: (x) => x.wrapped.ciphertext !== '1' })).wrapped.ciphertext).toBe('2');
    expect((await c.acquire('n', 1, k.fetch, { accept: () => false })).wrapped.ciphertext).toBe('3');
    expect(k.calls()).toBe(3);
  });

  it('decryption keys: one unwrap for concurrent callers, kept for decryptMaxAgeMs, at most decryptMaxEntries; copies handed out', async () => {
    let t = 0;
    const c = new DekCache({ decryptMaxAgeMs: 1000, decryptMaxEntries: 2 }, () => t);
    let unwraps = 0;
    const dek = randomBytes(32);
    const unwrap = async () => {
      unwraps++;
      await new Promise((r) => setTimeout(r, 5));
      return Buffer.from(dek);
    };
    const got = await Promise.all(Array.from({ length: 500 }, () => c.unwrap('h1', unwrap)));
    expect(unwraps).toBe(1);
    expect(got.every((g) => g.equals(dek))).toBe(true);
    got[0]!.fill(0);
    expect((await c.unwrap('h1', unwrap)).equals(dek)).toBe(true);
    t = 1000;
    await c.unwrap('h1', unwrap);
    expect(unwraps).toBe(2);
    await c.unwrap('h2', unwrap);
    await c.unwrap('h3', unwrap);
    expect(c.stats().decryptEntries).toBe(2);
    await c.unwrap('h1', unwrap); // evicted as least recently used
    expect(unwraps).toBe(5);
    await expect(c.unwrap('h9', async () => Promise.reject(new Error('kms down')))).rejects.toThrow('kms down');
    await c.unwrap('h9', unwrap); // a failure is not cached
  });
});
