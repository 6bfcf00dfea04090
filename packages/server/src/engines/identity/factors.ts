import { PalisadeError, randomId } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { MfaFactorTable, UserTable } from '../../storage/schema.js';
import type { Challenges } from './challenges.js';
import type { WebAuthnVerifier } from './webauthn.js';
import { newTotpSecret, otpauthUri, base32Encode, verifyTotp } from './totp.js';
import { qrSvg } from './enrolment-qr.js';
import { generateRecoveryCodes, hashRecoveryCode } from './recovery-codes.js';
import { storedCredential, TOTP_SECRET_PURPOSE } from './login.js';

export interface FactorInfo {
  id: string;
  kind: 'totp' | 'webauthn' | 'recovery_codes';
  name: string;
  created_at: string;
  last_used_at: string | null;
}

const info = (f: MfaFactorTable): FactorInfo => ({ id: f.id, kind: f.kind as 'totp' | 'webauthn', name: f.name, created_at: f.created_at, last_used_at: f.last_used_at });

/**
 * Enrolling and removing second factors. A TOTP factor counts only once a code from it was verified; recovery codes
 * are shown once and stored hashed; a user whose policy requires MFA cannot remove their last factor
 * (goauthentik/authentik#16209).
 */
export class Factors {
  constructor(
    private readonly deps: { barrier: () => Barrier; challenges: Challenges; webauthn: () => WebAuthnVerifier; issuer: string; clock: () => Date },
  ) {}

  async list(db: Executor, userId: string): Promise<{ factors: FactorInfo[]; recovery_codes_remaining: number }> {
    const rows = await db.selectFrom('mfa_factors').selectAll().where('user_id', '=', userId).where('active', '=', 1).orderBy('created_at').execute();
    const remaining = Number(
      (await db.selectFrom('recovery_codes').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow()).n,
    );
    const factors = rows.map(info);
    if (remaining > 0) factors.push({ id: `${userId}/recovery_codes`, kind: 'recovery_codes', name: 'recovery codes', created_at: rows[0]?.created_at ?? '', last_used_at: null });
    return { factors, recovery_codes_remaining: remaining };
  }

  async enrollTotp(db: Executor, user: UserTable): Promise<{ factor_id: string; secret: string; otpauth_uri: string; qr_svg: string }> {
    const secret = newTotpSecret();
    const id = randomId('mfa');
    await db.deleteFrom('mfa_factors').where('user_id', '=', user.id).where('kind', '=', 'totp').where('active', '=', 0).execute();
    await db
      .insertInto('mfa_factors')
      .values({ id, user_id: user.id, kind: 'totp', name: 'authenticator app', active: 0, secret: this.deps.barrier().seal(TOTP_SECRET_PURPOSE, secret), credential_id: null, public_key: null, counter: null, transports: null, last_step: null, created_at: this.deps.clock().toISOString(), last_used_at: null })
      .execute();
    const uri = otpauthUri({ secret, account: user.username, issuer: this.deps.issuer });
    return { factor_id: id, secret: base32Encode(secret), otpauth_uri: uri, qr_svg: await qrSvg(uri) };
  }

  /** Confirm a pending TOTP enrolment with a code from the app; the code's step is remembered (accepted once). */
  async confirmTotp(db: Executor, userId: string, factorId: string, code: string): Promise<FactorInfo> {
    const f = await db.selectFrom('mfa_factors').selectAll().where('id', '=', factorId).where('user_id', '=', userId).where('kind', '=', 'totp').executeTakeFirst();
    if (!f) throw new PalisadeError('PAL_AUTH_FACTOR_NOT_FOUND');
    if (f.active === 1) return info(f);
    const r = verifyTotp(this.deps.barrier().open(TOTP_SECRET_PURPOSE, f.secret!), code, this.deps.clock().getTime());
    if (!r.ok) throw new PalisadeError('PAL_AUTH_MFA_INVALID');
    await db.updateTable('mfa_factors').set({ active: 1, last_step: r.step }).where('id', '=', f.id).execute();
    return info({ ...f, active: 1 });
  }

  async webauthnRegistrationOptions(db: Executor, user: UserTable): Promise<{ challenge_id: string; options: unknown }> {
    const existing = (await db.selectFrom('mfa_factors').selectAll().where('user_id', '=', user.id).where('kind', '=', 'webauthn').execute()).map(storedCredential);
    const { options, challenge } = await this.deps.webauthn().registrationOptions({ id: user.id, username: user.username, display_name: user.display_name }, existing);
    const challenge_id = await this.deps.challenges.create(db, 'webauthn_register', user.id, { challenge }, 300);
    return { challenge_id, options };
  }

  async registerWebauthn(db: Executor, userId: string, challengeId: string, response: unknown, name: string): Promise<FactorInfo> {
    const c = await this.deps.challenges.take<{ challenge: string }>(db, 'webauthn_register', challengeId);
    if (!c || c.user_id !== userId) throw new PalisadeError('PAL_AUTH_MFA_TOKEN_INVALID', 'the registration challenge is unknown, used, expired or another user\'s');
    const cred = await this.deps.webauthn().verifyRegistration(response, c.data.challenge, userId);
    const row: MfaFactorTable = {
      id: randomId('mfa'),
      user_id: userId,
      kind: 'webauthn',
      name,
      active: 1,
      secret: null,
      credential_id: cred.credential_id,
      public_key: cred.public_key,
      counter: cred.counter,
      transports: JSON.stringify({ transports: cred.transports, backed_up: cred.backed_up, device_type: cred.device_type }),
      last_step: null,
      created_at: this.deps.clock().toISOString(),
      last_used_at: null,
    };
    try {
      await db.insertInto('mfa_factors').values(row).execute();
    } catch (e) {
      if (/unique|duplicate/i.test(String((e as Error).message))) throw new PalisadeError('PAL_AUTH_WEBAUTHN_FAILED', 'this authenticator is already registered');
      throw e;
    }
    return info(row);
  }

  /** New recovery codes (the old ones stop working); shown once. */
  async newRecoveryCodes(db: Executor, userId: string): Promise<string[]> {
    const codes = generateRecoveryCodes(10);
    const now = this.deps.clock().toISOString();
    await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
    await db.insertInto('recovery_codes').values(codes.map((c) => ({ code_hash: hashRecoveryCode(c), user_id: userId, created_at: now, used_at: null }))).execute();
    return codes;
  }

  async remove(db: Executor, user: UserTable, factorId: string): Promise<FactorInfo> {
    const { factors } = await this.list(db, user.id);
    const target = factors.find((f) => f.id === factorId);
    if (!target) throw new PalisadeError('PAL_AUTH_FACTOR_NOT_FOUND');
    // Recovery codes alone are not a factor to sign in with: the last real factor is what policy protects.
    const real = factors.filter((f) => f.kind !== 'recovery_codes');
    if (user.mfa_required === 1 && target.kind !== 'recovery_codes' && real.length <= 1) throw new PalisadeError('PAL_AUTH_LAST_FACTOR');
    if (target.kind === 'recovery_codes') await db.deleteFrom('recovery_codes').where('user_id', '=', user.id).execute();
    else await db.deleteFrom('mfa_factors').where('id', '=', factorId).where('user_id', '=', user.id).execute();
    if (real.length <= 1 && target.kind !== 'recovery_codes') await db.deleteFrom('recovery_codes').where('user_id', '=', user.id).execute();
    return target;
  }
}
