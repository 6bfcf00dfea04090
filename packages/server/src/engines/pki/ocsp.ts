/**
 * OCSP (RFC 6960) for a CA that answers for the certificates it issued: read requests (POST body or the Appendix A
 * GET form), match their CertIDs to the CA, and build BasicOCSPResponses signed by the CA key itself (no delegated
 * responder, so no certs field). Requests are untrusted input: the parsers return null for anything malformed and
 * never throw, and the caller answers `malformedRequest`.
 */
import { createHash } from 'node:crypto';
import * as ocsp from '@peculiar/asn1-ocsp';
import { AsnConvert, AsnParser, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { constantTimeEqual } from '@palisade/core';
import { caCertificateParts, derTlv, readTlv, signedDer } from './signature.js';
import { REVOCATION_REASONS, type CertificateStatus, type SigningCa } from './types.js';

/** CertIDs per request: enough for a chain, and a bound on the lookups and the response size one request causes. */
export const MAX_OCSP_REQUESTS = 10;
/** Far above any honest request (ten SHA-512 CertIDs, a nonce, a signature and a short chain), checked before parsing. */
export const MAX_OCSP_REQUEST_BYTES = 64 * 1024;
/** RFC 9654 (which obsoletes RFC 8954's 32): `Nonce ::= OCTET STRING (SIZE(1..128))`; 0 octets or more than 128 is malformedRequest. */
export const MAX_OCSP_NONCE_BYTES = 128;

const OCSP_HASHES = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
export type OcspHash = (typeof OCSP_HASHES)[number];
const HASH_BY_OID = new Map<string, OcspHash>([
  ['1.3.14.3.2.26', 'sha1'],
  ['2.16.840.1.101.3.4.2.1', 'sha256'],
  ['2.16.840.1.101.3.4.2.2', 'sha384'],
  ['2.16.840.1.101.3.4.2.3', 'sha512'],
]);
/** A dotted object identifier. */
export type Oid = `${number}.${string}`;

export interface CertIdInfo {
  /** The CertID's hash, by name when known, else its OID (such a CertID never matches an issuer). */
  hashAlgorithm: OcspHash | Oid;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** Lower-case hex of the serial's magnitude without leading zero octets, as `serialOf` in x509.ts keys it. */
  serial: string;
  /** The CertID as received, echoed back in the answer. */
  raw: ocsp.CertID;
}

export interface OcspRequestInfo {
  requests: CertIdInfo[];
  /** The Nonce extension's value (1..128 octets), to echo; null when the request has none. */
  nonce: Buffer | null;
}

/**
 * Read a DER OCSPRequest; null when it is malformed. Refused as malformed: trailing bytes, more than
 * MAX_OCSP_REQUESTS CertIDs or none, a Nonce that is not an OCTET STRING of 1..128 octets (RFC 9654 §2.1), an
 * unknown critical extension (RFC 6960 §4.4). A signed request is answered like an unsigned one: its signature and
 * requestorName are ignored, since the answer only holds public status information and we never require signing.
 * Known gap: @peculiar/asn1-ocsp 2.6.1's Request schema lacks the [0] tag of singleRequestExtensions, so a request
 * carrying them (no common client sends any) does not parse and is answered as malformed.
 */
export function parseOcspRequest(der: Buffer): OcspRequestInfo | null {
  try {
    return readOcspRequest(der);
  } catch {
    return null;
  }
}

function readOcspRequest(der: Buffer): OcspRequestInfo | null {
  const outer = der.length <= MAX_OCSP_REQUEST_BYTES ? readTlv(der, 0) : null;
  if (outer?.tag !== 0x30 || outer.end !== der.length) return null;
  const tbs = AsnParser.parse(der, ocsp.OCSPRequest).tbsRequest;
  if (tbs.version !== ocsp.Version.v1 || tbs.requestList.length === 0 || tbs.requestList.length > MAX_OCSP_REQUESTS) return null;
  let nonce: Buffer | null = null;
  for (const ext of tbs.requestExtensions ?? []) {
    if (ext.extnID === ocsp.id_pkix_ocsp_nonce) {
      if (nonce) return null;
      nonce = nonceOf(Buffer.from(ext.extnValue.buffer));
      if (!nonce) return null;
    } else if (ext.critical) {
      return null;
    }
  }
  const requests: CertIdInfo[] = [];
  for (const { reqCert } of tbs.requestList) {
    const serial = Buffer.from(reqCert.serialNumber);
    if (serial.length === 0) return null;
    let start = 0;
    while (start < serial.length - 1 && serial[start] === 0) start++;
    requests.push({
      hashAlgorithm: HASH_BY_OID.get(reqCert.hashAlgorithm.algorithm) ?? (reqCert.hashAlgorithm.algorithm as Oid),
      issuerNameHash: Buffer.from(reqCert.issuerNameHash.buffer),
      issuerKeyHash: Buffer.from(reqCert.issuerKeyHash.buffer),
      serial: serial.subarray(start).toString('hex'),
      raw: reqCert,
    });
  }
  return { requests, nonce };
}

/** The Nonce extension's extnValue is the DER of `Nonce ::= OCTET STRING` (RFC 6960 §4.4.1, as OpenSSL sends it). */
function nonceOf(extnValue: Buffer): Buffer | null {
  const tlv = readTlv(extnValue, 0);
  if (tlv?.tag !== 0x04 || tlv.end !== extnValue.length) return null;
  const nonce = extnValue.subarray(tlv.contentStart, tlv.end);
  return nonce.length >= 1 && nonce.length <= MAX_OCSP_NONCE_BYTES ? nonce : null;
}

/**
 * Whether a CertID names this CA: issuerNameHash over the CA certificate's subject DER and issuerKeyHash over its
 * subjectPublicKey BIT STRING value (without the unused-bits octet), with the CertID's own hash; compared in constant
 * time. A CertID with a hash we do not compute never matches.
 */
export function matchesIssuer(certId: CertIdInfo, caCertDer: Buffer): boolean {
  const hash = OCSP_HASHES.find((h) => h === certId.hashAlgorithm);
  if (!hash) return false;
  const ca = caCertificateParts(caCertDer);
  const name = constantTimeEqual(createHash(hash).update(ca.subject).digest(), certId.issuerNameHash);
  const key = constantTimeEqual(createHash(hash).update(ca.publicKeyBits).digest(), certId.issuerKeyHash);
  return name && key;
}

/** The SHA-1 CertID of a certificate under its issuer, as a client builds it: what the listener staples an answer for. */
export function certIdFor(serialHex: string, issuerDer: Buffer): CertIdInfo {
  const ca = caCertificateParts(issuerDer);
  const issuerNameHash = createHash('sha1').update(ca.subject).digest();
  const issuerKeyHash = createHash('sha1').update(ca.publicKeyBits).digest();
  const serial = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
  const der = serial[0]! & 0x80 ? Buffer.concat([Buffer.of(0), serial]) : serial;
  const raw = new ocsp.CertID({ hashAlgorithm: new asn.AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26', parameters: null }), issuerNameHash: new OctetString(issuerNameHash), issuerKeyHash: new OctetString(issuerKeyHash), serialNumber: Uint8Array.from(der).buffer });
  return { hashAlgorithm: 'sha1', issuerNameHash, issuerKeyHash, serial: serialHex, raw };
}

export interface OcspAnswer {
  certId: CertIdInfo;
  status: CertificateStatus;
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface OcspResponseOptions {
  ca: SigningCa;
  producedAt: Date;
  responses: OcspAnswer[];
  /** The request's nonce, echoed in responseExtensions; null for none. */
  nonce: Buffer | null;
}

/**
 * A successful OCSPResponse holding a BasicOCSPResponse signed by the CA key: responderID byKey (SHA-1 of the CA's
 * subjectPublicKey value), every CertID echoed as received, times in whole seconds. A revoked answer carries its
 * revocationTime, and its revocationReason unless the reason is `unspecified`, which is left out as a CRL entry
 * leaves it out (RFC 5280 §5.3.1; the CA/Browser Forum requirements ask the same of OCSP).
 */
export async function buildOcspResponse(opts: OcspResponseOptions): Promise<Buffer> {
  if (opts.responses.length === 0) throw new RangeError('an OCSP response answers at least one CertID');
  const ca = caCertificateParts(opts.ca.certificate);
  const data = new ocsp.ResponseData({
    responderID: new ocsp.ResponderID({ byKey: new ocsp.KeyHash(createHash('sha1').update(ca.publicKeyBits).digest()) }),
    producedAt: wholeSeconds(opts.producedAt),
    responses: opts.responses.map(
      (r) =>
        new ocsp.SingleResponse({
          certID: r.certId.raw,
          certStatus: certStatus(r.status),
          thisUpdate: wholeSeconds(r.thisUpdate),
          nextUpdate: wholeSeconds(r.nextUpdate),
        }),
    ),
    ...(opts.nonce ? { responseExtensions: [new asn.Extension({ extnID: ocsp.id_pkix_ocsp_nonce, extnValue: new OctetString(derTlv(0x04, opts.nonce)) })] } : {}),
  });
  const basic = await signedDer(opts.ca.signer, Buffer.from(AsnConvert.serialize(data)), ca.publicKey);
  const response = new ocsp.OCSPResponse({
    responseStatus: ocsp.OCSPResponseStatus.successful,
    responseBytes: new ocsp.ResponseBytes({ responseType: ocsp.id_pkix_ocsp_basic, response: new OctetString(basic) }),
  });
  return Buffer.from(AsnConvert.serialize(response));
}

function certStatus(s: CertificateStatus): ocsp.CertStatus {
  switch (s.status) {
    case 'good':
      return new ocsp.CertStatus({ good: null });
    case 'unknown':
      return new ocsp.CertStatus({ unknown: null });
    case 'revoked':
      return new ocsp.CertStatus({
        revoked: new ocsp.RevokedInfo({
          revocationTime: wholeSeconds(s.revokedAt),
          ...(s.reason === 'unspecified' ? {} : { revocationReason: new asn.CRLReason(REVOCATION_REASONS[s.reason]) }),
        }),
      });
  }
}

/** GeneralizedTime in X.509 and OCSP profiles carries no fractional seconds (RFC 5280 §4.1.2.5.2). */
function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** An OCSPResponse without responseBytes: the error statuses. */
export function ocspErrorResponse(status: 'malformedRequest' | 'internalError' | 'tryLater' | 'unauthorized'): Buffer {
  return Buffer.from(AsnConvert.serialize(new ocsp.OCSPResponse({ responseStatus: ocsp.OCSPResponseStatus[status] })));
}

/**
 * The DER request of an RFC 6960 Appendix A.1 GET (`{url}/{url-encoding of base64 of the DER}`), from the path after
 * the responder's prefix; null when it is not base64. Tolerated because clients and proxies do it: '/' left raw
 * (so the tail spans path segments), '%2F'/'%2B'/'%3D' escapes, '+' turned into ' ' by a form decoder, the URL-safe
 * alphabet, missing padding, and leading slashes (base64 of a DER SEQUENCE starts with 'M', never with '/').
 */
export function ocspRequestFromGetPath(urlPathTail: string): Buffer | null {
  let text: string;
  try {
    text = decodeURIComponent(urlPathTail.replace(/^\/+/, ''));
  } catch {
    return null;
  }
  const base64 = text.replace(/ /g, '+').replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.replace(/=+$/, '').length % 4 === 1) return null;
  return Buffer.from(base64, 'base64');
}
