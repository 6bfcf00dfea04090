/**
 * External Account Binding (RFC 8555 §7.3.4): an operator creates a key id + HMAC key through the admin API and hands
 * it to whoever may enrol; newAccount must carry an HS256 JWS over the account key made with it. The HMAC key is
 * stored only sealed by the barrier (it must be usable to verify) and is shown once.
 */
import { constantTimeEqual, hmacSha256, PalisadeError, randomBytes, randomId } from '@palisade/core';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { Executor } from '../../storage/database.js';
import type { AcmeEabKeyTable } from '../../storage/schema.js';
import { fromB64u, publicJwk, thumbprint, type PublicJwk } from './jws.js';
import { acmeError } from './problem.js';

export interface EabKeyInfo {
  key_id: string;
  name: string;
  reusable: boolean;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  used_at: string | null;
  used_by: string | null;
  revoked_at: string | null;
}

const purpose = (id: string) => `acme/eab/${id}`;

function info(r: AcmeEabKeyTable): EabKeyInfo {
  return { key_id: r.id, name: r.name, reusable: r.reusable === 1, created_at: r.created_at, created_by: r.created_by, expires_at: r.expires_at, used_at: r.used_at, used_by: r.used_by, revoked_at: r.revoked_at };
}

export class EabKeys {
  constructor(
    private readonly barrier: () => Barrier,
    private readonly clock: () => Date,
  ) {}

  /** A new key; `hmac_key` (base64url) is returned here and never again. */
  async create(db: Executor, req: { name: string; reusable: boolean; expires_in_days: number | null; created_by: string }): Promise<EabKeyInfo & { hmac_key: string }> {
    const id = randomId('eab');
    const key = randomBytes(32);
    const now = this.clock();
    const row: AcmeEabKeyTable = {
      id,
      name: req.name,
      wrapped_key: this.barrier().seal(purpose(id), key),
      reusable: req.reusable ? 1 : 0,
      created_at: now.toISOString(),
      created_by: req.created_by,
      expires_at: req.expires_in_days === null ? null : new Date(now.getTime() + req.expires_in_days * 86_400_000).toISOString(),
      used_at: null,
      used_by: null,
      revoked_at: null,
    };
    await db.insertInto('acme_eab_keys').values(row).execute();
    return { ...info(row), hmac_key: key.toString('base64url') };
  }

  async list(db: Executor): Promise<EabKeyInfo[]> {
    return (await db.selectFrom('acme_eab_keys').selectAll().orderBy('created_at', 'desc').limit(1000).execute()).map(info);
  }

  async revoke(db: Executor, id: string): Promise<EabKeyInfo> {
    // Revoking twice keeps the first time.
    await db.updateTable('acme_eab_keys').set({ revoked_at: this.clock().toISOString() }).where('id', '=', id).where('revoked_at', 'is', null).execute();
    const row = await db.selectFrom('acme_eab_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_ACME_EAB_KEY_NOT_FOUND');
    return info(row);
  }

  /**
   * Check a newAccount's `externalAccountBinding` for `accountJwk` at `url`, and consume the key (single-use keys
   * bind one account). Returns the EAB key id. unauthorized for an unknown, used, revoked or expired key or a bad MAC.
   */
  async bind(db: Executor, binding: unknown, accountJwk: PublicJwk, url: string, accountId: string): Promise<string> {
    if (typeof binding !== 'object' || binding === null || Array.isArray(binding)) throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding must be a flattened JWS');
    const jws = binding as Record<string, unknown>;
    if (typeof jws.protected !== 'string' || typeof jws.payload !== 'string' || typeof jws.signature !== 'string') {
      throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding needs string members protected, payload and signature');
    }
    let header: Record<string, unknown>;
    let payload: unknown;
    try {
      header = JSON.parse(fromB64u(jws.protected, 'externalAccountBinding.protected').toString('utf8')) as Record<string, unknown>;
      payload = JSON.parse(fromB64u(jws.payload, 'externalAccountBinding.payload').toString('utf8'));
    } catch (e) {
      if (e instanceof PalisadeError) throw e;
      throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding is not a JWS over JSON');
    }
    if (typeof header !== 'object' || header === null) throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding.protected is not a JSON object');
    if (header.alg !== 'HS256') throw acmeError('PAL_ACME_BAD_SIGNATURE_ALGORITHM', 'externalAccountBinding must use HS256', { algorithms: ['HS256'] });
    if ('nonce' in header) throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding must not carry a nonce');
    if (header.url !== url) throw acmeError('PAL_ACME_UNAUTHORIZED', 'externalAccountBinding url is not the newAccount URL');
    if (typeof header.kid !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'externalAccountBinding has no kid');
    const row = await db.selectFrom('acme_eab_keys').selectAll().where('id', '=', header.kid).executeTakeFirst();
    const now = this.clock().toISOString();
    if (!row || row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now) || (row.reusable === 0 && row.used_at !== null)) {
      throw acmeError('PAL_ACME_UNAUTHORIZED', 'the external account binding key is unknown, revoked, expired or used');
    }
    const key = this.barrier().open(purpose(row.id), row.wrapped_key);
    const mac = hmacSha256(key, `${jws.protected}.${jws.payload}`);
    if (!constantTimeEqual(mac, fromB64u(jws.signature, 'externalAccountBinding.signature'))) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the external account binding MAC does not verify');
    if (thumbprint(publicJwk(payload)) !== thumbprint(accountJwk)) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the external account binding is for another account key');
    let q = db.updateTable('acme_eab_keys').set({ used_at: now, used_by: row.used_by ?? accountId }).where('id', '=', row.id);
    if (row.reusable === 0) q = q.where('used_at', 'is', null);
    if ((await q.executeTakeFirst()).numUpdatedRows !== 1n) throw acmeError('PAL_ACME_UNAUTHORIZED', 'the external account binding key was used');
    return row.id;
  }
}
