/**
 * OpenID Connect relying party: Palisade signs users in at Azure AD, Okta or any OIDC provider with the authorization
 * code flow (RFC 6749 §4.1), PKCE S256 always (RFC 7636), `state` and `nonce`, the RFC 9207 `iss` response parameter,
 * and ID token validation as OpenID Connect Core §3.1.3.7 lists it.
 *
 * The module is stateless between the two legs: `authorizationRequest()` returns the pending record that the caller
 * keeps server side (keyed by `state`) and hands back to `complete()`. Failures are PalisadeErrors whose
 * `extensions.reason` is a stable string, so the login routes, the audit log and tests can branch on it:
 * PAL_AUTH_IDP_FAILED when the provider's answer is refused, PAL_AUTH_IDP_UNAVAILABLE when the provider cannot be
 * reached or answers with something that is not a protocol answer at all.
 *
 * Nothing here logs; tokens, codes and the client secret never go into an error message or extension.
 */
import { constantTimeEqual, PalisadeError, randomBytes, sha256 } from '@palisade/core';
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';

export interface OidcProviderSettings {
  /** Palisade's name for the provider, e.g. 'okta'; it appears in the callback path and in `OidcPending.provider`. */
  name: string;
  /** The provider's issuer identifier, compared exactly (no trailing-slash or case folding). https; http only with allowInsecureHttp. */
  issuer: string;
  client_id: string;
  /** Set: a confidential client authenticating with client_secret_basic. Unset: a public client (PKCE only). */
  client_secret?: string;
  /** Palisade's callback, e.g. https://palisade.example/v1/auth/oidc/okta/callback; sent byte for byte in both legs. */
  redirect_uri: string;
  /** Default ['openid', 'email', 'profile']; 'openid' is added when missing. */
  scopes: string[];
  /** The claim that lists the user's groups (ID token or UserInfo). Default 'groups'. */
  groups_claim: string;
  /** Allows http issuer, endpoints and redirect_uri: for tests and loopback only. */
  allowInsecureHttp?: boolean;
}

/**
 * What the caller keeps between the two legs. `created_at` is milliseconds since the epoch on the RP's clock.
 * It holds the PKCE verifier, so it must stay server side (never in a cookie the browser can read back to us).
 */
export interface OidcPending {
  provider: string;
  state: string;
  nonce: string;
  code_verifier: string;
  created_at: number;
}

export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  email_verified: boolean;
  name: string | null;
  groups: string[];
  /** The validated ID token's claims, completed with UserInfo's claims where the ID token had none. */
  claims: Record<string, unknown>;
}

/** The discovery document is re-read this often, so a provider's endpoint or algorithm change is picked up. */
const DISCOVERY_TTL_MS = 3600_000;
/** Discovery, JWKS, token and UserInfo calls give up after this; the user is waiting on the callback. */
const HTTP_TIMEOUT_MS = 10_000;
/** Allowed skew between our clock and the provider's for `exp`, `iat` and `nbf` (seconds). */
export const CLOCK_TOLERANCE_SECONDS = 60;
/** An ID token fresh from the token endpoint is seconds old; one older than this was not issued for this login. */
const MAX_ID_TOKEN_AGE_SECONDS = 3600;
const DEFAULT_SCOPES = ['openid', 'email', 'profile'];

/**
 * The ID token algorithms we accept at all (intersected with what the provider advertises). Only asymmetric ones: HS*
 * would make the client secret a signing key shared with the provider, and a verifier that accepts HS* from a key
 * set is the classic "HS256 signed with the public key" forgery. `none` is never accepted (jose refuses it anyway).
 */
const ASYMMETRIC_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

/** RFC 6749 §5.2 / §4.1.2.1: an `error` value is %x20-21 / %x23-5B / %x5D-7E; anything else is not echoed back. */
const OAUTH_ERROR = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  userinfo_endpoint: string | null;
  /** ID token algorithms both sides accept, in the provider's order. */
  algorithms: string[];
  /** RFC 9207 §3: when advertised, every authorization response must carry `iss`. */
  iss_parameter_supported: boolean;
}

function idpFailed(reason: string, message: string, extra: Record<string, unknown> = {}, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_AUTH_IDP_FAILED', message, { cause, extensions: { reason, ...extra } });
}

function idpUnavailable(reason: string, message: string, extra: Record<string, unknown> = {}, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_AUTH_IDP_UNAVAILABLE', message, { cause, extensions: { reason, ...extra } });
}

function safeOAuthError(value: unknown): string {
  return typeof value === 'string' && OAUTH_ERROR.test(value) ? value : 'invalid';
}

/** application/x-www-form-urlencoded, as RFC 6749 §2.3.1 requires for both halves of HTTP Basic client credentials. */
function formEncode(s: string): string {
  return new URLSearchParams([['', s]]).toString().slice(1);
}

function s256(verifier: string): string {
  return sha256(verifier).toString('base64url');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkUrl(value: unknown, allowHttp: boolean): URL | null {
  if (typeof value !== 'string') return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol === 'https:' || (allowHttp && url.protocol === 'http:')) return url;
  return null;
}

export interface IdTokenExpectations {
  issuer: string;
  client_id: string;
  nonce: string;
  /** Algorithms the token may use; anything outside ASYMMETRIC_ALGS is dropped here too. */
  algorithms: string[];
  now: Date;
}

/**
 * OpenID Connect Core §3.1.3.7 for an ID token from the token endpoint: signature with the provider's keys (`keys`,
 * normally jose's remote JWKS, which refetches on an unknown `kid`), an allowed asymmetric `alg`, `iss` exact, `aud`
 * containing our client_id, `azp` equal to it when present (and required with several audiences), `exp`, `iat` and
 * `nbf` within CLOCK_TOLERANCE_SECONDS, `sub` present, and `nonce` equal in constant time. `at_hash` is not checked:
 * it is optional in the code flow (§3.1.3.8), where the token comes over TLS from an authenticated token request.
 */
export async function validateIdToken(token: string, keys: JWTVerifyGetKey, expect: IdTokenExpectations): Promise<JWTPayload> {
  const algorithms = expect.algorithms.filter((a) => ASYMMETRIC_ALGS.has(a));
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch (cause) {
    throw idpFailed('malformed_id_token', 'the ID token is not a compact JWS', {}, cause);
  }
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw idpFailed('alg_not_allowed', 'the ID token is signed with an algorithm that is not allowed', { alg: typeof alg === 'string' ? alg.slice(0, 32) : null });
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys, {
      issuer: expect.issuer,
      audience: expect.client_id,
      algorithms,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: MAX_ID_TOKEN_AGE_SECONDS,
      currentDate: expect.now,
      requiredClaims: ['sub', 'iat', 'exp'],
    }));
  } catch (e) {
    throw mapJoseError(e);
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') throw idpFailed('malformed_id_token', 'the ID token has no subject');
  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if ((audiences.length > 1 || payload.azp !== undefined) && payload.azp !== expect.client_id) {
    throw idpFailed('azp_mismatch', 'the ID token was issued to another authorized party');
  }
  const nonce = payload.nonce;
  if (typeof nonce !== 'string' || !constantTimeEqual(Buffer.from(nonce, 'utf8'), Buffer.from(expect.nonce, 'utf8'))) {
    throw idpFailed('nonce_mismatch', 'the ID token was not issued for this sign-in (nonce)');
  }
  return payload;
}

function mapJoseError(e: unknown): PalisadeError {
  if (e instanceof joseErrors.JWTExpired) {
    return idpFailed('id_token_expired', 'the ID token has expired or is too old', {}, e);
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'iss') return idpFailed('issuer_mismatch', 'the ID token is from another issuer', {}, e);
    if (e.claim === 'aud') return idpFailed('audience_mismatch', 'the ID token is not for this client', {}, e);
    if (e.claim === 'iat' || e.claim === 'nbf') return idpFailed('id_token_not_yet_valid', 'the ID token is not valid yet', {}, e);
    return idpFailed('malformed_id_token', `the ID token's "${e.claim}" claim is missing or invalid`, {}, e);
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed || e instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return idpFailed('bad_signature', "the ID token's signature does not verify with the provider's keys", {}, e);
  }
  if (e instanceof joseErrors.JWKSNoMatchingKey) {
    return idpFailed('unknown_key', "the ID token is signed with a key the provider does not publish", {}, e);
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return idpFailed('alg_not_allowed', 'the ID token is signed with an algorithm that is not allowed', {}, e);
  if (e instanceof joseErrors.JWSInvalid || e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JOSENotSupported || e instanceof joseErrors.JWKInvalid) {
    return idpFailed('malformed_id_token', 'the ID token is malformed', {}, e);
  }
  // What remains is fetching the key set: a timeout, a non-200 answer, an invalid JWKS, or the network itself.
  return idpUnavailable('jwks_unavailable', "the provider's signing keys could not be fetched", {}, e);
}

/**
 * One configured OIDC provider. Cheap to keep for the process's lifetime: it caches the discovery document (one hour)
 * and the provider's key set (jose's cache, refetched on an unknown `kid`, so key rotation needs nothing from us).
 */
export class OidcRelyingParty {
  readonly #settings: OidcProviderSettings;
  readonly #scopes: string[];
  readonly #groupsClaim: string;
  readonly #clock: () => Date;
  readonly #fetch: typeof fetch;
  readonly #maxPendingAgeMs: number;
  #discovery: { at: number; value: Promise<Discovery> } | null = null;
  #jwks: { uri: string; keys: JWTVerifyGetKey } | null = null;

  constructor(settings: OidcProviderSettings, opts: { clock?: () => Date; fetch?: typeof fetch; maxPendingAgeSeconds?: number } = {}) {
    if (typeof settings.name !== 'string' || settings.name === '') throw new PalisadeError('PAL_VALIDATION_FAILED', 'an OIDC provider needs a name');
    const allowHttp = settings.allowInsecureHttp === true;
    const issuer = checkUrl(settings.issuer, allowHttp);
    // OpenID Connect Discovery §2: the issuer is an https URL with no query or fragment.
    if (!issuer || issuer.search !== '' || issuer.hash !== '' || settings.issuer.includes('#')) {
      throw new PalisadeError('PAL_VALIDATION_FAILED', `OIDC provider "${settings.name}": issuer must be an https URL without query or fragment`);
    }
    if (!checkUrl(settings.redirect_uri, allowHttp)) {
      throw new PalisadeError('PAL_VALIDATION_FAILED', `OIDC provider "${settings.name}": redirect_uri must be an https URL`);
    }
    if (typeof settings.client_id !== 'string' || settings.client_id === '') {
      throw new PalisadeError('PAL_VALIDATION_FAILED', `OIDC provider "${settings.name}": client_id is required`);
    }
    const maxAge = opts.maxPendingAgeSeconds ?? 600;
    if (!(maxAge > 0)) throw new PalisadeError('PAL_VALIDATION_FAILED', 'maxPendingAgeSeconds must be positive');
    this.#settings = { ...settings };
    const scopes = settings.scopes && settings.scopes.length > 0 ? settings.scopes : DEFAULT_SCOPES;
    this.#scopes = [...new Set(['openid', ...scopes])];
    this.#groupsClaim = settings.groups_claim || 'groups';
    this.#clock = opts.clock ?? (() => new Date());
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#maxPendingAgeMs = maxAge * 1000;
  }

  get name(): string {
    return this.#settings.name;
  }

  async authorizationRequest(): Promise<{ url: string; pending: OidcPending }> {
    const d = await this.#discover();
    const pending: OidcPending = {
      provider: this.#settings.name,
      state: randomBytes(32).toString('base64url'),
      nonce: randomBytes(32).toString('base64url'),
      code_verifier: randomBytes(32).toString('base64url'), // 43 characters, RFC 7636 §4.1
      created_at: this.#clock().getTime(),
    };
    // searchParams.set keeps parameters the endpoint already carries (Azure AD B2C's `p=policy`, for one).
    const url = new URL(d.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.#settings.client_id);
    url.searchParams.set('redirect_uri', this.#settings.redirect_uri);
    url.searchParams.set('scope', this.#scopes.join(' '));
    url.searchParams.set('state', pending.state);
    url.searchParams.set('nonce', pending.nonce);
    url.searchParams.set('code_challenge', s256(pending.code_verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    return { url: url.toString(), pending };
  }

  /**
   * The checks run in this order: the response belongs to this login (provider, `state`), the login is recent, it
   * comes from our provider (`iss`, which RFC 9207 applies to error responses too), and only then is an `error`
   * reported or the code redeemed. The caller must delete `pending` before calling, whatever the outcome: a pending
   * record is good for one callback.
   */
  async complete(params: Record<string, string | undefined>, pending: OidcPending): Promise<OidcIdentity> {
    const s = this.#settings;
    if (pending.provider !== s.name) throw idpFailed('state_mismatch', 'the sign-in was started at another provider');
    const state = params.state;
    if (typeof state !== 'string' || !constantTimeEqual(Buffer.from(state, 'utf8'), Buffer.from(pending.state, 'utf8'))) {
      throw idpFailed('state_mismatch', 'the callback does not belong to this sign-in (state)');
    }
    const age = this.#clock().getTime() - pending.created_at;
    if (!(age <= this.#maxPendingAgeMs && age >= -CLOCK_TOLERANCE_SECONDS * 1000)) {
      throw idpFailed('expired', 'the sign-in took too long; start again');
    }
    const d = await this.#discover();
    if (params.iss !== undefined ? params.iss !== d.issuer : d.iss_parameter_supported) {
      throw idpFailed('issuer_mismatch', 'the authorization response comes from another issuer (iss)');
    }
    if (params.error !== undefined) {
      throw idpFailed('provider_error', 'the identity provider refused the sign-in', { error: safeOAuthError(params.error) });
    }
    const code = params.code;
    if (typeof code !== 'string' || code === '') throw idpFailed('missing_code', 'the callback carries no authorization code');

    const tokens = await this.#redeem(d, code, pending.code_verifier);
    const keys = this.#keys(d);
    const idClaims = await validateIdToken(tokens.id_token, keys, {
      issuer: d.issuer,
      client_id: s.client_id,
      nonce: pending.nonce,
      algorithms: d.algorithms,
      now: this.#clock(),
    });
    let claims: Record<string, unknown> = { ...idClaims };
    // Many providers (oidc-provider, Okta in the code flow) keep the ID token thin and release profile claims and
    // groups at UserInfo only; ID token values win where both have one, since those are signed.
    const missing = claims.email === undefined || claims.name === undefined || claims[this.#groupsClaim] === undefined;
    if (missing && d.userinfo_endpoint && tokens.access_token) {
      const info = await this.#userinfo(d.userinfo_endpoint, tokens.access_token);
      // OpenID Connect Core §5.3.4: UserInfo's sub must be the ID token's, or the answer is about someone else.
      if (info.sub !== idClaims.sub) throw idpFailed('userinfo_subject_mismatch', 'UserInfo describes another user');
      claims = { ...info, ...claims };
    }
    return {
      issuer: d.issuer,
      subject: idClaims.sub!,
      email: typeof claims.email === 'string' ? claims.email : null,
      email_verified: claims.email_verified === true || claims.email_verified === 'true',
      name: typeof claims.name === 'string' ? claims.name : null,
      groups: this.#groups(claims),
      claims,
    };
  }

  /**
   * A single string becomes a one-element list (some providers flatten one group), anything but strings is dropped,
   * and a missing claim is no groups. Azure AD's "overage" (the claim moved to a Graph call via `_claim_names`) is
   * refused instead of read as no groups, which would quietly strip the user's roles.
   */
  #groups(claims: Record<string, unknown>): string[] {
    const v = claims[this.#groupsClaim];
    if (v === undefined && isObject(claims._claim_names) && this.#groupsClaim in claims._claim_names) {
      throw idpFailed('groups_unavailable', `the provider sent "${this.#groupsClaim}" as a distributed claim (too many groups); emit fewer groups from the provider`);
    }
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v)) return [];
    return [...new Set(v.filter((g): g is string => typeof g === 'string'))];
  }

  async #discover(): Promise<Discovery> {
    const now = this.#clock().getTime();
    if (this.#discovery && now - this.#discovery.at < DISCOVERY_TTL_MS) return this.#discovery.value;
    const value = this.#fetchDiscovery();
    const entry = { at: now, value };
    this.#discovery = entry;
    // A failed discovery is not cached: the next sign-in tries again.
    value.catch(() => {
      if (this.#discovery === entry) this.#discovery = null;
    });
    return value;
  }

  async #fetchDiscovery(): Promise<Discovery> {
    const s = this.#settings;
    const allowHttp = s.allowInsecureHttp === true;
    // OpenID Connect Discovery §4: strip one trailing slash, then append the well-known path.
    const url = `${s.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const doc = await this.#getJson(url, {}, 'discovery_unavailable', 'the discovery document');
    if (!isObject(doc)) throw idpUnavailable('invalid_discovery', 'the discovery document is not a JSON object');
    if (doc.issuer !== s.issuer) {
      // A provider that names itself differently is not the one configured (or a mix-up); never adopt its name.
      throw idpFailed('issuer_mismatch', `the discovery document names another issuer than "${s.issuer}"`);
    }
    const endpoints: Record<string, string> = {};
    for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
      if (!checkUrl(doc[key], allowHttp)) throw idpUnavailable('invalid_discovery', `the discovery document's ${key} is not an https URL`);
      endpoints[key] = doc[key] as string;
    }
    let userinfo: string | null = null;
    if (doc.userinfo_endpoint !== undefined) {
      if (!checkUrl(doc.userinfo_endpoint, allowHttp)) throw idpUnavailable('invalid_discovery', "the discovery document's userinfo_endpoint is not an https URL");
      userinfo = doc.userinfo_endpoint as string;
    }
    // The field is REQUIRED by Discovery §3; RS256 is what Core §15.1 makes every provider support.
    const advertised = Array.isArray(doc.id_token_signing_alg_values_supported) ? doc.id_token_signing_alg_values_supported : ['RS256'];
    const algorithms = advertised.filter((a): a is string => typeof a === 'string' && ASYMMETRIC_ALGS.has(a));
    if (algorithms.length === 0) throw idpUnavailable('unsupported_provider', 'the provider signs ID tokens with no asymmetric algorithm Palisade accepts');
    return {
      issuer: s.issuer,
      authorization_endpoint: endpoints.authorization_endpoint!,
      token_endpoint: endpoints.token_endpoint!,
      jwks_uri: endpoints.jwks_uri!,
      userinfo_endpoint: userinfo,
      algorithms,
      iss_parameter_supported: doc.authorization_response_iss_parameter_supported === true,
    };
  }

  #keys(d: Discovery): JWTVerifyGetKey {
    if (this.#jwks?.uri !== d.jwks_uri) {
      const keys = createRemoteJWKSet(new URL(d.jwks_uri), {
        timeoutDuration: HTTP_TIMEOUT_MS,
        [customFetch]: (url, init) => this.#fetch(url, { ...init, redirect: 'error' }),
      });
      this.#jwks = { uri: d.jwks_uri, keys };
    }
    return this.#jwks.keys;
  }

  /** RFC 6749 §4.1.3 with PKCE's code_verifier; client_secret_basic for a confidential client (§2.3.1). */
  async #redeem(d: Discovery, code: string, verifier: string): Promise<{ id_token: string; access_token: string | null }> {
    const s = this.#settings;
    const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: s.redirect_uri, code_verifier: verifier });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (s.client_secret !== undefined && s.client_secret !== '') {
      headers.authorization = `Basic ${Buffer.from(`${formEncode(s.client_id)}:${formEncode(s.client_secret)}`).toString('base64')}`;
    } else {
      body.set('client_id', s.client_id);
    }
    let res: Response;
    try {
      // redirect: 'error' so the code and credentials are never replayed to wherever a redirect points.
      res = await this.#fetch(d.token_endpoint, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    } catch (cause) {
      throw idpUnavailable('token_endpoint_unreachable', 'the token endpoint could not be reached', {}, cause);
    }
    const json = await readJson(res);
    if (!res.ok) {
      // RFC 6749 §5.2: a 400 (or 401 for client authentication) with an `error` code is the provider refusing the
      // grant: a used or expired code (invalid_grant), a wrong secret (invalid_client). Anything else is an outage.
      if ((res.status === 400 || res.status === 401) && isObject(json) && typeof json.error === 'string') {
        throw idpFailed('token_rejected', 'the identity provider refused to redeem the authorization code', { error: safeOAuthError(json.error) });
      }
      throw idpUnavailable('token_endpoint_error', `the token endpoint answered HTTP ${res.status}`, { status: res.status });
    }
    if (!isObject(json)) throw idpUnavailable('token_endpoint_invalid_response', 'the token endpoint did not answer a JSON object');
    if (typeof json.id_token !== 'string' || json.id_token === '') {
      throw idpUnavailable('token_endpoint_invalid_response', 'the token endpoint did not return an ID token');
    }
    return { id_token: json.id_token, access_token: typeof json.access_token === 'string' && json.access_token !== '' ? json.access_token : null };
  }

  async #userinfo(endpoint: string, accessToken: string): Promise<Record<string, unknown> & { sub?: unknown }> {
    const json = await this.#getJson(endpoint, { authorization: `Bearer ${accessToken}` }, 'userinfo_unavailable', 'UserInfo');
    if (!isObject(json)) throw idpUnavailable('userinfo_unavailable', 'UserInfo did not answer a JSON object');
    return json;
  }

  async #getJson(url: string, headers: Record<string, string>, reason: string, what: string): Promise<unknown> {
    let res: Response;
    try {
      res = await this.#fetch(url, { headers: { accept: 'application/json', ...headers }, redirect: 'error', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    } catch (cause) {
      throw idpUnavailable(reason, `${what} could not be fetched`, {}, cause);
    }
    const json = await readJson(res);
    if (!res.ok) throw idpUnavailable(reason, `${what} answered HTTP ${res.status}`, { status: res.status });
    if (json === undefined) throw idpUnavailable(reason, `${what} is not JSON`);
    return json;
  }
}

/** The body as JSON, or undefined when it is not JSON (or the body cannot be read before the timeout). */
async function readJson(res: Response): Promise<unknown> {
  try {
    return JSON.parse(await res.text()) as unknown;
  } catch {
    return undefined;
  }
}
