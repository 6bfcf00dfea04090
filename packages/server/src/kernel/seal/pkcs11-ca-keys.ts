/**
 * CA signing keys inside the PKCS#11 token of the `pkcs11` seal (the PKI's `hsm` key store). A key pair is generated
 * in the token as token objects, the private half sensitive and never extractable; only the public key is read out
 * (as SPKI DER) and signatures are made in the token.
 *
 * This shares the seal's module initialisation and the process's login to the token, but uses its own session
 * (opened on first use): CA signatures then neither wait for nor hold up the seal's wrap/unwrap, which are
 * serialised on the seal's session. Calls on this session are serialised too (PKCS#11 sessions are single-threaded),
 * key generation and signing run off the event loop (pkcs11js' *Async calls), and a token or session error
 * reconnects once and retries — as the seal provider does.
 *
 * ECDSA: the digest (SHA-256 for P-256, SHA-384 for P-384) is computed with node:crypto and signed with CKM_ECDSA
 * (SoftHSM2, like other tokens, has no CKM_ECDSA_SHA384); the token's r‖s becomes the DER Ecdsa-Sig-Value X.509
 * carries. RSA-4096: CKM_SHA256_RSA_PKCS (sha256WithRSAEncryption).
 */
import { createHash, createPublicKey } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pkcs11js from 'pkcs11js';
import { PalisadeError } from '@palisade/core';
import { acquire, ckr, describeTarget, findSlot, login, quietly, release, type Loaded, type Pkcs11Config } from './pkcs11-provider.js';
import type { ProviderObserver } from './provider.js';

type Lib = pkcs11js.PKCS11;
type Handle = Buffer;
type Operation = Parameters<ProviderObserver>[0];

/** The CA algorithms a token key may have (those of the PKI's CaAlgorithm). */
export type HsmCaAlgorithm = 'ECDSA-P256' | 'ECDSA-P384' | 'RSA-4096';

const P = pkcs11js;

/** CKA_EC_PARAMS (the DER of the named curve's OID), the JWK curve, the coordinate size and the digest per curve. */
const CURVES = {
  'ECDSA-P256': { params: Buffer.from('06082a8648ce3d030107', 'hex'), crv: 'P-256', size: 32, hash: 'sha256' }, // prime256v1
  'ECDSA-P384': { params: Buffer.from('06052b81040022', 'hex'), crv: 'P-384', size: 48, hash: 'sha384' }, // secp384r1
} as const;
const RSA_BITS = 4096;

/** Key pair templates: the public half verifies, the private half signs, is sensitive, and can never leave the token. */
function templates(label: string, algorithm: HsmCaAlgorithm): { mechanism: number; pub: pkcs11js.Template; priv: pkcs11js.Template } {
  const keyType = algorithm === 'RSA-4096' ? P.CKK_RSA : P.CKK_EC;
  const common = [
    { type: P.CKA_KEY_TYPE, value: keyType },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_ID, value: Buffer.from(label) },
    { type: P.CKA_TOKEN, value: true },
  ];
  const pub = [...common, { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }, { type: P.CKA_PRIVATE, value: false }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_ENCRYPT, value: false }, { type: P.CKA_WRAP, value: false }];
  const priv = [
    ...common,
    { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    { type: P.CKA_SIGN, value: true },
    { type: P.CKA_DECRYPT, value: false },
    { type: P.CKA_UNWRAP, value: false },
    { type: P.CKA_DERIVE, value: false },
  ];
  if (algorithm === 'RSA-4096') {
    pub.push({ type: P.CKA_MODULUS_BITS, value: RSA_BITS }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) });
    return { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN, pub, priv };
  }
  pub.push({ type: P.CKA_EC_PARAMS, value: CURVES[algorithm].params });
  return { mechanism: P.CKM_EC_KEY_PAIR_GEN, pub, priv };
}

/** The public key object's key as SPKI DER (node:crypto builds the structure from the JWK form). */
function spkiOf(lib: Lib, s: Handle, pub: Handle, algorithm: HsmCaAlgorithm): Buffer {
  if (algorithm === 'RSA-4096') {
    const [n, e] = lib.C_GetAttributeValue(s, pub, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]).map((a) => Buffer.from(a.value ?? []));
    return createPublicKey({ key: { kty: 'RSA', n: n!.toString('base64url'), e: e!.toString('base64url') }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
  }
  const { crv, size } = CURVES[algorithm];
  const point = uncompressedPoint(Buffer.from(lib.C_GetAttributeValue(s, pub, [{ type: P.CKA_EC_POINT }])[0]?.value ?? []), size);
  const coordinate = (i: number) => point.subarray(1 + i * size, 1 + (i + 1) * size).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv, x: coordinate(0), y: coordinate(1) }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
}

/** CKA_EC_POINT is a DER OCTET STRING around the uncompressed point 04‖x‖y (some tokens give the bare point). */
function uncompressedPoint(value: Buffer, size: number): Buffer {
  const n = 1 + 2 * size; // < 128: a short-form DER length
  const bare = value.length === n ? value : value.length === n + 2 && value[0] === 0x04 && value[1] === n ? value.subarray(2) : null;
  if (!bare || bare[0] !== 0x04) throw new PalisadeError('PAL_SEAL_UNAVAILABLE', 'the PKCS#11 token returned an EC public key that is not an uncompressed point');
  return bare;
}

/** PKCS#11's ECDSA output r‖s as DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3). */
function ecdsaSigValue(raw: Buffer, size: number): Buffer {
  if (raw.length !== 2 * size) throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `the PKCS#11 token returned an ECDSA signature of ${raw.length} bytes (expected ${2 * size})`);
  const integer = (v: Buffer): Buffer => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++; // minimal encoding: no leading zero octets...
    const body = v[i]! & 0x80 ? Buffer.concat([Buffer.of(0), v.subarray(i)]) : v.subarray(i); // ...but one that keeps it positive
    return Buffer.concat([Buffer.of(0x02, body.length), body]);
  };
  const body = Buffer.concat([integer(raw.subarray(0, size)), integer(raw.subarray(size))]);
  return Buffer.concat([Buffer.of(0x30, body.length), body]); // at most 2 × (2 + 49) octets for P-384: short-form lengths
}

function findObjects(lib: Lib, s: Handle, template: pkcs11js.Template): Handle[] {
  lib.C_FindObjectsInit(s, template);
  try {
    return lib.C_FindObjects(s, 2);
  } finally {
    lib.C_FindObjectsFinal(s);
  }
}

/** CA key pairs in the seal's token, by CKA_LABEL. */
export class Pkcs11CaKeys {
  readonly #cfg: Omit<Pkcs11Config, 'pin' | 'keyLabel'>;
  readonly #pin: string;
  readonly #observe: ProviderObserver | undefined;
  readonly #target: string;
  #m: Loaded | null = null;
  #session: Handle | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(cfg: Omit<Pkcs11Config, 'keyLabel'>, observe?: ProviderObserver) {
    const { pin, ...rest } = cfg;
    this.#cfg = rest;
    this.#pin = pin;
    this.#observe = observe;
    this.#target = describeTarget(cfg);
  }

  /** Generate a key pair labelled `label` in the token; returns its public key (SPKI DER). A label in use is refused. */
  createKey(label: string, algorithm: HsmCaAlgorithm): Promise<Buffer> {
    return this.#run('generate', async (lib, s) => {
      if (findObjects(lib, s, [{ type: P.CKA_LABEL, value: label }]).length > 0) throw new PalisadeError('PAL_INTERNAL', `the PKCS#11 token already holds a key labelled "${label}"`);
      const t = templates(label, algorithm);
      const { publicKey } = await lib.C_GenerateKeyPairAsync(s, { mechanism: t.mechanism }, t.pub, t.priv);
      return spkiOf(lib, s, publicKey, algorithm);
    });
  }

  /** Sign an X.509 to-be-signed structure with the private key labelled `label`, as CaSigner returns it. */
  sign(label: string, algorithm: HsmCaAlgorithm, tbs: Buffer): Promise<Buffer> {
    return this.#run('sign', async (lib, s) => {
      const [key, more] = findObjects(lib, s, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_LABEL, value: label },
      ]);
      if (!key) throw new PalisadeError('PAL_PKI_CA_OFFLINE', `no private key labelled "${label}" on PKCS#11 ${this.#target}`);
      if (more) throw new PalisadeError('PAL_CONFIG_INVALID', `more than one private key labelled "${label}" on PKCS#11 ${this.#target}`);
      if (algorithm === 'RSA-4096') {
        lib.C_SignInit(s, { mechanism: P.CKM_SHA256_RSA_PKCS }, key);
        return lib.C_SignAsync(s, tbs, Buffer.alloc(RSA_BITS / 8));
      }
      const { hash, size } = CURVES[algorithm];
      lib.C_SignInit(s, { mechanism: P.CKM_ECDSA }, key);
      return ecdsaSigValue(await lib.C_SignAsync(s, createHash(hash).update(tbs).digest(), Buffer.alloc(2 * size)), size);
    });
  }

  close(): Promise<void> {
    const done = this.#queue.then(() => {
      if (this.#closed) return;
      this.#closed = true;
      const m = this.#m;
      if (!m) return;
      const s = this.#session;
      if (s) {
        if (m.refs === 1) quietly(() => m.lib.C_Logout(s)); // login state is shared by the process's sessions
        quietly(() => m.lib.C_CloseSession(s));
      }
      release(m);
    });
    this.#queue = done;
    return done;
  }

  /** The open, logged-in session (opened on first use, and again after a token error). */
  #open(lib: Lib): Handle {
    if (this.#session) return this.#session;
    const t0 = performance.now();
    try {
      const session = lib.C_OpenSession(findSlot(lib, this.#cfg), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      try {
        login(lib, session, this.#pin, this.#target);
      } catch (e) {
        quietly(() => lib.C_CloseSession(session));
        throw e;
      }
      this.#session = session;
      this.#report('login', 'success', t0);
      return session;
    } catch (e) {
      this.#report('login', 'failure', t0);
      throw e;
    }
  }

  /** Serialises calls on the session; on a token/session error (not a PalisadeError) reconnects once and retries. */
  #run<T>(op: Operation, fn: (lib: Lib, session: Handle) => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const task = this.#queue.then(async () => {
      if (this.#closed) throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 CA keys on ${this.#target} are closed`);
      this.#m ??= acquire(this.#cfg.module);
      const { lib } = this.#m;
      try {
        return await fn(lib, this.#open(lib));
      } catch (e) {
        if (e instanceof PalisadeError) throw e;
        const stale = this.#session;
        this.#session = null;
        if (stale) quietly(() => lib.C_CloseSession(stale));
        try {
          return await fn(lib, this.#open(lib));
        } catch (e2) {
          if (e2 instanceof PalisadeError) throw e2;
          throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 ${this.#target} unavailable: CA key ${op} failed (${ckr(e)}, then ${ckr(e2)} after reconnecting)`, { cause: e2 });
        }
      }
    });
    this.#queue = task.catch(() => undefined);
    return task.then(
      (r) => (this.#report(op, 'success', t0), r),
      (e: unknown) => {
        this.#report(op, 'failure', t0);
        throw e;
      },
    );
  }

  #report(op: Operation, status: 'success' | 'failure', t0: number): void {
    quietly(() => this.#observe?.(op, status, (performance.now() - t0) / 1000));
  }
}
