/** Certificate revocation lists (RFC 5280 §5): a v2 CRL signed by the CA itself, DER and PEM. */
import { createHash } from 'node:crypto';
import { AsnConvert, AsnIntegerBigIntConverter, AsnSerializer, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { caCertificateParts, derTlv, signatureAlgorithmFor, signedDer } from './signature.js';
import { REVOCATION_REASONS, type RevocationReason, type SigningCa } from './types.js';
import { toPem } from './x509.js';

export interface CrlEntry {
  /** Lower-case hex, with or without the leading 00 octet DER needs when the high bit is set. */
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
}

export interface CrlOptions {
  ca: SigningCa;
  /** Monotonically increasing per CA (RFC 5280 §5.2.3): non-negative, at most 20 octets. */
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: CrlEntry[];
}

const MAX_CRL_NUMBER = 1n << 159n;

/**
 * Build and sign a CertificateList. The issuer is the CA certificate's subject byte for byte (the TBSCertList is
 * assembled here rather than by the schema library, which would re-encode the Name); AuthorityKeyIdentifier carries
 * the CA's SubjectKeyIdentifier. Times are UTCTime before 2050 and GeneralizedTime from then on (§5.1.2.4), in whole
 * seconds; an empty CRL has no revokedCertificates at all (§5.1.2.6), and an `unspecified` entry has no reasonCode
 * (§5.3.1).
 */
export async function buildCrl(opts: CrlOptions): Promise<Buffer> {
  if (opts.crlNumber < 0n || opts.crlNumber >= MAX_CRL_NUMBER) throw new RangeError('the CRL number must be a non-negative integer of at most 20 octets');
  if (opts.nextUpdate.getTime() <= opts.thisUpdate.getTime()) throw new RangeError('the CRL nextUpdate must be after its thisUpdate');
  const ca = caCertificateParts(opts.ca.certificate);
  // RFC 5280 §4.2.1.2 method 1 when the CA certificate has no SubjectKeyIdentifier (every CA built here has one).
  const keyId = ca.subjectKeyId ?? createHash('sha1').update(ca.publicKeyBits).digest();
  const extensions = new asn.Extensions([
    extension(asn.id_ce_authorityKeyIdentifier, AsnConvert.serialize(new asn.AuthorityKeyIdentifier({ keyIdentifier: new asn.KeyIdentifier(keyId) }))),
    extension(asn.id_ce_cRLNumber, AsnSerializer.serialize(AsnIntegerBigIntConverter.toASN(opts.crlNumber))),
  ]);
  const revoked = opts.entries.map((e) =>
    der(
      new asn.RevokedCertificate({
        userCertificate: serialInteger(e.serial),
        revocationDate: new asn.Time(e.revokedAt),
        crlEntryExtensions:
          e.reason === 'unspecified' ? undefined : [extension(asn.id_ce_cRLReasons, AsnConvert.serialize(new asn.CRLReason(REVOCATION_REASONS[e.reason])))],
      }),
    ),
  );
  const tbsCertList = derTlv(
    0x30,
    Buffer.of(0x02, 0x01, 0x01), // version v2
    der(signatureAlgorithmFor(opts.ca.signer.algorithm)),
    ca.subject,
    der(new asn.Time(opts.thisUpdate)),
    der(new asn.Time(opts.nextUpdate)),
    ...(revoked.length > 0 ? [derTlv(0x30, ...revoked)] : []),
    derTlv(0xa0, der(extensions)),
  );
  return signedDer(opts.ca.signer, tbsCertList, ca.publicKey);
}

export function crlToPem(der: Buffer): string {
  return toPem(der, 'X509 CRL');
}

function der(value: object): Buffer {
  return Buffer.from(AsnConvert.serialize(value));
}

function extension(extnID: string, value: ArrayBuffer): asn.Extension {
  return new asn.Extension({ extnID, critical: false, extnValue: new OctetString(value) });
}

/** The content octets of the DER INTEGER for a non-negative serial given in hex. */
function serialInteger(hex: string): ArrayBuffer {
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new RangeError(`the serial "${hex}" is not hexadecimal`);
  const bytes = Buffer.from(hex.length % 2 === 1 ? `0${hex}` : hex, 'hex');
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const magnitude = bytes.subarray(start);
  return Uint8Array.from(magnitude[0]! & 0x80 ? [0, ...magnitude] : magnitude).buffer;
}
