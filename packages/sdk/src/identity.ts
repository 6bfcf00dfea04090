import type { ApiKeyInfo, CreatedApiKey, Group, Organization, ServiceIdentity, User } from '@palisade/core';
export type { Group, Organization, ServiceIdentity, User } from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

// The principals' shapes are in @palisade/core (shared with the server); the request shapes below follow the server's
// route schemas (engines/identity/admin-routes.ts, oauth-routes.ts).

export interface CreateUserRequest {
  username: string;
  /** Checked against the password policy (422 PAL_AUTH_PASSWORD_POLICY with the violations). */
  password?: string;
  email?: string | null;
  display_name?: string | null;
  /** Default `['viewer']`; nobody grants a role carrying permissions they do not hold. */
  roles?: string[];
  mfa_required?: boolean;
  /** The organisation (default `default`). */
  org_id?: string;
}

export interface UpdateUserRequest {
  email?: string | null;
  display_name?: string | null;
  roles?: string[];
  /** false deprovisions: the user's sessions, tokens and API keys end. */
  active?: boolean;
  mfa_required?: boolean;
}

export interface ListUsersQuery {
  org_id?: string;
  offset?: number;
  limit?: number;
  username?: string;
}

export interface UserList {
  total: number;
  users: User[];
}

export interface CreateServiceRequest {
  /** `^[a-z0-9][a-z0-9._-]{0,62}$` */
  name: string;
  description?: string | null;
  /** Default `['agent']`. */
  roles?: string[];
  spiffe_id?: string;
  org_id?: string;
}

export interface UpdateServiceRequest {
  description?: string | null;
  roles?: string[];
  /** false ends its tokens and API keys. */
  active?: boolean;
}

export interface ServiceList {
  services: ServiceIdentity[];
}

export interface CreateServiceApiKeyRequest {
  name: string;
  /** Default: every permission the service holds (and so do you). */
  permissions?: string[];
  expires_in_days?: number;
  /** Rotation: the id of the key this one replaces; that key keeps working for `overlap_hours` (default 24). */
  replaces?: string;
  overlap_hours?: number;
}

/** OAuth client credentials: the service id and one of its API keys. */
export interface OAuthClientCredentials {
  clientId: string;
  clientSecret: string;
}

/** RFC 6749 §5.1 */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

/** RFC 7662 §2.2: `{active: false}` for anything not a live token of ours. */
export interface IntrospectionResponse {
  active: boolean;
  token_type?: string;
  sub?: string;
  client_id?: string;
  scope?: string;
  jti?: string;
  exp?: number;
  iat?: number;
  iss?: string;
  aud?: string | string[];
  cnf?: { 'x5t#S256': string };
  [claim: string]: unknown;
}

export interface Jwks {
  keys: Array<{ kty: string; kid: string; alg: string; use: string; crv?: string; x?: string; y?: string; [k: string]: unknown }>;
}

/** RFC 8414 / OpenID Connect Discovery metadata. */
export interface DiscoveryDocument {
  issuer: string;
  jwks_uri: string;
  token_endpoint: string;
  introspection_endpoint: string;
  revocation_endpoint: string;
  grant_types_supported: string[];
  token_endpoint_auth_methods_supported: string[];
  tls_client_certificate_bound_access_tokens: boolean;
  response_types_supported: string[];
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: string[];
  token_endpoint_auth_signing_alg_values_supported: string[];
  scopes_supported: string[];
  [k: string]: unknown;
}

const seg = encodeURIComponent;

/** client_secret_basic (RFC 6749 §2.3.1: id and secret form-encoded, then base64). */
function basic(c: OAuthClientCredentials): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${seg(c.clientId)}:${seg(c.clientSecret)}`).toString('base64')}` };
}

/** Users, service identities (agents), group roles, and the OAuth endpoints of the identity engine. */
export class IdentityClient {
  constructor(private readonly t: Transport) {}

  // ------------------------------------------------------------------------------------------------ users
  createOrganization(req: { name: string; display_name?: string | null }): Promise<Organization> {
    return this.t.send('POST', '/v1/orgs', req);
  }

  listOrganizations(): Promise<{ organizations: Organization[] }> {
    return this.t.send('GET', '/v1/orgs');
  }

  createUser(req: CreateUserRequest): Promise<User> {
    return this.t.send('POST', '/v1/users', req);
  }
  listUsers(q: ListUsersQuery = {}): Promise<UserList> {
    return this.t.send('GET', withQuery('/v1/users', q));
  }
  getUser(id: string): Promise<User> {
    return this.t.send('GET', `/v1/users/${seg(id)}`);
  }
  updateUser(id: string, patch: UpdateUserRequest): Promise<User> {
    return this.t.send('PATCH', `/v1/users/${seg(id)}`, patch);
  }
  /** Deletes the user with their factors, sessions, tokens and API keys. */
  async deleteUser(id: string): Promise<void> {
    await this.t.send('DELETE', `/v1/users/${seg(id)}`);
  }
  /** Sets the password (policy-checked); the user's sessions and tokens end. */
  async setPassword(id: string, password: string): Promise<void> {
    await this.t.send('POST', `/v1/users/${seg(id)}/password`, { password });
  }
  /** Ends every session of the user; answers how many there were. */
  revokeSessions(id: string): Promise<{ sessions: number }> {
    return this.t.send('POST', `/v1/users/${seg(id)}/sessions/revoke`);
  }

  // ------------------------------------------------------------------------------------ service identities
  createService(req: CreateServiceRequest): Promise<ServiceIdentity> {
    return this.t.send('POST', '/v1/services', req);
  }
  listServices(): Promise<ServiceList> {
    return this.t.send('GET', '/v1/services');
  }
  getService(id: string): Promise<ServiceIdentity> {
    return this.t.send('GET', `/v1/services/${seg(id)}`);
  }
  updateService(id: string, patch: UpdateServiceRequest): Promise<ServiceIdentity> {
    return this.t.send('PATCH', `/v1/services/${seg(id)}`, patch);
  }
  /** Deletes the service identity with its tokens and API keys. */
  async deleteService(id: string): Promise<void> {
    await this.t.send('DELETE', `/v1/services/${seg(id)}`);
  }
  /** An API key for the service, also its OAuth client secret; the token is shown once. */
  createServiceApiKey(id: string, req: CreateServiceApiKeyRequest): Promise<CreatedApiKey> {
    return this.t.send('POST', `/v1/services/${seg(id)}/api-keys`, req);
  }

  // ------------------------------------------------------------------------------------------------ groups
  /** The roles a group's members get (the group itself comes from SCIM). */
  listServiceApiKeys(id: string): Promise<{ api_keys: ApiKeyInfo[] }> {
    return this.t.send('GET', `/v1/services/${seg(id)}/api-keys`);
  }

  revokeServiceApiKey(id: string, keyId: string): Promise<ApiKeyInfo> {
    return this.t.send('DELETE', `/v1/services/${seg(id)}/api-keys/${seg(keyId)}`);
  }

  createGroup(req: { display_name: string; roles?: string[]; members?: string[] }): Promise<Group> {
    return this.t.send('POST', '/v1/groups', req);
  }

  listGroups(q: { offset?: number; limit?: number } = {}): Promise<{ total: number; groups: Group[] }> {
    return this.t.send('GET', withQuery('/v1/groups', q));
  }

  setGroupRoles(groupId: string, roles: string[]): Promise<Group> {
    return this.t.send('PUT', `/v1/groups/${seg(groupId)}/roles`, { roles });
  }

  // ------------------------------------------------------------------------------------------------- OAuth
  /** The client_credentials grant, authenticating with client_secret_basic. Errors carry the OAuth error as code. */
  clientCredentials(req: OAuthClientCredentials & { scope?: string | string[] }): Promise<TokenResponse> {
    const scope = Array.isArray(req.scope) ? req.scope.join(' ') : req.scope;
    return this.t.sendForm('/v1/oauth/token', { grant_type: 'client_credentials', scope }, basic(req));
  }
  /**
   * RFC 7662 introspection: as this client's principal (permission oauth:tokens:introspect), or as `client` (which
   * learns only about its own tokens).
   */
  introspect(token: string, client?: OAuthClientCredentials): Promise<IntrospectionResponse> {
    return this.t.sendForm('/v1/oauth/introspect', { token }, client ? basic(client) : {});
  }
  /** RFC 7009 revocation (an unknown token is not an error): permission oauth:tokens:revoke, or the token's `client`. */
  async revokeToken(token: string, client?: OAuthClientCredentials): Promise<void> {
    await this.t.sendForm('/v1/oauth/revoke', { token }, client ? basic(client) : {});
  }
  /** The public keys of access tokens (public). */
  jwks(): Promise<Jwks> {
    return this.t.send('GET', '/.well-known/jwks.json');
  }
  /** OpenID discovery metadata (public). */
  discovery(): Promise<DiscoveryDocument> {
    return this.t.send('GET', '/.well-known/openid-configuration');
  }
}
