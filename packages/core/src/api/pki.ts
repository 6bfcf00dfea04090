import { Type, type Static } from '@sinclair/typebox';
import { enumOf } from './kms.js';

export const PKI_CA_ALGORITHMS = ['ECDSA-P384', 'ECDSA-P256', 'RSA-4096'] as const;
export const PKI_LEAF_KEY_ALGORITHMS = ['ECDSA-P256', 'ECDSA-P384', 'ED25519', 'RSA-2048', 'RSA-3072'] as const;
export const PKI_REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn'] as const;

const label = (description: string) => Type.String({ pattern: '^(?!-)[a-z0-9-]{1,63}(?<!-)$', description });
const dt = Type.String({ format: 'date-time' });
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const CertificateAuthority = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: enumOf(['root', 'intermediate'] as const),
  parent_id: nullable(Type.String()),
  status: enumOf(['pending', 'active', 'retired'] as const, 'active intermediates issue (the newest one); retired ones still answer OCSP and CRLs; pending ones wait for their certificate'),
  key_store: enumOf(['kms', 'hsm', 'offline', 'external'] as const, 'kms: the server holds the key; hsm: generated in the PKCS#11 token of the seal, never extractable; offline: exported and removed; external: an intermediate held elsewhere'),
  algorithm: Type.String(),
  subject_dn: Type.String(),
  not_before: nullable(dt),
  not_after: nullable(dt),
  created_at: dt,
  certificate_pem: nullable(Type.String()),
  csr_pem: nullable(Type.String({ description: 'for a pending intermediate: the CSR an offline root signs' })),
});
export type CertificateAuthority = Static<typeof CertificateAuthority>;

export const CaList = Type.Object({ cas: Type.Array(CertificateAuthority) });
export type CaList = Static<typeof CaList>;

export const InitRootRequest = Type.Object(
  {
    algorithm: Type.Optional(enumOf(PKI_CA_ALGORITHMS)),
    common_name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    validity_days: Type.Optional(Type.Integer({ minimum: 30, maximum: 36_500 })),
    key_store: Type.Optional(enumOf(['kms', 'hsm'] as const, 'kms (default): a KMS system key, exportable to take the root offline; hsm: generated in the PKCS#11 token of the seal (seal.provider pkcs11), where it signs and which it never leaves')),
  },
  { additionalProperties: false },
);
export type InitRootRequest = Static<typeof InitRootRequest>;
export const InitRootResponse = Type.Object({ root: CertificateAuthority, intermediate: CertificateAuthority });
export type InitRootResponse = Static<typeof InitRootResponse>;

export const RotateIntermediateRequest = Type.Object(
  { algorithm: Type.Optional(enumOf(PKI_CA_ALGORITHMS)), validity_days: Type.Optional(Type.Integer({ minimum: 30, maximum: 36_500 })) },
  { additionalProperties: false },
);
export type RotateIntermediateRequest = Static<typeof RotateIntermediateRequest>;
export const InstallCertificateRequest = Type.Object({ certificate_pem: Type.String({ minLength: 1, maxLength: 65_536 }) }, { additionalProperties: false });
export const SignIntermediateRequest = Type.Object({ csr: Type.String({ minLength: 1, maxLength: 65_536 }), validity_days: Type.Integer({ minimum: 30, maximum: 36_500, default: 1825 }) }, { additionalProperties: false });
export const ExportRootKeyRequest = Type.Object(
  {
    passphrase: Type.String({ minLength: 16, maxLength: 1024, description: 'encrypts the PKCS#8 PEM (PBES2, AES-256-CBC); at least 16 characters' }),
    remove: Type.Boolean({ default: true, description: 'erase the key from the server: the root can then sign only where the file is' }),
  },
  { additionalProperties: false },
);
export const ExportRootKeyResponse = Type.Object({ encrypted_private_key_pem: Type.String(), removed: Type.Boolean() });
export type ExportRootKeyResponse = Static<typeof ExportRootKeyResponse>;

const issueFields = {
  template: Type.String({ pattern: '^[a-z0-9-]{1,32}$', default: 'service' }),
  service: label('{service}: the service identity the certificate names'),
  environment: Type.Optional(label('{environment}; the configured pki.environment when omitted')),
  namespace: Type.Optional(label('{namespace}; `default` when omitted')),
  department: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\x00-\\x1f\\x7f]+$', description: '{department}: the OU (no control characters)' })),
  ip: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 16, description: '{service_ip}: IP SANs' })),
  extra_dns: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32, description: 'further DNS names, if the policy allows them' })),
  ttl_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 825 })),
};

export const IssueCertificateRequest = Type.Object({ ...issueFields, key_algorithm: Type.Optional(enumOf(PKI_LEAF_KEY_ALGORITHMS)) }, { additionalProperties: false });
export type IssueCertificateRequest = Static<typeof IssueCertificateRequest>;
export const SignCertificateRequest = Type.Object({ ...issueFields, csr: Type.String({ minLength: 1, maxLength: 65_536, description: 'PKCS#10, PEM' }) }, { additionalProperties: false });
export type SignCertificateRequest = Static<typeof SignCertificateRequest>;

export const IssuedCertificate = Type.Object({
  serial: Type.String({ pattern: '^[0-9a-f]+$' }),
  ca_id: Type.String(),
  certificate_pem: Type.String(),
  chain_pem: Type.String({ description: 'the certificate, then the intermediate above it (not the root)' }),
  private_key_pem: Type.Optional(Type.String({ description: 'only from /issue, only in this answer: the server keeps no copy' })),
  not_before: dt,
  not_after: dt,
  subject_dn: Type.String(),
  sans: Type.Array(Type.String()),
});
export type IssuedCertificate = Static<typeof IssuedCertificate>;

export const Certificate = Type.Object({
  serial: Type.String(),
  ca_id: Type.String(),
  subject_dn: Type.String(),
  sans: Type.Array(Type.String(), { description: '`dns:...`, `ip:...`, `uri:...`' }),
  template: Type.String(),
  service: nullable(Type.String()),
  requested_by: Type.String(),
  acme_order_id: nullable(Type.String()),
  not_before: dt,
  not_after: dt,
  status: enumOf(['valid', 'revoked', 'expired'] as const),
  revoked_at: nullable(dt),
  revocation_reason: nullable(enumOf(PKI_REVOCATION_REASONS)),
  fingerprint_sha256: Type.String(),
  certificate_pem: Type.String(),
});
export type Certificate = Static<typeof Certificate>;

export const CertificateList = Type.Object({ certificates: Type.Array(Certificate), next_cursor: nullable(Type.String()) });
export type CertificateList = Static<typeof CertificateList>;
export const ListCertificatesQuery = Type.Object(
  {
    service: Type.Optional(Type.String({ maxLength: 63 })),
    ca_id: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(enumOf(['valid', 'revoked', 'expired'] as const)),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9a-f]{1,64}$' })),
  },
  { additionalProperties: false },
);
export type ListCertificatesQuery = Static<typeof ListCertificatesQuery>;
export const SerialParams = Type.Object({ serial: Type.String({ pattern: '^[0-9a-fA-F]{1,64}$' }) });
export const RevokeRequest = Type.Object({ reason: Type.Optional(enumOf(PKI_REVOCATION_REASONS, 'RFC 5280 CRLReason; unspecified when omitted')) }, { additionalProperties: false });
export type PkiRevocationReason = (typeof PKI_REVOCATION_REASONS)[number];
