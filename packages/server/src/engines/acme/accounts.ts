import { randomId } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { AcmeAccountTable } from '../../storage/schema.js';
import type { EabKeys } from './eab.js';
import { parseJws, payloadOf, publicJwk, thumbprint, verifySignature, type PublicJwk } from './jws.js';
import { acmeError } from './problem.js';
import type { AcmeUrls } from './urls.js';

export interface Account {
  id: string;
  jwk: PublicJwk;
  thumbprint: string;
  status: 'valid' | 'deactivated' | 'revoked';
  contact: string[];
  tos_agreed: boolean;
  eab_key_id: string | null;
}

const MAILTO = /^mailto:([^@\s,;?&<>"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63})$/;
const MAX_CONTACTS = 10;

function fromRow(r: AcmeAccountTable): Account {
  return { id: r.id, jwk: JSON.parse(r.jwk) as PublicJwk, thumbprint: r.thumbprint, status: r.status as Account['status'], contact: JSON.parse(r.contact) as string[], tos_agreed: r.tos_agreed === 1, eab_key_id: r.eab_key_id };
}

/** mailto: URLs with one address each (invalidContact / unsupportedContact otherwise). */
function contacts(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_CONTACTS) throw acmeError('PAL_ACME_INVALID_CONTACT', `contact must be an array of at most ${MAX_CONTACTS} URLs`);
  return v.map((c: unknown) => {
    if (typeof c !== 'string') throw acmeError('PAL_ACME_INVALID_CONTACT', 'each contact must be a string');
    if (!/^mailto:/i.test(c)) throw acmeError('PAL_ACME_UNSUPPORTED_CONTACT', `only mailto: contacts are supported, not ${c.split(':')[0]}:`);
    if (!MAILTO.test(c)) throw acmeError('PAL_ACME_INVALID_CONTACT', `${c} is not a mailto: URL with one address`);
    return c;
  });
}

/** The account object of RFC 8555 §7.1.2. */
export function accountView(a: Account, urls: AcmeUrls) {
  return { status: a.status, contact: a.contact, termsOfServiceAgreed: a.tos_agreed, orders: urls.orders(a.id) };
}

export class Accounts {
  constructor(
    private readonly eab: EabKeys,
    private readonly opts: { requireEab: boolean; termsOfService: string | undefined; clock: () => Date },
  ) {}

  async byKid(db: Executor, kid: string, urls: AcmeUrls): Promise<Account> {
    const id = kid.startsWith(urls.accountPrefix) ? kid.slice(urls.accountPrefix.length) : '';
    const row = id && !id.includes('/') ? await db.selectFrom('acme_accounts').selectAll().where('id', '=', id).executeTakeFirst() : undefined;
    if (!row) throw acmeError('PAL_ACME_ACCOUNT_DOES_NOT_EXIST', 'no account has this kid');
    const account = fromRow(row);
    if (account.status !== 'valid') throw acmeError('PAL_ACME_UNAUTHORIZED', `the account is ${account.status}`);
    return account;
  }

  async byKey(db: Executor, jwk: PublicJwk): Promise<Account | null> {
    const row = await db.selectFrom('acme_accounts').selectAll().where('thumbprint', '=', thumbprint(jwk)).executeTakeFirst();
    return row ? fromRow(row) : null;
  }

  /** newAccount (RFC 8555 §7.3): the existing account for this key, or a new one. */
  async newAccount(tx: Executor, jwk: PublicJwk, payload: Record<string, unknown> | null, urls: AcmeUrls): Promise<{ account: Account; created: boolean }> {
    if (payload === null) throw acmeError('PAL_ACME_MALFORMED', 'newAccount needs a JSON payload');
    const existing = await this.byKey(tx, jwk);
    if (existing) {
      if (existing.status !== 'valid') throw acmeError('PAL_ACME_UNAUTHORIZED', `the account with this key is ${existing.status}`);
      return { account: existing, created: false };
    }
    if (payload.onlyReturnExisting === true) throw acmeError('PAL_ACME_ACCOUNT_DOES_NOT_EXIST', 'no account has this key');
    const contact = contacts(payload.contact);
    if (this.opts.termsOfService && payload.termsOfServiceAgreed !== true) throw acmeError('PAL_ACME_USER_ACTION_REQUIRED', `agree to the terms of service at ${this.opts.termsOfService}`);
    const id = randomId('acct');
    let eabKeyId: string | null = null;
    if (payload.externalAccountBinding !== undefined) eabKeyId = await this.eab.bind(tx, payload.externalAccountBinding, jwk, urls.newAccount, id);
    else if (this.opts.requireEab) throw acmeError('PAL_ACME_EXTERNAL_ACCOUNT_REQUIRED', 'this server needs an external account binding (ask its operator for an EAB key id and HMAC key)');
    const row: AcmeAccountTable = {
      id,
      thumbprint: thumbprint(jwk),
      jwk: JSON.stringify(jwk),
      status: 'valid',
      contact: JSON.stringify(contact),
      tos_agreed: payload.termsOfServiceAgreed === true ? 1 : 0,
      eab_key_id: eabKeyId,
      created_at: this.opts.clock().toISOString(),
    };
    // Two newAccount requests with one key at once: the second finds the first's account instead of a unique-key error.
    const inserted = await tx.insertInto('acme_accounts').values(row).onConflict((oc) => oc.column('thumbprint').doNothing()).executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows === 0n) return { account: (await this.byKey(tx, jwk))!, created: false };
    return { account: fromRow(row), created: true };
  }

  /** Account update (§7.3.2) and deactivation (§7.3.6). */
  async update(tx: Executor, account: Account, payload: Record<string, unknown>): Promise<Account> {
    const next = { ...account };
    // Clients that post the whole account object back echo its current status: that changes nothing.
    if (payload.status !== undefined && payload.status !== account.status) {
      if (payload.status !== 'deactivated') throw acmeError('PAL_ACME_MALFORMED', 'an account can only be set to status deactivated');
      next.status = 'deactivated';
    }
    if (payload.contact !== undefined) next.contact = contacts(payload.contact);
    await tx.updateTable('acme_accounts').set({ status: next.status, contact: JSON.stringify(next.contact) }).where('id', '=', account.id).execute();
    if (next.status === 'deactivated') {
      await tx.updateTable('acme_authorizations').set({ status: 'deactivated' }).where('account_id', '=', account.id).where('status', 'in', ['pending', 'valid']).execute();
    }
    return next;
  }

  /**
   * Key rollover (§7.3.5): `payload` is a JWS signed by the new key (jwk header, same url) over
   * `{ account, oldKey }`. The new key must not belong to another account (409, whose URL is returned).
   */
  async keyChange(tx: Executor, account: Account, payload: Record<string, unknown> | null, outerUrl: string, urls: AcmeUrls): Promise<{ old: string; next: string }> {
    const inner = parseJws(payload, { requireNonce: false });
    if (!inner.header.jwk || inner.header.kid !== undefined) throw acmeError('PAL_ACME_MALFORMED', 'the inner JWS of keyChange must carry the new key as jwk');
    if (inner.header.url !== outerUrl) throw acmeError('PAL_ACME_MALFORMED', 'the inner JWS url must equal the outer one');
    verifySignature(inner, inner.header.jwk);
    const body = payloadOf(inner);
    if (body === null) throw acmeError('PAL_ACME_MALFORMED', 'the inner JWS has no payload');
    if (body.account !== urls.account(account.id)) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the inner JWS names another account');
    if (thumbprint(publicJwk(body.oldKey)) !== account.thumbprint) throw acmeError('PAL_ACME_UNAUTHORIZED', 'oldKey is not the account\'s current key');
    const newKey = inner.header.jwk;
    const newPrint = thumbprint(newKey);
    if (newPrint === account.thumbprint) throw acmeError('PAL_ACME_MALFORMED', 'the new key is the current key');
    const taken = await this.byKey(tx, newKey);
    if (taken) throw acmeError('PAL_ACME_CONFLICT', 'the new key already belongs to an account', { location: urls.account(taken.id) });
    await tx.updateTable('acme_accounts').set({ jwk: JSON.stringify(newKey), thumbprint: newPrint }).where('id', '=', account.id).execute();
    return { old: account.thumbprint, next: newPrint };
  }
}
