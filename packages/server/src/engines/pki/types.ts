/** What the PKI engine's parts share: CA algorithms, the signer port, revocation reasons and status. */

/** Algorithms a CA key may use (Ed25519 CAs are not accepted by enough TLS stacks yet). */
export const CA_ALGORITHMS = ['ECDSA-P256', 'ECDSA-P384', 'RSA-4096'] as const;
export type CaAlgorithm = (typeof CA_ALGORITHMS)[number];

/**
 * Signs the DER of a to-be-signed structure (TBSCertificate, TBSCertList, ResponseData) with a CA's key, wherever it
 * lives (KMS, HSM). Returns the signature as X.509 carries it: DER `Ecdsa-Sig-Value` for ECDSA (SHA-256 for P-256,
 * SHA-384 for P-384), PKCS#1 v1.5 with SHA-256 for RSA (sha256WithRSAEncryption).
 */
export interface CaSigner {
  readonly algorithm: CaAlgorithm;
  sign(tbs: Buffer): Promise<Buffer>;
}

/** A CA as the issuer, the CRL signer and the OCSP responder see it. */
export interface SigningCa {
  readonly id: string;
  /** The CA's own certificate, DER. */
  readonly certificate: Buffer;
  readonly signer: CaSigner;
}

/** RFC 5280 §5.3.1 CRLReason, by name, with its code (7 is unused). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function reasonName(code: number): RevocationReason {
  const hit = (Object.entries(REVOCATION_REASONS) as Array<[RevocationReason, number]>).find(([, c]) => c === code);
  return hit ? hit[0] : 'unspecified';
}

/** What the CA knows about one serial, as OCSP answers it. */
export type CertificateStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason: RevocationReason }
  | { status: 'unknown' };
