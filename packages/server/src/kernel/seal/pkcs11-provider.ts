/**
 * The `pkcs11` root of trust: an AES-256 key generated inside a PKCS#11 token (an HSM; SoftHSM2 in tests) that
 * is sensitive and never extractable. Key material is wrapped under it with CKM_AES_KEY_WRAP_PAD (RFC 5649):
 *
 *   wrapped = 0x01 | KWP(root, len(1) | material)
 *
 * The length byte sits inside the authenticated plaintext because SoftHSM 2.6 returns the unwrapped value with
 * its RFC 5649 zero padding still attached (and CKA_VALUE_LEN = 0), so the token cannot tell us the length.
 * Unwrap accepts both an exact value and one padded with up to 7 zero bytes.
 */
import { realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pkcs11js from 'pkcs11js';
import { PalisadeError } from '@palisade/core';
import type { ProviderObserver, RootKeyProvider } from './provider.js';

type Lib = pkcs11js.PKCS11;
type Handle = Buffer;

export interface Pkcs11Config {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** Token label. At least one of `token` and `slot` is required; when both are set they must agree. */
  token?: string;
  slot?: number;
  /** User PIN. Never logged, never put in an error. */
  pin: string;
  /** CKA_LABEL of the root key. Default 'palisade-root'. */
  keyLabel?: string;
}

export interface Pkcs11Options {
  observe?: ProviderObserver;
  /** Generate the root key when the token has none. Default true. */
  create?: boolean;
}

const P = pkcs11js;
const FORMAT_V1 = 0x01;
const CKS_RW_USER_FUNCTIONS = 3; // PKCS#11 session state; pkcs11js exports no CKS_* constants
const WRAP_PAD = { mechanism: P.CKM_AES_KEY_WRAP_PAD };
/** Codes that mean "this blob does not authenticate / is malformed", never "the token is gone". */
const INTEGRITY = new Set(['CKR_WRAPPED_KEY_INVALID', 'CKR_WRAPPED_KEY_LEN_RANGE', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE']);
/** A session object holding plaintext key material just long enough to wrap it or read it back. */
const EPHEMERAL = [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
  { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
  { type: P.CKA_TOKEN, value: false },
  { type: P.CKA_SENSITIVE, value: false },
  { type: P.CKA_EXTRACTABLE, value: true },
];

/** 'CKR_PIN_INCORRECT' for a pkcs11js error, else the message. */
export function ckr(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return /^CKR_\w+/.exec(msg)?.[0] ?? msg;
}

export function quietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // best effort (cleanup of something that may already be gone)
  }
}

// C_Initialize is process-global per module: share one initialised library per module file, finalize with the last user.
export interface Loaded {
  key: string;
  lib: Lib;
  refs: number;
  /** false when someone else in this process initialised the module (CKR_CRYPTOKI_ALREADY_INITIALIZED). */
  finalize: boolean;
}
const loaded = new Map<string, Loaded>();

export function acquire(path: string): Loaded {
  let key: string;
  try {
    key = realpathSync(path);
  } catch {
    throw new PalisadeError('PAL_CONFIG_INVALID', `PKCS#11 module not found at ${path}`);
  }
  let m = loaded.get(key);
  if (!m) {
    const lib = new P.PKCS11();
    try {
      lib.load(key);
    } catch (e) {
      throw new PalisadeError('PAL_CONFIG_INVALID', `PKCS#11 module at ${path} could not be loaded: ${ckr(e)}`, { cause: e });
    }
    let finalize = true;
    try {
      lib.C_Initialize();
    } catch (e) {
      if (ckr(e) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        quietly(() => lib.close());
        throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 module ${path}: C_Initialize failed (${ckr(e)})`, { cause: e });
      }
      finalize = false;
    }
    m = { key, lib, refs: 0, finalize };
    loaded.set(key, m);
  }
  m.refs++;
  return m;
}

export function release(m: Loaded): void {
  if (--m.refs > 0) return;
  loaded.delete(m.key);
  if (m.finalize) quietly(() => m.lib.C_Finalize());
  quietly(() => m.lib.close());
}

const slotNumber = (h: Handle): number => (h.length >= 8 ? Number(h.readBigUInt64LE()) : h.readUInt32LE());

export type Target = Pick<Pkcs11Config, 'token' | 'slot'>;

export function describeTarget(cfg: Target): string {
  return cfg.token !== undefined ? `token "${cfg.token}"` : `slot ${cfg.slot}`;
}

/** The slot holding the configured token; the error lists the labels that are there. */
export function findSlot(lib: Lib, cfg: Target): Handle {
  const seen: string[] = [];
  for (const slot of lib.C_GetSlotList(true)) {
    let label: string;
    try {
      const info = lib.C_GetTokenInfo(slot);
      if (!(info.flags & P.CKF_TOKEN_INITIALIZED)) continue;
      label = info.label.trimEnd();
    } catch {
      continue; // a token that went away between the two calls
    }
    seen.push(`"${label}" (slot ${slotNumber(slot)})`);
    const slotOk = cfg.slot === undefined || cfg.slot === slotNumber(slot);
    const labelOk = cfg.token === undefined || cfg.token === label;
    if (slotOk && labelOk) return slot;
  }
  throw new PalisadeError(
    'PAL_SEAL_UNAVAILABLE',
    `PKCS#11 ${describeTarget(cfg)}${cfg.token !== undefined && cfg.slot !== undefined ? ` in slot ${cfg.slot}` : ''} not found; ` +
      `tokens present: ${seen.length ? seen.join(', ') : 'none'}`,
  );
}

export function login(lib: Lib, session: Handle, pin: string, target: string): void {
  try {
    lib.C_Login(session, P.CKU_USER, pin);
  } catch (e) {
    const code = ckr(e);
    if (code === 'CKR_USER_ALREADY_LOGGED_IN') return; // another session of this process logged the token in
    const why: Record<string, string> = {
      CKR_PIN_INCORRECT: 'PIN incorrect',
      CKR_PIN_LOCKED: 'PIN locked (the security officer must reset it)',
      CKR_PIN_EXPIRED: 'PIN expired',
      CKR_PIN_LEN_RANGE: 'PIN has the wrong length',
    };
    throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 login to ${target} failed: ${why[code] ?? 'login refused'} (${code})`, { cause: e });
  }
}

function findRootKey(lib: Lib, session: Handle, label: string): Handle | null {
  lib.C_FindObjectsInit(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_LABEL, value: label },
  ]);
  let found: Handle[];
  try {
    found = lib.C_FindObjects(session, 2);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
  if (found.length > 1) throw new PalisadeError('PAL_CONFIG_INVALID', `more than one AES key labelled "${label}" on the token; keyLabel must name exactly one`);
  return found[0] ?? null;
}

/** Refuses a root key that could leave the token or cannot wrap. */
function assertRootKeyPolicy(lib: Lib, session: Handle, key: Handle, label: string): void {
  const attrs = [P.CKA_SENSITIVE, P.CKA_EXTRACTABLE, P.CKA_WRAP, P.CKA_UNWRAP];
  const [sensitive, extractable, wrap, unwrap] = lib.C_GetAttributeValue(session, key, attrs.map((type) => ({ type }))).map((a) => a.value[0] === 1);
  if (!sensitive || extractable || !wrap || !unwrap) {
    throw new PalisadeError(
      'PAL_CONFIG_INVALID',
      `root key "${label}" must be CKA_SENSITIVE, not CKA_EXTRACTABLE, and allow CKA_WRAP and CKA_UNWRAP ` +
        `(it has sensitive=${sensitive}, extractable=${extractable}, wrap=${wrap}, unwrap=${unwrap})`,
    );
  }
}

function generateRootKey(lib: Lib, session: Handle, label: string): Handle {
  return lib.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_LABEL, value: label },
    { type: P.CKA_VALUE_LEN, value: 32 },
    { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_PRIVATE, value: true },
    { type: P.CKA_SENSITIVE, value: true },
    { type: P.CKA_EXTRACTABLE, value: false },
    { type: P.CKA_WRAP, value: true },
    { type: P.CKA_UNWRAP, value: true },
    { type: P.CKA_ENCRYPT, value: false },
    { type: P.CKA_DECRYPT, value: false },
  ]);
}

const corrupt = (why: string, cause?: unknown): PalisadeError =>
  new PalisadeError('PAL_SEAL_CORRUPT', `wrapped key material ${why}`, cause === undefined ? {} : { cause });

/** 1 + a KWP output of 17..65 plaintext bytes: 1 + (32..80, a multiple of 8). */
function checkBlob(wrapped: Buffer): void {
  const n = wrapped.length - 1;
  if (wrapped[0] !== FORMAT_V1) throw corrupt(`has an unknown format version (${wrapped[0] ?? 'empty'})`);
  if (n < 32 || n > 80 || n % 8 !== 0) throw corrupt(`is malformed (${wrapped.length} bytes)`);
}

/** len | material | up to 7 zero bytes of RFC 5649 padding (SoftHSM 2.6 keeps them). */
function decodeInner(value: Buffer): Buffer {
  const len = value[0] ?? 0;
  const end = 1 + len;
  const padding = value.subarray(end);
  if (len < 16 || len > 64 || end > value.length || padding.length > 7 || padding.some((b) => b !== 0)) {
    throw corrupt('unwrapped to an invalid length');
  }
  return Buffer.from(value.subarray(1, end));
}

type Operation = Parameters<ProviderObserver>[0];

class Pkcs11Provider implements RootKeyProvider {
  readonly name = 'pkcs11' as const;
  get id(): string {
    return this.#cfg.keyLabel ?? 'palisade-root';
  }
  readonly #m: Loaded;
  readonly #cfg: Omit<Pkcs11Config, 'pin'>;
  readonly #pin: string;
  readonly #observe: ProviderObserver | undefined;
  readonly #target: string;
  #slot: Handle;
  #session: Handle;
  #root: Handle;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(m: Loaded, cfg: Pkcs11Config, observe: ProviderObserver | undefined, state: { slot: Handle; session: Handle; root: Handle }) {
    const { pin, ...rest } = cfg;
    this.#m = m;
    this.#cfg = rest;
    this.#pin = pin;
    this.#observe = observe;
    this.#target = describeTarget(cfg);
    this.#slot = state.slot;
    this.#session = state.session;
    this.#root = state.root;
  }

  wrap(material: Buffer): Promise<Buffer> {
    if (material.length < 16 || material.length > 64) {
      return Promise.reject(new PalisadeError('PAL_INTERNAL', `key material to wrap must be 16 to 64 bytes (got ${material.length})`));
    }
    return this.#run('wrap', (lib, s) => {
      const inner = Buffer.concat([Buffer.of(material.length), material]);
      let obj: Handle | undefined;
      try {
        obj = lib.C_CreateObject(s, [...EPHEMERAL, { type: P.CKA_VALUE, value: inner }]);
        const out = lib.C_WrapKey(s, WRAP_PAD, this.#root, obj, Buffer.alloc(128));
        return Buffer.concat([Buffer.of(FORMAT_V1), out]);
      } finally {
        inner.fill(0);
        const o = obj;
        if (o) quietly(() => lib.C_DestroyObject(s, o));
      }
    });
  }

  unwrap(wrapped: Buffer): Promise<Buffer> {
    return this.#run('unwrap', (lib, s) => {
      checkBlob(wrapped);
      let obj: Handle;
      try {
        obj = lib.C_UnwrapKey(s, WRAP_PAD, this.#root, wrapped.subarray(1), EPHEMERAL);
      } catch (e) {
        // SoftHSM reports a failed RFC 5649 integrity check as CKR_GENERAL_ERROR: blame the blob only if the token is fine.
        const code = ckr(e);
        if (INTEGRITY.has(code) || (code === 'CKR_GENERAL_ERROR' && this.#healthy(lib, s))) {
          throw corrupt(`does not authenticate under the root key (${code})`, e);
        }
        throw e;
      }
      try {
        const value = lib.C_GetAttributeValue(s, obj, [{ type: P.CKA_VALUE }])[0]?.value ?? Buffer.alloc(0);
        try {
          return decodeInner(value);
        } finally {
          value.fill(0);
        }
      } finally {
        quietly(() => lib.C_DestroyObject(s, obj));
      }
    });
  }

  check(): Promise<void> {
    return this.#run('check', (lib, s) => this.#probe(lib, s));
  }

  close(): Promise<void> {
    const done = this.#queue.then(() => {
      if (this.#closed) return;
      this.#closed = true;
      const { lib } = this.#m;
      if (this.#m.refs === 1) quietly(() => lib.C_Logout(this.#session)); // login state is shared by the process's sessions
      quietly(() => lib.C_CloseSession(this.#session));
      release(this.#m);
    });
    this.#queue = done;
    return done;
  }

  /** Session alive and logged in, token present, root key reachable. */
  #probe(lib: Lib, s: Handle): void {
    const info = lib.C_GetSessionInfo(s);
    if (info.state !== CKS_RW_USER_FUNCTIONS) throw new Error('CKR_USER_NOT_LOGGED_IN');
    lib.C_GetTokenInfo(this.#slot);
    lib.C_GetAttributeValue(s, this.#root, [{ type: P.CKA_KEY_TYPE }]);
  }

  #healthy(lib: Lib, s: Handle): boolean {
    try {
      this.#probe(lib, s);
      return true;
    } catch {
      return false;
    }
  }

  /** Serialises calls on the one session; on a token/session error reconnects once and retries. */
  #run<T>(op: Operation, fn: (lib: Lib, session: Handle) => T): Promise<T> {
    const t0 = performance.now();
    const task = this.#queue.then(() => {
      if (this.#closed) throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 provider for ${this.#target} is closed`);
      const { lib } = this.#m;
      try {
        return fn(lib, this.#session);
      } catch (e) {
        if (e instanceof PalisadeError) throw e;
        try {
          this.#reconnect();
        } catch (again) {
          throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 ${this.#target} unavailable: ${op} failed (${ckr(e)}); reconnecting failed: ${ckr(again)}`, {
            cause: e,
          });
        }
        try {
          return fn(lib, this.#session);
        } catch (e2) {
          if (e2 instanceof PalisadeError) throw e2;
          throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 ${this.#target} unavailable: ${op} failed after reconnecting (${ckr(e2)})`, { cause: e2 });
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

  #reconnect(): void {
    const { lib } = this.#m;
    quietly(() => lib.C_CloseSession(this.#session));
    const t0 = performance.now();
    try {
      const slot = findSlot(lib, this.#cfg);
      const session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      this.#slot = slot;
      this.#session = session;
      login(lib, session, this.#pin, this.#target);
      const root = findRootKey(lib, session, this.#cfg.keyLabel ?? 'palisade-root');
      if (!root) throw new Error(`root key "${this.#cfg.keyLabel ?? 'palisade-root'}" is no longer on the token`);
      this.#root = root;
      this.#report('login', 'success', t0);
    } catch (e) {
      this.#report('login', 'failure', t0);
      throw e;
    }
  }

  #report(op: Operation, status: 'success' | 'failure', t0: number): void {
    quietly(() => this.#observe?.(op, status, (performance.now() - t0) / 1000));
  }
}

/**
 * Opens the token, logs in and finds (or, with `create`, generates) the root key. Errors are PalisadeErrors:
 * PAL_CONFIG_INVALID (module missing, no token/slot configured, a root key that could leave the token),
 * PAL_SEAL_UNAVAILABLE (token not found — the message lists the labels present —, login refused, token error),
 * PAL_SEAL_NOT_INITIALIZED (no root key and `create: false`).
 */
export async function openPkcs11Provider(cfg: Pkcs11Config, opts: Pkcs11Options = {}): Promise<{ provider: RootKeyProvider; created: boolean }> {
  if (cfg.token === undefined && cfg.slot === undefined) throw new PalisadeError('PAL_CONFIG_INVALID', 'seal.pkcs11 needs a token label or a slot number');
  if (!cfg.pin) throw new PalisadeError('PAL_CONFIG_INVALID', 'seal.pkcs11 needs a PIN');
  const observe = opts.observe;
  const report = (op: Operation, status: 'success' | 'failure', t0: number): void =>
    quietly(() => observe?.(op, status, (performance.now() - t0) / 1000));
  const keyLabel = cfg.keyLabel ?? 'palisade-root';
  const target = describeTarget(cfg);

  const m = acquire(cfg.module);
  const { lib } = m;
  let session: Handle | undefined;
  let step: Operation | null = 'login';
  let t0 = performance.now();
  try {
    const slot = findSlot(lib, cfg);
    session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    login(lib, session, cfg.pin, target);
    report('login', 'success', t0);
    step = null;
    let root = findRootKey(lib, session, keyLabel);
    let created = false;
    if (root) {
      assertRootKeyPolicy(lib, session, root, keyLabel);
    } else {
      if (opts.create === false) throw new PalisadeError('PAL_SEAL_NOT_INITIALIZED', `no AES key labelled "${keyLabel}" on ${target}`);
      step = 'generate';
      t0 = performance.now();
      root = generateRootKey(lib, session, keyLabel);
      report('generate', 'success', t0);
      step = null;
      created = true;
    }
    return { provider: new Pkcs11Provider(m, cfg, observe, { slot, session, root }), created };
  } catch (e) {
    if (step) report(step, 'failure', t0);
    if (session) {
      const s = session;
      quietly(() => lib.C_CloseSession(s));
    }
    release(m);
    if (e instanceof PalisadeError) throw e;
    throw new PalisadeError('PAL_SEAL_UNAVAILABLE', `PKCS#11 ${target}: opening the root key failed (${ckr(e)})`, { cause: e });
  }
}
