import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Dialect } from './database.js';

/** Migrations are code, ordered by name, identical for SQLite and PostgreSQL except the binary column type. */
export function migrations(dialect: Dialect): MigrationProvider {
  const bytes = dialect === 'postgres' ? 'bytea' : 'blob';
  const all: Record<string, Migration> = {
    '0001_foundation': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('audit_events')
          .addColumn('idx', 'bigint', (c) => c.primaryKey())
          .addColumn('ts', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('leaf_hash', sql.raw(bytes), (c) => c.notNull())
          .addColumn('tree_root', sql.raw(bytes), (c) => c.notNull())
          .addColumn('mac', sql.raw(bytes), (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_events_type_ts').on('audit_events').columns(['type', 'ts']).execute();
        await db.schema
          .createTable('audit_head')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('range', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('api_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('principal_id', 'text', (c) => c.notNull())
          .addColumn('token_hash', sql.raw(bytes), (c) => c.notNull().unique())
          .addColumn('permissions', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text')
          .addColumn('expires_at', 'text')
          .addColumn('revoked_at', 'text')
          .addColumn('last_used_at', 'text')
          .execute();
        await db.schema
          .createTable('kms_keys')
          .addColumn('key_id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.unique())
          .addColumn('key_type', 'text', (c) => c.notNull())
          .addColumn('algorithm', 'text', (c) => c.notNull())
          .addColumn('usage', 'text', (c) => c.notNull())
          .addColumn('classification', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('current_version', 'integer', (c) => c.notNull())
          .addColumn('min_decryption_version', 'integer', (c) => c.notNull())
          .addColumn('rotation_period_days', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('rotated_at', 'text', (c) => c.notNull())
          .addColumn('destroy_at', 'text')
          .addColumn('status_before_destruction', 'text')
          .execute();
        await db.schema
          .createTable('kms_key_versions')
          .addColumn('key_id', 'text', (c) => c.notNull().references('kms_keys.key_id'))
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('material', sql.raw(bytes))
          .addColumn('public_key', sql.raw(bytes))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('destroy_at', 'text')
          .addColumn('nonces_reserved', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('kms_key_versions_pk', ['key_id', 'version'])
          .execute();
        await db.schema
          .createTable('leases')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('settings')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0002_key_hierarchy': {
      async up(db: Kysely<unknown>) {
        // How a version's material is wrapped: 'barrier' (0001 rows), 'root' (system KEKs, by the seal provider,
        // e.g. inside the HSM) or 'kek' (by version kek_version of the system KEK kek_id of the key's classification).
        await db.schema.alterTable('kms_key_versions').addColumn('wrapping', 'text', (c) => c.notNull().defaultTo('barrier')).execute();
        await db.schema.alterTable('kms_key_versions').addColumn('kek_id', 'text').execute();
        await db.schema.alterTable('kms_key_versions').addColumn('kek_version', 'integer').execute();
        await db.schema.createIndex('kms_key_versions_kek').on('kms_key_versions').columns(['kek_id', 'kek_version']).execute();
      },
    },
    '0003_approvals_and_overlap': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('approvals')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('permission', 'text', (c) => c.notNull())
          .addColumn('resource_type', 'text', (c) => c.notNull())
          .addColumn('resource_id', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('requested_by', 'text', (c) => c.notNull())
          .addColumn('requested_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('decided_by', 'text')
          .addColumn('decided_at', 'text')
          .addColumn('details', 'text', (c) => c.notNull())
          .addColumn('result', 'text')
          .execute();
        await db.schema.createIndex('approvals_status').on('approvals').columns(['status', 'resource_id']).execute();
        // After a rotation the previous version stays active for the policy's overlap, then is deactivated.
        await db.schema.alterTable('kms_key_versions').addColumn('deactivate_at', 'text').execute();
      },
    },
    '0004_version_usage': {
      async up(db: Kysely<unknown>) {
        // The retirement gate: ciphertexts made under a version, and those since moved off it by rewrap.
        await db.schema.alterTable('kms_key_versions').addColumn('ciphertexts', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.alterTable('kms_key_versions').addColumn('rewrapped_away', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0005_key_origin': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('kms_keys').addColumn('origin', 'text', (c) => c.notNull().defaultTo('generated')).execute();
        await db.schema.alterTable('kms_keys').addColumn('exportable', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0006_audit_ledger': {
      async up(db: Kysely<unknown>) {
        // Purge keeps the leaf: the payload goes (data = ''), the leaf hash and MAC stay, so the tree still verifies.
        await db.schema.alterTable('audit_events').addColumn('purged_at', 'text').execute();
        // Perfect-subtree hashes at levels >= 8 (one row per 256 leaves and above): O(log n) proofs.
        await db.schema
          .createTable('audit_nodes')
          .addColumn('level', 'integer', (c) => c.notNull())
          .addColumn('idx', 'bigint', (c) => c.notNull())
          .addColumn('hash', sql.raw(bytes), (c) => c.notNull())
          .addPrimaryKeyConstraint('audit_nodes_pk', ['level', 'idx'])
          .execute();
        // Signed checkpoints (C2SP signed note), one per tree size that was checkpointed.
        await db.schema
          .createTable('audit_checkpoints')
          .addColumn('size', 'bigint', (c) => c.primaryKey())
          .addColumn('root', sql.raw(bytes), (c) => c.notNull())
          .addColumn('note', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        // What each anchor (witness, time-stamping authority, ...) returned for a checkpoint.
        await db.schema
          .createTable('audit_anchors')
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('anchor', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('receipt', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('audit_anchors_pk', ['size', 'anchor'])
          .execute();
        // Streaming exports (SIEM sinks): the next index each sink must receive, so a restart resumes there.
        await db.schema
          .createTable('audit_export_cursors')
          .addColumn('sink', 'text', (c) => c.primaryKey())
          .addColumn('next_index', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('last_error', 'text')
          .execute();
        await db.schema
          .createTable('audit_holds')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('filter', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('released_at', 'text')
          .addColumn('released_by', 'text')
          .execute();
        // Crypto-shredding: one key per data subject, wrapped by the barrier; erasing destroys it.
        await db.schema
          .createTable('audit_subject_keys')
          .addColumn('subject_ref', 'text', (c) => c.primaryKey())
          .addColumn('wrapped_key', sql.raw(bytes))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('erased_at', 'text')
          .execute();
      },
    },
    '0007_audit_purge_mac': {
      async up(db: Kysely<unknown>) {
        // A purge is MACed (index, leaf, ts, type, purged_at) while the payload still hashes to the leaf.
        await db.schema.alterTable('audit_events').addColumn('purge_mac', sql.raw(bytes)).execute();
      },
    },
    '0008_pki': {
      async up(db: Kysely<unknown>) {
        // Certificate authorities: the root and its intermediates. Keys live in the KMS (or offline); rows keep certificates.
        await db.schema
          .createTable('pki_cas')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('parent_id', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('key_store', 'text', (c) => c.notNull())
          .addColumn('key_ref', 'text')
          .addColumn('algorithm', 'text', (c) => c.notNull())
          .addColumn('subject_dn', 'text', (c) => c.notNull())
          .addColumn('certificate', sql.raw(bytes))
          .addColumn('csr', sql.raw(bytes))
          .addColumn('not_before', 'text')
          .addColumn('not_after', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('activated_at', 'text')
          .addColumn('crl_number', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('crl', sql.raw(bytes))
          .addColumn('crl_next_update', 'text')
          .execute();
        await db.schema
          .createTable('pki_certificates')
          .addColumn('serial', 'text', (c) => c.primaryKey())
          .addColumn('ca_id', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
          .addColumn('subject_dn', 'text', (c) => c.notNull())
          .addColumn('sans', 'text', (c) => c.notNull())
          .addColumn('template', 'text', (c) => c.notNull())
          .addColumn('service', 'text')
          .addColumn('requested_by', 'text', (c) => c.notNull())
          .addColumn('acme_order_id', 'text')
          .addColumn('not_before', 'text', (c) => c.notNull())
          .addColumn('not_after', 'text', (c) => c.notNull())
          .addColumn('certificate', sql.raw(bytes), (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text')
          .addColumn('revocation_reason', 'integer')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('pki_certificates_ca_status').on('pki_certificates').columns(['ca_id', 'status', 'not_after']).execute();
        await db.schema.createIndex('pki_certificates_not_after').on('pki_certificates').columns(['not_after']).execute();
        await db.schema.createIndex('pki_certificates_service').on('pki_certificates').columns(['service', 'not_after']).execute();
      },
    },
    '0009_acme': {
      async up(db: Kysely<unknown>) {
        // ACME (RFC 8555): replay nonces shared by every node, accounts, EAB keys (HMAC key wrapped by the barrier),
        // orders with their authorizations and challenges, and the certificates issued through ACME.
        await db.schema.createTable('acme_nonces').addColumn('nonce', 'text', (c) => c.primaryKey()).addColumn('expires_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createIndex('acme_nonces_expires').on('acme_nonces').column('expires_at').execute();
        await db.schema
          .createTable('acme_eab_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('wrapped_key', sql.raw(bytes), (c) => c.notNull())
          .addColumn('reusable', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('used_at', 'text')
          .addColumn('used_by', 'text')
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema
          .createTable('acme_accounts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('thumbprint', 'text', (c) => c.notNull().unique())
          .addColumn('jwk', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('contact', 'text', (c) => c.notNull())
          .addColumn('tos_agreed', 'integer', (c) => c.notNull())
          .addColumn('eab_key_id', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('acme_orders')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('identifiers', 'text', (c) => c.notNull())
          .addColumn('not_before', 'text')
          .addColumn('not_after', 'text')
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .addColumn('certificate_serial', 'text')
          .addColumn('replaces', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('acme_orders_account').on('acme_orders').columns(['account_id', 'created_at']).execute();
        await db.schema
          .createTable('acme_authorizations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('order_id', 'text', (c) => c.notNull())
          .addColumn('account_id', 'text', (c) => c.notNull())
          .addColumn('identifier_type', 'text', (c) => c.notNull())
          .addColumn('identifier_value', 'text', (c) => c.notNull())
          .addColumn('wildcard', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('acme_authorizations_order').on('acme_authorizations').column('order_id').execute();
        await db.schema.createIndex('acme_authorizations_account').on('acme_authorizations').columns(['account_id', 'identifier_value']).execute();
        await db.schema
          .createTable('acme_challenges')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('authz_id', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('token', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('error', 'text')
          .addColumn('started_at', 'text')
          .addColumn('validated_at', 'text')
          .execute();
        await db.schema.createIndex('acme_challenges_authz').on('acme_challenges').column('authz_id').execute();
        await db.schema
          .createTable('acme_certificates')
          .addColumn('serial', 'text', (c) => c.primaryKey())
          .addColumn('account_id', 'text', (c) => c.notNull())
          .addColumn('order_id', 'text', (c) => c.notNull())
          .addColumn('chain_pem', 'text', (c) => c.notNull())
          .addColumn('not_before', 'text', (c) => c.notNull())
          .addColumn('not_after', 'text', (c) => c.notNull())
          .addColumn('replaced_by', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0010_identity': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('org_id', 'text', (c) => c.notNull())
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('username_key', 'text', (c) => c.notNull().unique()) // NFKC + lower case: one account per name
          .addColumn('email', 'text')
          .addColumn('display_name', 'text')
          .addColumn('given_name', 'text')
          .addColumn('family_name', 'text')
          .addColumn('password_hash', 'text')
          .addColumn('active', 'integer', (c) => c.notNull())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('external_id', 'text', (c) => c.unique())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('federated_subject', 'text', (c) => c.unique()) // '<provider>|<sub or NameID>'
          .addColumn('mfa_required', 'integer', (c) => c.notNull())
          .addColumn('credentials_valid_after', 'text', (c) => c.notNull()) // sessions and tokens issued before are dead
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('service_identities')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('org_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('description', 'text')
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('spiffe_id', 'text', (c) => c.unique())
          .addColumn('active', 'integer', (c) => c.notNull())
          .addColumn('credentials_valid_after', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('service_identities_org_name', ['org_id', 'name'])
          .execute();
        await db.schema
          .createTable('groups')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('org_id', 'text', (c) => c.notNull())
          .addColumn('display_name', 'text', (c) => c.notNull().unique())
          .addColumn('external_id', 'text', (c) => c.unique())
          .addColumn('roles', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('group_members')
          .addColumn('group_id', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
          .execute();
        await db.schema.createIndex('group_members_user').on('group_members').column('user_id').execute();
        await db.schema
          .createTable('mfa_factors')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull()) // totp | webauthn
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('active', 'integer', (c) => c.notNull()) // 0 until a TOTP enrolment is confirmed
          .addColumn('secret', sql.raw(bytes)) // TOTP secret, sealed by the barrier
          .addColumn('credential_id', 'text', (c) => c.unique())
          .addColumn('public_key', sql.raw(bytes))
          .addColumn('counter', 'bigint')
          .addColumn('transports', 'text')
          .addColumn('last_step', 'bigint') // the last TOTP step accepted: a code is accepted once
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('last_used_at', 'text')
          .execute();
        await db.schema.createIndex('mfa_factors_user').on('mfa_factors').column('user_id').execute();
        await db.schema
          .createTable('recovery_codes')
          .addColumn('code_hash', sql.raw(bytes), (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .execute();
        await db.schema.createIndex('recovery_codes_user').on('recovery_codes').column('user_id').execute();
        await db.schema
          .createTable('auth_throttle')
          .addColumn('key', 'text', (c) => c.primaryKey()) // <factor>:<user|ip>:<value>
          .addColumn('failures', 'integer', (c) => c.notNull())
          .addColumn('window_start', 'text', (c) => c.notNull())
          .addColumn('blocked_until', 'text')
          .execute();
        await db.schema
          .createTable('auth_challenges')
          .addColumn('id_hash', sql.raw(bytes), (c) => c.primaryKey())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text')
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('sessions')
          .addColumn('id_hash', sql.raw(bytes), (c) => c.primaryKey())
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('last_seen_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
        await db.schema
          .createTable('oauth_refresh_tokens')
          .addColumn('id_hash', sql.raw(bytes), (c) => c.primaryKey())
          .addColumn('family_id', 'text', (c) => c.notNull())
          .addColumn('principal_id', 'text', (c) => c.notNull())
          .addColumn('client_id', 'text', (c) => c.notNull())
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('cnf', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema.createIndex('oauth_refresh_tokens_family').on('oauth_refresh_tokens').column('family_id').execute();
        await db.schema.createIndex('oauth_refresh_tokens_principal').on('oauth_refresh_tokens').column('principal_id').execute();
        await db.schema
          .createTable('oauth_revoked_tokens')
          .addColumn('jti', 'text', (c) => c.primaryKey())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('oauth_revoked_tokens_at').on('oauth_revoked_tokens').column('revoked_at').execute();
      },
    },
    '0011_organizations': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('organizations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('display_name', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0012_authz': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('authz_roles')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('description', 'text')
          .addColumn('permissions', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('authz_bindings')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('reason', 'text')
          .addColumn('approval_id', 'text')
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('authz_bindings_subject').on('authz_bindings').column('subject').execute();
        await db.schema.createIndex('authz_bindings_role').on('authz_bindings').column('role').execute();
        await db.schema
          .createTable('authz_policies')
          .addColumn('version', 'integer', (c) => c.primaryKey())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('sha256', 'text', (c) => c.notNull())
          .addColumn('rules', 'integer', (c) => c.notNull())
          .addColumn('comment', 'text')
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        // Bumped in the transaction of every change to roles, bindings, policies or a principal's roles; every node
        // drops its cached decisions when it moves (PostgreSQL NOTIFY at commit, and a poll as a backstop).
        await db.schema.createTable('auth_generation').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('generation', 'bigint', (c) => c.notNull()).execute();
      },
    },
    '0013_signing_keys': {
      async up(db: Kysely<unknown>) {
        // Request-signing (HMAC) secrets of principals, for `Palisade-Signature` at the gateway: the secret is sealed
        // by the barrier, bound to its key id and principal (`gateway/signing-key/<id>/<principal>`).
        await db.schema
          .createTable('signing_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('principal_id', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('secret', sql.raw(bytes), (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema.createIndex('signing_keys_principal').on('signing_keys').column('principal_id').execute();
      },
    },
  };
  return { getMigrations: async () => all };
}
