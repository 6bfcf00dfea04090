/** Shapes of the identity engine's principals, as its routes answer with them (the server and the SDK share them). */

/** A person. `active: false` is a deprovisioned user: no sign-in, no sessions, tokens or API keys. */
export interface User {
  id: string;
  org_id: string;
  username: string;
  email: string | null;
  display_name: string | null;
  given_name: string | null;
  family_name: string | null;
  active: boolean;
  roles: string[];
  external_id: string | null;
  /** `local`, or where it was provisioned from (`scim`, an OIDC or SAML provider). */
  source: string;
  mfa_required: boolean;
  has_password: boolean;
  created_at: string;
  updated_at: string;
  version: number;
}

/** An agent or service. */
export interface ServiceIdentity {
  id: string;
  org_id: string;
  name: string;
  description: string | null;
  roles: string[];
  /** The SPIFFE id of its client certificate (mTLS and `tls_client_auth`), if it has one. */
  spiffe_id: string | null;
  active: boolean;
  created_at: string;
  updated_at: string;
}

/** A group (groups come from SCIM); its roles go to its members. */
export interface Group {
  id: string;
  org_id: string;
  display_name: string;
  external_id: string | null;
  roles: string[];
  members: string[];
  created_at: string;
  updated_at: string;
  version: number;
}

/** An organisation: users and service identities belong to one (`default` until others are created). */
export interface Organization {
  id: string;
  name: string;
  display_name: string | null;
  created_at: string;
}
