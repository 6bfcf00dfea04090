/**
 * ACME's JWS profile (RFC 8555 §6.2): flattened JSON serialization, one signature, protected header only, no
 * unencoded payloads, no `crit`. Signatures are checked with node:crypto; account keys are EC P-256/P-384, RSA of at
 * least 2048 bits or Ed25519, and the algorithm must fit the key.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { acmeError } from './problem.js';

export const JWS_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'EdDSA'] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

/** A public JWK reduced to its RFC 7638 required members (what is stored and thumbprinted). */
export type PublicJwk = { kty: 'EC'; crv: 'P-256' | 'P-384'; x: string; y: string } | { kty: 'RSA'; n: string; e: string } | { kty: 'OKP'; crv: 'Ed25519'; x: string };

export interface JwsHeader {
  alg: JwsAlgorithm;
  nonce?: string;
  url?: string;
  jwk?: PublicJwk;
  kid?: string;
}

export interface ParsedJws {
  header: JwsHeader;
  protectedB64: string;
  payloadB64: string;
  signature: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]*$/;
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export function b64u(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export function fromB64u(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || !B64URL.test(s)) throw acmeError('PAL_ACME_MALFORMED', `${what} is not base64url`);
  return Buffer.from(s, 'base64url');
}

function jsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw acmeError('PAL_ACME_MALFORMED', `${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw acmeError('PAL_ACME_MALFORMED', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** The request body as a flattened JWS; its header checked for what every ACME request needs. */
export function parseJws(body: unknown, opts: { requireNonce: boolean } = { requireNonce: true }): ParsedJws {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw acmeError('PAL_ACME_MALFORMED', 'the body must be a flattened JWS (JSON object)');
  const jws = body as Record<string, unknown>;
  if ('signatures' in jws) throw acmeError('PAL_ACME_MALFORMED', 'only the flattened JWS serialization with one signature is accepted');
  if ('header' in jws) throw acmeError('PAL_ACME_MALFORMED', 'the JWS unprotected header must not be used');
  const extra = Object.keys(jws).find((k) => k !== 'protected' && k !== 'payload' && k !== 'signature');
  if (extra !== undefined) throw acmeError('PAL_ACME_MALFORMED', `unexpected JWS member ${extra}`);
  if (typeof jws.protected !== 'string' || typeof jws.payload !== 'string' || typeof jws.signature !== 'string') {
    throw acmeError('PAL_ACME_MALFORMED', 'the JWS needs string members protected, payload and signature');
  }
  const h = jsonObject(fromB64u(jws.protected, 'the protected header'), 'the protected header');
  if (typeof h.alg !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'the protected header has no alg');
  if (!(JWS_ALGORITHMS as readonly string[]).includes(h.alg)) {
    throw acmeError('PAL_ACME_BAD_SIGNATURE_ALGORITHM', `JWS algorithm ${JSON.stringify(h.alg)} is not accepted`, { algorithms: [...JWS_ALGORITHMS] });
  }
  if ('b64' in h) throw acmeError('PAL_ACME_MALFORMED', 'the JWS Unencoded Payload Option (b64) must not be used');
  if ('crit' in h) throw acmeError('PAL_ACME_MALFORMED', 'no critical header parameters are understood');
  if (h.jwk !== undefined && h.kid !== undefined) throw acmeError('PAL_ACME_MALFORMED', 'the protected header must have jwk or kid, not both');
  if (h.url === undefined || typeof h.url !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'the protected header has no url');
  if (opts.requireNonce && (typeof h.nonce !== 'string' || h.nonce.length === 0)) throw acmeError('PAL_ACME_BAD_NONCE', 'the protected header has no nonce');
  if (h.kid !== undefined && typeof h.kid !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'kid must be a string');
  const header: JwsHeader = { alg: h.alg as JwsAlgorithm, url: h.url };
  if (typeof h.nonce === 'string') header.nonce = h.nonce;
  if (typeof h.kid === 'string') header.kid = h.kid;
  if (h.jwk !== undefined) header.jwk = publicJwk(h.jwk);
  if (!B64URL.test(jws.payload)) throw acmeError('PAL_ACME_MALFORMED', 'the payload is not base64url');
  return { header, protectedB64: jws.protected, payloadB64: jws.payload, signature: fromB64u(jws.signature, 'the signature') };
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && B64URL.test(v);

/** A JWK from a request, checked and reduced to its required public members (badPublicKey otherwise). */
export function publicJwk(v: unknown): PublicJwk {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', 'jwk must be a JSON object');
  const j = v as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => m in j)) throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', 'the jwk holds private key material');
  let jwk: PublicJwk;
  if (j.kty === 'EC' && (j.crv === 'P-256' || j.crv === 'P-384') && str(j.x) && str(j.y)) {
    const len = j.crv === 'P-256' ? 32 : 48;
    if (Buffer.from(j.x, 'base64url').length !== len || Buffer.from(j.y, 'base64url').length !== len) throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', `coordinates of a ${j.crv} key are ${len} bytes`);
    jwk = { kty: 'EC', crv: j.crv, x: j.x, y: j.y };
  } else if (j.kty === 'RSA' && str(j.n) && str(j.e)) {
    jwk = { kty: 'RSA', n: j.n, e: j.e };
  } else if (j.kty === 'OKP' && j.crv === 'Ed25519' && str(j.x)) {
    jwk = { kty: 'OKP', crv: 'Ed25519', x: j.x };
  } else {
    throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', 'account keys are EC P-256/P-384, RSA or Ed25519 JWKs');
  }
  const key = keyObject(jwk);
  if (jwk.kty === 'RSA') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', `RSA keys need at least 2048 bits, this one has ${bits}`);
  }
  return jwk;
}

export function keyObject(jwk: PublicJwk): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw acmeError('PAL_ACME_BAD_PUBLIC_KEY', 'the jwk is not a valid public key');
  }
}

/** RFC 7638 thumbprint (SHA-256, base64url): the required members in lexicographic order, no whitespace. */
export function thumbprint(jwk: PublicJwk): string {
  const canonical =
    jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}

function fits(alg: JwsAlgorithm, jwk: PublicJwk): boolean {
  switch (alg) {
    case 'ES256':
      return jwk.kty === 'EC' && jwk.crv === 'P-256';
    case 'ES384':
      return jwk.kty === 'EC' && jwk.crv === 'P-384';
    case 'RS256':
      return jwk.kty === 'RSA';
    case 'EdDSA':
      return jwk.kty === 'OKP';
  }
}

/** Throws unless the JWS signature verifies with `jwk` under the header's algorithm. */
export function verifySignature(jws: ParsedJws, jwk: PublicJwk): void {
  if (!fits(jws.header.alg, jwk)) throw acmeError('PAL_ACME_BAD_SIGNATURE_ALGORITHM', `${jws.header.alg} does not fit a ${jwk.kty} key`, { algorithms: [...JWS_ALGORITHMS] });
  const data = Buffer.from(`${jws.protectedB64}.${jws.payloadB64}`, 'ascii');
  const key = keyObject(jwk);
  let ok: boolean;
  try {
    switch (jws.header.alg) {
      case 'ES256':
        ok = jws.signature.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
        break;
      case 'ES384':
        ok = jws.signature.length === 96 && verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, jws.signature);
        break;
      case 'RS256':
        ok = verify('sha256', data, key, jws.signature);
        break;
      case 'EdDSA':
        ok = verify(null, data, key, jws.signature);
        break;
    }
  } catch {
    ok = false;
  }
  if (!ok) throw acmeError('PAL_ACME_MALFORMED', 'the JWS signature does not verify');
}

/** The payload as JSON (an object), or null for POST-as-GET (empty payload). */
export function payloadOf(jws: ParsedJws): Record<string, unknown> | null {
  if (jws.payloadB64 === '') return null;
  return jsonObject(Buffer.from(jws.payloadB64, 'base64url'), 'the payload');
}

/** Two JWKs are the same key when their thumbprints are equal. */
export function sameKey(a: PublicJwk, b: PublicJwk): boolean {
  return thumbprint(a) === thumbprint(b);
}
