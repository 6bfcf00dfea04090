/**
 * What every structure a CA signs shares (certificates, CRLs, OCSP responses): the signature AlgorithmIdentifier for
 * the CA's algorithm, X.509's SIGNED{} envelope `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }` around
 * a signer's output (checked against the CA's public key before it leaves), and the parts of a CA certificate that
 * name the signer — read as the exact DER bytes the certificate carries, never re-encoded.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import type { CaAlgorithm, CaSigner } from './types.js';

/** RFC 5758 §3.2 (ECDSA: parameters absent) and RFC 4055 §5 (RSA: parameters NULL). */
const SIGNATURE_ALGORITHMS: Record<CaAlgorithm, { oid: string; hash: 'sha256' | 'sha384'; nullParameters: boolean }> = {
  'ECDSA-P256': { oid: '1.2.840.10045.4.3.2', hash: 'sha256', nullParameters: false }, // ecdsa-with-SHA256
  'ECDSA-P384': { oid: '1.2.840.10045.4.3.3', hash: 'sha384', nullParameters: false }, // ecdsa-with-SHA384
  'RSA-4096': { oid: '1.2.840.113549.1.1.11', hash: 'sha256', nullParameters: true }, // sha256WithRSAEncryption
};

export function signatureAlgorithmFor(alg: CaAlgorithm): asn.AlgorithmIdentifier {
  const a = SIGNATURE_ALGORITHMS[alg];
  return new asn.AlgorithmIdentifier(a.nullParameters ? { algorithm: a.oid, parameters: null } : { algorithm: a.oid });
}

/**
 * Sign `tbs` and wrap it as X.509's SIGNED{}: `SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }` (the shape
 * of Certificate, CertificateList and a BasicOCSPResponse without certs). The signature is verified with `publicKey`
 * first, so a signer that holds another key, uses another algorithm or faulted (RSA-CRT) never publishes its output.
 */
export async function signedDer(signer: CaSigner, tbs: Buffer, publicKey: KeyObject): Promise<Buffer> {
  const signature = await signer.sign(tbs);
  const { hash } = SIGNATURE_ALGORITHMS[signer.algorithm];
  if (!verifies(hash, tbs, publicKey, signature)) throw new Error(`the ${signer.algorithm} signer's signature does not verify with the CA certificate's public key`);
  const algorithm = Buffer.from(AsnConvert.serialize(signatureAlgorithmFor(signer.algorithm)));
  return derTlv(0x30, tbs, algorithm, derTlv(0x03, Buffer.of(0), signature));
}

function verifies(hash: string, data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify(hash, data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/** A DER TLV with a low tag number (< 31): tag, definite length, then the contents in order. */
export function derTlv(tag: number, ...contents: Buffer[]): Buffer {
  const length = contents.reduce((n, c) => n + c.length, 0);
  let header: Buffer;
  if (length < 0x80) {
    header = Buffer.of(tag, length);
  } else {
    const octets: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
    header = Buffer.of(tag, 0x80 | octets.length, ...octets);
  }
  return Buffer.concat([header, ...contents]);
}

/** One DER element inside a buffer: `buf.subarray(start, end)` is all of it, `buf.subarray(contentStart, end)` its value. */
export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/**
 * Read the DER element at `at`, which must end by `limit`. Low tag numbers and definite lengths only, in their
 * shortest form (DER); returns null for anything else, so a caller reading untrusted bytes never throws.
 */
export function readTlv(buf: Buffer, at: number, limit = buf.length): Tlv | null {
  if (at + 2 > limit) return null;
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) return null;
  const first = buf[at + 1]!;
  let length = first;
  let contentStart = at + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4 || contentStart + count > limit) return null;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[contentStart + i]!;
    if (length < 0x80 || buf[contentStart] === 0) return null;
    contentStart += count;
  }
  const end = contentStart + length;
  return end <= limit ? { tag, start: at, contentStart, end } : null;
}

/** The elements that exactly fill a constructed element's value, or null if they do not. */
export function readChildren(buf: Buffer, parent: Tlv): Tlv[] | null {
  const children: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const child = readTlv(buf, at, parent.end);
    if (!child) return null;
    children.push(child);
    at = child.end;
  }
  return children;
}

/** What CRLs and OCSP responses need from the CA certificate that signs them. */
export interface CaCertificateParts {
  /** The subject Name, the exact DER the certificate carries. */
  subject: Buffer;
  /** SubjectPublicKeyInfo, DER. */
  spki: Buffer;
  /** The subjectPublicKey BIT STRING's value without its unused-bits octet: what OCSP's key hashes cover. */
  publicKeyBits: Buffer;
  publicKey: KeyObject;
  /** The SubjectKeyIdentifier extension's value, or null when the certificate has none. */
  subjectKeyId: Buffer | null;
}

/** Take a CA certificate (DER) apart; throws if it is not a well-formed X.509 certificate. */
export function caCertificateParts(certificate: Buffer): CaCertificateParts {
  const cert = readTlv(certificate, 0);
  const top = cert && cert.end === certificate.length && cert.tag === 0x30 ? readChildren(certificate, cert) : null;
  const tbs = top?.[0]?.tag === 0x30 ? readChildren(certificate, top[0]) : null;
  // TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
  const first = tbs?.[0]?.tag === 0xa0 ? 1 : 0;
  const subject = tbs?.[first + 4];
  const spki = tbs?.[first + 5];
  const spkiFields = spki?.tag === 0x30 ? readChildren(certificate, spki) : null;
  const bits = spkiFields?.[1];
  if (!subject || subject.tag !== 0x30 || !spki || bits?.tag !== 0x03 || certificate[bits.contentStart] !== 0) {
    throw new Error('the CA certificate is not a well-formed X.509 certificate');
  }
  const spkiDer = certificate.subarray(spki.start, spki.end);
  const ski = AsnConvert.parse(certificate, asn.Certificate).tbsCertificate.extensions?.find((e) => e.extnID === asn.id_ce_subjectKeyIdentifier);
  return {
    subject: certificate.subarray(subject.start, subject.end),
    spki: spkiDer,
    publicKeyBits: certificate.subarray(bits.contentStart + 1, bits.end),
    publicKey: createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }),
    subjectKeyId: ski ? Buffer.from(AsnConvert.parse(ski.extnValue, asn.SubjectKeyIdentifier).buffer) : null,
  };
}
