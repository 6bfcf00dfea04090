import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { PalisadeError } from '@palisade/core';
import type { Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { Principal } from '../../kernel/auth/api-keys.js';
import { hasPermission } from '../../kernel/auth/permissions.js';
import type { AuthGeneration } from '../../kernel/auth/generation.js';
import { peerCertificateChain, type ClientCertificateAuthenticator } from '../../kernel/auth/client-certificates.js';
import type { IdentityConfig } from './config.js';
import { Directory } from './directory.js';
import { Challenges } from './challenges.js';
import { PrincipalStates } from './principals.js';
import { AuthThrottle } from './throttle.js';
import { DatabaseSessionStore, RedisSessionStore, type SessionStore } from './sessions.js';
import { SignIn, type Client } from './login.js';
import { Factors } from './factors.js';
import { TokenService, type TokenKms } from './tokens.js';
import { WebAuthnVerifier } from './webauthn.js';

export const SESSION_COOKIE = '__Host-palisade_session';

/** The SHA-256 thumbprint (base64url) of the request's TLS client certificate, for RFC 8705 binding; null without one. */
/** The parts of a request the credential checks read: its TLS socket (Fastify's request, or `{ raw }` of a plain Node one). */
export interface RequestSocket {
  raw: { socket: Socket };
}

export function certificateThumbprint(req: RequestSocket): string | null {
  const leaf = peerCertificateChain(req.raw.socket)[0];
  return leaf ? createHash('sha256').update(leaf).digest('base64url') : null;
}

export function cookie(req: FastifyRequest, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

export function clientOf(req: FastifyRequest): Client {
  const ua = req.headers['user-agent'];
  return { ip: req.ip, user_agent: typeof ua === 'string' ? ua : null, request_id: req.id };
}

/**
 * The identity engine: the directory, sign-in, factors, sessions and tokens, wired to one configuration. The
 * pipeline asks it to turn a session cookie or a bearer JWT into a principal.
 */
export class IdentityEngine {
  readonly directory: Directory;
  readonly challenges: Challenges;
  readonly principals: PrincipalStates;
  readonly sessions: SessionStore;
  readonly signIn: SignIn;
  readonly factors: Factors;
  readonly tokens: TokenService;
  readonly publicUrl: string;
  #webauthn: WebAuthnVerifier | null = null;

  constructor(
    readonly deps: {
      storage: Storage;
      ledger: AuditLedger;
      barrier: () => Barrier;
      kms: TokenKms;
      tokenKeyName: string;
      config: IdentityConfig;
      publicUrl: string;
      redisUrl?: string | undefined;
      /** The listener's client-certificate check: a bound token's certificate must still be valid and unrevoked. */
      clientCertificates?: () => ClientCertificateAuthenticator | undefined;
      /** Who may do what changed: bumped by directory writes, and what drops the principal cache on every node. */
      generation?: AuthGeneration;
      clock: () => Date;
    },
  ) {
    const { storage, clock, config } = deps;
    this.publicUrl = deps.publicUrl;
    const generation = deps.generation;
    this.directory = new Directory(clock, config.password_min_length, generation ? (db) => generation.bump(db) : undefined);
    this.challenges = new Challenges(clock);
    this.principals = new PrincipalStates(storage, this.directory);
    generation?.onChange(() => this.principals.clear());
    this.sessions = deps.redisUrl ? new RedisSessionStore(deps.redisUrl) : new DatabaseSessionStore(storage, clock);
    const webauthn = () => (this.#webauthn ??= new WebAuthnVerifier({ rpId: new URL(this.publicUrl).hostname, rpName: 'Palisade', origins: [this.publicUrl], userVerification: 'required' }));
    this.signIn = new SignIn({
      storage,
      ledger: deps.ledger,
      barrier: deps.barrier,
      directory: this.directory,
      challenges: this.challenges,
      sessions: this.sessions,
      principals: this.principals,
      throttle: new AuthThrottle(config.lockout, clock),
      webauthn,
      config,
      clock,
    });
    this.factors = new Factors({ barrier: deps.barrier, challenges: this.challenges, webauthn, issuer: 'Palisade', clock });
    this.tokens = new TokenService({ storage, kms: deps.kms, keyName: deps.tokenKeyName, config: config.tokens, issuer: () => this.publicUrl, principals: this.principals, clock });
  }

  /** A bearer access token (JWT) as a principal: its scope, narrowed to what the principal still holds. */
  async accessTokenPrincipal(token: string, req: RequestSocket): Promise<Principal> {
    const claims = await this.tokens.verifyAccess(token, { certificateThumbprint: certificateThumbprint(req) });
    const checker = this.deps.clientCertificates?.();
    if (claims.cnf && checker) {
      // The thumbprint matched; the certificate must also still be good (a revoked one ends its bound tokens).
      await checker.authenticate(peerCertificateChain(req.raw.socket)).catch(() => {
        throw new PalisadeError('PAL_AUTH_TOKEN_INVALID', 'the certificate this token is bound to is no longer valid');
      });
    }
    const state = await this.principals.get(claims.sub);
    const scope = claims.scope.split(' ').filter(Boolean);
    return {
      principal_id: claims.sub,
      api_key_id: null,
      permissions: scope.filter((s) => hasPermission(state?.permissions ?? [], s)),
      ceiling: scope,
      method: 'access_token',
      token: { jti: claims.jti, client_id: claims.client_id, exp: claims.exp },
    };
  }

  /**
   * A session cookie as a principal. Cookie-authenticated writes must come from Palisade's own pages: the browser's
   * Sec-Fetch-Site or Origin proves it (SameSite=Strict already keeps the cookie off cross-site requests).
   */
  async sessionPrincipal(id: string, req: FastifyRequest): Promise<Principal> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const site = req.headers['sec-fetch-site'];
      const origin = req.headers.origin;
      const sameOrigin = site === 'same-origin' || (site === undefined && typeof origin === 'string' && origin === `https://${req.headers.host ?? ''}`);
      if (!sameOrigin) throw new PalisadeError('PAL_AUTH_CSRF');
    }
    const s = await this.signIn.session(id);
    if (!s) throw new PalisadeError('PAL_AUTH_INVALID', 'the session is unknown, expired or ended');
    const state = await this.principals.get(s.data.user_id);
    // Policy requires MFA and none is enrolled yet: the session can enrol a factor and nothing else.
    const restricted = s.data.mfa_enrollment_required === true && !(await this.signIn.hasFactor(s.data.user_id));
    return {
      principal_id: s.data.user_id,
      api_key_id: null,
      permissions: restricted ? ['auth:self:*'] : [...(state?.permissions ?? []), 'auth:self:*'],
      ...(restricted ? { ceiling: ['auth:self:*'] } : {}),
      method: 'session',
      session: { id_hash: s.id_hash, mfa_at: s.data.mfa_at, mfa_method: s.data.mfa_method },
    };
  }

  /**
   * A client certificate's principal (its SPIFFE id, with the permissions `tls.client_auth.identities` gives it) as
   * the service identity registered with that SPIFFE id, when there is an active one: the service's roles add to it.
   */
  async certificatePrincipal(p: Principal): Promise<Principal> {
    const svc = await this.deps.storage.db.selectFrom('service_identities').select(['id', 'active']).where('spiffe_id', '=', p.principal_id).executeTakeFirst();
    if (!svc) return { ...p, method: 'client_certificate', spiffe_id: p.principal_id };
    const state = await this.principals.get(svc.id);
    if (!state?.active) throw new PalisadeError('PAL_AUTH_INVALID', 'the service identity of this certificate is disabled');
    return { principal_id: svc.id, api_key_id: null, permissions: [...new Set([...p.permissions, ...state.permissions])], method: 'client_certificate', spiffe_id: p.principal_id };
  }

  /** Step-up: throw unless this session verified a second factor within the configured minutes. */
  requireFreshMfa(principal: Principal): void {
    if (principal.method !== 'session' || !principal.session) throw new PalisadeError('PAL_AUTH_SESSION_REQUIRED');
    const max = this.deps.config.session.step_up_minutes * 60;
    const at = principal.session.mfa_at ? Date.parse(principal.session.mfa_at) : 0;
    if (this.deps.clock().getTime() - at > max * 1000) throw new PalisadeError('PAL_AUTH_STEP_UP_REQUIRED', undefined, { extensions: { max_age_seconds: max } });
  }

  async close(): Promise<void> {
    await this.sessions.close();
  }
}
