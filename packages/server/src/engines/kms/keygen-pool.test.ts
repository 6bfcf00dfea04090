import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateRsa4096, KeygenPool, poolSizeFromEnv, rsa4096Pool } from './keygen-pool.js';
import { generateMaterial, privateKeyFrom, publicKeyFrom, signMessage, verifyMessage } from './algorithms.js';

/** A stand-in generator: distinct items, each after a short timer (so a generation is really in flight). */
function counter(ms = 5) {
  let n = 0;
  let inFlight = 0;
  const items: Array<{ id: number; wiped: boolean }> = [];
  const generate = () => {
    inFlight++;
    return new Promise<{ id: number; wiped: boolean }>((resolve) =>
      setTimeout(() => {
        inFlight--;
        const item = { id: ++n, wiped: false };
        items.push(item);
        resolve(item);
      }, ms),
    );
  };
  return { generate, wipe: (x: { id: number; wiped: boolean }) => (x.wiped = true), generated: () => n, inFlight: () => inFlight, items };
}

describe('KeygenPool', () => {
  it('fills to its size, hands each item out once, and refills after every take', async () => {
    const g = counter();
    const pool = new KeygenPool(g.generate, { size: 2, wipe: g.wipe });
    expect(pool.available).toBe(0); // nothing at construction: a process that never takes spends nothing
    await pool.fill();
    expect(pool.available).toBe(2);
    const a = pool.tryTake()!;
    const b = pool.tryTake()!;
    expect(a.id).not.toBe(b.id);
    expect(pool.available).toBe(0);
    await pool.fill(); // the refill started by the takes
    expect(pool.available).toBe(2);
    const seen = new Set([a.id, b.id]);
    for (let i = 0; i < 6; i++) {
      const x = await pool.take();
      expect(seen.has(x.id)).toBe(false);
      seen.add(x.id);
    }
    await pool.stop();
  });

  it('falls back to generating directly when empty, and starts filling at the first take', async () => {
    const g = counter();
    const pool = new KeygenPool(g.generate, { size: 2, wipe: g.wipe });
    expect(pool.tryTake()).toBeNull();
    const direct = await pool.take();
    expect(direct.id).toBeGreaterThan(0);
    await pool.fill();
    expect(pool.available).toBe(2);
    expect(pool.tryTake()!.id).not.toBe(direct.id);
    await pool.stop();
  });

  it('size 0 disables it: every take generates directly and nothing is generated ahead', async () => {
    const g = counter();
    const pool = new KeygenPool(g.generate, { size: 0 });
    await pool.take();
    await pool.take();
    await pool.fill();
    expect(g.generated()).toBe(2);
    expect(pool.available).toBe(0);
  });

  it('survives a failing generator (a miss, then a retry at the next take)', async () => {
    let fail = true;
    const pool = new KeygenPool(async () => {
      if (fail) throw new Error('no entropy today');
      return 1;
    }, { size: 1 });
    await expect(pool.take()).rejects.toThrow('no entropy today'); // the direct generation's error reaches the caller
    await pool.fill();
    expect(pool.available).toBe(0);
    fail = false;
    await pool.fill();
    expect(pool.tryTake()).toBe(1);
    await pool.stop();
  });

  it('stop wipes what it holds and waits for the in-flight generation: nothing is left running', async () => {
    const g = counter(20);
    const pool = new KeygenPool(g.generate, { size: 3, wipe: g.wipe });
    await pool.fill();
    pool.tryTake(); // a refill is now in flight
    expect(g.inFlight()).toBe(1);
    await pool.stop();
    expect(g.inFlight()).toBe(0);
    expect(pool.available).toBe(0);
    expect(g.items.filter((x) => !x.wiped).length).toBe(1); // only the item handed out is left intact
    expect(pool.tryTake()).toBeNull(); // stopped: no refill
    await pool.fill();
    expect(g.generated()).toBe(4);
  });

  it('resize shrinks (wiping the surplus) and grows', async () => {
    const g = counter();
    const pool = new KeygenPool(g.generate, { size: 3, wipe: g.wipe });
    await pool.fill();
    pool.resize(1);
    expect(pool.available).toBe(1);
    expect(g.items.filter((x) => x.wiped).length).toBe(2);
    pool.resize(2);
    await pool.fill();
    expect(pool.available).toBe(2);
    await pool.stop();
  });

  it('PALISADE_RSA_POOL_SIZE: default 2, 0 disables, nonsense falls back to the default', () => {
    expect(poolSizeFromEnv({})).toBe(2);
    expect(poolSizeFromEnv({ PALISADE_RSA_POOL_SIZE: '0' })).toBe(0);
    expect(poolSizeFromEnv({ PALISADE_RSA_POOL_SIZE: '5' })).toBe(5);
    expect(poolSizeFromEnv({ PALISADE_RSA_POOL_SIZE: '-1' })).toBe(2);
    expect(poolSizeFromEnv({ PALISADE_RSA_POOL_SIZE: 'lots' })).toBe(2);
  });

  it('RSA-4096 from the real pool: distinct 4096-bit pairs that sign and verify through generateMaterial', { timeout: 60_000 }, async () => {
    rsa4096Pool.resize(1);
    await rsa4096Pool.fill();
    expect(rsa4096Pool.available).toBe(1);
    const pooled = await generateMaterial('RSA-4096'); // from the pool
    const direct = await generateRsa4096();
    for (const m of [pooled, { secret: direct.privateKey, publicKey: direct.publicKey }]) {
      expect(createPrivateKey({ key: m.secret, format: 'der', type: 'pkcs8' }).asymmetricKeyDetails).toMatchObject({ modulusLength: 4096, publicExponent: 65537n });
      const msg = Buffer.from('pool');
      expect(verifyMessage('RSA-4096', publicKeyFrom(m.publicKey!), msg, signMessage('RSA-4096', privateKeyFrom(m.secret), msg))).toBe(true);
    }
    expect(createPublicKey({ key: pooled.publicKey!, format: 'der', type: 'spki' }).export({ format: 'der', type: 'spki' }).equals(direct.publicKey)).toBe(false);
    await rsa4096Pool.stop(); // the refill behind the take is awaited: nothing left running
    expect(rsa4096Pool.available).toBe(0);
  });
});
