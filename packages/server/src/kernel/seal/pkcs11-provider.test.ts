import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, type PalisadeError } from '@palisade/core';
import { requireService, startSoftHsm, useSoftHsmEnv, type SoftHsmHandle } from '@palisade/testkit';
import { openPkcs11Provider, type Pkcs11Config } from './pkcs11-provider.js';
import type { ProviderObserver } from './provider.js';

const P = pkcs11js;
const WRONG_PIN = '97531864';

/** Resolves with the rejection (fails the test if the promise resolves). */
async function rejection(p: Promise<unknown>): Promise<PalisadeError> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(r, 'expected a rejection').toBeInstanceOf(Error);
  return r as PalisadeError;
}

function recorder(): { observe: ProviderObserver; events: string[] } {
  const events: string[] = [];
  return { events, observe: (op, status, seconds) => (expect(seconds).toBeGreaterThanOrEqual(0), events.push(`${op}:${status}`)) };
}

/** A raw pkcs11js session on `label`, next to whatever the provider holds (shares the module initialisation). */
function rawSession<T>(hsm: SoftHsmHandle, label: string, fn: (lib: pkcs11js.PKCS11, s: Buffer, slot: Buffer) => T): T {
  const lib = new P.PKCS11();
  lib.load(hsm.module);
  let owns = true;
  try {
    lib.C_Initialize();
  } catch (e) {
    if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test((e as Error).message)) throw e;
    owns = false;
  }
  try {
    const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trimEnd() === label)!;
    const s = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    try {
      lib.C_Login(s, P.CKU_USER, hsm.pin);
    } catch (e) {
      if (!/CKR_USER_ALREADY_LOGGED_IN/.test((e as Error).message)) throw e;
    }
    try {
      return fn(lib, s, slot);
    } finally {
      lib.C_CloseSession(s);
    }
  } finally {
    if (owns) lib.C_Finalize();
    lib.close();
  }
}

const softhsm = requireService('softhsm2', 'pkcs11 seal provider');
describe.skipIf(!softhsm.available)('pkcs11 seal provider (SoftHSM2)', () => {
  let hsm: SoftHsmHandle;
  let restoreEnv: () => void;
  let cfg: Pkcs11Config;

  beforeAll(async () => {
    hsm = await startSoftHsm({ label: 'palisade-test' });
    hsm.initToken('doomed'); // every token must exist before the first C_Initialize
    restoreEnv = useSoftHsmEnv(hsm);
    cfg = { module: hsm.module, token: hsm.label, pin: hsm.pin };
  });
  afterAll(async () => {
    restoreEnv?.();
    await hsm?.stop();
  });

  it('generates the root key on first open and finds it afterwards; two providers share the module', async () => {
    const rec = recorder();
    const first = await openPkcs11Provider(cfg, { observe: rec.observe });
    expect(first.created).toBe(true);
    expect(first.provider.name).toBe('pkcs11');
    expect(rec.events).toEqual(['login:success', 'generate:success']);

    const second = await openPkcs11Provider(cfg);
    expect(second.created).toBe(false);
    const wrapped = await first.provider.wrap(Buffer.alloc(32, 1));
    await first.provider.close();
    // closing one provider must not finalize the module or log out the other
    expect(await second.provider.unwrap(wrapped)).toEqual(Buffer.alloc(32, 1));
    await second.provider.close();

    const third = await openPkcs11Provider(cfg);
    expect(third.created).toBe(false);
    expect(await third.provider.unwrap(wrapped)).toEqual(Buffer.alloc(32, 1));
    await third.provider.close();
  });

  it('wraps and unwraps 16..64 bytes; the blob is versioned and does not contain the material', async () => {
    const rec = recorder();
    const { provider } = await openPkcs11Provider(cfg, { observe: rec.observe });
    try {
      for (const n of [16, 17, 20, 24, 31, 32, 33, 48, 63, 64]) {
        const material = randomBytes(n);
        const wrapped = await provider.wrap(material);
        expect(wrapped[0]).toBe(0x01);
        expect(wrapped.length).toBe(1 + Math.ceil((n + 1) / 8) * 8 + 8);
        expect(wrapped.equals(material)).toBe(false);
        expect(wrapped.includes(material)).toBe(false);
        expect(wrapped.includes(material.subarray(0, 8))).toBe(false);
        expect(await provider.unwrap(wrapped)).toEqual(material);
      }
      expect(rec.events.filter((e) => e === 'wrap:success')).toHaveLength(10);
      expect(rec.events.filter((e) => e === 'unwrap:success')).toHaveLength(10);

      for (const n of [0, 15, 65]) {
        expect((await rejection(provider.wrap(Buffer.alloc(n)))).code).toBe('PAL_INTERNAL');
      }
      // concurrent callers are serialised on the one session
      const many = Array.from({ length: 25 }, () => randomBytes(32));
      const blobs = await Promise.all(many.map((m) => provider.wrap(m)));
      expect(await Promise.all(blobs.map((b) => provider.unwrap(b)))).toEqual(many);
    } finally {
      await provider.close();
    }
  });

  it('a flipped bit, a truncated blob or an unknown version is PAL_SEAL_CORRUPT, and the session survives', async () => {
    const rec = recorder();
    const { provider } = await openPkcs11Provider(cfg, { observe: rec.observe });
    try {
      const wrapped = await provider.wrap(randomBytes(32));
      for (const i of [1, 8, 20, wrapped.length - 1]) {
        const bad = Buffer.from(wrapped);
        bad[i]! ^= 0x01;
        const e = await rejection(provider.unwrap(bad));
        expect(e.code, `bit flipped at byte ${i}`).toBe('PAL_SEAL_CORRUPT');
      }
      const version = Buffer.from(wrapped);
      version[0] = 0x02;
      expect((await rejection(provider.unwrap(version))).message).toMatch(/unknown format version/);
      for (const bad of [wrapped.subarray(0, wrapped.length - 8), wrapped.subarray(0, 20), Buffer.alloc(0), Buffer.concat([wrapped, Buffer.alloc(8)])]) {
        expect((await rejection(provider.unwrap(bad))).code).toBe('PAL_SEAL_CORRUPT');
      }
      expect(rec.events).toContain('unwrap:failure');
      await provider.check();
      expect(await provider.unwrap(wrapped)).toHaveLength(32);
    } finally {
      await provider.close();
    }
  });

  it('the root key is sensitive and never extractable: it cannot be wrapped, read, or used to encrypt', async () => {
    const { provider } = await openPkcs11Provider(cfg);
    try {
      rawSession(hsm, hsm.label, (lib, s) => {
        lib.C_FindObjectsInit(s, [{ type: P.CKA_LABEL, value: 'palisade-root' }]);
        const found = lib.C_FindObjects(s, 10);
        lib.C_FindObjectsFinal(s);
        expect(found).toHaveLength(1);
        const root = found[0]!;
        const flags = [P.CKA_SENSITIVE, P.CKA_EXTRACTABLE, P.CKA_ALWAYS_SENSITIVE, P.CKA_NEVER_EXTRACTABLE, P.CKA_TOKEN, P.CKA_PRIVATE, P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_WRAP, P.CKA_UNWRAP];
        const values = lib.C_GetAttributeValue(s, root, flags.map((type) => ({ type }))).map((a) => a.value[0] === 1);
        expect(values).toEqual([true, false, true, true, true, true, false, false, true, true]);
        expect(lib.C_GetAttributeValue(s, root, [{ type: P.CKA_VALUE_LEN }])[0]!.value.readUInt32LE(0)).toBe(32);

        expect(() => lib.C_WrapKey(s, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, root, root, Buffer.alloc(128))).toThrow(/CKR_KEY_UNEXTRACTABLE/);
        expect(() => lib.C_GetAttributeValue(s, root, [{ type: P.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
        expect(() => lib.C_EncryptInit(s, { mechanism: P.CKM_AES_ECB }, root)).toThrow(/CKR_KEY_FUNCTION_NOT_PERMITTED/);
      });
      await provider.check(); // the raw session closing did not log the provider out
    } finally {
      await provider.close();
    }
  });

  it('selects the token by slot number, and refuses a slot that holds another token', async () => {
    const slot = rawSession(hsm, hsm.label, (_lib, _s, sl) => Number(sl.readBigUInt64LE()));
    const bySlot = await openPkcs11Provider({ module: hsm.module, slot, pin: hsm.pin });
    expect(bySlot.created).toBe(false);
    await bySlot.provider.close();
    const e = await rejection(openPkcs11Provider({ ...cfg, token: 'doomed', slot }));
    expect(e.code).toBe('PAL_SEAL_UNAVAILABLE');
    expect(e.message).toContain(`token "doomed" in slot ${slot} not found`);
  });

  it('a wrong PIN is a clear error that never contains the PIN', async () => {
    const rec = recorder();
    const e = await rejection(openPkcs11Provider({ ...cfg, pin: WRONG_PIN }, { observe: rec.observe }));
    expect(e.code).toBe('PAL_SEAL_UNAVAILABLE');
    expect(e.message).toBe('PKCS#11 login to token "palisade-test" failed: PIN incorrect (CKR_PIN_INCORRECT)');
    const everything = [e.message, e.stack, JSON.stringify(e), String(e.cause), (e.cause as Error).stack].join('\n');
    expect(everything).not.toContain(WRONG_PIN);
    expect(rec.events).toEqual(['login:failure']);
  });

  it('an unknown token label lists the labels present; a missing module and an empty config are named', async () => {
    const e = await rejection(openPkcs11Provider({ ...cfg, token: 'no-such-token' }));
    expect(e.code).toBe('PAL_SEAL_UNAVAILABLE');
    expect(e.message).toMatch(/^PKCS#11 token "no-such-token" not found; tokens present: .*"palisade-test" \(slot \d+\)/);
    expect(e.message).toContain('"doomed"');

    const m = await rejection(openPkcs11Provider({ ...cfg, module: '/nonexistent/libnope.so' }));
    expect(m.code).toBe('PAL_CONFIG_INVALID');
    expect(m.message).toBe('PKCS#11 module not found at /nonexistent/libnope.so');

    expect((await rejection(openPkcs11Provider({ module: hsm.module, pin: hsm.pin }))).code).toBe('PAL_CONFIG_INVALID');
    expect((await rejection(openPkcs11Provider({ ...cfg, pin: '' }))).code).toBe('PAL_CONFIG_INVALID');
  });

  it('create: false on a token without a root key is PAL_SEAL_NOT_INITIALIZED; a closed provider is unavailable', async () => {
    const e = await rejection(openPkcs11Provider({ ...cfg, keyLabel: 'never-made' }, { create: false }));
    expect(e.code).toBe('PAL_SEAL_NOT_INITIALIZED');
    expect(e.message).toBe('no AES key labelled "never-made" on token "palisade-test"');

    const { provider } = await openPkcs11Provider(cfg);
    await provider.close();
    await provider.close();
    expect((await rejection(provider.check())).code).toBe('PAL_SEAL_UNAVAILABLE');
  });

  it('a token removed mid-run makes wrap, unwrap and check PAL_SEAL_UNAVAILABLE (no crash)', async () => {
    const rec = recorder();
    const doomed = { ...cfg, token: 'doomed' };
    const { provider, created } = await openPkcs11Provider(doomed, { observe: rec.observe });
    expect(created).toBe(true);
    const wrapped = await provider.wrap(randomBytes(32));
    await provider.check();

    hsm.deleteToken('doomed');

    for (const [op, p] of [
      ['wrap', provider.wrap(randomBytes(32))],
      ['unwrap', provider.unwrap(wrapped)],
      ['check', provider.check()],
    ] as const) {
      const e = await rejection(p);
      expect(e.code, op).toBe('PAL_SEAL_UNAVAILABLE');
      expect(e.message, op).toMatch(new RegExp(`^PKCS#11 token "doomed" unavailable: ${op} failed \\(CKR_[A-Z_]+\\); reconnecting failed: `));
      expect(e.message).not.toContain(hsm.pin);
    }
    expect(rec.events.slice(-6)).toEqual(['login:failure', 'wrap:failure', 'login:failure', 'unwrap:failure', 'login:failure', 'check:failure']);
    await provider.close();

    // the other token is untouched
    const ok = await openPkcs11Provider(cfg);
    await ok.provider.check();
    await ok.provider.close();
  });
});
