import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { constantTimeEqual, isPalisadeError } from '@palisade/core';
import type { OpContext } from '../../kernel/op-context.js';
import type { Executor } from '../../storage/database.js';
import type { AcmeOrderTable } from '../../storage/schema.js';
import { reasonName, type RevocationReason } from '../pki/types.js';
import type { Account } from './accounts.js';
import { parseCertId, suggestedWindow } from './ari.js';
import { csrIdentifiers, csrPublicKey } from './csr.js';
import { sameIdentifiers } from './identifiers.js';
import { fromB64u, type PublicJwk } from './jws.js';
import { authzStatus, type Orders } from './orders.js';
import type { AcmeCertificateAuthority, AcmeIdentifier } from './ports.js';
import { acmeError } from './problem.js';

/** Reasons a subscriber may give (RFC 5280 codes; certificateHold is refused: revocation here is final). */
const ACME_REASONS: readonly number[] = [0, 1, 3, 4, 5, 9];

export type RevokeAuthority = 'issuing_account' | 'authorized_account' | 'certificate_key';

export class Certificates {
  constructor(
    private readonly ca: AcmeCertificateAuthority,
    private readonly orders: Orders,
    private readonly clock: () => Date,
  ) {}

  /** Finalize (§7.4): the CSR must name exactly the order's identifiers; the CA issues; the order becomes valid. */
  async finalize(ctx: OpContext, account: Account, order: AcmeOrderTable, payload: Record<string, unknown> | null): Promise<string> {
    if (payload === null || typeof payload.csr !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'finalize needs a payload { csr }');
    const status = await this.orders.status(ctx.db, order);
    if (status !== 'ready') throw acmeError('PAL_ACME_ORDER_NOT_READY', `the order is ${status}, not ready`);
    const csr = fromB64u(payload.csr, 'csr');
    const identifiers = JSON.parse(order.identifiers) as AcmeIdentifier[];
    const asked = csrIdentifiers(csr);
    if (!sameIdentifiers(asked, identifiers)) {
      throw acmeError('PAL_ACME_BAD_CSR', `the CSR names ${asked.map((i) => i.value).join(', ') || 'nothing'}; the order is for ${identifiers.map((i) => i.value).join(', ')}`);
    }
    // A certificate key that is also the account key ties the account to every server holding the TLS key.
    if (csrPublicKey(csr).equals(createPublicKey({ key: account.jwk as unknown as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' }))) {
      throw acmeError('PAL_ACME_BAD_CSR', 'the CSR key is the account key: use a different key for the certificate');
    }
    // Only one finalize wins (the row lock on PostgreSQL, the single writer on SQLite).
    const claimed = await ctx.db.updateTable('acme_orders').set({ status: 'processing' }).where('id', '=', order.id).where('status', 'in', ['pending', 'ready']).executeTakeFirst();
    if (claimed.numUpdatedRows !== 1n) throw acmeError('PAL_ACME_ORDER_NOT_READY', 'the order is being finalized already');
    let issued: Awaited<ReturnType<AcmeCertificateAuthority['issue']>>;
    try {
      issued = await this.ca.issue(ctx, { csr, identifiers, order_id: order.id, account_id: account.id });
    } catch (e) {
      if (isPalisadeError(e) && e.code === 'PAL_PKI_CSR_INVALID') throw acmeError('PAL_ACME_BAD_CSR', e.message);
      if (isPalisadeError(e) && e.code === 'PAL_PKI_NAME_NOT_ALLOWED') throw acmeError('PAL_ACME_REJECTED_IDENTIFIER', e.message);
      throw e;
    }
    await ctx.db
      .insertInto('acme_certificates')
      .values({ serial: issued.serial, account_id: account.id, order_id: order.id, chain_pem: issued.chain_pem, not_before: issued.not_before, not_after: issued.not_after, replaced_by: null, created_at: this.clock().toISOString() })
      .execute();
    await ctx.db.updateTable('acme_orders').set({ status: 'valid', certificate_serial: issued.serial }).where('id', '=', order.id).execute();
    return issued.serial;
  }

  /** The PEM chain of a certificate this account ordered. */
  async download(db: Executor, account: Account, serial: string): Promise<string> {
    const row = await db.selectFrom('acme_certificates').select(['account_id', 'chain_pem']).where('serial', '=', serial).executeTakeFirst();
    if (!row) throw acmeError('PAL_ACME_NOT_FOUND', 'no such certificate');
    if (row.account_id !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the certificate belongs to another account');
    return row.chain_pem;
  }

  /**
   * revokeCert (§7.6), by the account that ordered the certificate, by an account holding valid authorizations for
   * all its names, or signed by the certificate's own key (`jwk`).
   */
  async revoke(ctx: OpContext, by: { account: Account } | { jwk: PublicJwk }, payload: Record<string, unknown> | null): Promise<{ serial: string; reason: RevocationReason; authority: RevokeAuthority }> {
    if (payload === null || typeof payload.certificate !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'revokeCert needs a payload { certificate }');
    const code = payload.reason ?? 0;
    if (typeof code !== 'number' || !ACME_REASONS.includes(code)) throw acmeError('PAL_ACME_BAD_REVOCATION_REASON', `reason must be one of ${ACME_REASONS.join(', ')} (RFC 5280 CRLReason)`);
    const reason = reasonName(code);
    const cert = await this.ca.find(ctx.db, { der: fromB64u(payload.certificate, 'certificate') });
    if (!cert) throw acmeError('PAL_ACME_NOT_FOUND', 'this CA did not issue the certificate');
    let authority: RevokeAuthority;
    if ('jwk' in by) {
      const spki = createPublicKey({ key: by.jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' });
      if (!constantTimeEqual(spki, cert.public_key_spki)) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the JWS is not signed by the certificate\'s key');
      authority = 'certificate_key';
    } else {
      const issued = await ctx.db.selectFrom('acme_certificates').select('account_id').where('serial', '=', cert.serial).executeTakeFirst();
      if (issued?.account_id === by.account.id) authority = 'issuing_account';
      else if (await this.#holdsAuthorizations(ctx.db, by.account, cert.sans)) authority = 'authorized_account';
      else throw acmeError('PAL_ACME_UNAUTHORIZED', 'the account neither ordered this certificate nor holds authorizations for all its names');
    }
    if (cert.status === 'revoked') throw acmeError('PAL_ACME_ALREADY_REVOKED', 'the certificate is revoked already');
    const actor = 'jwk' in by ? 'acme:certificate-key' : `acme:${by.account.id}`;
    try {
      await this.ca.revoke(ctx, cert.serial, reason, actor);
    } catch (e) {
      if (isPalisadeError(e) && e.code === 'PAL_PKI_ALREADY_REVOKED') throw acmeError('PAL_ACME_ALREADY_REVOKED', 'the certificate is revoked already');
      throw e;
    }
    return { serial: cert.serial, reason, authority };
  }

  async #holdsAuthorizations(db: Executor, account: Account, names: AcmeIdentifier[]): Promise<boolean> {
    if (names.length === 0) return false;
    const now = this.clock();
    for (const n of names) {
      const wildcard = n.value.startsWith('*.');
      const rows = await db
        .selectFrom('acme_authorizations')
        .select(['status', 'expires_at'])
        .where('account_id', '=', account.id)
        .where('identifier_type', '=', n.type)
        .where('identifier_value', '=', wildcard ? n.value.slice(2) : n.value)
        .where('wildcard', '=', wildcard ? 1 : 0)
        .where('status', '=', 'valid')
        .execute();
      if (!rows.some((r) => authzStatus(r, now) === 'valid')) return false;
    }
    return true;
  }

  /** RFC 9773 renewal information for a certificate id. */
  async renewalInfo(db: Executor, id: string): Promise<{ suggestedWindow: { start: string; end: string } }> {
    const { aki, serial } = parseCertId(id);
    const cert = await this.ca.find(db, { serial });
    if (!cert || !constantTimeEqual(cert.aki, aki)) throw acmeError('PAL_ACME_NOT_FOUND', 'no certificate with this id');
    return { suggestedWindow: suggestedWindow(cert, this.clock()) };
  }
}

