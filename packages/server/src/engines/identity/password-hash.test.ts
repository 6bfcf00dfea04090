import { describe, expect, it } from 'vitest';
import { hashPassword, needsRehash, PASSWORD_HASH_PARAMS, verifyDummy, verifyPassword } from './password-hash.js';

const PASSWORD = 'correct horse battery staple';

describe('password hashing (Argon2id)', () => {
  it('round-trips, and refuses a wrong password', async () => {
    const phc = await hashPassword(PASSWORD);
    expect(await verifyPassword(phc, PASSWORD)).toBe(true);
    expect(await verifyPassword(phc, 'correct horse battery stapler')).toBe(false);
    expect(await verifyPassword(phc, '')).toBe(false);
  });

  it('makes an argon2id PHC string with the OWASP parameters, 16-byte salt and 32-byte tag, salted per hash', async () => {
    const phc = await hashPassword(PASSWORD);
    const m = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$/.exec(phc);
    expect(m, phc).not.toBeNull();
    expect(Buffer.from(m![1]!, 'base64')).toHaveLength(16);
    expect(Buffer.from(m![2]!, 'base64')).toHaveLength(32);
    expect(PASSWORD_HASH_PARAMS).toMatchObject({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
    expect(await hashPassword(PASSWORD)).not.toBe(phc);
  });

  it('normalises to NFKC: a decomposed accent verifies against the composed one', async () => {
    const composed = 'caf\u00e9 au lait, s\u2019il vous pla\u00eet';
    const decomposed = composed.normalize('NFD');
    expect(decomposed).not.toBe(composed);
    expect(await verifyPassword(await hashPassword(composed), decomposed)).toBe(true);
  });

  it('answers false, without throwing, for a malformed or foreign hash', async () => {
    const phc = await hashPassword(PASSWORD);
    for (const bad of [
      '',
      'not a hash',
      '$2b$12$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz12', // bcrypt
      phc.slice(0, -5),
      phc.replace('$argon2id$', '$argon2xx$'),
      phc.replace('m=19456', 'm=abc'),
      `${phc}$extra`,
      '$argon2id$v=19$m=0,t=0,p=0$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      await expect(verifyPassword(bad, PASSWORD), bad).resolves.toBe(false);
    }
    await expect(verifyPassword(undefined as unknown as string, PASSWORD)).resolves.toBe(false);
  });

  it('verifyDummy answers false for any password, after real Argon2id work', async () => {
    expect(await verifyDummy(PASSWORD)).toBe(false);
    expect(await verifyDummy('')).toBe(false);
    // Same order of time as a real verify (the dummy hash exists after the first call). Best of three each, and a wide
    // margin, so a loaded machine does not make this flaky: the point is that real Argon2id work is done.
    const phc = await hashPassword(PASSWORD);
    const best = async (f: () => Promise<unknown>) => {
      let min = Infinity;
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await f();
        min = Math.min(min, performance.now() - t);
      }
      return min;
    };
    const real = await best(() => verifyPassword(phc, 'wrong password here'));
    const dummy = await best(() => verifyDummy('wrong password here'));
    expect(dummy).toBeGreaterThan(real / 4);
    expect(await best(() => verifyPassword('', 'wrong password here'))).toBeGreaterThan(real / 4);
  });

  it('needsRehash: false for current hashes, true for weaker or unreadable ones', async () => {
    const phc = await hashPassword(PASSWORD);
    expect(needsRehash(phc)).toBe(false);
    expect(needsRehash(phc.replace('m=19456', 'm=65536'))).toBe(false); // stronger is fine
    expect(needsRehash(phc.replace('m=19456', 'm=4096'))).toBe(true);
    expect(needsRehash(phc.replace('t=2', 't=1'))).toBe(true);
    expect(needsRehash(phc.replace('$argon2id$', '$argon2i$'))).toBe(true);
    expect(needsRehash(phc.replace('v=19', 'v=16'))).toBe(true);
    expect(needsRehash(phc.replace(/\$[^$]+\$([^$]+)$/, '$AAAAAAAA$$1'))).toBe(true); // 6-byte salt
    expect(needsRehash('$2b$12$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz12')).toBe(true);
    expect(needsRehash('')).toBe(true);
  });
});
