/** Table types for Kysely. Timestamps are ISO-8601 UTC strings (sortable, identical in both dialects). */
import type { Generated } from 'kysely';

export interface AuditEventTable {
  idx: number;
  ts: string;
  type: string;
  data: string; // canonical JSON of the whole event (RFC 8785); the leaf is H(0x00 || data)
  leaf_hash: Buffer;
  tree_root: Buffer; // RFC 9162 root of the tree of size idx + 1 on every 256th row, empty otherwise
  mac: Buffer; // HMAC over (index, leaf hash, tree_root) with a key derived from the seal: the DB alone cannot forge it
  purged_at: string | null; // set when retention purged the payload (data = ''); the leaf hash stays
  purge_mac: Buffer | null; // HMAC over (index, leaf, ts, type, purged_at), written by the purge
}

export interface AuditNodeTable {
  level: number; // >= 8
  idx: number; // the node covers leaves [idx * 2^level, (idx + 1) * 2^level)
  hash: Buffer;
}

export interface AuditCheckpointTable {
  size: number;
  root: Buffer;
  note: string; // C2SP signed note, signed by the log's checkpoint key
  created_at: string;
}

export interface AuditAnchorTable {
  size: number;
  anchor: string; // configured anchor name
  kind: string; // witness | rfc3161 | ...
  receipt: string; // a cosignature line, a base64 time-stamp token, ...
  created_at: string;
}

export interface AuditExportCursorTable {
  sink: string;
  next_index: number;
  updated_at: string;
  last_error: string | null;
}

export interface AuditHoldTable {
  id: string;
  name: string;
  reason: string;
  filter: string; // JSON: { since?, until?, type?, principal?, resource? }
  created_at: string;
  created_by: string;
  released_at: string | null;
  released_by: string | null;
}

export interface AuditSubjectKeyTable {
  subject_ref: string; // HMAC of the subject identifier, never the identifier itself
  wrapped_key: Buffer | null; // null once erased
  created_at: string;
  erased_at: string | null;
}

export interface AuditHeadTable {
  id: number;
  size: number;
  range: string; // CompactRange JSON
}

export interface ApiKeyTable {
  id: string;
  name: string;
  principal_id: string;
  token_hash: Buffer;
  permissions: string; // JSON array
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface KmsKeyTable {
  key_id: string;
  name: string | null;
  key_type: string;
  algorithm: string;
  usage: string; // JSON array
  classification: string;
  status: string;
  current_version: number;
  min_decryption_version: number;
  rotation_period_days: number;
  created_at: string;
  rotated_at: string;
  destroy_at: string | null;
  status_before_destruction: string | null;
  origin: string; // 'generated' | 'imported'
  exportable: number; // 0 | 1
}

export interface KmsKeyVersionTable {
  key_id: string;
  version: number;
  status: string;
  material: Buffer | null; // wrapped as `wrapping` says; NULL once destroyed
  wrapping: 'barrier' | 'root' | 'kek';
  kek_id: string | null;
  kek_version: number | null;
  deactivate_at: string | null;
  ciphertexts: number;
  rewrapped_away: number;
  public_key: Buffer | null; // SPKI DER for asymmetric keys
  created_at: string;
  destroy_at: string | null;
  nonces_reserved: number;
}

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: string;
}

export interface SettingTable {
  name: string;
  value: string;
}

export interface ApprovalTable {
  id: string;
  action: string;
  permission: string;
  resource_type: string;
  resource_id: string;
  status: string;
  requested_by: string;
  requested_at: string;
  expires_at: string;
  reason: string | null;
  decided_by: string | null;
  decided_at: string | null;
  details: string; // JSON
  result: string | null; // JSON
}

export interface PkiCaTable {
  id: string;
  name: string;
  kind: 'root' | 'intermediate';
  parent_id: string | null;
  status: 'pending' | 'active' | 'retired';
  key_store: 'kms' | 'hsm' | 'offline' | 'external';
  key_ref: string | null; // the KMS key name (kms), or the CKA_LABEL of the key pair in the token (hsm), while the server holds the key
  algorithm: string;
  subject_dn: string;
  certificate: Buffer | null; // DER; null while an intermediate waits for its certificate
  csr: Buffer | null; // DER PKCS#10 of a pending intermediate
  not_before: string | null;
  not_after: string | null;
  created_at: string;
  activated_at: string | null;
  crl_number: number;
  crl: Buffer | null; // the latest signed CRL, DER
  crl_next_update: string | null;
}

export interface PkiCertificateTable {
  serial: string; // lower-case hex
  ca_id: string;
  fingerprint: string; // SHA-256 of the DER, hex
  subject_dn: string;
  sans: string; // JSON array of "dns:...", "ip:...", "uri:..."
  template: string;
  service: string | null;
  requested_by: string;
  acme_order_id: string | null;
  not_before: string;
  not_after: string;
  certificate: Buffer; // DER (the key is never stored)
  status: 'valid' | 'revoked';
  revoked_at: string | null;
  revocation_reason: number | null;
  created_at: string;
}

export interface AcmeNonceTable {
  nonce: string;
  expires_at: string;
}

export interface AcmeEabKeyTable {
  id: string;
  name: string;
  wrapped_key: Buffer; // barrier-sealed HMAC key
  reusable: number; // 0 | 1
  created_at: string;
  created_by: string;
  expires_at: string | null;
  used_at: string | null;
  used_by: string | null; // the first account it bound
  revoked_at: string | null;
}

export interface SigningKeyTable {
  id: string; // sk_…
  principal_id: string;
  name: string;
  secret: Buffer; // barrier-sealed HMAC secret (purpose gateway/signing-key/<id>/<principal_id>)
  created_at: string;
  created_by: string;
  revoked_at: string | null;
}

export interface AcmeAccountTable {
  id: string;
  thumbprint: string; // RFC 7638, base64url
  jwk: string; // JSON, public members only
  status: string; // valid | deactivated | revoked
  contact: string; // JSON array of URLs
  tos_agreed: number;
  eab_key_id: string | null;
  created_at: string;
}

export interface AcmeOrderTable {
  id: string;
  account_id: string;
  status: string; // pending | ready | processing | valid | invalid
  identifiers: string; // JSON [{type, value}]
  not_before: string | null;
  not_after: string | null;
  expires_at: string;
  error: string | null; // JSON problem document
  certificate_serial: string | null;
  replaces: string | null; // serial of the certificate this order renews (RFC 9773)
  created_at: string;
}

export interface AcmeAuthorizationTable {
  id: string;
  order_id: string;
  account_id: string;
  identifier_type: string; // dns | ip
  identifier_value: string; // without the "*." of a wildcard
  wildcard: number;
  status: string; // pending | valid | invalid | deactivated | expired | revoked
  expires_at: string;
}

export interface AcmeChallengeTable {
  id: string;
  authz_id: string;
  type: string; // http-01 | dns-01 | tls-alpn-01
  token: string;
  status: string; // pending | processing | valid | invalid
  error: string | null; // JSON problem document
  started_at: string | null;
  validated_at: string | null;
}

export interface AcmeCertificateTable {
  serial: string; // lowercase hex
  account_id: string;
  order_id: string;
  chain_pem: string;
  not_before: string;
  not_after: string;
  replaced_by: string | null; // the order that replaces it (RFC 9773)
  created_at: string;
}

export interface OrganizationTable {
  id: string;
  name: string;
  display_name: string | null;
  created_at: string;
}

export interface UserTable {
  id: string;
  org_id: string;
  username: string;
  username_key: string;
  email: string | null;
  display_name: string | null;
  given_name: string | null;
  family_name: string | null;
  password_hash: string | null;
  active: number;
  roles: string; // JSON array
  external_id: string | null;
  source: string; // local | scim | oidc:<provider> | saml:<provider>
  federated_subject: string | null;
  mfa_required: number;
  credentials_valid_after: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface ServiceIdentityTable {
  id: string;
  org_id: string;
  name: string;
  description: string | null;
  roles: string; // JSON array
  spiffe_id: string | null;
  active: number;
  credentials_valid_after: string;
  created_at: string;
  updated_at: string;
}

export interface GroupTable {
  id: string;
  org_id: string;
  display_name: string;
  external_id: string | null;
  roles: string; // JSON array
  created_at: string;
  updated_at: string;
  version: number;
}

export interface GroupMemberTable {
  group_id: string;
  user_id: string;
}

export interface MfaFactorTable {
  id: string;
  user_id: string;
  kind: string; // totp | webauthn
  name: string;
  active: number;
  secret: Buffer | null;
  credential_id: string | null;
  public_key: Buffer | null;
  counter: number | null;
  transports: string | null;
  last_step: number | null;
  created_at: string;
  last_used_at: string | null;
}

export interface RecoveryCodeTable {
  code_hash: Buffer;
  user_id: string;
  created_at: string;
  used_at: string | null;
}

export interface AuthThrottleTable {
  key: string;
  failures: number;
  window_start: string;
  blocked_until: string | null;
}

export interface AuthChallengeTable {
  id_hash: Buffer;
  kind: string;
  user_id: string | null;
  data: string;
  expires_at: string;
}

export interface SessionTable {
  id_hash: Buffer;
  user_id: string;
  data: string;
  last_seen_at: string;
  expires_at: string;
}

export interface OauthRefreshTokenTable {
  id_hash: Buffer;
  family_id: string;
  principal_id: string;
  client_id: string;
  scope: string;
  cnf: string | null;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  revoked_at: string | null;
}

export interface OauthRevokedTokenTable {
  jti: string;
  expires_at: string;
  revoked_at: string;
}

export interface AuthzRoleTable {
  name: string;
  description: string | null;
  permissions: string; // JSON
  created_by: string;
  created_at: string;
  updated_at: string;
}

export interface AuthzBindingTable {
  id: string;
  subject: string;
  role: string;
  scope: string;
  expires_at: string | null;
  reason: string | null;
  approval_id: string | null;
  created_by: string;
  created_at: string;
}

export interface AuthzPolicyTable {
  version: number;
  source: string;
  sha256: string;
  rules: number;
  comment: string | null;
  created_by: string;
  created_at: string;
}

export interface Database {
  authz_roles: AuthzRoleTable;
  authz_bindings: AuthzBindingTable;
  authz_policies: AuthzPolicyTable;
  auth_generation: { id: number; generation: number };
  acme_nonces: AcmeNonceTable;
  acme_eab_keys: AcmeEabKeyTable;
  acme_accounts: AcmeAccountTable;
  acme_orders: AcmeOrderTable;
  acme_authorizations: AcmeAuthorizationTable;
  acme_challenges: AcmeChallengeTable;
  acme_certificates: AcmeCertificateTable;
  approvals: ApprovalTable;
  audit_events: AuditEventTable;
  audit_head: AuditHeadTable;
  audit_nodes: AuditNodeTable;
  audit_checkpoints: AuditCheckpointTable;
  audit_anchors: AuditAnchorTable;
  audit_export_cursors: AuditExportCursorTable;
  audit_holds: AuditHoldTable;
  audit_subject_keys: AuditSubjectKeyTable;
  api_keys: ApiKeyTable;
  signing_keys: SigningKeyTable;
  kms_keys: KmsKeyTable;
  kms_key_versions: KmsKeyVersionTable;
  leases: LeaseTable;
  pki_cas: PkiCaTable;
  pki_certificates: PkiCertificateTable;
  settings: SettingTable;
  organizations: OrganizationTable;
  users: UserTable;
  service_identities: ServiceIdentityTable;
  groups: GroupTable;
  group_members: GroupMemberTable;
  mfa_factors: MfaFactorTable;
  recovery_codes: RecoveryCodeTable;
  auth_throttle: AuthThrottleTable;
  auth_challenges: AuthChallengeTable;
  sessions: SessionTable;
  oauth_refresh_tokens: OauthRefreshTokenTable;
  oauth_revoked_tokens: OauthRevokedTokenTable;
}

export type { Generated };
