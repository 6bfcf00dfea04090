import { randomBytes } from 'node:crypto';
import { constantTimeEqual, randomId } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { AcmeAuthorizationTable, AcmeChallengeTable, AcmeOrderTable } from '../../storage/schema.js';
import type { Account } from './accounts.js';
import { parseCertId } from './ari.js';
import { normalizeIdentifiers } from './identifiers.js';
import type { AcmeCertificateAuthority, AcmeIdentifier } from './ports.js';
import { acmeError, type AcmeProblem } from './problem.js';
import type { AcmeUrls } from './urls.js';

export type ChallengeType = 'http-01' | 'dns-01' | 'tls-alpn-01';
export type OrderStatus = 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
type AuthzStatus = 'pending' | 'valid' | 'invalid' | 'deactivated' | 'expired' | 'revoked';

const FAILED: readonly string[] = ['invalid', 'deactivated', 'expired', 'revoked'];

/** Which challenges prove which identifier: wildcards only dns-01, IP addresses never dns-01 (RFC 8738). */
function challengeTypes(id: AcmeIdentifier, wildcard: boolean): ChallengeType[] {
  if (id.type === 'ip') return ['http-01', 'tls-alpn-01'];
  return wildcard ? ['dns-01'] : ['http-01', 'dns-01', 'tls-alpn-01'];
}

/** An authorization's status as of `now` (pending and valid ones expire). */
export function authzStatus(a: Pick<AcmeAuthorizationTable, 'status' | 'expires_at'>, now: Date): AuthzStatus {
  if ((a.status === 'pending' || a.status === 'valid') && a.expires_at <= now.toISOString()) return 'expired';
  return a.status as AuthzStatus;
}

/** An order's status from its own and its authorizations' (RFC 8555 §7.1.6). */
export function orderStatus(o: Pick<AcmeOrderTable, 'status' | 'expires_at'>, authzs: Array<Pick<AcmeAuthorizationTable, 'status' | 'expires_at'>>, now: Date): OrderStatus {
  if (o.status !== 'pending' && o.status !== 'ready') return o.status as OrderStatus;
  if (o.expires_at <= now.toISOString()) return 'invalid';
  const states = authzs.map((a) => authzStatus(a, now));
  if (states.some((s) => FAILED.includes(s))) return 'invalid';
  return states.every((s) => s === 'valid') ? 'ready' : 'pending';
}

const parseJson = <T>(s: string | null): T | undefined => (s === null ? undefined : (JSON.parse(s) as T));

export interface OrderDeps {
  ca: Pick<AcmeCertificateAuthority, 'find'>;
  clock: () => Date;
  orderTtlHours: number;
  newOrdersPerHour: number;
}

export class Orders {
  constructor(private readonly deps: OrderDeps) {}

  /** newOrder (§7.4): the order with one pending authorization per identifier. */
  async create(tx: Executor, account: Account, payload: Record<string, unknown> | null): Promise<{ order: AcmeOrderTable; replaces: string | null }> {
    if (payload === null) throw acmeError('PAL_ACME_MALFORMED', 'newOrder needs a JSON payload');
    if (payload.notBefore !== undefined || payload.notAfter !== undefined) throw acmeError('PAL_ACME_MALFORMED', 'notBefore and notAfter are not supported: the CA sets the validity');
    const identifiers = normalizeIdentifiers(payload.identifiers);
    const now = this.deps.clock();
    await this.#rateLimit(tx, account, now);
    const id = randomId('ord');
    const replaces = payload.replaces === undefined ? null : await this.#replaces(tx, account, payload.replaces, identifiers, id);
    const expires = new Date(now.getTime() + this.deps.orderTtlHours * 3600_000).toISOString();
    const order: AcmeOrderTable = {
      id,
      account_id: account.id,
      status: 'pending',
      identifiers: JSON.stringify(identifiers),
      not_before: null,
      not_after: null,
      expires_at: expires,
      error: null,
      certificate_serial: null,
      replaces,
      created_at: now.toISOString(),
    };
    await tx.insertInto('acme_orders').values(order).execute();
    for (const ident of identifiers) {
      const wildcard = ident.type === 'dns' && ident.value.startsWith('*.');
      const authzId = randomId('authz');
      await tx
        .insertInto('acme_authorizations')
        .values({ id: authzId, order_id: id, account_id: account.id, identifier_type: ident.type, identifier_value: wildcard ? ident.value.slice(2) : ident.value, wildcard: wildcard ? 1 : 0, status: 'pending', expires_at: expires })
        .execute();
      const challenges: AcmeChallengeTable[] = challengeTypes(ident, wildcard).map((type) => ({
        id: randomId('chall'),
        authz_id: authzId,
        type,
        token: randomBytes(32).toString('base64url'),
        status: 'pending',
        error: null,
        started_at: null,
        validated_at: null,
      }));
      await tx.insertInto('acme_challenges').values(challenges).execute();
    }
    return { order, replaces };
  }

  async #rateLimit(tx: Executor, account: Account, now: Date): Promise<void> {
    const limit = this.deps.newOrdersPerHour;
    if (limit === 0) return;
    const since = new Date(now.getTime() - 3600_000).toISOString();
    const recent = await tx.selectFrom('acme_orders').select('created_at').where('account_id', '=', account.id).where('created_at', '>', since).orderBy('created_at', 'desc').limit(limit).execute();
    if (recent.length < limit) return;
    const retry = Math.max(1, Math.ceil((Date.parse(recent[limit - 1]!.created_at) + 3600_000 - now.getTime()) / 1000));
    throw acmeError('PAL_ACME_RATE_LIMITED', `at most ${limit} new orders per account per hour`, { retry_after: retry });
  }

  /** RFC 9773 §5: the certificate being renewed; it must be this account's, share a name, and not be replaced already. */
  async #replaces(tx: Executor, account: Account, value: unknown, identifiers: AcmeIdentifier[], orderId: string): Promise<string> {
    if (typeof value !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'replaces must be a certificate id');
    const { aki, serial } = parseCertId(value);
    const cert = await this.deps.ca.find(tx, { serial });
    const issued = await tx.selectFrom('acme_certificates').select(['account_id', 'replaced_by']).where('serial', '=', serial).executeTakeFirst();
    if (!cert || !issued || !constantTimeEqual(cert.aki, aki)) throw acmeError('PAL_ACME_MALFORMED', 'replaces names no certificate issued through this ACME server');
    if (issued.account_id !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'replaces names a certificate of another account');
    const names = new Set(cert.sans.map((s) => `${s.type}:${s.value}`));
    if (!identifiers.some((i) => names.has(`${i.type}:${i.value}`))) throw acmeError('PAL_ACME_MALFORMED', 'the order shares no identifier with the certificate it replaces');
    if (issued.replaced_by !== null) {
      const prior = await tx.selectFrom('acme_orders').select(['status', 'expires_at']).where('id', '=', issued.replaced_by).executeTakeFirst();
      const priorAuthz = await tx.selectFrom('acme_authorizations').select(['status', 'expires_at']).where('order_id', '=', issued.replaced_by).execute();
      if (prior && orderStatus(prior, priorAuthz, this.deps.clock()) !== 'invalid') throw acmeError('PAL_ACME_ALREADY_REPLACED', `certificate ${serial} is already replaced by another order`);
    }
    await tx.updateTable('acme_certificates').set({ replaced_by: orderId }).where('serial', '=', serial).execute();
    return serial;
  }

  /** An order of this account (404 / unauthorized otherwise). */
  async load(db: Executor, id: string, account: Account): Promise<AcmeOrderTable> {
    const order = await db.selectFrom('acme_orders').selectAll().where('id', '=', id).executeTakeFirst();
    if (!order) throw acmeError('PAL_ACME_NOT_FOUND', 'no such order');
    if (order.account_id !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the order belongs to another account');
    return order;
  }

  async status(db: Executor, order: AcmeOrderTable): Promise<OrderStatus> {
    const authzs = await db.selectFrom('acme_authorizations').select(['status', 'expires_at']).where('order_id', '=', order.id).execute();
    return orderStatus(order, authzs, this.deps.clock());
  }

  /** The order object (§7.1.3). */
  async view(db: Executor, order: AcmeOrderTable, urls: AcmeUrls) {
    const authzs = await db.selectFrom('acme_authorizations').select(['id', 'status', 'expires_at']).where('order_id', '=', order.id).orderBy('id').execute();
    const status = orderStatus(order, authzs, this.deps.clock());
    const error = parseJson<AcmeProblem>(order.error);
    return {
      status,
      expires: order.expires_at,
      identifiers: JSON.parse(order.identifiers) as AcmeIdentifier[],
      authorizations: authzs.map((a) => urls.authz(a.id)),
      finalize: urls.finalize(order.id),
      ...(order.certificate_serial ? { certificate: urls.certificate(order.certificate_serial) } : {}),
      ...(error ? { error } : {}),
    };
  }

  async list(db: Executor, account: Account, urls: AcmeUrls): Promise<{ orders: string[] }> {
    const rows = await db.selectFrom('acme_orders').select('id').where('account_id', '=', account.id).where('status', '!=', 'invalid').orderBy('created_at', 'desc').limit(1000).execute();
    return { orders: rows.map((r) => urls.order(r.id)) };
  }

  async loadAuthz(db: Executor, id: string, account: Account): Promise<AcmeAuthorizationTable> {
    const authz = await db.selectFrom('acme_authorizations').selectAll().where('id', '=', id).executeTakeFirst();
    if (!authz) throw acmeError('PAL_ACME_NOT_FOUND', 'no such authorization');
    if (authz.account_id !== account.id) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the authorization belongs to another account');
    return authz;
  }

  /** The authorization object (§7.1.4). */
  async authzView(db: Executor, authz: AcmeAuthorizationTable, urls: AcmeUrls) {
    const challenges = await db.selectFrom('acme_challenges').selectAll().where('authz_id', '=', authz.id).orderBy('type').execute();
    return {
      identifier: { type: authz.identifier_type, value: authz.identifier_value },
      status: authzStatus(authz, this.deps.clock()),
      expires: authz.expires_at,
      challenges: challenges.map((c) => challengeView(c, urls)),
      ...(authz.wildcard === 1 ? { wildcard: true } : {}),
    };
  }

  /** Deactivation by the account (§7.5.2). */
  async deactivate(tx: Executor, authz: AcmeAuthorizationTable, payload: Record<string, unknown>): Promise<void> {
    if (payload.status !== 'deactivated') throw acmeError('PAL_ACME_MALFORMED', 'an authorization can only be set to status deactivated');
    const status = authzStatus(authz, this.deps.clock());
    if (status !== 'pending' && status !== 'valid') throw acmeError('PAL_ACME_MALFORMED', `the authorization is ${status}`);
    await tx.updateTable('acme_authorizations').set({ status: 'deactivated' }).where('id', '=', authz.id).execute();
  }

  async loadChallenge(db: Executor, id: string, account: Account): Promise<{ challenge: AcmeChallengeTable; authz: AcmeAuthorizationTable }> {
    const challenge = await db.selectFrom('acme_challenges').selectAll().where('id', '=', id).executeTakeFirst();
    if (!challenge) throw acmeError('PAL_ACME_NOT_FOUND', 'no such challenge');
    return { challenge, authz: await this.loadAuthz(db, challenge.authz_id, account) };
  }

  /**
   * The client is ready (§7.5.1): a pending challenge of a pending authorization starts processing; true when the
   * caller must now validate it. Anything else is answered as it is.
   */
  async respond(tx: Executor, challenge: AcmeChallengeTable, authz: AcmeAuthorizationTable): Promise<boolean> {
    if (authzStatus(authz, this.deps.clock()) !== 'pending' || challenge.status !== 'pending') return false;
    const busy = await tx.selectFrom('acme_challenges').select('id').where('authz_id', '=', authz.id).where('status', '=', 'processing').executeTakeFirst();
    if (busy) return false;
    const r = await tx.updateTable('acme_challenges').set({ status: 'processing', started_at: this.deps.clock().toISOString() }).where('id', '=', challenge.id).where('status', '=', 'pending').executeTakeFirst();
    challenge.status = 'processing';
    return r.numUpdatedRows === 1n;
  }
}

export function challengeView(c: AcmeChallengeTable, urls: AcmeUrls) {
  const error = parseJson<AcmeProblem>(c.error);
  return { type: c.type, url: urls.challenge(c.id), status: c.status, token: c.token, ...(c.validated_at ? { validated: c.validated_at } : {}), ...(error ? { error } : {}) };
}
