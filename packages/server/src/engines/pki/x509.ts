import 'reflect-metadata';
import { createHash, createPublicKey, verify, webcrypto, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import * as asn from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { PalisadeError, randomBytes } from '@palisade/core';
import { signatureAlgorithmFor, signedDer } from './signature.js';
import type { CaSigner } from './types.js';

x509.cryptoProvider.set(webcrypto as never);

/** A subject name as ordered attributes; values are never parsed from a DN string, so nothing can be injected. */
export interface SubjectName {
  CN?: string;
  O?: string;
  OU?: string;
  C?: string;
  L?: string;
  ST?: string;
}

export interface SubjectAltNames {
  dns?: string[];
  ip?: string[];
  uri?: string[];
}

export type CertificateKind = 'root' | 'intermediate' | 'leaf';

export interface CertificateSpec {
  kind: CertificateKind;
  serial: string;
  subject: SubjectName | Buffer;
  /** The issuer's certificate (DER); absent for a self-signed root. */
  issuer?: Buffer;
  /** Subject public key, SPKI DER. */
  publicKey: Buffer;
  notBefore: Date;
  notAfter: Date;
  sans?: SubjectAltNames;
  /** Leaf extended key usages. */
  extKeyUsage?: Array<'serverAuth' | 'clientAuth'>;
  keyUsage?: Array<'digitalSignature' | 'keyEncipherment' | 'keyAgreement'>;
  /** CA path length (intermediates: 0, they issue leaves only); a root re-certified by another CA needs 1. */
  pathLength?: number;
  crlUrl?: string;
  ocspUrl?: string;
  caIssuersUrl?: string;
}

const KEY_USAGE_FLAGS = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
} as const;
const EKU = { serverAuth: x509.ExtendedKeyUsage.serverAuth, clientAuth: x509.ExtendedKeyUsage.clientAuth } as const;
const SUBJECT_ORDER: Array<keyof SubjectName> = ['C', 'ST', 'L', 'O', 'OU', 'CN'];

/** 128 random bits, positive and without a leading zero octet (RFC 5280 §4.1.2.2: ≤ 20 octets; CA/B: ≥ 64 bits of entropy). */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function keyIdentifier(spki: Buffer): Buffer {
  const info = AsnConvert.parse(spki, asn.SubjectPublicKeyInfo);
  return createHash('sha1').update(Buffer.from(info.subjectPublicKey)).digest();
}

export function nameDer(subject: SubjectName): Buffer {
  const json: x509.JsonName = [];
  for (const k of SUBJECT_ORDER) {
    const v = subject[k];
    if (v !== undefined && v !== '') json.push({ [k]: [v] });
  }
  return Buffer.from(new x509.Name(json).toArrayBuffer());
}

function ext(e: x509.Extension): asn.Extension {
  return AsnConvert.parse(e.rawData, asn.Extension);
}

function generalNames(sans: SubjectAltNames): x509.JsonGeneralName[] {
  return [
    ...(sans.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(sans.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(sans.uri ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
}

interface IssuerParts {
  name: asn.Name;
  keyId: Buffer;
  publicKey: KeyObject;
}

/** What a certificate needs of its issuer, parsed once per CA certificate (a CA issues thousands). */
const ISSUERS = new Map<string, IssuerParts>();
const MAX_ISSUERS = 64;

function issuerParts(der: Buffer): IssuerParts {
  const key = createHash('sha256').update(der).digest('base64');
  let parts = ISSUERS.get(key);
  if (!parts) {
    const cert = AsnConvert.parse(der, asn.Certificate);
    const spki = Buffer.from(AsnConvert.serialize(cert.tbsCertificate.subjectPublicKeyInfo));
    parts = { name: cert.tbsCertificate.subject, keyId: keyIdentifier(spki), publicKey: createPublicKey({ key: spki, format: 'der', type: 'spki' }) };
    if (ISSUERS.size >= MAX_ISSUERS) ISSUERS.delete(ISSUERS.keys().next().value!);
    ISSUERS.set(key, parts);
  }
  return parts;
}

/** Build and sign a certificate: the TBS is encoded once, signed by the CA's signer wherever its key lives, and assembled. */
export async function buildCertificate(spec: CertificateSpec, signer: CaSigner): Promise<Buffer> {
  const subjectDer = Buffer.isBuffer(spec.subject) ? spec.subject : nameDer(spec.subject);
  const issuer = spec.issuer ? issuerParts(spec.issuer) : null;
  const ski = keyIdentifier(spec.publicKey);
  const aki = issuer ? issuer.keyId : ski;
  const isCa = spec.kind !== 'leaf';

  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(isCa, spec.kind === 'intermediate' ? (spec.pathLength ?? 0) : spec.pathLength, true),
    isCa
      ? new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true)
      : new x509.KeyUsagesExtension((spec.keyUsage ?? ['digitalSignature']).reduce((f, u) => f | KEY_USAGE_FLAGS[u], 0), true),
    new x509.SubjectKeyIdentifierExtension(ski.toString('hex')),
  ];
  if (spec.issuer) extensions.push(new x509.AuthorityKeyIdentifierExtension(aki.toString('hex')));
  if (!isCa && spec.extKeyUsage?.length) extensions.push(new x509.ExtendedKeyUsageExtension(spec.extKeyUsage.map((u) => EKU[u]), true));
  if (spec.sans && generalNames(spec.sans).length > 0) {
    // RFC 5280 §4.2.1.6: critical when the subject is empty.
    extensions.push(new x509.SubjectAlternativeNameExtension(generalNames(spec.sans), subjectDer.length <= 2));
  }
  if (spec.kind !== 'root' && spec.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([spec.crlUrl]));
  if (spec.kind !== 'root' && (spec.ocspUrl || spec.caIssuersUrl)) {
    extensions.push(new x509.AuthorityInfoAccessExtension({ ...(spec.ocspUrl ? { ocsp: [spec.ocspUrl] } : {}), ...(spec.caIssuersUrl ? { caIssuers: [spec.caIssuersUrl] } : {}) }));
  }

  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: new Uint8Array(Buffer.from(spec.serial, 'hex')).buffer,
    signature: signatureAlgorithmFor(signer.algorithm),
    issuer: issuer ? issuer.name : AsnConvert.parse(subjectDer, asn.Name),
    validity: new asn.Validity({ notBefore: spec.notBefore, notAfter: spec.notAfter }),
    subject: AsnConvert.parse(subjectDer, asn.Name),
    subjectPublicKeyInfo: AsnConvert.parse(spec.publicKey, asn.SubjectPublicKeyInfo),
    extensions: new asn.Extensions(extensions.map(ext)),
  });
  return signedDer(signer, Buffer.from(AsnConvert.serialize(tbs)), issuer ? issuer.publicKey : createPublicKey({ key: spec.publicKey, format: 'der', type: 'spki' }));
}

export function toPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Every PEM block with this label, as DER. */
export function fromPem(text: string, label = 'CERTIFICATE'): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** What a parsed CSR asks for, after its signature was checked. */
export interface CsrInfo {
  subject: Buffer;
  subjectDn: string;
  commonName: string | null;
  publicKey: Buffer;
  sans: { dns: string[]; ip: string[]; uri: string[]; other: number };
  /** The CSR asked for CA:TRUE in its extension request. */
  asksForCa: boolean;
}

/** Parse and verify a PKCS#10 request (DER or PEM). Refuses bad signatures, CA requests and keys we do not issue for. */
export async function parseCsr(input: Buffer | string): Promise<CsrInfo> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input : new Uint8Array(input));
  } catch {
    throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR is not a PKCS#10 certification request (DER or PEM)');
  }
  const valid = csrSignatureValid(csr) ?? (await csr.verify().catch(() => false));
  if (!valid) throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR signature does not verify with its public key');
  const publicKey = Buffer.from(csr.publicKey.rawData);
  checkKey(publicKey);
  const sanExt = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  const sans = { dns: [] as string[], ip: [] as string[], uri: [] as string[], other: 0 };
  for (const n of sanExt?.names.items ?? []) {
    if (n.type === 'dns') sans.dns.push(n.value.toLowerCase());
    else if (n.type === 'ip') sans.ip.push(n.value);
    else if (n.type === 'url') sans.uri.push(n.value);
    else sans.other++;
  }
  const bc = csr.extensions.find((e): e is x509.BasicConstraintsExtension => e instanceof x509.BasicConstraintsExtension);
  const cn = csr.subjectName.getField('CN')[0] ?? null;
  return { subject: Buffer.from(csr.subjectName.toArrayBuffer()), subjectDn: csr.subject, commonName: cn, publicKey, sans, asksForCa: bc?.ca === true };
}

/** CSR signature algorithms checked with node:crypto directly (hash, DER ECDSA); others (RSA-PSS) go through WebCrypto. */
const CSR_SIGNATURES: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null, // Ed25519
};

/** The CSR's self-signature, checked with OpenSSL through node:crypto; undefined for an algorithm not listed above. */
function csrSignatureValid(csr: x509.Pkcs10CertificateRequest): boolean | undefined {
  const req = AsnConvert.parse(csr.rawData, CertificationRequest);
  const oid = req.signatureAlgorithm.algorithm;
  if (!(oid in CSR_SIGNATURES) || !req.certificationRequestInfoRaw) return undefined;
  try {
    const key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    return verify(CSR_SIGNATURES[oid] ?? null, Buffer.from(req.certificationRequestInfoRaw), { key, dsaEncoding: 'der' }, Buffer.from(req.signature));
  } catch {
    return false;
  }
}

/** Keys we certify: EC P-256/P-384, Ed25519, RSA 2048–8192. */
function checkKey(spki: Buffer): void {
  let key;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the public key cannot be read');
  }
  const d = key.asymmetricKeyDetails ?? {};
  const ok =
    (key.asymmetricKeyType === 'ec' && (d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1')) ||
    key.asymmetricKeyType === 'ed25519' ||
    (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048 && (d.modulusLength ?? 0) <= 8192);
  if (!ok) throw new PalisadeError('PAL_PKI_CSR_INVALID', `keys of type ${key.asymmetricKeyType}${d.namedCurve ? ` (${d.namedCurve})` : d.modulusLength ? ` (${d.modulusLength} bits)` : ''} are not certified: use EC P-256/P-384, Ed25519 or RSA ≥ 2048`);
}

/** Lower-case hex, as the database keys serials. */
export function serialOf(der: Buffer): string {
  return new NodeX509(der).serialNumber.toLowerCase().replace(/^(00)+(?=.)/, '');
}

/** The AuthorityKeyIdentifier's keyIdentifier of a certificate (RFC 9773 certificate ids). */
export function authorityKeyId(der: Buffer): Buffer | null {
  const c = new x509.X509Certificate(new Uint8Array(der));
  const e = c.getExtension(x509.AuthorityKeyIdentifierExtension);
  return e?.keyId ? Buffer.from(e.keyId, 'hex') : null;
}

export function spkiOf(der: Buffer): Buffer {
  return Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, asn.Certificate).tbsCertificate.subjectPublicKeyInfo));
}
