import { PalisadeError } from '@palisade/core';
import type { Storage, Executor } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { MfaFactorTable, UserTable } from '../../storage/schema.js';
import type { IdentityConfig } from './config.js';
import { transactWithEvents } from '../../kernel/op-context.js';
import type { Directory } from './directory.js';
import type { Challenges } from './challenges.js';
import type { PrincipalStates } from './principals.js';
import { needsRehash, hashPassword, verifyDummy, verifyPassword } from './password-hash.js';
import { AuthThrottle, passwordKeys, secondFactorKeys, type ThrottleKey } from './throttle.js';
import { newSessionId, sessionHash, type SessionData, type SessionStore } from './sessions.js';
import { verifyTotp } from './totp.js';
import { hashRecoveryCode } from './recovery-codes.js';
import type { StoredCredential, WebAuthnVerifier } from './webauthn.js';
import { usernameKey } from './directory.js';

/** Who is signing in, from where. */
export interface Client {
  ip: string;
  user_agent: string | null;
  request_id: string;
}

export type SignInResult =
  | { status: 'authenticated'; user_id: string; session_id: string; expires_at: string; mfa_enrollment_required: boolean }
  | { status: 'mfa_required'; mfa_token: string; methods: Array<'totp' | 'webauthn' | 'recovery_code'> };

const MFA_TOKEN_SECONDS = 300;
const WEBAUTHN_CHALLENGE_SECONDS = 180;
export const TOTP_SECRET_PURPOSE = 'identity/totp-secret';

export function storedCredential(f: MfaFactorTable): StoredCredential {
  const t = JSON.parse(f.transports ?? '{}') as { transports?: string[]; backed_up?: boolean; device_type?: 'singleDevice' | 'multiDevice' };
  return { credential_id: f.credential_id!, public_key: f.public_key!, counter: Number(f.counter ?? 0), transports: t.transports ?? [], user_id: f.user_id, backed_up: t.backed_up ?? false, device_type: t.device_type ?? 'singleDevice' };
}

/**
 * Sign-in: password, then a second factor when the user has one; passkeys alone (usernameless). Every attempt is an
 * audit event committed with its throttle counters, also when it fails; the slow part (Argon2id) runs outside the
 * transaction. Unknown users, disabled users and wrong passwords get the same answer after the same work.
 */
export class SignIn {
  constructor(
    private readonly deps: {
      storage: Storage;
      ledger: AuditLedger;
      barrier: () => Barrier;
      directory: Directory;
      challenges: Challenges;
      sessions: SessionStore;
      principals: PrincipalStates;
      throttle: AuthThrottle;
      webauthn: () => WebAuthnVerifier;
      config: IdentityConfig;
      clock: () => Date;
    },
  ) {}

  /** Commit `events` (and the writes in `fn`) in one transaction, then return or throw what `fn` decided. */
  #commit<T>(fn: (tx: Executor, events: AuditEventInput[]) => Promise<T>): Promise<T> {
    return transactWithEvents(this.deps.storage, this.deps.ledger, fn);
  }

  /** An event of this sign-in; its personal fields (the username typed, the User-Agent) are the user's, or the name's. */
  #event(client: Client, userId: string | null, e: Omit<AuditEventInput, 'actor' | 'request_id'>): AuditEventInput {
    const name = typeof e.details?.username === 'string' ? usernameKey(e.details.username) : null;
    const subject = userId ?? (name ? `username:${name}` : undefined);
    return { actor: { principal_id: userId, source_ip: client.ip }, request_id: client.request_id, ...(subject ? { subject } : {}), ...e };
  }

  async #throttled(keys: ThrottleKey[]): Promise<void> {
    const ms = await this.deps.throttle.blockedFor(this.deps.storage.db, keys);
    if (ms > 0) throw new PalisadeError('PAL_AUTH_THROTTLED', undefined, { extensions: { retry_after: Math.ceil(ms / 1000) } });
  }

  /** Count a failure (and audit it, and a lockout it caused) in its own transaction, then throw `error`. */
  async #fail(client: Client, userId: string | null, keys: ThrottleKey[], event: Omit<AuditEventInput, 'actor' | 'request_id'>, error: PalisadeError): Promise<never> {
    await this.#commit(async (tx, events) => {
      const { locked } = await this.deps.throttle.fail(tx, keys);
      events.push(this.#event(client, userId, event));
      for (const l of locked) {
        events.push(
          this.#event(client, userId, {
            type: 'auth.lockout',
            outcome: 'success',
            resource: userId ? { type: 'user', id: userId } : null,
            details: { factor: l.key.factor, rule: l.key.rule, failed_attempts: l.failures, locked_until: l.until },
          }),
        );
      }
    });
    throw error;
  }

  async password(client: Client, username: string, password: string): Promise<SignInResult> {
    const account = usernameKey(username);
    const keys = passwordKeys(account, client.ip);
    const denied = (reason: string, user: UserTable | undefined) =>
      this.#fail(
        client,
        user?.id ?? null,
        keys,
        { type: 'auth.login.password', outcome: 'denied', resource: user ? { type: 'user', id: user.id } : null, error_code: 'PAL_AUTH_LOGIN_FAILED', details: { username, reason } },
        new PalisadeError('PAL_AUTH_LOGIN_FAILED'),
      );
    try {
      await this.#throttled(keys);
    } catch (e) {
      await this.#commit(async (_tx, events) => {
        events.push(this.#event(client, null, { type: 'auth.login.password', outcome: 'denied', resource: null, error_code: 'PAL_AUTH_THROTTLED', details: { username, reason: 'locked' } }));
      });
      throw e;
    }
    const user = await this.deps.directory.userByUsername(this.deps.storage.db, username);
    if (!user?.password_hash) {
      await verifyDummy(password);
      return denied(user ? 'no_password' : 'unknown_user', user);
    }
    const ok = await verifyPassword(user.password_hash, password);
    if (!ok) return denied('bad_credentials', user);
    if (user.active !== 1) return denied('disabled', user);
    const rehash = needsRehash(user.password_hash) ? await hashPassword(password) : null;
    const factors = await this.#activeFactors(this.deps.storage.db, user.id);
    const recovery = await this.#recoveryCount(this.deps.storage.db, user.id);
    return this.#commit(async (tx, events) => {
      await this.deps.throttle.succeed(tx, keys);
      if (rehash) await this.deps.directory.rehashPassword(tx, user.id, rehash);
      const methods = [...new Set(factors.map((f) => (f.kind === 'totp' ? 'totp' : 'webauthn') as 'totp' | 'webauthn'))];
      if (methods.length > 0) {
        const all: Array<'totp' | 'webauthn' | 'recovery_code'> = [...methods, ...(recovery > 0 ? (['recovery_code'] as const) : [])];
        const mfa_token = await this.deps.challenges.create(tx, 'mfa', user.id, { method: 'password' }, MFA_TOKEN_SECONDS);
        events.push(this.#event(client, user.id, { type: 'auth.login.password', outcome: 'success', resource: { type: 'user', id: user.id }, details: { username, mfa_required: true } }));
        return { status: 'mfa_required', mfa_token, methods: all };
      }
      events.push(this.#event(client, user.id, { type: 'auth.login.password', outcome: 'success', resource: { type: 'user', id: user.id }, details: { username, mfa_required: false } }));
      return this.openSession(tx, events, client, user, 'password', null);
    });
  }

  async #activeFactors(db: Executor, userId: string): Promise<MfaFactorTable[]> {
    return db.selectFrom('mfa_factors').selectAll().where('user_id', '=', userId).where('active', '=', 1).execute();
  }

  async #recoveryCount(db: Executor, userId: string): Promise<number> {
    const r = await db.selectFrom('recovery_codes').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async #mfaUser(mfaToken: string): Promise<UserTable> {
    const c = await this.deps.challenges.get<{ method: string }>(this.deps.storage.db, 'mfa', mfaToken);
    if (!c?.user_id) throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID');
    const user = await this.deps.storage.db.selectFrom('users').selectAll().where('id', '=', c.user_id).executeTakeFirst();
    if (user?.active !== 1) throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID');
    return user;
  }

  /** Verify a TOTP code of one of the user's factors; a code is accepted once (the step is stored with a compare-and-set). */
  async verifyTotpCode(db: Executor, userId: string, code: string): Promise<MfaFactorTable | 'replayed' | null> {
    const factors = (await this.#activeFactors(db, userId)).filter((f) => f.kind === 'totp');
    const now = this.deps.clock().getTime();
    let replayed = false;
    for (const f of factors) {
      const secret = this.deps.barrier().open(TOTP_SECRET_PURPOSE, f.secret!);
      const r = verifyTotp(secret, code, now, { lastStep: f.last_step === null ? null : Number(f.last_step) });
      if (r.ok) {
        const claimed = await db
          .updateTable('mfa_factors')
          .set({ last_step: r.step, last_used_at: new Date(now).toISOString() })
          .where('id', '=', f.id)
          .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', r.step)]))
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) === 1) return f;
        replayed = true;
      } else if (r.reason === 'replayed') replayed = true;
    }
    return replayed ? 'replayed' : null;
  }

  async totp(client: Client, mfaToken: string, code: string): Promise<SignInResult> {
    const user = await this.#mfaUser(mfaToken);
    const keys = secondFactorKeys('totp', user.id);
    await this.#throttled(keys);
    return this.#secondFactor(client, user, mfaToken, keys, 'totp', async (tx) => {
      const r = await this.verifyTotpCode(tx, user.id, code);
      return r === null || r === 'replayed' ? (r === 'replayed' ? 'replayed' : 'invalid_code') : { factor_id: r.id };
    });
  }

  async recoveryCode(client: Client, mfaToken: string, code: string): Promise<SignInResult> {
    const user = await this.#mfaUser(mfaToken);
    const keys = secondFactorKeys('recovery_code', user.id);
    await this.#throttled(keys);
    return this.#secondFactor(client, user, mfaToken, keys, 'recovery_code', async (tx, events) => {
      const hash = hashRecoveryCode(code);
      const used = await tx.updateTable('recovery_codes').set({ used_at: this.deps.clock().toISOString() }).where('code_hash', '=', hash).where('user_id', '=', user.id).where('used_at', 'is', null).executeTakeFirst();
      if (Number(used.numUpdatedRows) !== 1) return 'invalid_code';
      const remaining = await this.#recoveryCount(tx, user.id);
      events.push(this.#event(client, user.id, { type: 'mfa.recovery_code.use', outcome: 'success', resource: { type: 'mfa_factor', id: `${user.id}/recovery_codes` }, details: { code_ref: this.deps.barrier().auditHmac(hash), remaining } }));
      return { factor_id: `${user.id}/recovery_codes` };
    });
  }

  /** Run a second-factor check; success consumes the mfa_token and starts the session, failure counts and audits. */
  async #secondFactor(
    client: Client,
    user: UserTable,
    mfaToken: string,
    keys: ThrottleKey[],
    method: 'totp' | 'recovery_code' | 'webauthn',
    check: (tx: Executor, events: AuditEventInput[]) => Promise<{ factor_id: string } | 'invalid_code' | 'replayed'>,
  ): Promise<SignInResult> {
    const auditMethod = method === 'recovery_code' ? 'recovery_codes' : method;
    const outcome = await this.#commit(async (tx, events) => {
      const r = await check(tx, events);
      if (typeof r === 'string') return r;
      if (!(await this.deps.challenges.consume(tx, 'mfa', mfaToken))) return 'token' as const;
      await this.deps.throttle.succeed(tx, keys);
      events.push(this.#event(client, user.id, { type: 'mfa.verify', outcome: 'success', resource: { type: 'mfa_factor', id: r.factor_id }, details: { method: auditMethod } }));
      return this.openSession(tx, events, client, user, 'password', auditMethod);
    });
    if (outcome === 'token') throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID');
    if (typeof outcome === 'string') {
      return this.#fail(
        client,
        user.id,
        keys,
        { type: 'mfa.verify', outcome: 'denied', resource: { type: 'user', id: user.id }, error_code: 'PAL_AUTH_MFA_INVALID', details: { method: auditMethod, reason: outcome } },
        new PalisadeError('PAL_AUTH_MFA_INVALID'),
      );
    }
    return outcome;
  }

  // ------------------------------------------------------------------------------------------------ WebAuthn
  /** Options for a WebAuthn assertion: the user's credentials after a password, any passkey without one. */
  async webauthnOptions(mfaToken: string | undefined): Promise<{ challenge_id: string; options: unknown }> {
    let userId: string | null = null;
    let allow: StoredCredential[] | null = null;
    if (mfaToken) {
      const user = await this.#mfaUser(mfaToken);
      userId = user.id;
      allow = (await this.#activeFactors(this.deps.storage.db, user.id)).filter((f) => f.kind === 'webauthn').map(storedCredential);
      if (allow.length === 0) throw new PalisadeError('PAL_AUTH_MFA_NOT_ENROLLED', 'this user has no security key or passkey');
    }
    const { options, challenge } = await this.deps.webauthn().authenticationOptions(allow);
    const challenge_id = await this.deps.storage.transact((tx) => this.deps.challenges.create(tx, 'webauthn_login', userId, { challenge }, WEBAUTHN_CHALLENGE_SECONDS));
    return { challenge_id, options };
  }

  /**
   * A WebAuthn assertion: as the second factor after a password (`mfaToken`), or on its own as a passkey sign-in
   * (the authenticator verified the user, so it is possession plus inherence: multi-factor by itself).
   */
  async webauthn(client: Client, challengeId: string, response: unknown, mfaToken: string | undefined): Promise<SignInResult> {
    const c = await this.deps.challenges.take<{ challenge: string }>(this.deps.storage.db, 'webauthn_login', challengeId);
    if (!c) throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID', 'the WebAuthn challenge is unknown, used or expired; ask for new options');
    const verifier = this.deps.webauthn();
    const credentialId = verifier.credentialIdOf(response);
    const factor = await this.deps.storage.db.selectFrom('mfa_factors').selectAll().where('credential_id', '=', credentialId).where('active', '=', 1).executeTakeFirst();
    const user = factor ? await this.deps.storage.db.selectFrom('users').selectAll().where('id', '=', factor.user_id).executeTakeFirst() : undefined;
    const failed = (reason: string, userId: string | null) =>
      this.#fail(
        client,
        userId,
        userId ? secondFactorKeys('webauthn', userId) : [],
        { type: 'mfa.verify', outcome: 'denied', resource: userId ? { type: 'user', id: userId } : null, error_code: 'PAL_AUTH_WEBAUTHN_FAILED', details: { method: 'webauthn', reason } },
        new PalisadeError('PAL_AUTH_WEBAUTHN_FAILED'),
      );
    if (!factor || !user || user.active !== 1 || (c.user_id !== null && c.user_id !== user.id)) return failed('invalid_code', user?.id ?? null);
    await this.#throttled(secondFactorKeys('webauthn', user.id));
    let newCounter: number;
    try {
      ({ newCounter } = await verifier.verifyAuthentication(response, c.data.challenge, storedCredential(factor)));
    } catch {
      return failed('invalid_code', user.id);
    }
    if (mfaToken) {
      if (c.user_id === null) throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID', 'these WebAuthn options were not issued for this sign-in');
      return this.#secondFactor(client, user, mfaToken, secondFactorKeys('webauthn', user.id), 'webauthn', async (tx) => {
        await tx.updateTable('mfa_factors').set({ counter: newCounter, last_used_at: this.deps.clock().toISOString() }).where('id', '=', factor.id).execute();
        return { factor_id: factor.id };
      });
    }
    return this.#commit(async (tx, events) => {
      await tx.updateTable('mfa_factors').set({ counter: newCounter, last_used_at: this.deps.clock().toISOString() }).where('id', '=', factor.id).execute();
      await this.deps.throttle.succeed(tx, secondFactorKeys('webauthn', user.id));
      events.push(this.#event(client, user.id, { type: 'auth.login.passkey', outcome: 'success', resource: { type: 'user', id: user.id }, details: { factor_id: factor.id } }));
      return this.openSession(tx, events, client, user, 'passkey', 'webauthn');
    });
  }

  // ------------------------------------------------------------------------------------------------ sessions
  /**
   * Issue a session and its `session.create` event (committed by the caller's transaction). The event's session_ref
   * is the audit HMAC of the id's hash, as sign-out records it, so the two can be matched.
   */
  async openSession(tx: Executor, events: AuditEventInput[], client: Client, user: UserTable, method: string, mfaMethod: string | null): Promise<SignInResult & { status: 'authenticated' }> {
    const s = await this.startSession(tx, client, user, method, mfaMethod);
    events.push(
      this.#event(client, user.id, {
        type: 'session.create',
        outcome: 'success',
        resource: { type: 'session', id: null },
        details: { session_ref: this.deps.barrier().auditHmac(sessionHash(s.session_id)), expires_at: s.expires_at, mfa: mfaMethod !== null, method, ...(client.user_agent ? { user_agent: client.user_agent.slice(0, 256) } : {}) },
      }),
    );
    return s;
  }

  /** Whether the user has an active second factor now (a session that had to enrol one is restricted until then). */
  async hasFactor(userId: string): Promise<boolean> {
    return (await this.#activeFactors(this.deps.storage.db, userId)).length > 0;
  }

  /** A new session for a user whose sign-in is complete. */
  async startSession(db: Executor, client: Client, user: UserTable, method: string, mfaMethod: string | null): Promise<SignInResult & { status: 'authenticated' }> {
    const now = this.deps.clock();
    const cfg = this.deps.config.session;
    const expires_at = new Date(now.getTime() + cfg.absolute_hours * 3_600_000).toISOString();
    const data: SessionData = {
      user_id: user.id,
      created_at: now.toISOString(),
      expires_at,
      mfa_at: mfaMethod ? now.toISOString() : null,
      mfa_method: mfaMethod,
      method,
      ip: client.ip,
      user_agent: client.user_agent,
    };
    const hasFactor = mfaMethod !== null || (await this.#activeFactors(db, user.id)).length > 0;
    if (user.mfa_required === 1 && !hasFactor) data.mfa_enrollment_required = true;
    const id = newSessionId();
    await this.deps.sessions.put(sessionHash(id), data, now.toISOString(), this.#ttl(data, now), db);
    return { status: 'authenticated', user_id: user.id, session_id: id, expires_at, mfa_enrollment_required: data.mfa_enrollment_required ?? false };
  }

  #ttl(data: SessionData, now: Date): number {
    const absolute = Math.floor((Date.parse(data.expires_at) - now.getTime()) / 1000);
    return Math.max(1, Math.min(this.deps.config.session.idle_minutes * 60, absolute));
  }

  /**
   * The session behind a cookie, or null: unknown, idle too long, past its absolute expiry, or its user is gone,
   * inactive, or changed credentials since it began. Activity restarts the idle clock (written at most every 30 s).
   */
  async session(id: string): Promise<{ id_hash: Buffer; data: SessionData } | null> {
    if (!id.startsWith('ps_') || id.length > 100) return null;
    const idHash = sessionHash(id);
    const s = await this.deps.sessions.get(idHash);
    if (!s) return null;
    const now = this.deps.clock();
    const idleEnd = Date.parse(s.last_seen_at) + this.deps.config.session.idle_minutes * 60_000;
    if (now.getTime() >= idleEnd || now.toISOString() >= s.data.expires_at) {
      await this.deps.sessions.delete(idHash);
      return null;
    }
    const state = await this.deps.principals.get(s.data.user_id);
    if (!state?.active || s.data.created_at < state.valid_after) {
      await this.deps.sessions.delete(idHash);
      return null;
    }
    if (now.getTime() - Date.parse(s.last_seen_at) > 30_000) await this.deps.sessions.touch(idHash, now.toISOString(), this.#ttl(s.data, now));
    return { id_hash: idHash, data: s.data };
  }

  /** WebAuthn options for a step-up: the signed-in user's own credentials. */
  async stepUpWebauthnOptions(userId: string): Promise<{ challenge_id: string; options: unknown }> {
    const allow = (await this.#activeFactors(this.deps.storage.db, userId)).filter((f) => f.kind === 'webauthn').map(storedCredential);
    if (allow.length === 0) throw new PalisadeError('PAL_AUTH_MFA_NOT_ENROLLED', 'this user has no security key or passkey');
    const { options, challenge } = await this.deps.webauthn().authenticationOptions(allow);
    const challenge_id = await this.deps.storage.transact((tx) => this.deps.challenges.create(tx, 'webauthn_login', userId, { challenge, step_up: true }, WEBAUTHN_CHALLENGE_SECONDS));
    return { challenge_id, options };
  }

  /**
   * Step-up: a fresh second factor inside an existing session, a TOTP code or a WebAuthn assertion of the user's
   * own credential. Failures count against that factor's throttle like a sign-in's.
   */
  async stepUp(client: Client, idHash: Buffer, userId: string, proof: { code: string } | { challenge_id: string; response: unknown }): Promise<{ mfa_at: string }> {
    const method = 'code' in proof ? 'totp' : 'webauthn';
    const keys = secondFactorKeys(method, userId);
    await this.#throttled(keys);
    let check: (tx: Executor) => Promise<{ factor_id: string } | 'invalid_code' | 'replayed'>;
    if ('code' in proof) {
      check = async (tx) => {
        const r = await this.verifyTotpCode(tx, userId, proof.code);
        return r === null || r === 'replayed' ? (r ?? 'invalid_code') : { factor_id: r.id };
      };
    } else {
      // Verified before the transaction: the challenge is spent and the assertion checked against the user's key.
      const c = await this.deps.challenges.take<{ challenge: string }>(this.deps.storage.db, 'webauthn_login', proof.challenge_id);
      const verifier = this.deps.webauthn();
      let verified: { factor: MfaFactorTable; newCounter: number } | null = null;
      if (c?.user_id === userId) {
        const factor = await this.deps.storage.db.selectFrom('mfa_factors').selectAll().where('credential_id', '=', verifier.credentialIdOf(proof.response)).where('user_id', '=', userId).where('active', '=', 1).executeTakeFirst();
        if (factor) verified = await verifier.verifyAuthentication(proof.response, c.data.challenge, storedCredential(factor)).then((r) => ({ factor, newCounter: r.newCounter }), () => null);
      }
      check = async (tx) => {
        if (!verified) return 'invalid_code';
        await tx.updateTable('mfa_factors').set({ counter: verified.newCounter, last_used_at: this.deps.clock().toISOString() }).where('id', '=', verified.factor.id).execute();
        return { factor_id: verified.factor.id };
      };
    }
    const result = await this.#commit(async (tx, events) => {
      const r = await check(tx);
      if (typeof r === 'string') return r;
      const s = await this.deps.sessions.get(idHash, tx);
      if (!s) throw new PalisadeError('PAL_AUTH_SESSION_REQUIRED');
      const now = this.deps.clock();
      const data = { ...s.data, mfa_at: now.toISOString(), mfa_method: method };
      await this.deps.sessions.put(idHash, data, now.toISOString(), this.#ttl(data, now), tx);
      events.push(this.#event(client, userId, { type: 'mfa.verify', outcome: 'success', resource: { type: 'mfa_factor', id: r.factor_id }, details: { method, step_up: true } }));
      return { mfa_at: data.mfa_at };
    });
    if (typeof result === 'string') {
      const error = method === 'totp' ? new PalisadeError('PAL_AUTH_MFA_INVALID') : new PalisadeError('PAL_AUTH_WEBAUTHN_FAILED');
      return this.#fail(client, userId, keys, { type: 'mfa.verify', outcome: 'denied', resource: { type: 'user', id: userId }, error_code: error.code, details: { method, step_up: true, reason: result } }, error);
    }
    return result;
  }

  async endSession(idHash: Buffer, db?: Executor): Promise<void> {
    await this.deps.sessions.delete(idHash, db);
  }
}
