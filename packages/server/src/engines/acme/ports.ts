import type { OpContext } from '../../kernel/op-context.js';
import type { Executor } from '../../storage/database.js';
import type { RevocationReason } from '../pki/types.js';

export interface AcmeIdentifier {
  type: 'dns' | 'ip';
  value: string;
}

/** A certificate as the CA knows it. */
export interface CaCertificate {
  serial: string;
  der: Buffer;
  status: 'valid' | 'revoked';
  not_before: string;
  not_after: string;
  /** AuthorityKeyIdentifier keyIdentifier (RFC 9773 certificate ids). */
  aki: Buffer;
  /** The leaf's SubjectPublicKeyInfo, DER (revokeCert signed by the certificate's key). */
  public_key_spki: Buffer;
  sans: AcmeIdentifier[];
}

/** What the ACME server needs from the certificate authority (the PKI engine implements it). */
export interface AcmeCertificateAuthority {
  /**
   * Issue for a finalized order. The CA verifies the CSR signature and key (refuses CA:TRUE, weak keys, unsupported
   * algorithms with PalisadeError 'PAL_PKI_CSR_INVALID', answered as badCSR) and that its names are exactly
   * `identifiers`; the ACME server has already checked that the CSR names equal the order's identifiers.
   */
  issue(
    ctx: OpContext,
    req: { csr: Buffer; identifiers: AcmeIdentifier[]; order_id: string; account_id: string },
  ): Promise<{ serial: string /* lowercase hex */; chain_pem: string /* leaf first, then intermediates, not the root */; not_before: string; not_after: string }>;
  /** A certificate this CA issued, by DER or by serial; null if unknown. */
  find(db: Executor, by: { der: Buffer } | { serial: string }): Promise<CaCertificate | null>;
  /** Revoke (audited by the CA as pki.certificate.revoke in ctx's transaction). Throws 'PAL_PKI_ALREADY_REVOKED'. */
  revoke(ctx: OpContext, serial: string, reason: RevocationReason, by: string): Promise<void>;
}
