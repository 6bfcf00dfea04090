import { X509Certificate } from 'node:crypto';
import { SAML, SamlStatusError, ValidateInResponseTo } from '@node-saml/node-saml';
import type { CacheProvider, Profile, SamlConfig } from '@node-saml/node-saml';
// node-saml's own parser and XPath helpers: the pre-checks below must see the document exactly as node-saml will,
// since a difference between two XML parsers is itself a signature-wrapping vector.
import { parseDomFromString, xpath } from '@node-saml/node-saml/lib/xml.js';
import { PalisadeError, randomBytes } from '@palisade/core';

export interface SamlProviderSettings {
  name: string;
  idp_entity_id: string;
  /** HTTP-Redirect binding. */
  idp_sso_url: string;
  /** PEM; signatures must verify with one of them (several during an IdP's certificate rollover). */
  idp_certificates: string[];
  /** e.g. https://palisade.example/v1/auth/saml/azure/metadata */
  sp_entity_id: string;
  /** HTTP-POST binding, e.g. https://palisade.example/v1/auth/saml/azure/acs */
  acs_url: string;
  /** PEM private key: encrypted assertions are accepted when set. */
  sp_decryption_key?: string;
  /** PEM certificate of `sp_decryption_key`, published in the metadata's encryption key descriptor. */
  sp_certificate?: string;
  /** Default false: an unsolicited response is not bound to a browser session, so it is a login-CSRF vector. */
  allow_idp_initiated: boolean;
  /** Default 'groups' (Azure uses http://schemas.microsoft.com/ws/2008/06/identity/claims/groups). */
  groups_attribute: string;
  /** When unset: `email`, `mail`, the eduPerson mail OID, Azure's emailaddress claim, then an emailAddress NameID. */
  email_attribute?: string;
  /** Refuse assertions issued longer ago than this, even when the IdP grants a longer NotOnOrAfter. */
  max_assertion_age_seconds?: number;
  /** Also require the Response element itself to be signed (default false; the assertion must always be signed). */
  want_response_signed?: boolean;
}

/** What the login route keeps (e.g. in an encrypted cookie) between the redirect and the ACS POST. */
export interface SamlPending {
  provider: string;
  request_id: string;
  relay_state: string;
  /** Milliseconds since the epoch. */
  created_at: number;
}

export interface SamlIdentity {
  issuer: string;
  name_id: string;
  name_id_format: string | null;
  session_index: string | null;
  email: string | null;
  groups: string[];
  attributes: Record<string, string[]>;
  in_response_to: string | null;
  assertion_id: string;
  not_on_or_after: string | null;
}

export interface SamlReplayCache {
  /** true the first time an assertion id is seen (kept until notOnOrAfter), false on a replay. */
  firstUse(assertionId: string, expiresAt: Date): Promise<boolean>;
}

/**
 * Why a response was refused; stable, for audit events and clients:
 * `malformed` (not base64, not XML, not a SAML Response, DTD present, too large), `idp_status` (the IdP answered
 * with an error status), `idp_initiated_not_allowed`, `relay_state_mismatch`, `request_expired` (the SP-initiated
 * request is older than 10 minutes), `unsigned_assertion`, `invalid_signature` (no trusted signature, wrapping,
 * several assertions), `decryption_failed`, `issuer_mismatch`, `audience_mismatch`, `recipient_mismatch`
 * (Destination or bearer Recipient is not our ACS), `expired`, `not_yet_valid`, `in_response_to_mismatch`,
 * `invalid_subject_confirmation` (no usable bearer confirmation), `replayed`.
 */
export type SamlFailureReason =
  | 'malformed'
  | 'idp_status'
  | 'idp_initiated_not_allowed'
  | 'relay_state_mismatch'
  | 'request_expired'
  | 'unsigned_assertion'
  | 'invalid_signature'
  | 'decryption_failed'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'recipient_mismatch'
  | 'expired'
  | 'not_yet_valid'
  | 'in_response_to_mismatch'
  | 'invalid_subject_confirmation'
  | 'replayed';

const MESSAGES: Record<SamlFailureReason, string> = {
  malformed: 'The SAML response is not a well-formed SAML 2.0 Response.',
  idp_status: 'The identity provider answered with an error status.',
  idp_initiated_not_allowed: 'Unsolicited (IdP-initiated) SAML responses are not allowed for this provider.',
  relay_state_mismatch: 'The RelayState does not belong to this sign-in.',
  request_expired: 'The sign-in request is too old; start again.',
  unsigned_assertion: 'The SAML assertion is not signed.',
  invalid_signature: 'The SAML response has no valid signature from a trusted identity-provider certificate.',
  decryption_failed: 'The encrypted SAML assertion could not be decrypted.',
  issuer_mismatch: 'The SAML assertion was issued by another identity provider.',
  audience_mismatch: 'The SAML assertion is meant for another service provider.',
  recipient_mismatch: 'The SAML response is addressed to another assertion consumer service.',
  expired: 'The SAML assertion has expired.',
  not_yet_valid: 'The SAML assertion is not valid yet.',
  in_response_to_mismatch: 'The SAML response does not answer this sign-in request.',
  invalid_subject_confirmation: 'The SAML assertion has no usable bearer subject confirmation.',
  replayed: 'This SAML assertion has already been used.',
};

/** The cause is kept for debugging but never serialized (PalisadeError.toJSON drops it), nor is any assertion text. */
function fail(reason: SamlFailureReason, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_AUTH_IDP_FAILED', MESSAGES[reason], { extensions: { reason }, ...(cause === undefined ? {} : { cause }) });
}

const PROTOCOL_NS = 'urn:oasis:names:tc:SAML:2.0:protocol';
const DSIG_NS = 'http://www.w3.org/2000/09/xmldsig#';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const NAMEID_EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
/** Tolerated clock difference with the IdP: small, since every NotOnOrAfter is widened by it. */
const CLOCK_SKEW_MS = 60_000;
/** How long a user may spend at the IdP between our redirect and its POST. */
const PENDING_MAX_AGE_MS = 10 * 60_000;
/** Azure caps group claims at 150 in SAML; a megabyte of base64 is far above any legitimate response. */
const MAX_RESPONSE_BASE64 = 1024 * 1024;
const EMAIL_ATTRIBUTES = ['email', 'mail', 'urn:oid:0.9.2342.19200300.100.1.3', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress'];

/**
 * Single-node replay cache. A multi-node deployment needs a shared one (Redis SET NX with the expiry), or an
 * assertion captured on its way to one node could be replayed against another.
 */
export class MemorySamlReplayCache implements SamlReplayCache {
  readonly #seen = new Map<string, number>();

  constructor(private readonly clock: () => Date = () => new Date()) {}

  async firstUse(assertionId: string, expiresAt: Date): Promise<boolean> {
    const now = this.clock().getTime();
    // Expired ids can go: their assertion is refused on time grounds before the cache is consulted.
    if (this.#seen.size >= 1024) for (const [id, until] of this.#seen) if (until <= now) this.#seen.delete(id);
    const until = this.#seen.get(assertionId);
    if (until !== undefined && until > now) return false;
    this.#seen.set(assertionId, expiresAt.getTime());
    return true;
  }
}

/**
 * node-saml reads the wall clock for every NotBefore/NotOnOrAfter check; this hook routes those checks through our
 * clock, so expiry is decided by the same time source as the rest of Palisade (and tests can move it).
 */
class ClockedSaml extends SAML {
  constructor(
    config: SamlConfig,
    private readonly now: () => Date,
  ) {
    super(config);
  }

  protected override checkTimestampsValidityError(_nowMs: number, notBefore: string, notOnOrAfter: string, maxTimeLimitMs?: number): Error | null {
    return super.checkTimestampsValidityError(this.now().getTime(), notBefore, notOnOrAfter, maxTimeLimitMs);
  }
}

/**
 * node-saml's InResponseTo check asks a cache whether a request id is outstanding. The outstanding request here is
 * the one the login route kept for this browser (`pending`), so the cache is made per ACS POST and holds exactly
 * that id; another request's response cannot match. Its age was already checked against our clock, so the value
 * reported is "now" for node-saml's own wall-clock age check.
 */
function pendingCache(requestId: string | null): CacheProvider {
  return {
    saveAsync: async () => null,
    getAsync: async (key) => (requestId !== null && key === requestId ? new Date().toISOString() : null),
    removeAsync: async () => null,
  };
}

type XmlJs = Record<string, unknown>;

function first(v: unknown): XmlJs | undefined {
  return Array.isArray(v) && v.length > 0 && typeof v[0] === 'object' && v[0] !== null ? (v[0] as XmlJs) : undefined;
}

function attrs(node: XmlJs | undefined): Record<string, string> {
  const a = node?.['$'];
  return typeof a === 'object' && a !== null ? (a as Record<string, string>) : {};
}

function timestamp(s: string | undefined): number | null {
  if (s === undefined) return null;
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw fail('malformed');
  return ms;
}

/** Attribute values as strings; structured values (child elements) are not identity data we map, so they are dropped. */
function stringValues(v: unknown): string[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === 'string');
}

/**
 * node-saml reports failures as plain Errors; their messages are mapped once here to our stable reasons. Errors from
 * decryption come from xml-encryption and OpenSSL with no common wording, so with an EncryptedAssertion present an
 * otherwise unrecognised failure is a decryption failure.
 */
function classify(err: unknown, encrypted: boolean): SamlFailureReason {
  if (err instanceof SamlStatusError) return 'idp_status';
  const m = err instanceof Error ? err.message : String(err);
  if (/not yet valid/.test(m)) return 'not_yet_valid';
  if (/expired/.test(m)) return 'expired';
  if (/No valid subject confirmation/.test(m)) return 'expired';
  if (/InResponseTo/i.test(m)) return 'in_response_to_mismatch';
  if (/audience|AudienceRestriction/i.test(m)) return 'audience_mismatch';
  if (/decrypt|EncryptedData|EncryptedAssertion content/i.test(m)) return 'decryption_failed';
  if (/signature|signed|ref URI/i.test(m)) return 'invalid_signature';
  return encrypted ? 'decryption_failed' : 'malformed';
}

/**
 * A SAML 2.0 Web Browser SSO service provider for one configured IdP (Azure AD, Okta, ...), on node-saml, whose
 * verifier only hands on the bytes a trusted signature covers (the defence against XML signature wrapping). Around it
 * we add what node-saml leaves to the caller: binding the response to the browser's pending request, refusing
 * unsolicited responses unless configured, the bearer SubjectConfirmation rules of the Web SSO profile (Recipient,
 * NotOnOrAfter, InResponseTo, all from the signed assertion), the issuer, and a replay cache for assertion ids
 * (node-saml's InResponseTo cache cannot stop replays of IdP-initiated assertions, which have no request id).
 */
export class SamlServiceProvider {
  readonly #clock: () => Date;
  readonly #replay: SamlReplayCache;

  constructor(
    private readonly settings: SamlProviderSettings,
    opts: { clock?: () => Date; replay: SamlReplayCache },
  ) {
    this.#clock = opts.clock ?? (() => new Date());
    this.#replay = opts.replay;
    const invalid = (m: string) => new PalisadeError('PAL_VALIDATION_FAILED', `SAML provider ${settings.name}: ${m}`);
    if (settings.idp_certificates.length === 0) throw invalid('idp_certificates is empty');
    for (const pem of [...settings.idp_certificates, ...(settings.sp_certificate ? [settings.sp_certificate] : [])]) {
      try {
        new X509Certificate(pem);
      } catch (cause) {
        throw new PalisadeError('PAL_VALIDATION_FAILED', `SAML provider ${settings.name}: a certificate is not a valid PEM X.509 certificate`, { cause });
      }
    }
    if (settings.sp_decryption_key && !settings.sp_certificate) throw invalid('sp_decryption_key needs sp_certificate for the metadata');
    for (const [k, v] of [['idp_sso_url', settings.idp_sso_url], ['acs_url', settings.acs_url]] as const) {
      if (!URL.canParse(v)) throw invalid(`${k} is not a URL`);
    }
  }

  #saml(extra: Partial<SamlConfig>): ClockedSaml {
    const s = this.settings;
    return new ClockedSaml(
      {
        idpCert: s.idp_certificates,
        idpIssuer: s.idp_entity_id,
        issuer: s.sp_entity_id,
        audience: s.sp_entity_id,
        callbackUrl: s.acs_url,
        entryPoint: s.idp_sso_url,
        wantAssertionsSigned: true,
        wantAuthnResponseSigned: s.want_response_signed ?? false,
        acceptedClockSkewMs: CLOCK_SKEW_MS,
        maxAssertionAgeMs: (s.max_assertion_age_seconds ?? 0) * 1000,
        ...(s.sp_decryption_key ? { decryptionPvk: s.sp_decryption_key } : {}),
        // Let the IdP pick the NameID format: Azure refuses a requested format the user lacks (AADSTS75011-like errors).
        identifierFormat: null,
        // Requesting PasswordProtectedTransport makes Azure refuse users who signed in with MFA or passwordless.
        disableRequestedAuthnContext: true,
        requestIdExpirationPeriodMs: PENDING_MAX_AGE_MS,
        ...extra,
      },
      this.#clock,
    );
  }

  /** SP-initiated: the IdP redirect URL and what to keep until the ACS POST. */
  async authorizationRequest(): Promise<{ url: string; pending: SamlPending }> {
    // node-saml's default id is also '_' + 20 random bytes; ours is made here so that we know it.
    const requestId = '_' + randomBytes(20).toString('hex');
    const relayState = randomBytes(32).toString('base64url');
    const saml = this.#saml({ generateUniqueId: () => requestId, validateInResponseTo: ValidateInResponseTo.never, cacheProvider: pendingCache(null) });
    const url = await saml.getAuthorizeUrlAsync(relayState, undefined, {});
    return { url, pending: { provider: this.settings.name, request_id: requestId, relay_state: relayState, created_at: this.#clock().getTime() } };
  }

  /** The ACS POST body (SAMLResponse, RelayState). `pending` is null for an IdP-initiated response (refused unless allowed). */
  async complete(body: { SAMLResponse?: string; RelayState?: string }, pending: SamlPending | null): Promise<SamlIdentity> {
    const s = this.settings;
    const now = this.#clock().getTime();

    // Binding to this browser's request comes first: it is cheap and needs no parsing of attacker input.
    if (pending === null) {
      if (!s.allow_idp_initiated) throw fail('idp_initiated_not_allowed');
    } else {
      if (pending.provider !== s.name || typeof body.RelayState !== 'string' || body.RelayState !== pending.relay_state) throw fail('relay_state_mismatch');
      if (!(now - pending.created_at < PENDING_MAX_AGE_MS)) throw fail('request_expired');
    }

    const encoded = typeof body.SAMLResponse === 'string' ? body.SAMLResponse.replace(/\s+/g, '') : '';
    if (encoded.length === 0 || encoded.length > MAX_RESPONSE_BASE64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) throw fail('malformed');
    const xml = Buffer.from(encoded, 'base64').toString('utf8');
    // No DTDs: SAML never needs one, and entity expansion is a denial-of-service and XXE surface.
    if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw fail('malformed');

    let doc: { documentElement: { localName: string; namespaceURI: string | null; getAttribute(n: string): string | null } | null };
    try {
      doc = (await parseDomFromString(xml)) as unknown as typeof doc;
    } catch (cause) {
      throw fail('malformed', cause);
    }
    const root = doc.documentElement;
    if (!root || root.localName !== 'Response' || root.namespaceURI !== PROTOCOL_NS) throw fail('malformed');
    const assertions = xpath.selectElements(doc as never, "/*[local-name()='Response']/*[local-name()='Assertion']");
    const encrypted = xpath.selectElements(doc as never, "/*[local-name()='Response']/*[local-name()='EncryptedAssertion']");
    if (assertions.length === 1 && encrypted.length === 0) {
      const sigs = xpath.selectElements(assertions[0]!, `./*[local-name()='Signature' and namespace-uri()='${DSIG_NS}']`);
      if (sigs.length === 0) throw fail('unsigned_assertion');
    }
    if (encrypted.length > 0 && !s.sp_decryption_key) throw fail('decryption_failed');
    const destination = root.getAttribute('Destination');
    if (destination && destination !== s.acs_url) throw fail('recipient_mismatch');

    // SP-initiated: InResponseTo must be present and be this request's id. IdP-initiated: any InResponseTo is
    // refused (the cache knows no id), since it answers some other request and was taken out of its flow.
    const saml = this.#saml({
      validateInResponseTo: pending ? ValidateInResponseTo.always : ValidateInResponseTo.ifPresent,
      cacheProvider: pendingCache(pending ? pending.request_id : null),
    });
    let profile: Profile | null;
    try {
      ({ profile } = await saml.validatePostResponseAsync({ SAMLResponse: encoded }));
    } catch (err) {
      throw fail(classify(err, encrypted.length > 0), err);
    }
    if (!profile || typeof profile.getAssertion !== 'function') throw fail(profile ? 'malformed' : 'idp_status');

    // Everything below reads the assertion node-saml extracted from the signed bytes, never the posted document.
    const assertion = (profile.getAssertion() as XmlJs)['Assertion'] as XmlJs | undefined;
    if (!assertion) throw fail('malformed');
    const assertionId = attrs(assertion)['ID'];
    if (!assertionId) throw fail('malformed');
    if (profile.issuer !== s.idp_entity_id) throw fail('issuer_mismatch');
    if (typeof profile.nameID !== 'string' || profile.nameID.length === 0) throw fail('malformed');

    const confirmation = this.#bearerConfirmation(assertion, pending, now);
    const conditionsEnd = timestamp(attrs(first(assertion['Conditions']))['NotOnOrAfter']);
    const ends = [conditionsEnd, confirmation.notOnOrAfter].filter((x): x is number => x !== null);
    const keepUntil = new Date(Math.max(...ends) + CLOCK_SKEW_MS);
    if (!(await this.#replay.firstUse(`${s.name}:${assertionId}`, keepUntil))) throw fail('replayed');

    const attributes = new Map<string, string[]>();
    const raw = profile['attributes'];
    if (typeof raw === 'object' && raw !== null) for (const [k, v] of Object.entries(raw)) attributes.set(k, stringValues(v));
    const attributeRecord = Object.fromEntries(attributes) as Record<string, string[]>;
    const nameIdFormat = typeof profile.nameIDFormat === 'string' ? profile.nameIDFormat : null;
    const notOnOrAfter = Math.min(...ends);
    return {
      issuer: profile.issuer,
      name_id: profile.nameID,
      name_id_format: nameIdFormat,
      session_index: typeof profile.sessionIndex === 'string' ? profile.sessionIndex : null,
      email: this.#email(attributes, profile.nameID, nameIdFormat),
      groups: attributes.get(s.groups_attribute) ?? [],
      attributes: attributeRecord,
      in_response_to: confirmation.inResponseTo,
      assertion_id: assertionId,
      not_on_or_after: Number.isFinite(notOnOrAfter) ? new Date(notOnOrAfter).toISOString() : null,
    };
  }

  /**
   * The Web SSO profile's bearer rules (SAML profiles 4.1.4.2-4.1.4.3), which node-saml only partly applies (it
   * checks no Recipient and, without an InResponseTo, lets an expired confirmation pass): at least one bearer
   * SubjectConfirmationData that is addressed to our ACS, has not expired, and answers our request (or, IdP-initiated,
   * no request at all).
   */
  #bearerConfirmation(assertion: XmlJs, pending: SamlPending | null, now: number): { notOnOrAfter: number; inResponseTo: string | null } {
    const subject = first(assertion['Subject']);
    const confirmations = Array.isArray(subject?.['SubjectConfirmation']) ? (subject['SubjectConfirmation'] as XmlJs[]) : [];
    let refusal: SamlFailureReason = 'invalid_subject_confirmation';
    for (const c of confirmations) {
      if (attrs(c)['Method'] !== BEARER) continue;
      const data = attrs(first(c['SubjectConfirmationData']));
      const notOnOrAfter = timestamp(data['NotOnOrAfter']);
      const notBefore = timestamp(data['NotBefore']);
      const inResponseTo = data['InResponseTo'] ?? null;
      if (notOnOrAfter === null) refusal = 'invalid_subject_confirmation';
      else if (data['Recipient'] !== this.settings.acs_url) refusal = 'recipient_mismatch';
      else if (now - CLOCK_SKEW_MS >= notOnOrAfter) refusal = 'expired';
      else if (notBefore !== null && now + CLOCK_SKEW_MS < notBefore) refusal = 'not_yet_valid';
      else if (pending ? inResponseTo !== pending.request_id : inResponseTo !== null) refusal = 'in_response_to_mismatch';
      else return { notOnOrAfter, inResponseTo };
    }
    throw fail(refusal);
  }

  #email(attributes: Map<string, string[]>, nameId: string, nameIdFormat: string | null): string | null {
    const names = this.settings.email_attribute ? [this.settings.email_attribute] : EMAIL_ATTRIBUTES;
    for (const n of names) {
      const v = attributes.get(n)?.[0];
      if (v) return v;
    }
    return !this.settings.email_attribute && nameIdFormat === NAMEID_EMAIL ? nameId : null;
  }

  /** SP metadata XML, for the IdP administrator (Azure's "upload metadata file", Okta's SAML app set-up). */
  metadata(): string {
    const s = this.settings;
    return this.#saml({ validateInResponseTo: ValidateInResponseTo.never, cacheProvider: pendingCache(null) }).generateServiceProviderMetadata(
      s.sp_decryption_key ? (s.sp_certificate ?? null) : null,
      null,
    );
  }
}
