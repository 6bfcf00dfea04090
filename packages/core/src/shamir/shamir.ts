/**
 * Shamir's secret sharing over GF(2^8) for the seal's recovery key (`palisade operator init --shares 5 --threshold 3`).
 *
 * Each byte of the secret is the constant term of its own random polynomial of degree threshold - 1 (coefficients from
 * the OS CSPRNG); share x (1..n) holds every polynomial evaluated at x. Any `threshold` shares give the secret back by
 * Lagrange interpolation at 0; fewer reveal nothing about it (every secret is equally consistent with them).
 *
 * Share format (a string, easy to copy by hand):
 *
 *     pal-share-v1-aaaab-cdefg-...      "pal-share-v1-" + lower-case RFC 4648 base32 (no padding) in groups of 5
 *
 * of the bytes  version (1) | set id (8) | threshold (1) | x (1) | y (1..64, one per secret byte) | checksum (4)
 * where the checksum is the first 4 bytes of SHA-256 over everything before it. Decoding ignores case, whitespace and
 * dashes, and refuses a final character whose unused bits are not zero, so any single mistyped character is caught
 * (by the alphabet, the padding bits or the checksum). The set id is random per split and ties the shares of one
 * split together; shares from two splits are refused instead of interpolating garbage.
 *
 * Verifying the result. With too few or foreign-but-well-formed shares, GF(256) Shamir silently yields a wrong
 * secret. The threshold and set id are in every share and enforced, and the checksum catches corruption, but the
 * checksum is not a MAC: a share deliberately forged with a valid checksum and the right set id can only be detected
 * by checking the secret itself. The shares carry no hash of the secret on purpose (that would break the
 * information-theoretic secrecy, and make short secrets guessable from one share). Callers verify the reconstructed
 * secret against something they hold already: the seal does so by unwrapping its root key with it (an AEAD tag
 * failure there means PAL_SEAL_UNSEAL_FAILED). A caller without such material can store, next to the seal metadata
 * and not in the shares, `hmacSha256(secret, 'palisade-shamir-verify' + setId)` at split time and compare it
 * (constant time) after `combineShares`.
 *
 * Errors: malformed, corrupted, foreign, duplicate or too few shares throw PalisadeError PAL_SEAL_SHARE_INVALID whose
 * message names the share by its 1-based position in the list given (and its share index once the share decoded);
 * `extensions.position` carries that position. Bad split parameters throw PAL_VALIDATION_FAILED; a secret that is not
 * a Uint8Array, or a share list that is not an array, is a TypeError (a programming error).
 */
import { constantTimeEqual, randomBytes, sha256 } from '../crypto/index.js';
import { BASE32, base32 } from '../crypto/random.js';
import { PalisadeError } from '../errors/index.js';
import { gfInv, gfMul } from './gf256.js';

/** Most shares in a set (x-coordinates are the non-zero bytes). */
export const SHAMIR_MAX_SHARES = 255;
/** Longest secret that can be split, in bytes. */
export const SHAMIR_MAX_SECRET_BYTES = 64;

/** What a share says about itself, without the secret-bearing part. */
export interface ShareInfo {
  /** Identifies the split this share belongs to (16 hex characters); all shares of one split have the same. */
  setId: string;
  /** Shares needed to reconstruct. */
  threshold: number;
  /** This share's index (its x-coordinate), 1..255. */
  index: number;
}

const VERSION = 1;
const PREFIX = 'pal-share-v1-';
const SET_ID_BYTES = 8;
const HEADER_BYTES = 1 + SET_ID_BYTES + 1 + 1; // version, set id, threshold, x
const CHECKSUM_BYTES = 4;
const GROUP = 5; // base32 characters per dash-separated group
const MAX_SHARE_CHARS = 512; // far above the longest share (~150 characters); bounds the work on hostile input

interface DecodedShare {
  setId: Buffer;
  threshold: number;
  x: number;
  y: Buffer;
}

/**
 * Splits `secret` (1..64 bytes) into `shares` strings, any `threshold` of which reconstruct it
 * (2 <= threshold <= shares <= 255). Share i (1-based) has index i.
 */
export function splitSecret(secret: Uint8Array, shares: number, threshold: number): string[] {
  if (!(secret instanceof Uint8Array)) throw new TypeError('splitSecret: secret must be a Uint8Array');
  if (secret.length < 1 || secret.length > SHAMIR_MAX_SECRET_BYTES) {
    throw invalidParameter(`the secret must be 1 to ${SHAMIR_MAX_SECRET_BYTES} bytes, got ${secret.length}`);
  }
  if (!Number.isInteger(shares) || shares < 2 || shares > SHAMIR_MAX_SHARES) {
    throw invalidParameter(`shares must be an integer from 2 to ${SHAMIR_MAX_SHARES}, got ${String(shares)}`);
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > shares) {
    throw invalidParameter(`threshold must be an integer from 2 to shares (${shares}), got ${String(threshold)}`);
  }

  const len = secret.length;
  const degree = threshold - 1;
  const setId = randomBytes(SET_ID_BYTES);
  // coefficients[k * degree + (j - 1)] is the x^j coefficient (j = 1..degree) of the polynomial for secret byte k.
  const coefficients = randomBytes(len * degree);
  const out: string[] = [];
  try {
    for (let x = 1; x <= shares; x++) {
      const body = Buffer.alloc(HEADER_BYTES + len);
      body[0] = VERSION;
      setId.copy(body, 1);
      body[1 + SET_ID_BYTES] = threshold;
      body[2 + SET_ID_BYTES] = x;
      for (let k = 0; k < len; k++) {
        // Horner: (((c_d·x + c_{d-1})·x + ...)·x + c_1)·x + secret[k]
        let acc = 0;
        for (let j = degree; j >= 1; j--) acc = gfMul(acc, x) ^ (coefficients[k * degree + j - 1] as number);
        body[HEADER_BYTES + k] = gfMul(acc, x) ^ (secret[k] as number);
      }
      out.push(encodeShare(body));
      body.fill(0);
    }
  } finally {
    coefficients.fill(0);
  }
  return out;
}

/**
 * Reconstructs the secret from at least `threshold` shares of one split. Every share is checked (format, version,
 * checksum), all must have the same set id, threshold and length, and no index may repeat; then the first
 * `threshold` shares are interpolated at 0. The result is not otherwise verified: see the module comment.
 */
export function combineShares(shares: string[]): Buffer {
  if (!Array.isArray(shares)) throw new TypeError('combineShares: shares must be an array of strings');
  if (shares.length === 0) throw shareError('no recovery shares were given');

  const decoded: DecodedShare[] = [];
  const seen = new Map<number, number>(); // index -> 1-based position of the share that had it
  try {
    for (const [i, share] of shares.entries()) {
      const pos = i + 1;
      const d = decodeShare(share, `recovery share ${pos}`, pos);
      decoded.push(d);
      const first = decoded[0] as DecodedShare;
      const name = `recovery share ${pos} (index ${d.x})`;
      if (!d.setId.equals(first.setId)) {
        throw shareError(`${name} belongs to share set ${d.setId.toString('hex')}, but recovery share 1 belongs to ${first.setId.toString('hex')}; shares of different splits cannot be combined`, pos, d.x);
      }
      if (d.threshold !== first.threshold) {
        throw shareError(`${name} says threshold ${d.threshold}, but recovery share 1 says ${first.threshold}`, pos, d.x);
      }
      if (d.y.length !== first.y.length) {
        throw shareError(`${name} holds ${d.y.length} secret bytes, but recovery share 1 holds ${first.y.length}`, pos, d.x);
      }
      const dup = seen.get(d.x);
      if (dup !== undefined) throw shareError(`${name} duplicates recovery share ${dup}: both are index ${d.x}`, pos, d.x);
      seen.set(d.x, pos);
    }

    const first = decoded[0] as DecodedShare;
    const threshold = first.threshold;
    if (decoded.length < threshold) {
      throw new PalisadeError('PAL_SEAL_SHARE_INVALID', `only ${decoded.length} of ${threshold} required shares were given (share set ${first.setId.toString('hex')})`, {
        extensions: { given: decoded.length, required: threshold },
      });
    }

    const used = decoded.slice(0, threshold);
    // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR. Depends on public x only.
    const weights = used.map((di) => {
      let num = 1;
      let den = 1;
      for (const dj of used) {
        if (dj === di) continue;
        num = gfMul(num, dj.x);
        den = gfMul(den, dj.x ^ di.x);
      }
      return gfMul(num, gfInv(den));
    });
    const secret = Buffer.alloc(first.y.length);
    for (let k = 0; k < secret.length; k++) {
      let acc = 0;
      for (let i = 0; i < used.length; i++) acc ^= gfMul(weights[i] as number, (used[i] as DecodedShare).y[k] as number);
      secret[k] = acc;
    }
    return secret;
  } finally {
    for (const d of decoded) d.y.fill(0);
  }
}

/** Reads a share's public header (set id, threshold, index) after checking its format and checksum, for UIs. */
export function parseShare(share: string): ShareInfo {
  const d = decodeShare(share, 'recovery share');
  d.y.fill(0);
  return { setId: d.setId.toString('hex'), threshold: d.threshold, index: d.x };
}

function encodeShare(body: Buffer): string {
  const bytes = Buffer.concat([body, sha256(body).subarray(0, CHECKSUM_BYTES)]);
  const text = base32(bytes);
  bytes.fill(0);
  const groups: string[] = [];
  for (let i = 0; i < text.length; i += GROUP) groups.push(text.slice(i, i + GROUP));
  return PREFIX + groups.join('-');
}

function decodeShare(share: unknown, name: string, position?: number): DecodedShare {
  const fail = (why: string): PalisadeError => shareError(`${name}: ${why}`, position);
  if (typeof share !== 'string') return throwIt(fail('not a string'));
  if (share.length > MAX_SHARE_CHARS) return throwIt(fail(`too long (${share.length} characters) to be a share`));
  const compact = share.toLowerCase().replace(/[\s-]/g, '');
  // After "palsharev" come the version digits, then the base32 text, whose first character is "a" when intact (the
  // version byte is below 8, so its top five bits are zero). The lazy match keeps a first character mistyped as a
  // digit 2-7 in the text, where the checksum reports it, instead of reading it as part of the version.
  const m = /^palsharev(\d+?)([a-z2-7]*)$/.exec(compact);
  if (m === null) {
    if (!compact.startsWith('palsharev')) return throwIt(fail('does not start with "pal-share-v1-"'));
    const bad = /[^a-z2-7]/.exec(compact.slice('palsharev'.length).replace(/^\d+/, ''));
    return throwIt(fail(bad ? `character "${bad[0]}" is not in the share alphabet (a-z, 2-7); check for a typo` : 'is malformed'));
  }
  const [, versionText = '', text = ''] = m;
  if (versionText !== String(VERSION)) return throwIt(fail(`version v${versionText} is not supported (this build reads v${VERSION})`));
  const bytes = base32Decode(text);
  if (bytes === undefined) return throwIt(fail('is truncated or has a mistyped last character'));
  try {
    if (bytes.length < HEADER_BYTES + 1 + CHECKSUM_BYTES || bytes.length > HEADER_BYTES + SHAMIR_MAX_SECRET_BYTES + CHECKSUM_BYTES) {
      return throwIt(fail(`has the wrong length (${text.length} characters); part of it may be missing`));
    }
    const body = bytes.subarray(0, bytes.length - CHECKSUM_BYTES);
    const checksum = bytes.subarray(bytes.length - CHECKSUM_BYTES);
    if (!constantTimeEqual(sha256(body).subarray(0, CHECKSUM_BYTES), checksum)) {
      return throwIt(fail('checksum mismatch: the share is corrupted or was mistyped'));
    }
    // The checksum matched, so the header fields are as written by some encoder; still refuse nonsense.
    if (body[0] !== VERSION) return throwIt(fail(`format version ${String(body[0])} does not match its v${VERSION} prefix`));
    const threshold = body[1 + SET_ID_BYTES] as number;
    const x = body[2 + SET_ID_BYTES] as number;
    if (threshold < 2) return throwIt(fail(`threshold ${threshold} is invalid (at least 2)`));
    if (x === 0) return throwIt(fail('index 0 is invalid (it would be the secret itself)'));
    return {
      setId: Buffer.from(body.subarray(1, 1 + SET_ID_BYTES)),
      threshold,
      x,
      y: Buffer.from(body.subarray(HEADER_BYTES)),
    };
  } finally {
    bytes.fill(0);
  }
}

function throwIt(e: PalisadeError): never {
  throw e;
}

function shareError(message: string, position?: number, index?: number): PalisadeError {
  const extensions: Record<string, unknown> = {};
  if (position !== undefined) extensions.position = position;
  if (index !== undefined) extensions.index = index;
  return new PalisadeError('PAL_SEAL_SHARE_INVALID', message, { extensions });
}

function invalidParameter(message: string): PalisadeError {
  return new PalisadeError('PAL_VALIDATION_FAILED', `splitSecret: ${message}`);
}

/**
 * Strict inverse of base32 (crypto/random.ts): `text` must be canonical, i.e. its length is one an encoding can have and the
 * unused low bits of the last character are zero. Otherwise undefined (so no two strings decode to the same bytes).
 */
function base32Decode(text: string): Buffer | undefined {
  const rem = text.length % 8;
  if (rem === 1 || rem === 3 || rem === 6) return undefined; // no byte count encodes to these lengths
  const out = Buffer.alloc(Math.floor((text.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) return undefined;
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined; // non-zero padding bits
  return out;
}
