// The `Palisade-Signature` header: its one format (v1), its strict parser, and the v1 HMAC.
import { constantTimeEqual, hmacSha256 } from '../crypto/index.js';
import { PalisadeError } from '../errors/index.js';
import { KEY_ID, NONCE, canonicalRequest, normaliseSignedHeaders, type CanonicalRequestInput } from './canonical.js';

/** The header that carries a request signature (lower-case, as Node reports header names). */
export const SIGNATURE_HEADER = 'palisade-signature';

/** The signature versions this code can produce and check. */
export const SIGNATURE_VERSIONS = ['v1'] as const;
export type SignatureVersion = (typeof SIGNATURE_VERSIONS)[number];

/** What a `Palisade-Signature` header says. */
export interface SignatureParams {
  version: SignatureVersion;
  keyId: string;
  /** Unix seconds. */
  timestamp: number;
  nonce: string;
  /** Lower-case, sorted. */
  signedHeaders: string[];
  /** The 32-byte HMAC-SHA256. */
  signature: Buffer;
}

const TS = /^(0|[1-9][0-9]{0,15})$/;
const SIG = /^[A-Za-z0-9_-]{43}$/; // 32 bytes in base64url without padding
const PARAMS = ['key_id', 'ts', 'nonce', 'headers', 'sig'] as const;

function malformed(detail: string): PalisadeError {
  return new PalisadeError('PAL_SIGNATURE_MALFORMED', detail);
}

/**
 * The header value, v1:
 *
 * ```
 * Palisade-Signature: v1; key_id=<id>; ts=<unix seconds>; nonce=<base64url>; headers=<name>;<name>...; sig=<base64url>
 * ```
 *
 * Elements are separated by `;` and one or more spaces; the signed header names (lower-case, sorted) are separated
 * by a `;` without spaces; `sig` is the base64url (no padding) HMAC-SHA256 of canonicalRequest() under the key's
 * secret. The first element is the version: a future version is a new first element with its own parameters,
 * canonical form and parser branch, and a server accepts the versions it lists in SIGNATURE_VERSIONS.
 */
export function formatSignatureHeader(p: Omit<SignatureParams, 'version'> & { version?: SignatureVersion }): string {
  const headers = normaliseSignedHeaders(p.signedHeaders).join(';');
  return `${p.version ?? 'v1'}; key_id=${p.keyId}; ts=${p.timestamp}; nonce=${p.nonce}; headers=${headers}; sig=${p.signature.toString('base64url')}`;
}

/**
 * Parses a `Palisade-Signature` header value strictly: the exact v1 grammar, each parameter exactly once (in any
 * order), nothing else. Throws PAL_SIGNATURE_MISSING when there is no header and PAL_SIGNATURE_MALFORMED otherwise.
 */
export function parseSignatureHeader(value: string | readonly string[] | undefined): SignatureParams {
  if (value === undefined || (Array.isArray(value) && value.length === 0) || value === '') {
    throw new PalisadeError('PAL_SIGNATURE_MISSING', 'the request has no Palisade-Signature header');
  }
  if (Array.isArray(value) && value.length > 1) throw malformed('the request has more than one Palisade-Signature header');
  const text = (Array.isArray(value) ? value[0] : value) as string;
  if (text.length > 2048) throw malformed('the Palisade-Signature header is longer than 2048 characters');
  // No v1 value holds a comma: one means two headers that a proxy or Node joined into one line.
  if (text.includes(',')) throw malformed('the request has more than one Palisade-Signature header (joined by a comma)');
  const [version, ...rest] = text.split(/; +/);
  if (version !== 'v1') {
    throw malformed(/^v[0-9]+$/.test(version ?? '') ? `signature version "${version}" is not supported (this server accepts ${SIGNATURE_VERSIONS.join(', ')})` : 'the Palisade-Signature header must start with its version ("v1; ")');
  }
  const found = new Map<string, string>();
  for (const el of rest) {
    const eq = el.indexOf('=');
    const name = eq === -1 ? el : el.slice(0, eq);
    if (eq === -1 || !(PARAMS as readonly string[]).includes(name)) throw malformed(`unexpected element "${el.slice(0, 40)}" in the Palisade-Signature header (expected ${PARAMS.join(', ')})`);
    if (found.has(name)) throw malformed(`"${name}" appears twice in the Palisade-Signature header`);
    found.set(name, el.slice(eq + 1));
  }
  const missing = PARAMS.filter((p) => !found.has(p));
  if (missing.length > 0) throw malformed(`the Palisade-Signature header lacks ${missing.join(', ')}`);
  const keyId = found.get('key_id')!;
  const ts = found.get('ts')!;
  const nonce = found.get('nonce')!;
  const headers = found.get('headers')!;
  const sig = found.get('sig')!;
  if (!KEY_ID.test(keyId)) throw malformed('key_id must be 1..128 characters of [A-Za-z0-9._~-]');
  if (!TS.test(ts) || !Number.isSafeInteger(Number(ts))) throw malformed('ts must be unix seconds, a decimal integer without leading zeros');
  if (!NONCE.test(nonce)) throw malformed('nonce must be 22..128 base64url characters (at least 128 random bits)');
  const signedHeaders = normaliseSignedHeaders(headers === '' ? [] : headers.split(';'));
  if (signedHeaders.join(';') !== headers) throw malformed('headers must list lower-case header names, sorted, separated by ";"');
  if (!SIG.test(sig)) throw malformed('sig must be 43 base64url characters (an HMAC-SHA256)');
  const signature = Buffer.from(sig, 'base64url');
  if (signature.toString('base64url') !== sig) throw malformed('sig is not canonical base64url');
  return { version: 'v1', keyId, timestamp: Number(ts), nonce, signedHeaders, signature };
}

/** The v1 signature: HMAC-SHA256 of canonicalRequest(input) under `secret`. */
export function signatureV1(secret: Uint8Array, input: CanonicalRequestInput): Buffer {
  return hmacSha256(secret, canonicalRequest(input));
}

/** Whether `signature` is the v1 signature of `input` under `secret`, compared in constant time. */
export function checkSignatureV1(secret: Uint8Array, input: CanonicalRequestInput, signature: Uint8Array): boolean {
  return constantTimeEqual(signatureV1(secret, input), signature);
}
