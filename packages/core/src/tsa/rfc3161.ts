/**
 * RFC 3161 time-stamp protocol (with the RFC 5816 ESSCertIDv2 update): build a TimeStampReq, read a TimeStampResp,
 * read a time-stamp token (a CMS SignedData over a TSTInfo, RFC 5652) and verify it against trusted CA certificates.
 *
 * DER is read by ./der.ts (strict); cryptography is node:crypto only (hashes, X509Certificate, crypto.verify).
 * Parsers throw `PalisadeError` (PAL_VALIDATION_FAILED) on malformed input; `verifyTimeStampToken` never throws for a
 * bad token: it answers `{ ok: false, reason }`.
 */
import { X509Certificate, constants, createHash, randomBytes, timingSafeEqual, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { PalisadeError } from '../errors/index.js';
import {
  TAG,
  bitsSet,
  contextTag,
  derBoolean,
  derError,
  derInteger,
  derNull,
  derOctetString,
  derOid,
  derSequence,
  expectChildren,
  expectTag,
  parseDer,
  readBitString,
  readBoolean,
  readInteger,
  readNull,
  readOctetString,
  readOid,
  readSmallInt,
  readString,
  readTime,
  type DerNode,
} from './der.js';

/** Object identifiers used by the time-stamp protocol and its verification. */
export const TSA_OID = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  signedData: '1.2.840.113549.1.7.2',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  signingCertificate: '1.2.840.113549.1.9.16.2.12',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
  extKeyUsage: '2.5.29.37',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  timeStamping: '1.3.6.1.5.5.7.3.8',
} as const;

export type TsaHash = 'sha256' | 'sha384' | 'sha512';

const HASH_BY_OID: Record<string, TsaHash> = { [TSA_OID.sha256]: 'sha256', [TSA_OID.sha384]: 'sha384', [TSA_OID.sha512]: 'sha512' };
const OID_BY_HASH: Record<TsaHash, string> = { sha256: TSA_OID.sha256, sha384: TSA_OID.sha384, sha512: TSA_OID.sha512 };
const HASH_BYTES: Record<TsaHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

const digest = (alg: TsaHash | 'sha1', data: Uint8Array): Buffer => createHash(alg).update(data).digest();

const invalid = (message: string): PalisadeError => new PalisadeError('PAL_VALIDATION_FAILED', message);

// ---------------------------------------------------------------------------------------------------------------
// Request

export interface TimeStampRequestOptions {
  /** The nonce to send: a non-negative bigint or unsigned big-endian bytes. Default: 64 random bits. `false`: none. */
  nonce?: bigint | Uint8Array | false;
  /** Ask the TSA to include its certificate in the token. Default true. */
  certReq?: boolean;
  /** reqPolicy: the TSA policy OID (dotted) to ask for. */
  policy?: string;
  /** Hash of the message imprint. Default sha256. */
  hash?: TsaHash;
}

export interface TimeStampRequest {
  /** The DER TimeStampReq, to POST as application/timestamp-query. */
  der: Buffer;
  /** The nonce in the request (null when none was sent). */
  nonce: bigint | null;
  /** The message imprint's hash and digest. */
  hash: TsaHash;
  digest: Buffer;
}

const MAX_NONCE_BYTES = 32;

function nonceValue(n: bigint | Uint8Array): bigint {
  if (typeof n === 'bigint') {
    if (n < 0n) throw invalid('timeStampRequest: the nonce must not be negative');
    if (n >= 1n << BigInt(MAX_NONCE_BYTES * 8)) throw invalid(`timeStampRequest: the nonce is longer than ${MAX_NONCE_BYTES} bytes`);
    return n;
  }
  if (n.length === 0 || n.length > MAX_NONCE_BYTES) throw invalid(`timeStampRequest: a nonce of bytes must hold 1 to ${MAX_NONCE_BYTES} bytes`);
  return BigInt(`0x${Buffer.from(n).toString('hex')}`);
}

const algorithmIdentifier = (oid: string): Buffer => derSequence(derOid(oid), derNull());

/**
 * A TimeStampReq v1 (RFC 3161 §2.4.1) for `data`: messageImprint = hash(data) (SHA-256 by default, with NULL
 * parameters as OpenSSL writes them), a 64-bit random nonce unless given, certReq TRUE unless `certReq: false`.
 */
export function timeStampRequest(data: Uint8Array, opts: TimeStampRequestOptions = {}): TimeStampRequest {
  const hash = opts.hash ?? 'sha256';
  if (!(hash in OID_BY_HASH)) throw invalid(`timeStampRequest: unsupported hash ${String(hash)}`);
  const imprint = digest(hash, data);
  const nonce = opts.nonce === false ? null : opts.nonce === undefined ? BigInt(`0x${randomBytes(8).toString('hex')}`) : nonceValue(opts.nonce);
  const parts: Buffer[] = [derInteger(1), derSequence(algorithmIdentifier(OID_BY_HASH[hash]), derOctetString(imprint))];
  if (opts.policy !== undefined) {
    try {
      parts.push(derOid(opts.policy));
    } catch {
      throw invalid(`timeStampRequest: policy "${opts.policy}" is not a dotted object identifier`);
    }
  }
  if (nonce !== null) parts.push(derInteger(nonce));
  if (opts.certReq !== false) parts.push(derBoolean(true)); // DEFAULT FALSE: DER omits the default
  return { der: derSequence(...parts), nonce, hash, digest: imprint };
}

// ---------------------------------------------------------------------------------------------------------------
// Response

export const PKI_STATUS = ['granted', 'grantedWithMods', 'rejection', 'waiting', 'revocationWarning', 'revocationNotification'] as const;
export type PkiStatusName = (typeof PKI_STATUS)[number];

/** PKIFailureInfo bit names (RFC 3161 §2.4.2). */
const FAILURE_BITS: Record<number, string> = {
  0: 'badAlg',
  2: 'badRequest',
  5: 'badDataFormat',
  14: 'timeNotAvailable',
  15: 'unacceptedPolicy',
  16: 'unacceptedExtension',
  17: 'addInfoNotAvailable',
  25: 'systemFailure',
};

export interface TimeStampResponse {
  /** PKIStatus: 0 granted, 1 grantedWithMods, 2 rejection, 3 waiting, 4 revocationWarning, 5 revocationNotification. */
  status: number;
  statusName: PkiStatusName;
  /** True for granted and grantedWithMods: the response holds a token. */
  granted: boolean;
  /** PKIFreeText lines the TSA sent. */
  statusString: string[];
  /** PKIFailureInfo bits set, by name (`bitN` for bits RFC 3161 does not name). */
  failInfo: string[];
  /** The TimeStampToken (a CMS ContentInfo, DER) when granted, else null. */
  token: Buffer | null;
}

/** Read a DER TimeStampResp (RFC 3161 §2.4.2). Throws PAL_VALIDATION_FAILED when it is malformed. */
export function parseTimeStampResponse(der: Uint8Array): TimeStampResponse {
  const L = 'time-stamp response';
  const root = expectTag(parseDer(der, L), TAG.SEQUENCE, L, 'TimeStampResp');
  const [statusInfo, tokenNode] = expectChildren(root, L, 'TimeStampResp', 1, 2);
  const si = expectChildren(expectTag(statusInfo, TAG.SEQUENCE, L, 'PKIStatusInfo'), L, 'PKIStatusInfo', 1, 3);
  const status = readSmallInt(si[0], L, 'PKIStatus', 255);
  if (status >= PKI_STATUS.length) throw derError(L, `unknown PKIStatus ${status}`, si[0]!.offset);
  let i = 1;
  const statusString: string[] = [];
  if (si[i]?.tag === TAG.SEQUENCE) {
    const text = si[i++]!;
    if (text.children.length === 0) throw derError(L, 'PKIFreeText is empty', text.offset);
    for (const line of text.children) {
      if (line.tag !== TAG.UTF8_STRING) throw derError(L, 'PKIFreeText must hold UTF8Strings', line.offset);
      statusString.push(readString(line, L, 'PKIFreeText'));
    }
  }
  const failInfo: string[] = [];
  if (si[i]?.tag === TAG.BIT_STRING) {
    for (const bit of bitsSet(readBitString(si[i++], L, 'PKIFailureInfo'))) failInfo.push(FAILURE_BITS[bit] ?? `bit${bit}`);
  }
  if (i !== si.length) throw derError(L, 'unexpected element in PKIStatusInfo', si[i]!.offset);
  const granted = status === 0 || status === 1;
  if (granted && !tokenNode) throw derError(L, `status ${PKI_STATUS[status]} but no time-stamp token`);
  if (!granted && tokenNode) throw derError(L, `status ${PKI_STATUS[status]} must not carry a time-stamp token`, tokenNode.offset);
  if (tokenNode) expectTag(tokenNode, TAG.SEQUENCE, L, 'TimeStampToken');
  return { status, statusName: PKI_STATUS[status]!, granted, statusString, failInfo, token: tokenNode ? Buffer.from(tokenNode.der) : null };
}

// ---------------------------------------------------------------------------------------------------------------
// Token

export interface AlgorithmIdentifier {
  oid: string;
  /** DER of the parameters, or null when absent. */
  parameters: Buffer | null;
}

export interface Accuracy {
  seconds: number;
  millis: number;
  micros: number;
}

export interface GeneralNameInfo {
  /** The GeneralName's DER. */
  der: Buffer;
  /** directoryName as an RFC 4514-style string, or the text of an rfc822Name, dNSName or URI; null for other forms. */
  text: string | null;
}

export interface TstInfo {
  version: number;
  policy: string;
  messageImprint: { hashAlgorithm: string; digest: Buffer };
  serialNumber: bigint;
  /** genTime, truncated to milliseconds. */
  genTime: Date;
  /** genTime as encoded (GeneralizedTime, may carry finer fractions). */
  genTimeText: string;
  accuracy: Accuracy | null;
  ordering: boolean;
  nonce: bigint | null;
  tsa: GeneralNameInfo | null;
  extensions: { oid: string; critical: boolean; value: Buffer }[];
}

export type SignerIdentifier =
  | { type: 'issuerAndSerialNumber'; /** The issuer Name's DER. */ issuer: Buffer; /** INTEGER contents octets. */ serialNumber: Buffer }
  | { type: 'subjectKeyIdentifier'; keyIdentifier: Buffer };

export interface SignerInfoParts {
  version: number;
  sid: SignerIdentifier;
  digestAlgorithm: AlgorithmIdentifier;
  /** The signed attributes as they appear in the token ([0] IMPLICIT). The signature covers them re-tagged as a SET (0x31). */
  signedAttributes: Buffer | null;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Buffer;
}

export interface TimeStampToken {
  /** The SignedData's eContentType (id-ct-TSTInfo). */
  eContentType: string;
  /** The TSTInfo DER (the encapsulated content the signature's message digest covers). */
  tstInfoDer: Buffer;
  tstInfo: TstInfo;
  signedDataVersion: number;
  digestAlgorithms: AlgorithmIdentifier[];
  /** Certificates in the token (DER), in order; other CertificateChoices are skipped. */
  certificates: Buffer[];
  signerInfo: SignerInfoParts;
}

/** Reads a list of children in order, each optional field by its tag. */
class Cursor {
  #i = 0;
  constructor(
    private readonly nodes: readonly DerNode[],
    private readonly label: string,
    private readonly what: string,
  ) {}
  next(what: string): DerNode {
    const n = this.nodes[this.#i++];
    if (!n) throw derError(this.label, `${this.what}: missing ${what}`);
    return n;
  }
  optional(tag: number): DerNode | undefined {
    const n = this.nodes[this.#i];
    if (n?.tag !== tag) return undefined;
    this.#i++;
    return n;
  }
  end(): void {
    const n = this.nodes[this.#i];
    if (n) throw derError(this.label, `${this.what}: unexpected element`, n.offset);
  }
}

function readAlgorithm(node: DerNode | undefined, L: string, what: string): AlgorithmIdentifier {
  const seq = expectChildren(expectTag(node, TAG.SEQUENCE, L, what), L, what, 1, 2);
  return { oid: readOid(seq[0], L, `${what} algorithm`), parameters: seq[1] ? Buffer.from(seq[1].der) : null };
}

/** A digest AlgorithmIdentifier's hash: parameters absent or NULL (RFC 5754). null if not SHA-256/384/512. */
function hashOf(alg: AlgorithmIdentifier, L: string, what: string): TsaHash | null {
  if (alg.parameters) readNull(parseDer(alg.parameters, L), L, `${what} parameters`);
  return HASH_BY_OID[alg.oid] ?? null;
}

const ATTR_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.9': 'street',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.97': 'organizationIdentifier',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/** A Name as an RFC 4514-style string (last RDN first; unknown attributes by OID, non-string values as #hex). */
export function nameToString(nameDer: Uint8Array): string {
  const L = 'Name';
  const name = expectTag(parseDer(nameDer, L), TAG.SEQUENCE, L, 'Name');
  const rdns = name.children.map((rdn) => {
    const atvs = expectChildren(expectTag(rdn, TAG.SET, L, 'RelativeDistinguishedName'), L, 'RelativeDistinguishedName', 1, Infinity);
    return atvs
      .map((atv) => {
        const [type, value] = expectChildren(expectTag(atv, TAG.SEQUENCE, L, 'AttributeTypeAndValue'), L, 'AttributeTypeAndValue', 2);
        const oid = readOid(type, L, 'attribute type');
        let text: string;
        try {
          text = readString(value, L, 'attribute value').replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])|( )$/g, '\\$1$2');
        } catch {
          text = `#${value!.der.toString('hex')}`;
        }
        return `${ATTR_NAMES[oid] ?? oid}=${text}`;
      })
      .join('+');
  });
  return rdns.reverse().join(',');
}

function generalName(node: DerNode, L: string): GeneralNameInfo {
  let text: string | null = null;
  if (node.tag === contextTag(4, true)) {
    const [name] = expectChildren(node, L, 'directoryName', 1);
    text = nameToString(expectTag(name, TAG.SEQUENCE, L, 'directoryName').der);
  } else if (node.tag === contextTag(1, false) || node.tag === contextTag(2, false) || node.tag === contextTag(6, false)) {
    text = node.value.toString('latin1'); // IA5String
  }
  return { der: Buffer.from(node.der), text };
}

function readExtensions(node: DerNode, L: string, what: string): { oid: string; critical: boolean; value: Buffer }[] {
  const out: { oid: string; critical: boolean; value: Buffer }[] = [];
  for (const ext of expectChildren(node, L, what, 1, Infinity)) {
    const c = new Cursor(expectTag(ext, TAG.SEQUENCE, L, 'Extension').children, L, 'Extension');
    const oid = readOid(c.next('extnID'), L, 'extnID');
    const crit = c.optional(TAG.BOOLEAN);
    const critical = crit ? readBoolean(crit, L, 'critical') : false;
    const value = readOctetString(c.next('extnValue'), L, 'extnValue');
    c.end();
    if (out.some((e) => e.oid === oid)) throw derError(L, `${what}: extension ${oid} appears twice`, ext.offset);
    out.push({ oid, critical, value: Buffer.from(value) });
  }
  return out;
}

function readTstInfo(der: Buffer): TstInfo {
  const L = 'TSTInfo';
  const root = expectTag(parseDer(der, L), TAG.SEQUENCE, L, 'TSTInfo');
  const c = new Cursor(root.children, L, 'TSTInfo');
  const version = readSmallInt(c.next('version'), L, 'version', 255);
  if (version !== 1) throw derError(L, `version ${version} is not 1`);
  const policy = readOid(c.next('policy'), L, 'policy');
  const mi = expectChildren(expectTag(c.next('messageImprint'), TAG.SEQUENCE, L, 'messageImprint'), L, 'messageImprint', 2);
  const hashAlgorithm = readAlgorithm(mi[0], L, 'messageImprint hashAlgorithm');
  if (hashAlgorithm.parameters) readNull(parseDer(hashAlgorithm.parameters, L), L, 'messageImprint hashAlgorithm parameters');
  const imprint = readOctetString(mi[1], L, 'hashedMessage');
  const serialNumber = readInteger(c.next('serialNumber'), L, 'serialNumber');
  const genTimeNode = c.next('genTime');
  if (genTimeNode.tag !== TAG.GENERALIZED_TIME) throw derError(L, 'genTime must be a GeneralizedTime', genTimeNode.offset);
  const genTime = readTime(genTimeNode, L, 'genTime');

  let accuracy: Accuracy | null = null;
  const acc = c.optional(TAG.SEQUENCE);
  if (acc) {
    const a = new Cursor(acc.children, L, 'accuracy');
    const s = a.optional(TAG.INTEGER);
    const ms = a.optional(contextTag(0, false));
    const us = a.optional(contextTag(1, false));
    a.end();
    accuracy = {
      seconds: s ? readSmallInt(s, L, 'accuracy seconds', 2 ** 31) : 0,
      millis: ms ? readSmallInt(ms, L, 'accuracy millis', 999, contextTag(0, false)) : 0,
      micros: us ? readSmallInt(us, L, 'accuracy micros', 999, contextTag(1, false)) : 0,
    };
  }
  const ord = c.optional(TAG.BOOLEAN);
  const ordering = ord ? readBoolean(ord, L, 'ordering') : false;
  const nonceNode = c.optional(TAG.INTEGER);
  const nonce = nonceNode ? readInteger(nonceNode, L, 'nonce') : null;
  const tsaNode = c.optional(contextTag(0, true));
  const tsa = tsaNode ? generalName(expectChildren(tsaNode, L, 'tsa', 1)[0]!, L) : null;
  const extNode = c.optional(contextTag(1, true));
  const extensions = extNode ? readExtensions(extNode, L, 'extensions') : [];
  c.end();
  return {
    version,
    policy,
    messageImprint: { hashAlgorithm: hashAlgorithm.oid, digest: Buffer.from(imprint) },
    serialNumber,
    genTime: genTime.date,
    genTimeText: genTime.text,
    accuracy,
    ordering,
    nonce,
    tsa,
    extensions,
  };
}

function readSignerInfo(node: DerNode, L: string): SignerInfoParts {
  const c = new Cursor(expectTag(node, TAG.SEQUENCE, L, 'SignerInfo').children, L, 'SignerInfo');
  const version = readSmallInt(c.next('version'), L, 'SignerInfo version', 255);
  const sidNode = c.next('sid');
  let sid: SignerIdentifier;
  if (sidNode.tag === TAG.SEQUENCE) {
    const [issuer, serial] = expectChildren(sidNode, L, 'issuerAndSerialNumber', 2);
    expectTag(issuer, TAG.SEQUENCE, L, 'issuer');
    sid = { type: 'issuerAndSerialNumber', issuer: Buffer.from(issuer!.der), serialNumber: Buffer.from(expectTag(serial, TAG.INTEGER, L, 'serialNumber').value) };
    if (version !== 1) throw derError(L, `SignerInfo version ${version} with issuerAndSerialNumber (must be 1)`);
  } else if (sidNode.tag === contextTag(0, false)) {
    sid = { type: 'subjectKeyIdentifier', keyIdentifier: Buffer.from(sidNode.value) };
    if (version !== 3) throw derError(L, `SignerInfo version ${version} with subjectKeyIdentifier (must be 3)`);
  } else {
    throw derError(L, `sid: expected issuerAndSerialNumber or [0] subjectKeyIdentifier, found tag 0x${sidNode.tag.toString(16)}`, sidNode.offset);
  }
  const digestAlgorithm = readAlgorithm(c.next('digestAlgorithm'), L, 'digestAlgorithm');
  const attrs = c.optional(contextTag(0, true));
  const signatureAlgorithm = readAlgorithm(c.next('signatureAlgorithm'), L, 'signatureAlgorithm');
  const signature = readOctetString(c.next('signature'), L, 'signature');
  c.optional(contextTag(1, true)); // unsignedAttrs: not used
  c.end();
  return { version, sid, digestAlgorithm, signedAttributes: attrs ? Buffer.from(attrs.der) : null, signatureAlgorithm, signature: Buffer.from(signature) };
}

/**
 * Read a time-stamp token (RFC 3161 §2.4.2: a CMS ContentInfo holding a SignedData whose encapsulated content is a
 * TSTInfo). Structure only: nothing is verified. Throws PAL_VALIDATION_FAILED when the token is malformed, is not a
 * SignedData, does not encapsulate a TSTInfo, or has other than exactly one signer.
 */
export function parseTimeStampToken(tokenDer: Uint8Array): TimeStampToken {
  const L = 'time-stamp token';
  const root = parseDer(tokenDer, L);
  const [ctype, content] = expectChildren(expectTag(root, TAG.SEQUENCE, L, 'ContentInfo'), L, 'ContentInfo', 2);
  const contentType = readOid(ctype, L, 'contentType');
  if (contentType !== TSA_OID.signedData) throw derError(L, `contentType ${contentType} is not id-signedData`);
  const [sd] = expectChildren(expectTag(content, contextTag(0, true), L, 'content'), L, 'content', 1);
  const c = new Cursor(expectTag(sd, TAG.SEQUENCE, L, 'SignedData').children, L, 'SignedData');
  const signedDataVersion = readSmallInt(c.next('version'), L, 'SignedData version', 255);
  const digestAlgorithms = expectTag(c.next('digestAlgorithms'), TAG.SET, L, 'digestAlgorithms').children.map((a) => readAlgorithm(a, L, 'digestAlgorithm'));

  const [eType, eContent] = expectChildren(expectTag(c.next('encapContentInfo'), TAG.SEQUENCE, L, 'encapContentInfo'), L, 'encapContentInfo', 1, 2);
  const eContentType = readOid(eType, L, 'eContentType');
  if (eContentType !== TSA_OID.tstInfo) throw derError(L, `eContentType ${eContentType} is not id-ct-TSTInfo`);
  if (!eContent) throw derError(L, 'the TSTInfo is not encapsulated (detached content)');
  const [octets] = expectChildren(expectTag(eContent, contextTag(0, true), L, 'eContent'), L, 'eContent', 1);
  const tstInfoDer = Buffer.from(readOctetString(octets, L, 'eContent'));

  const certificates: Buffer[] = [];
  const certs = c.optional(contextTag(0, true));
  for (const cert of certs?.children ?? []) if (cert.tag === TAG.SEQUENCE) certificates.push(Buffer.from(cert.der));
  c.optional(contextTag(1, true)); // crls: not used
  const signers = expectTag(c.next('signerInfos'), TAG.SET, L, 'signerInfos');
  c.end();
  if (signers.children.length !== 1) throw derError(L, `a time-stamp token has exactly one signer, this one has ${signers.children.length}`, signers.offset);
  const signerInfo = readSignerInfo(signers.children[0]!, L);
  return { eContentType, tstInfoDer, tstInfo: readTstInfo(tstInfoDer), signedDataVersion, digestAlgorithms, certificates, signerInfo };
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates (the fields verification needs, read from the DER)

interface CertInfo {
  der: Buffer;
  x509: X509Certificate;
  serial: Buffer;
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: { oid: string; critical: boolean; value: Buffer }[];
}

function certInfo(x509: X509Certificate): CertInfo {
  const L = 'certificate';
  const der = x509.raw;
  const [tbs] = expectChildren(expectTag(parseDer(der, L), TAG.SEQUENCE, L, 'Certificate'), L, 'Certificate', 3);
  const c = new Cursor(expectTag(tbs, TAG.SEQUENCE, L, 'tbsCertificate').children, L, 'tbsCertificate');
  c.optional(contextTag(0, true)); // version
  const serial = Buffer.from(expectTag(c.next('serialNumber'), TAG.INTEGER, L, 'serialNumber').value);
  c.next('signature');
  const issuer = Buffer.from(expectTag(c.next('issuer'), TAG.SEQUENCE, L, 'issuer').der);
  const [nb, na] = expectChildren(expectTag(c.next('validity'), TAG.SEQUENCE, L, 'validity'), L, 'validity', 2);
  c.next('subject');
  c.next('subjectPublicKeyInfo');
  c.optional(contextTag(1, false));
  c.optional(contextTag(2, false));
  const ext = c.optional(contextTag(3, true));
  c.end();
  const extensions = ext ? readExtensions(expectTag(expectChildren(ext, L, 'extensions', 1)[0], TAG.SEQUENCE, L, 'Extensions'), L, 'extensions') : [];
  return { der, x509, serial, issuer, notBefore: readTime(nb, L, 'notBefore').date, notAfter: readTime(na, L, 'notAfter').date, extensions };
}

const extension = (cert: CertInfo, oid: string) => cert.extensions.find((e) => e.oid === oid);

function subjectKeyIdentifier(cert: CertInfo): Buffer | null {
  const e = extension(cert, TSA_OID.subjectKeyIdentifier);
  return e ? readOctetString(parseDer(e.value, 'certificate'), 'certificate', 'subjectKeyIdentifier') : null;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in PEM text (a bundle may hold several). Throws PAL_VALIDATION_FAILED if one does not parse. */
function pemCertificates(pems: readonly string[], what: string): CertInfo[] {
  const out: CertInfo[] = [];
  pems.forEach((pem, i) => {
    const blocks = pem.match(PEM_CERT);
    if (!blocks) throw invalid(`verifyTimeStampToken: ${what}[${i}] holds no PEM certificate`);
    for (const block of blocks) {
      try {
        out.push(certInfo(new X509Certificate(block)));
      } catch (e) {
        throw new PalisadeError('PAL_VALIDATION_FAILED', `verifyTimeStampToken: ${what}[${i}] is not a readable certificate`, { cause: e });
      }
    }
  });
  return out;
}

const validAt = (cert: CertInfo, t: Date): boolean => cert.notBefore.getTime() <= t.getTime() && t.getTime() <= cert.notAfter.getTime();

const subjectOf = (cert: CertInfo): string => cert.x509.subject.replace(/\n/g, ', ');

// ---------------------------------------------------------------------------------------------------------------
// Verification

export interface VerifyTimeStampOptions {
  /** PEM certificates of the CAs to trust (each string may hold several). At least one. */
  trusted: readonly string[];
  /** The nonce of the request: the token must carry exactly this nonce. */
  nonce?: bigint;
  /** Extra (untrusted) PEM certificates to find the signer and intermediates in, besides the token's own. */
  untrusted?: readonly string[];
  /** The TSA policy OID the token must carry. */
  policy?: string;
}

export type TimeStampVerification =
  | {
      ok: true;
      genTime: Date;
      /** The TSTInfo serialNumber. */
      serial: bigint;
      /** The certificate that signed the token. */
      tsaCertificate: X509Certificate;
      /** From the TSA certificate up to (and including) the trusted CA it chains to. */
      chain: X509Certificate[];
      token: TimeStampToken;
    }
  | { ok: false; reason: string };

class Refused extends Error {}
const refuse = (reason: string): never => {
  throw new Refused(reason);
};

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && timingSafeEqual(a, b);

interface Attribute {
  values: readonly DerNode[];
}

function signedAttributes(attrsDer: Buffer): Map<string, Attribute> {
  const L = 'signed attributes';
  const set = parseDer(attrsDer, L);
  const out = new Map<string, Attribute>();
  for (const attr of expectChildren(set, L, 'SignedAttributes', 1, Infinity)) {
    const [type, values] = expectChildren(expectTag(attr, TAG.SEQUENCE, L, 'Attribute'), L, 'Attribute', 2);
    const oid = readOid(type, L, 'attrType');
    const vals = expectChildren(expectTag(values, TAG.SET, L, 'attrValues'), L, `attribute ${oid} values`, 1, Infinity);
    if (out.has(oid)) throw derError(L, `attribute ${oid} appears twice`, attr.offset);
    out.set(oid, { values: vals });
  }
  return out;
}

function single(attrs: Map<string, Attribute>, oid: string, name: string): DerNode {
  const a = attrs.get(oid) ?? refuse(`the signed attributes lack ${name}`);
  if (a.values.length !== 1) refuse(`the ${name} attribute must have exactly one value`);
  return a.values[0]!;
}

/** The ESS signing-certificate attribute (v2 preferred) must name the signer certificate by hash (RFC 3161 §2.4.1, RFC 5816). */
function checkSigningCertificate(attrs: Map<string, Attribute>, signer: CertInfo): void {
  const L = 'signing certificate attribute';
  const v2 = attrs.get(TSA_OID.signingCertificateV2);
  const v1 = attrs.get(TSA_OID.signingCertificate);
  if (!v2 && !v1) refuse('the signed attributes lack the ESS signing-certificate attribute (RFC 3161 §2.4.1)');
  const value = v2 ? single(attrs, TSA_OID.signingCertificateV2, 'signingCertificateV2') : single(attrs, TSA_OID.signingCertificate, 'signingCertificate');
  const [certs] = expectChildren(expectTag(value, TAG.SEQUENCE, L, 'SigningCertificate'), L, 'SigningCertificate', 1, 2);
  const [first] = expectChildren(expectTag(certs, TAG.SEQUENCE, L, 'certs'), L, 'certs', 1, Infinity);
  const c = new Cursor(expectTag(first, TAG.SEQUENCE, L, 'ESSCertID').children, L, 'ESSCertID');
  let hash: TsaHash | 'sha1' = 'sha1';
  if (v2) {
    const alg = c.optional(TAG.SEQUENCE);
    hash = alg ? (hashOf(readAlgorithm(alg, L, 'hashAlgorithm'), L, 'hashAlgorithm') ?? refuse('ESSCertIDv2 uses an unsupported hash algorithm')) : 'sha256';
  }
  const certHash = readOctetString(c.next('certHash'), L, 'certHash');
  const issuerSerial = c.optional(TAG.SEQUENCE);
  c.end();
  if (!equalBytes(certHash, digest(hash, signer.der))) refuse('the ESS signing-certificate attribute does not match the signer certificate');
  if (issuerSerial) {
    const [names, serial] = expectChildren(issuerSerial, L, 'IssuerSerial', 2);
    if (!expectTag(serial, TAG.INTEGER, L, 'serialNumber').value.equals(signer.serial)) refuse('the ESS signing-certificate attribute names another serial number');
    const dirNames = expectTag(names, TAG.SEQUENCE, L, 'GeneralNames').children.filter((n) => n.tag === contextTag(4, true));
    if (dirNames.length > 0 && !dirNames.some((n) => n.children[0]?.der.equals(signer.issuer))) refuse('the ESS signing-certificate attribute names another issuer');
  }
}

const SIG_HASH: Record<string, { key: 'rsa' | 'ec'; hash: TsaHash }> = {
  [TSA_OID.sha256WithRSAEncryption]: { key: 'rsa', hash: 'sha256' },
  [TSA_OID.sha384WithRSAEncryption]: { key: 'rsa', hash: 'sha384' },
  [TSA_OID.sha512WithRSAEncryption]: { key: 'rsa', hash: 'sha512' },
  [TSA_OID.ecdsaWithSha256]: { key: 'ec', hash: 'sha256' },
  [TSA_OID.ecdsaWithSha384]: { key: 'ec', hash: 'sha384' },
  [TSA_OID.ecdsaWithSha512]: { key: 'ec', hash: 'sha512' },
};

/** RSASSA-PSS-params (RFC 4055): hash, MGF1 with the same hash, salt length, trailer 1. SHA-1 defaults are refused. */
function pssParams(parameters: Buffer | null): { hash: TsaHash; saltLength: number } {
  const L = 'RSASSA-PSS parameters';
  if (!parameters) return refuse('RSASSA-PSS without parameters means SHA-1, which is not accepted');
  const c = new Cursor(expectTag(parseDer(parameters, L), TAG.SEQUENCE, L, 'RSASSA-PSS-params').children, L, 'RSASSA-PSS-params');
  const h = c.optional(contextTag(0, true));
  const m = c.optional(contextTag(1, true));
  const s = c.optional(contextTag(2, true));
  const t = c.optional(contextTag(3, true));
  c.end();
  if (!h || !m) return refuse('RSASSA-PSS with the default (SHA-1) hash or mask generation is not accepted');
  const hash = hashOf(readAlgorithm(expectChildren(h, L, 'hashAlgorithm', 1)[0], L, 'hashAlgorithm'), L, 'hashAlgorithm') ?? refuse('RSASSA-PSS with an unsupported hash');
  const mgf = readAlgorithm(expectChildren(m, L, 'maskGenAlgorithm', 1)[0], L, 'maskGenAlgorithm');
  if (mgf.oid !== TSA_OID.mgf1 || !mgf.parameters) refuse('RSASSA-PSS with a mask generation function other than MGF1');
  const mgfHash = hashOf(readAlgorithm(parseDer(mgf.parameters!, L), L, 'MGF1 hash'), L, 'MGF1 hash');
  if (mgfHash !== hash) refuse('RSASSA-PSS whose MGF1 hash differs from its hash');
  const saltLength = s ? readSmallInt(expectChildren(s, L, 'saltLength', 1)[0], L, 'saltLength', 1024) : 20;
  if (t && readSmallInt(expectChildren(t, L, 'trailerField', 1)[0], L, 'trailerField', 255) !== 1) refuse('RSASSA-PSS trailerField must be 1');
  return { hash, saltLength };
}

function checkSignature(si: SignerInfoParts, digestHash: TsaHash, signedBytes: Buffer, key: KeyObject): void {
  const { oid, parameters } = si.signatureAlgorithm;
  const keyType = key.asymmetricKeyType;
  if ((keyType === 'rsa' || keyType === 'rsa-pss') && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) refuse('the signer RSA key is shorter than 2048 bits');
  let ok: boolean;
  const fixed = SIG_HASH[oid];
  if (fixed || oid === TSA_OID.rsaEncryption || oid === TSA_OID.ecPublicKey) {
    const kind = fixed?.key ?? (oid === TSA_OID.rsaEncryption ? 'rsa' : 'ec');
    if (keyType !== kind) refuse(`signature algorithm ${oid} does not fit the signer's ${keyType} key`);
    if (parameters && !(kind === 'rsa' && parameters.equals(derNull()))) refuse(`signature algorithm ${oid} has unexpected parameters`);
    const hash = fixed?.hash ?? digestHash;
    ok = cryptoVerify(hash, signedBytes, kind === 'rsa' ? { key, padding: constants.RSA_PKCS1_PADDING } : { key, dsaEncoding: 'der' }, si.signature);
  } else if (oid === TSA_OID.rsassaPss) {
    if (keyType !== 'rsa' && keyType !== 'rsa-pss') refuse(`RSASSA-PSS does not fit the signer's ${keyType} key`);
    const { hash, saltLength } = pssParams(parameters);
    ok = cryptoVerify(hash, signedBytes, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, si.signature);
  } else if (oid === TSA_OID.ed25519) {
    if (keyType !== 'ed25519') refuse(`Ed25519 does not fit the signer's ${keyType} key`);
    if (parameters) refuse('Ed25519 takes no parameters');
    ok = cryptoVerify(null, signedBytes, key, si.signature);
  } else {
    return refuse(`unsupported signature algorithm ${oid}`);
  }
  if (!ok) refuse("the signature does not verify with the signer certificate's key");
}

function findSigner(sid: SignerIdentifier, pool: readonly CertInfo[]): CertInfo | undefined {
  if (sid.type === 'issuerAndSerialNumber') return pool.find((c) => c.serial.equals(sid.serialNumber) && c.issuer.equals(sid.issuer));
  return pool.find((c) => subjectKeyIdentifier(c)?.equals(sid.keyIdentifier) ?? false);
}

/** RFC 3161 §2.3: exactly one extended key usage, id-kp-timeStamping, in a critical extension; key usage (if any) allows signing. */
function checkTsaCertificate(cert: CertInfo): void {
  const L = 'TSA certificate';
  const eku = extension(cert, TSA_OID.extKeyUsage) ?? refuse(`the TSA certificate (${subjectOf(cert)}) has no extended key usage (id-kp-timeStamping required)`);
  const purposes = expectChildren(expectTag(parseDer(eku.value, L), TAG.SEQUENCE, L, 'ExtKeyUsageSyntax'), L, 'ExtKeyUsageSyntax', 1, Infinity).map((p) => readOid(p, L, 'KeyPurposeId'));
  if (!purposes.includes(TSA_OID.timeStamping)) refuse(`the TSA certificate (${subjectOf(cert)}) lacks the id-kp-timeStamping extended key usage`);
  if (purposes.length !== 1) refuse(`the TSA certificate (${subjectOf(cert)}) has extended key usages besides id-kp-timeStamping`);
  if (!eku.critical) refuse(`the TSA certificate (${subjectOf(cert)}) has a non-critical extended key usage (must be critical)`);
  const ku = extension(cert, TSA_OID.keyUsage);
  if (ku) {
    const bits = bitsSet(readBitString(parseDer(ku.value, L), L, 'KeyUsage'));
    if (!bits.includes(0) && !bits.includes(1)) refuse(`the TSA certificate (${subjectOf(cert)}) key usage allows neither digitalSignature nor nonRepudiation`);
  }
}

const MAX_CHAIN = 8;

/** Signer → (intermediates from the pool) → a trusted CA; every certificate valid at `at`, every issuer a CA. */
function buildChain(signer: CertInfo, pool: readonly CertInfo[], anchors: readonly CertInfo[], at: Date): CertInfo[] {
  const chain = [signer];
  let cur = signer;
  const issuedBy = (issuer: CertInfo, subject: CertInfo): boolean => {
    try {
      return subject.x509.checkIssued(issuer.x509) && subject.x509.verify(issuer.x509.publicKey); // "this was issued by other"
    } catch {
      return false;
    }
  };
  for (;;) {
    if (anchors.some((a) => a.der.equals(cur.der))) return chain; // the certificate itself is trusted
    const anchor = anchors.find((a) => issuedBy(a, cur));
    const next = anchor ?? pool.find((p) => !chain.some((c) => c.der.equals(p.der)) && issuedBy(p, cur));
    if (!next) {
      return refuse(
        chain.length === 1
          ? `the TSA certificate (${subjectOf(signer)}) does not chain to a trusted CA`
          : `the chain of the TSA certificate stops at ${subjectOf(cur)}, which is not issued by a trusted CA`,
      );
    }
    if (!next.x509.ca) refuse(`${subjectOf(next)} issued ${subjectOf(cur)} but is not a CA`);
    if (!validAt(next, at)) refuse(`the CA certificate ${subjectOf(next)} was not valid at genTime ${at.toISOString()}`);
    chain.push(next);
    if (anchor) return chain;
    if (chain.length > MAX_CHAIN) refuse(`the certificate chain is longer than ${MAX_CHAIN}`);
    cur = next;
  }
}

/**
 * Verify a time-stamp token for `data`:
 *  - the token is a SignedData encapsulating a TSTInfo (id-ct-TSTInfo), version 1, one signer, no critical TSTInfo extension;
 *  - messageImprint = SHA-256/384/512(data), by the token's imprint algorithm;
 *  - the nonce (when `opts.nonce` is given) and the policy (when `opts.policy` is given) match;
 *  - the signed attributes hold content-type id-ct-TSTInfo and message-digest = hash(TSTInfo) by the signer's digest
 *    algorithm (SHA-256/384/512), and an ESS signing-certificate(v2) attribute naming the signer certificate;
 *  - the signature over the DER SET OF signed attributes verifies with the signer certificate's key (RSA PKCS#1 v1.5,
 *    RSASSA-PSS, ECDSA, Ed25519);
 *  - the signer certificate (found in the token, then in `untrusted`, then `trusted`, by issuer+serial or subject key
 *    identifier) has id-kp-timeStamping as its only extended key usage, critical, is valid at genTime, and chains
 *    (through CA certificates of the token or `untrusted`, each valid at genTime) to a `trusted` certificate.
 * Revocation (CRL, OCSP) is not checked. Throws PAL_VALIDATION_FAILED only for unusable options (no or unreadable
 * trusted certificates); a bad token answers `{ ok: false, reason }`.
 */
export function verifyTimeStampToken(tokenDer: Uint8Array, data: Uint8Array, opts: VerifyTimeStampOptions): TimeStampVerification {
  const anchors = pemCertificates(opts.trusted, 'trusted');
  if (anchors.length === 0) throw invalid('verifyTimeStampToken: no trusted CA certificate given');
  const extra = pemCertificates(opts.untrusted ?? [], 'untrusted');
  try {
    const token = parseTimeStampToken(tokenDer);
    const { tstInfo, signerInfo: si } = token;

    const imprintHash = HASH_BY_OID[tstInfo.messageImprint.hashAlgorithm] ?? refuse(`unsupported message imprint hash algorithm ${tstInfo.messageImprint.hashAlgorithm}`);
    if (tstInfo.messageImprint.digest.length !== HASH_BYTES[imprintHash]) refuse(`the message imprint is not a ${imprintHash} digest`);
    if (!equalBytes(tstInfo.messageImprint.digest, digest(imprintHash, data))) refuse('the message imprint does not match the data');
    if (opts.nonce !== undefined) {
      if (tstInfo.nonce === null) refuse('the token carries no nonce');
      if (tstInfo.nonce !== opts.nonce) refuse('the nonce does not match the request');
    }
    if (opts.policy !== undefined && tstInfo.policy !== opts.policy) refuse(`the token's policy ${tstInfo.policy} is not ${opts.policy}`);
    const critical = tstInfo.extensions.find((e) => e.critical);
    if (critical) refuse(`the TSTInfo has an unsupported critical extension ${critical.oid}`);

    const digestHash = hashOf(si.digestAlgorithm, 'SignerInfo', 'digestAlgorithm') ?? refuse(`unsupported digest algorithm ${si.digestAlgorithm.oid}`);
    if (!si.signedAttributes) return refuse('the signer has no signed attributes');
    const attrsSet = Buffer.from(si.signedAttributes);
    attrsSet[0] = TAG.SET; // [0] IMPLICIT → the DER SET OF the signature covers (RFC 5652 §5.4)
    const attrs = signedAttributes(attrsSet);
    const contentType = readOid(single(attrs, TSA_OID.contentType, 'content-type'), 'signed attributes', 'content-type');
    if (contentType !== TSA_OID.tstInfo) refuse(`the content-type attribute ${contentType} is not id-ct-TSTInfo`);
    const md = readOctetString(single(attrs, TSA_OID.messageDigest, 'message-digest'), 'signed attributes', 'message-digest');
    if (!equalBytes(md, digest(digestHash, token.tstInfoDer))) refuse('the message-digest attribute does not match the TSTInfo');

    const tokenCerts: CertInfo[] = [];
    for (const der of token.certificates) {
      try {
        tokenCerts.push(certInfo(new X509Certificate(der)));
      } catch {
        refuse('a certificate in the token is unreadable');
      }
    }
    const pool = [...tokenCerts, ...extra];
    const signer = findSigner(si.sid, pool) ?? findSigner(si.sid, anchors) ?? refuse('the signer certificate is neither in the token nor among the given certificates');
    checkSigningCertificate(attrs, signer);
    checkSignature(si, digestHash, attrsSet, signer.x509.publicKey);
    checkTsaCertificate(signer);
    if (!validAt(signer, tstInfo.genTime)) {
      refuse(`the TSA certificate was not valid at genTime ${tstInfo.genTime.toISOString()} (valid ${signer.notBefore.toISOString()} to ${signer.notAfter.toISOString()})`);
    }
    const chain = buildChain(signer, pool, anchors, tstInfo.genTime);
    return { ok: true, genTime: tstInfo.genTime, serial: tstInfo.serialNumber, tsaCertificate: signer.x509, chain: chain.map((c) => c.x509), token };
  } catch (e) {
    if (e instanceof Refused) return { ok: false, reason: e.message };
    if (e instanceof PalisadeError) return { ok: false, reason: e.message };
    return { ok: false, reason: `the token could not be verified: ${(e as Error).message}` };
  }
}
