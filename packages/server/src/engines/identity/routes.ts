import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PalisadeError } from '@palisade/core';
import type { IdentityEngine } from './engine.js';
import { clientOf, SESSION_COOKIE } from './engine.js';
import type { SignInResult } from './login.js';
import { verifyPassword } from './password-hash.js';
import { canDelegate } from '../../kernel/auth/permissions.js';
import { SESSION_CLIENT } from './tokens.js';

const tags = ['identity'];
const Str = (max = 256) => Type.String({ minLength: 1, maxLength: max });
const Code = Type.String({ minLength: 6, maxLength: 40 });
const Json = Type.Unknown();

/** The session cookie: host-only, HTTPS-only, invisible to scripts, never sent cross-site. */
export function setSessionCookie(reply: FastifyReply, id: string, expiresAt: string, now: Date): void {
  const maxAge = Math.max(0, Math.floor((Date.parse(expiresAt) - now.getTime()) / 1000));
  void reply.header('set-cookie', `${SESSION_COOKIE}=${id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`);
}

function clearSessionCookie(reply: FastifyReply): void {
  void reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`);
}

function answer(reply: FastifyReply, r: SignInResult, now: Date) {
  if (r.status === 'mfa_required') return r;
  setSessionCookie(reply, r.session_id, r.expires_at, now);
  return { status: r.status, user_id: r.user_id, expires_at: r.expires_at, mfa_enrollment_required: r.mfa_enrollment_required };
}

function sessionOf(req: FastifyRequest) {
  const p = req.principal;
  if (p?.method !== 'session' || !p.session) throw new PalisadeError('PAL_AUTH_SESSION_REQUIRED');
  return { user_id: p.principal_id, id_hash: p.session.id_hash, mfa_at: p.session.mfa_at };
}

/**
 * Sign-in and self-service (the JSON API the login pages use): password, second factors, passkeys, the session,
 * enrolment of factors, password change, and tokens for a signed-in user. Sign-in routes are public and audit every
 * attempt themselves (a failed attempt must still commit its throttle counters and its event).
 */
export function identityAuthRoutes(identity: IdentityEngine, clock: () => Date): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const { signIn, factors, directory } = identity;
    const pub = { permission: null };

    app.post('/auth/login', { schema: { tags, summary: 'Sign in with a password', body: Type.Object({ username: Str(), password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }) }, config: pub }, async (req, reply) =>
      answer(reply, await signIn.password(clientOf(req), req.body.username, req.body.password), clock()),
    );
    const MfaBody = Type.Object({ mfa_token: Str(200), code: Code }, { additionalProperties: false });
    app.post('/auth/login/totp', { schema: { tags, summary: 'Second step: a TOTP code', body: MfaBody }, config: pub }, async (req, reply) =>
      answer(reply, await signIn.totp(clientOf(req), req.body.mfa_token, req.body.code), clock()),
    );
    app.post('/auth/login/recovery-code', { schema: { tags, summary: 'Second step: a one-time recovery code', body: MfaBody }, config: pub }, async (req, reply) =>
      answer(reply, await signIn.recoveryCode(clientOf(req), req.body.mfa_token, req.body.code), clock()),
    );
    app.post('/auth/login/webauthn/options', { schema: { tags, summary: 'WebAuthn assertion options (with mfa_token: the user\'s keys; without: any passkey)', body: Type.Object({ mfa_token: Type.Optional(Str(200)) }, { additionalProperties: false }) }, config: pub }, async (req) =>
      signIn.webauthnOptions(req.body.mfa_token),
    );
    app.post('/auth/login/webauthn', { schema: { tags, summary: 'Sign in with a WebAuthn assertion', body: Type.Object({ challenge_id: Str(200), response: Json, mfa_token: Type.Optional(Str(200)) }, { additionalProperties: false }) }, config: pub }, async (req, reply) =>
      answer(reply, await signIn.webauthn(clientOf(req), req.body.challenge_id, req.body.response, req.body.mfa_token), clock()),
    );

    app.get('/auth/session', { schema: { tags, summary: 'The signed-in user and their session' }, config: { permission: 'auth:self:read' } }, async (req) => {
      const s = sessionOf(req);
      const user = await directory.getUser(req.tx, s.user_id);
      const stored = await identity.sessions.get(s.id_hash);
      return { user_id: user.id, username: user.username, display_name: user.display_name, roles: user.roles, mfa_verified_at: s.mfa_at, expires_at: stored?.data.expires_at ?? null, method: stored?.data.method ?? null };
    });
    app.post('/auth/logout', { schema: { tags, summary: 'End this session' }, config: { permission: 'auth:self:read', audit: 'auth.logout' } }, async (req, reply) => {
      const s = sessionOf(req);
      req.auditRecord.resource = { type: 'session', id: null };
      req.auditRecord.details = { session_ref: identity.deps.barrier().auditHmac(s.id_hash) };
      await signIn.endSession(s.id_hash, req.tx);
      clearSessionCookie(reply);
      void reply.code(204);
      return null;
    });
    app.post(
      '/auth/step-up',
      {
        schema: {
          tags,
          summary: 'Verify a second factor again for sensitive operations: a TOTP code, or a WebAuthn assertion to options from /auth/step-up/webauthn/options',
          body: Type.Union([Type.Object({ code: Code }, { additionalProperties: false }), Type.Object({ challenge_id: Str(200), response: Json }, { additionalProperties: false })]),
        },
        config: { permission: 'auth:self:read', selfAudited: true },
      },
      async (req) => {
        const s = sessionOf(req);
        return signIn.stepUp(clientOf(req), s.id_hash, s.user_id, req.body);
      },
    );
    app.post('/auth/step-up/webauthn/options', { schema: { tags, summary: 'WebAuthn options to step up with your passkey or security key' }, config: { permission: 'auth:self:read', selfAudited: true } }, async (req) =>
      signIn.stepUpWebauthnOptions(sessionOf(req).user_id),
    );
    app.post('/auth/password', { schema: { tags, summary: 'Change your password (ends your other sessions)', body: Type.Object({ current_password: Type.String({ minLength: 1, maxLength: 1024 }), new_password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }) }, config: { permission: 'auth:self:write', audit: 'auth.password.change' } }, async (req, reply) => {
      const s = sessionOf(req);
      const row = await directory.userRow(req.tx, s.user_id);
      if (!row.password_hash) throw new PalisadeError('PAL_AUTH_PASSWORD_NOT_SET');
      if (!(await verifyPassword(row.password_hash, req.body.current_password))) throw new PalisadeError('PAL_AUTH_LOGIN_FAILED', 'the current password is wrong');
      await directory.setPassword(req.tx, s.user_id, req.body.new_password);
      req.auditRecord.resource = { type: 'user', id: s.user_id };
      req.auditRecord.details = { reset: false };
      await identity.sessions.deleteForUser(s.user_id, req.tx);
      clearSessionCookie(reply);
      void reply.code(204);
      return null;
    });

    // ------------------------------------------------------------------------------------------ factors
    app.get('/auth/mfa/factors', { schema: { tags, summary: 'Your second factors' }, config: { permission: 'auth:self:read' } }, async (req) => {
      const s = sessionOf(req);
      const user = await directory.userRow(req.tx, s.user_id);
      return { ...(await factors.list(req.tx, s.user_id)), mfa_required: user.mfa_required === 1 };
    });
    app.post('/auth/mfa/totp/enroll', { schema: { tags, summary: 'Start a TOTP enrolment (secret, otpauth URI, QR code)' }, config: { permission: 'auth:self:write', audit: 'mfa.enroll' } }, async (req) => {
      const s = sessionOf(req);
      const out = await factors.enrollTotp(req.tx, await directory.userRow(req.tx, s.user_id));
      req.auditRecord.resource = { type: 'mfa_factor', id: out.factor_id };
      req.auditRecord.details = { method: 'totp', pending: true };
      return out;
    });
    app.post('/auth/mfa/totp/verify', { schema: { tags, summary: 'Confirm a TOTP enrolment with a code', body: Type.Object({ factor_id: Str(64), code: Code }, { additionalProperties: false }) }, config: { permission: 'auth:self:write', audit: 'mfa.enroll' } }, async (req) => {
      const s = sessionOf(req);
      const factor = await factors.confirmTotp(req.tx, s.user_id, req.body.factor_id, req.body.code);
      req.auditRecord.resource = { type: 'mfa_factor', id: factor.id };
      req.auditRecord.details = { method: 'totp', factor_name: factor.name, pending: false };
      return { factor };
    });
    app.post('/auth/mfa/webauthn/register/options', { schema: { tags, summary: 'Options to register a passkey or security key', body: Type.Optional(Type.Object({}, { additionalProperties: false })) }, config: { permission: 'auth:self:read', selfAudited: true } }, async (req) => {
      const s = sessionOf(req);
      return identity.deps.storage.transact(async (tx) => factors.webauthnRegistrationOptions(tx, await directory.userRow(tx, s.user_id)));
    });
    app.post('/auth/mfa/webauthn/register', { schema: { tags, summary: 'Register a passkey or security key', body: Type.Object({ challenge_id: Str(200), response: Json, name: Type.Optional(Str(64)) }, { additionalProperties: false }) }, config: { permission: 'auth:self:write', audit: 'mfa.enroll' } }, async (req) => {
      const s = sessionOf(req);
      const factor = await factors.registerWebauthn(req.tx, s.user_id, req.body.challenge_id, req.body.response, req.body.name ?? 'passkey');
      req.auditRecord.resource = { type: 'mfa_factor', id: factor.id };
      req.auditRecord.details = { method: 'webauthn', factor_name: factor.name };
      return { factor };
    });
    app.post('/auth/mfa/recovery-codes', { schema: { tags, summary: 'New recovery codes (shown once; the old ones stop working)' }, config: { permission: 'auth:self:write', audit: 'mfa.enroll' } }, async (req) => {
      const s = sessionOf(req);
      const codes = await factors.newRecoveryCodes(req.tx, s.user_id);
      req.auditRecord.resource = { type: 'mfa_factor', id: `${s.user_id}/recovery_codes` };
      req.auditRecord.details = { method: 'recovery_codes', count: codes.length };
      return { codes };
    });
    app.delete('/auth/mfa/factors/:id', { schema: { tags, summary: 'Remove a second factor (needs a fresh second factor)', params: Type.Object({ id: Str(128) }) }, config: { permission: 'auth:self:write', audit: 'mfa.remove' } }, async (req, reply) => {
      const s = sessionOf(req);
      identity.requireFreshMfa(req.principal!);
      const removed = await factors.remove(req.tx, await directory.userRow(req.tx, s.user_id), req.params.id);
      req.auditRecord.resource = { type: 'mfa_factor', id: removed.id };
      req.auditRecord.details = { method: removed.kind, by_admin: false };
      void reply.code(204);
      return null;
    });

    // ------------------------------------------------------------------------------------------ tokens
    app.post('/auth/token', { schema: { tags, summary: 'Access and refresh tokens for the signed-in user (CLI, SDK)', body: Type.Optional(Type.Object({ scope: Type.Optional(Type.String({ maxLength: 4096 })) }, { additionalProperties: false })) }, config: { permission: 'auth:self:write', audit: 'token.issue' } }, async (req) => {
      const s = sessionOf(req);
      const held = req.principal!.permissions.filter((p) => p !== 'auth:self:*');
      const wanted = req.body?.scope ? req.body.scope.split(' ').filter(Boolean) : held;
      const excess = wanted.filter((p) => !canDelegate(held, p));
      if (excess.length > 0) throw new PalisadeError('PAL_AUTH_GRANT_EXCEEDS', `you do not hold ${excess.join(', ')}`, { extensions: { permissions: excess } });
      const access = await identity.tokens.issueAccess(req.tx, { sub: s.user_id, client_id: SESSION_CLIENT, scope: wanted });
      const refresh_token = await identity.tokens.issueRefresh(req.tx, { principal_id: s.user_id, client_id: SESSION_CLIENT, scope: wanted });
      req.auditRecord.resource = { type: 'token', id: access.claims.jti };
      req.auditRecord.details = { grant_type: 'session', client_id: SESSION_CLIENT, scopes: wanted, expires_at: new Date(access.claims.exp * 1000).toISOString() };
      return { access_token: access.token, token_type: 'Bearer', expires_in: access.claims.exp - access.claims.iat, scope: wanted.join(' '), refresh_token };
    });
  };
}
