import { createPublicKey, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { PalisadeError, randomBytes, randomId, sha256 } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import type { PrincipalStates } from './principals.js';
import type { IdentityConfig } from './config.js';

/** What the token service needs of the KMS: signatures by its system key, and the public keys of its versions. */
export interface TokenKms {
  systemSign(db: Executor, name: string, message: Buffer): Promise<{ key_id: string; key_version: number; signature: Buffer; public_key_pem: string }>;
  systemPublicKeys(db: Executor, name: string): Promise<Array<{ key_id: string; key_version: number; public_key_pem: string }>>;
  systemKeyVersion(db: Executor, name: string): Promise<{ key_id: string; key_version: number } | null>;
}

export interface AccessClaims extends JWTPayload {
  sub: string;
  client_id: string;
  scope: string;
  jti: string;
  exp: number;
  iat: number;
  cnf?: { 'x5t#S256': string };
}

export interface IssuedTokens {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

export type RevocationTarget = { kind: 'refresh'; family_id: string; principal_id: string } | { kind: 'access'; jti: string; exp: number; principal_id: string };

const REFRESH_PREFIX = 'prt_';
/**
 * The public client of signed-in users (CLI, SDK, dashboard): it has no secret, so it may only spend and revoke its
 * own refresh tokens, which are then the credential (RFC 6749 §10.4: rotation with reuse detection).
 */
export const SESSION_CLIENT = 'palisade-session';
/** An unknown kid reloads the public keys at most this often (a version another node just rotated to). */
const KEY_RELOAD_MS = 1000;

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** An ECDSA signature from DER (what node:crypto gives) to JOSE's fixed-length r || s (RFC 7518 §3.4). */
export function derToJose(der: Buffer, size: number): Buffer {
  let o = 2 + (der[1]! & 0x80 ? der[1]! & 0x7f : 0);
  const int = () => {
    const len = der[o + 1]!;
    let v = der.subarray(o + 2, o + 2 + len);
    o += 2 + len;
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    return Buffer.concat([Buffer.alloc(size - v.length), v]);
  };
  return Buffer.concat([int(), int()]);
}

/**
 * Access tokens are short-lived JWTs (RFC 9068 `at+jwt`) signed by a KMS system key that rotates with the signing
 * policy; the JWKS publishes every live version. Refresh tokens are opaque, stored hashed, rotated on every use, and
 * a reused one revokes its whole family (OAuth 2.0 Security BCP §4.14). Revoked access tokens (RFC 7009) are kept
 * until they expire and every node re-reads the list each second.
 */
export class TokenService {
  readonly #keys = new Map<string, KeyObject>();
  #keysLoadedAt = 0;
  #revoked = new Set<string>();
  #revokedSince = '';
  #revokedLoadedAt = 0;

  constructor(
    private readonly deps: {
      storage: Storage;
      kms: TokenKms;
      keyName: string;
      config: IdentityConfig['tokens'];
      issuer: () => string;
      principals: PrincipalStates;
      clock: () => Date;
    },
  ) {}

  get #alg(): 'EdDSA' | 'ES256' {
    return this.deps.config.algorithm;
  }

  async issueAccess(db: Executor, input: { sub: string; client_id: string; scope: string[]; cnf?: string | null }): Promise<{ token: string; claims: AccessClaims }> {
    const iat = Math.floor(this.deps.clock().getTime() / 1000);
    const claims: AccessClaims = {
      iss: this.deps.issuer(),
      sub: input.sub,
      aud: this.deps.config.audience,
      client_id: input.client_id,
      scope: input.scope.join(' '),
      jti: randomId('at'),
      iat,
      nbf: iat,
      exp: iat + this.deps.config.access_ttl_seconds,
      ...(input.cnf ? { cnf: { 'x5t#S256': input.cnf } } : {}),
    };
    // The signature comes first so the header can name the key version that made it.
    const version = await this.#currentKid(db);
    if (!this.#keys.has(version)) this.#keysLoadedAt = 0; // a new version: verify with it from the first token
    const header = { alg: this.#alg, typ: 'at+jwt', kid: version };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = await this.deps.kms.systemSign(db, this.deps.keyName, Buffer.from(signingInput));
    if (`${sig.key_id}.${sig.key_version}` !== version) return this.issueAccess(db, input); // rotated in between
    const signature = this.#alg === 'ES256' ? derToJose(sig.signature, 32) : sig.signature;
    return { token: `${signingInput}.${b64url(signature)}`, claims };
  }

  async #currentKid(db: Executor): Promise<string> {
    const key = await this.deps.kms.systemKeyVersion(db, this.deps.keyName);
    if (!key) throw new PalisadeError('PAL_UNAVAILABLE', 'the token signing key does not exist yet');
    return `${key.key_id}.${key.key_version}`;
  }

  /** The JWK Set of every live version of the signing key. */
  async jwks(): Promise<{ keys: Array<Record<string, unknown>> }> {
    await this.#loadKeys(true);
    return { keys: [...this.#keys].map(([kid, key]) => ({ ...key.export({ format: 'jwk' }), kid, alg: this.#alg, use: 'sig' })) };
  }

  async #loadKeys(force = false): Promise<void> {
    if (!force && Date.now() - this.#keysLoadedAt < KEY_RELOAD_MS) return;
    this.#keysLoadedAt = Date.now();
    const versions = await this.deps.kms.systemPublicKeys(this.deps.storage.db, this.deps.keyName);
    this.#keys.clear();
    for (const v of versions) this.#keys.set(`${v.key_id}.${v.key_version}`, createPublicKey(v.public_key_pem));
  }

  async #refreshRevoked(): Promise<void> {
    if (Date.now() - this.#revokedLoadedAt < 1000) return;
    this.#revokedLoadedAt = Date.now();
    const rows = await this.deps.storage.db.selectFrom('oauth_revoked_tokens').select(['jti', 'revoked_at']).where('revoked_at', '>=', this.#revokedSince).execute();
    for (const r of rows) {
      this.#revoked.add(r.jti);
      if (r.revoked_at > this.#revokedSince) this.#revokedSince = r.revoked_at;
    }
  }

  /**
   * Verify an access token: the configured algorithm only (never `none`, never HMAC with the public key), `typ`
   * at+jwt, issuer, audience, lifetime, revocation, the principal still active and the token newer than its last
   * credential change, and — when the token is certificate-bound (RFC 8705) — the client certificate presented now.
   */
  async verifyAccess(token: string, opts: { certificateThumbprint?: string | null; skipBinding?: boolean } = {}): Promise<AccessClaims> {
    await this.#refreshRevoked();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, async (header) => {
        const kid = header.kid ?? '';
        if (!this.#keys.has(kid)) await this.#loadKeys();
        const key = this.#keys.get(kid);
        if (!key) throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', 'unknown signing key');
        return key;
      }, {
        algorithms: [this.#alg],
        typ: 'at+jwt',
        issuer: this.deps.issuer(),
        audience: this.deps.config.audience,
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
        currentDate: this.deps.clock(),
        clockTolerance: 5,
      }));
    } catch (e) {
      if (e instanceof PalisadeError) throw e;
      const reason = e instanceof joseErrors.JWTExpired ? 'expired' : e instanceof joseErrors.JWTClaimValidationFailed ? `claim ${e.claim} invalid` : 'signature or format invalid';
      throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', `the access token is not valid: ${reason}`);
    }
    const claims = payload as AccessClaims;
    if (this.#revoked.has(claims.jti)) throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', 'the access token was revoked');
    const state = await this.deps.principals.get(claims.sub);
    if (!state?.active || claims.iat * 1000 < Date.parse(state.valid_after) - 999) throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', 'the principal of this token is inactive or its credentials changed');
    const bound = claims.cnf?.['x5t#S256'];
    if (bound && !opts.skipBinding && bound !== opts.certificateThumbprint) throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', 'this token is bound to a client certificate the request did not present (RFC 8705)');
    return claims;
  }

  // ------------------------------------------------------------------------------------------ refresh tokens
  async issueRefresh(db: Executor, input: { principal_id: string; client_id: string; scope: string[]; cnf?: string | null; family_id?: string }): Promise<string> {
    const token = REFRESH_PREFIX + randomBytes(32).toString('base64url');
    const now = this.deps.clock();
    await db
      .insertInto('oauth_refresh_tokens')
      .values({
        id_hash: sha256(Buffer.from(token)),
        family_id: input.family_id ?? randomId('rtf'),
        principal_id: input.principal_id,
        client_id: input.client_id,
        scope: input.scope.join(' '),
        cnf: input.cnf ?? null,
        created_at: now.toISOString(),
        expires_at: new Date(now.getTime() + this.deps.config.refresh_ttl_days * 86_400_000).toISOString(),
        used_at: null,
        revoked_at: null,
      })
      .execute();
    return token;
  }

  /**
   * Spend a refresh token for a new access + refresh pair. A token used twice means it was stolen: the whole family
   * is revoked, and the caller learns `reused` to audit it.
   */
  async refresh(
    db: Executor,
    token: string,
    clientId: string,
    certificateThumbprint: string | null,
  ): Promise<{ ok: true; tokens: IssuedTokens; principal_id: string; family_id: string; jti: string } | { ok: false; reason: 'unknown' | 'expired' | 'revoked' | 'reused' | 'client_mismatch' | 'inactive'; family_id?: string; principal_id?: string }> {
    if (!token.startsWith(REFRESH_PREFIX)) return { ok: false, reason: 'unknown' };
    const row = await db.selectFrom('oauth_refresh_tokens').selectAll().where('id_hash', '=', sha256(Buffer.from(token))).executeTakeFirst();
    if (!row) return { ok: false, reason: 'unknown' };
    const now = this.deps.clock().toISOString();
    const base = { family_id: row.family_id, principal_id: row.principal_id };
    if (row.client_id !== clientId) return { ok: false, reason: 'client_mismatch', ...base };
    if (row.revoked_at) return { ok: false, reason: 'revoked', ...base };
    if (row.used_at) {
      await db.updateTable('oauth_refresh_tokens').set({ revoked_at: now }).where('family_id', '=', row.family_id).where('revoked_at', 'is', null).execute();
      return { ok: false, reason: 'reused', ...base };
    }
    if (row.expires_at <= now) return { ok: false, reason: 'expired', ...base };
    if (row.cnf && row.cnf !== certificateThumbprint) return { ok: false, reason: 'client_mismatch', ...base };
    const state = await this.deps.principals.get(row.principal_id, db);
    if (!state?.active || row.created_at < state.valid_after) return { ok: false, reason: 'inactive', ...base };
    const claimed = await db.updateTable('oauth_refresh_tokens').set({ used_at: now }).where('id_hash', '=', row.id_hash).where('used_at', 'is', null).executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return { ok: false, reason: 'reused', ...base };
    const scope = row.scope.split(' ').filter(Boolean);
    const access = await this.issueAccess(db, { sub: row.principal_id, client_id: clientId, scope, cnf: row.cnf });
    const refresh_token = await this.issueRefresh(db, { principal_id: row.principal_id, client_id: clientId, scope, cnf: row.cnf, family_id: row.family_id });
    return { ok: true, tokens: { access_token: access.token, token_type: 'Bearer', expires_in: this.deps.config.access_ttl_seconds, scope: row.scope, refresh_token }, principal_id: row.principal_id, family_id: row.family_id, jti: access.claims.jti };
  }

  /** RFC 7662: what an authorised resource server may learn of a token; `{active:false}` for anything not live. */
  async introspect(db: Executor, token: string): Promise<Record<string, unknown>> {
    if (token.startsWith(REFRESH_PREFIX)) {
      const row = await db.selectFrom('oauth_refresh_tokens').selectAll().where('id_hash', '=', sha256(Buffer.from(token))).executeTakeFirst();
      const now = this.deps.clock().toISOString();
      if (!row || row.revoked_at || row.used_at || row.expires_at <= now) return { active: false };
      const state = await this.deps.principals.get(row.principal_id, db);
      if (!state?.active || row.created_at < state.valid_after) return { active: false };
      return { active: true, token_type: 'refresh_token', sub: row.principal_id, client_id: row.client_id, scope: row.scope, exp: Math.floor(Date.parse(row.expires_at) / 1000), iat: Math.floor(Date.parse(row.created_at) / 1000), iss: this.deps.issuer(), ...(row.cnf ? { cnf: { 'x5t#S256': row.cnf } } : {}) };
    }
    try {
      // Binding is the resource server's to check against its own TLS connection: introspection reports cnf.
      const claims = await this.verifyAccess(token, { skipBinding: true });
      return { active: true, token_type: 'Bearer', ...claims };
    } catch {
      return { active: false };
    }
  }

  /**
   * RFC 7009, first half (outside any transaction: it may read keys and principals): what a token is, if it is one
   * of ours that `clientId` (null: an administrator) may revoke. Unknown and invalid tokens are not an error (§2.2).
   */
  async identify(token: string, clientId: string | null): Promise<RevocationTarget | null> {
    if (token.startsWith(REFRESH_PREFIX)) {
      const row = await this.deps.storage.db.selectFrom('oauth_refresh_tokens').select(['family_id', 'client_id', 'principal_id']).where('id_hash', '=', sha256(Buffer.from(token))).executeTakeFirst();
      if (!row || (clientId !== null && row.client_id !== clientId)) return null;
      return { kind: 'refresh', family_id: row.family_id, principal_id: row.principal_id };
    }
    let claims: AccessClaims;
    try {
      claims = await this.verifyAccess(token, { skipBinding: true }); // a bound token's client may revoke it from anywhere
    } catch {
      return null;
    }
    if (clientId !== null && claims.client_id !== clientId) return null;
    return { kind: 'access', jti: claims.jti, exp: claims.exp, principal_id: claims.sub };
  }

  /** RFC 7009, second half: a refresh token's whole family, or an access token's jti until it expires. */
  async revoke(db: Executor, target: RevocationTarget): Promise<void> {
    const now = this.deps.clock().toISOString();
    if (target.kind === 'refresh') {
      await db.updateTable('oauth_refresh_tokens').set({ revoked_at: now }).where('family_id', '=', target.family_id).where('revoked_at', 'is', null).execute();
      return;
    }
    await db
      .insertInto('oauth_revoked_tokens')
      .values({ jti: target.jti, expires_at: new Date(target.exp * 1000).toISOString(), revoked_at: now })
      .onConflict((oc) => oc.column('jti').doNothing())
      .execute();
    await db.deleteFrom('oauth_revoked_tokens').where('expires_at', '<', now).execute();
    this.#revoked.add(target.jti);
  }
}
