/**
 * Federated sign-in after the protocol part succeeded (OIDC ID token or SAML assertion validated): find the account
 * linked to the IdP subject, provision it just in time, keep its roles equal to the provider's group mapping, and
 * start the session. The account is found by `<kind>:<provider>|<subject>` only, never by email or username: an IdP
 * that asserts the email of an existing local account must not be signed in as that account (account takeover).
 */
import { PalisadeError } from '@palisade/core';
import type { UserTable } from '../../storage/schema.js';
import type { Executor } from '../../storage/database.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import { isRole } from '../../kernel/auth/roles.js';
import type { IdentityEngine } from './engine.js';
import type { Client } from './login.js';
import type { SamlReplayCache } from './saml-sp.js';

export type FederationKind = 'oidc' | 'saml';

/** What the protocol layer established about the user. */
export interface FederatedIdentity {
  kind: FederationKind;
  provider: string;
  /** OIDC `sub` or SAML NameID: stable per user at this provider. */
  subject: string;
  issuer: string | null;
  email: string | null;
  /** Only a verified email becomes a username (an unverified one could squat on a name). */
  email_verified: boolean;
  display_name: string | null;
  groups: string[];
  /** SAML: an unsolicited response. */
  idp_initiated?: boolean;
}

export interface ProvisioningPolicy {
  role_mapping: Record<string, string[]>;
  default_roles: string[];
  jit_provisioning: boolean;
}

export type FederatedSignIn =
  | { ok: true; user: UserTable; session_id: string; expires_at: string; created: boolean; roles: string[] }
  | { ok: false; error: PalisadeError };

const MAX_USERNAME = 128;

/** The provider's subject key in `users.federated_subject`; the kind keeps an OIDC and a SAML provider of the same name apart. */
export function federatedSubject(kind: FederationKind, provider: string, subject: string): string {
  return `${kind}:${provider}|${subject}`;
}

/** default_roles ∪ the mapped roles of the user's groups; unknown role names are dropped; sorted, so updates compare stably. */
export function mappedRoles(policy: ProvisioningPolicy, groups: readonly string[]): string[] {
  const out = new Set<string>(policy.default_roles);
  for (const g of groups) for (const r of Object.hasOwn(policy.role_mapping, g) ? (policy.role_mapping[g] ?? []) : []) out.add(r);
  return [...out].filter(isRole).sort();
}

/** Control characters out, length capped: a name the directory accepts. */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  return s.replace(/[\x00-\x1f\x7f]/g, '').normalize('NFKC').slice(0, MAX_USERNAME);
}

/**
 * Username candidates in a fixed order: the verified email, then `<provider>-<subject>`, then that with -2, -3, ...
 * The first free one wins, so the same directory state always gives the same name.
 */
export function usernameCandidates(id: Pick<FederatedIdentity, 'provider' | 'subject' | 'email' | 'email_verified'>): string[] {
  const out: string[] = [];
  if (id.email && id.email_verified) out.push(clean(id.email.toLowerCase()));
  const base = clean(`${id.provider}-${id.subject}`).slice(0, MAX_USERNAME - 4);
  out.push(base);
  for (let i = 2; i <= 20; i++) out.push(`${base}-${i}`);
  return [...new Set(out.filter((s) => s.length > 0))];
}

function auditEvent(client: Client, userId: string | null, e: Omit<AuditEventInput, 'actor' | 'request_id'>): AuditEventInput {
  return { actor: { principal_id: userId, source_ip: client.ip }, request_id: client.request_id, ...e };
}

function personal(fields: Record<string, string | null | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}

/** The audit event of a federated sign-in attempt (auth.login.oidc / auth.login.saml), email as a personal field. */
export function loginEvent(
  client: Client,
  kind: FederationKind,
  provider: string,
  o: { outcome: 'success' | 'denied' | 'failure'; user: UserTable | null; email?: string | null; issuer?: string | null; roles?: string[]; created?: boolean; idp_initiated?: boolean; error?: PalisadeError },
): AuditEventInput {
  const reason = o.error?.extensions?.reason;
  const details: Record<string, unknown> = {
    provider,
    ...(kind === 'oidc' && o.issuer ? { issuer: o.issuer } : {}),
    ...(o.roles ? { roles: o.roles } : {}),
    ...(o.created !== undefined ? { created: o.created } : {}),
    ...(kind === 'saml' && o.idp_initiated !== undefined ? { idp_initiated: o.idp_initiated } : {}),
    ...(o.error ? { reason: typeof reason === 'string' ? reason : o.error.code } : {}),
  };
  const pf = o.user ? personal({ email: o.email ?? null }) : {};
  return auditEvent(client, o.user?.id ?? null, {
    type: `auth.login.${kind}`,
    outcome: o.outcome,
    resource: o.user ? { type: 'user', id: o.user.id } : null,
    error_code: o.error?.code ?? null,
    details,
    ...(o.user && Object.keys(pf).length > 0 ? { subject: o.user.id, personal_fields: pf } : {}),
  });
}

function refused(reason: string, message: string): PalisadeError {
  return new PalisadeError('PAL_AUTH_LOGIN_FAILED', message, { extensions: { reason } });
}

/**
 * Link, provision or update the account and start its session, with every audit event in the same transaction. A
 * refusal (inactive account, no account and no JIT provisioning) is committed with its event and returned, for the
 * caller to throw after the commit.
 */
export async function completeFederatedSignIn(identity: IdentityEngine, client: Client, id: FederatedIdentity, policy: ProvisioningPolicy): Promise<FederatedSignIn> {
  const { directory, signIn } = identity;
  const { storage, ledger } = identity.deps;
  const source = `${id.kind}:${id.provider}`;
  const roles = mappedRoles(policy, id.groups);
  const email = id.email ? id.email.slice(0, 254) : null;
  const displayName = id.display_name ? clean(id.display_name) : null;
  const result = await storage.transact(async (tx): Promise<FederatedSignIn> => {
    const events: AuditEventInput[] = [];
    const out = await (async (): Promise<FederatedSignIn> => {
      let user = await directory.userByFederatedSubject(tx, federatedSubject(id.kind, id.provider, id.subject));
      let created = false;
      const login = (outcome: 'success' | 'denied', u: UserTable | null, error?: PalisadeError) =>
        loginEvent(client, id.kind, id.provider, { outcome, user: u, email, issuer: id.issuer, roles, created, ...(id.idp_initiated !== undefined ? { idp_initiated: id.idp_initiated } : {}), ...(error ? { error } : {}) });
      if (!user) {
        if (!policy.jit_provisioning) {
          const error = refused('not_provisioned', 'no account is linked to this identity and this provider does not create accounts');
          events.push(login('denied', null, error));
          return { ok: false, error };
        }
        const username = await freeUsername(tx, identity, usernameCandidates(id));
        const made = await directory.createUser(tx, { username, email, display_name: displayName, source, federated_subject: federatedSubject(id.kind, id.provider, id.subject), roles });
        user = await directory.userRow(tx, made.id);
        created = true;
        events.push(
          auditEvent(client, made.id, {
            type: 'identity.user.create',
            outcome: 'success',
            resource: { type: 'user', id: made.id },
            details: { roles: made.roles, source },
            subject: made.id,
            personal_fields: personal({ username: made.username, email: made.email, display_name: made.display_name }),
          }),
        );
      } else {
        if (user.active !== 1) {
          const error = refused('disabled', 'this account is disabled');
          events.push(login('denied', user, error));
          return { ok: false, error };
        }
        const patch = { roles, ...(email !== null ? { email } : {}), ...(displayName !== null ? { display_name: displayName } : {}) };
        const { changed } = await directory.updateUser(tx, user.id, patch);
        if (changed.length > 0) {
          user = await directory.userRow(tx, user.id);
          events.push(auditEvent(client, user.id, { type: 'identity.user.update', outcome: 'success', resource: { type: 'user', id: user.id }, details: { changed, source } }));
        }
      }
      events.push(login('success', user));
      const s = await signIn.openSession(tx, events, client, user, source, null);
      return { ok: true, user, session_id: s.session_id, expires_at: s.expires_at, created, roles };
    })();
    for (const e of events) await ledger.append(tx, e);
    return out;
  });
  if (result.ok) identity.principals.forget(result.user.id);
  return result;
}

async function freeUsername(tx: Executor, identity: IdentityEngine, candidates: string[]): Promise<string> {
  for (const c of candidates) if (!(await identity.directory.userByUsername(tx, c))) return c;
  throw new PalisadeError('PAL_IDENTITY_USER_EXISTS', 'no free username for this federated account');
}

/**
 * SAML assertion ids remembered in the database (challenges of kind 'saml'), so a response captured on its way to
 * one node cannot be replayed against another. The insert is the check: a second insert of the same id fails on the
 * primary key. It commits on its own, before the sign-in, so a failed sign-in still uses the assertion up.
 */
export class DatabaseSamlReplayCache implements SamlReplayCache {
  constructor(
    private readonly identity: IdentityEngine,
    private readonly clock: () => Date,
  ) {}

  async firstUse(assertionId: string, expiresAt: Date): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil((expiresAt.getTime() - this.clock().getTime()) / 1000));
    try {
      await this.identity.deps.storage.transact((tx) => this.identity.challenges.create(tx, 'saml', null, {}, ttl, `assertion:${assertionId}`));
      return true;
    } catch (e) {
      if (/unique|duplicate|primary key/i.test(String((e as Error).message))) return false;
      throw e;
    }
  }
}
