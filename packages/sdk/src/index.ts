import { AuditClient } from './audit.js';
import { KmsClient } from './kms.js';
import { SysClient } from './sys.js';
import { ApprovalsClient } from './approvals.js';
import { PkiClient } from './pki.js';
import { IdentityClient } from './identity.js';
import { AuthzClient } from './authz.js';
import { GatewayClient } from './gateway.js';
import { FieldEncryptor, type FieldEncryptorOptions } from './fields/index.js';
import { APPROVAL_HEADER, Transport, type ClientOptions } from './transport.js';
import type { ApiKeyInfo, ApiKeyList, CreateApiKeyRequest, CreatedApiKey, WhoAmI } from '@palisade/core';

export { KmsClient } from './kms.js';
export { AuditClient } from './audit.js';
export { SysClient } from './sys.js';
export { ApprovalsClient, isApproval } from './approvals.js';
export { PkiClient } from './pki.js';
export {
  IdentityClient,
  type User,
  type UserList,
  type CreateUserRequest,
  type UpdateUserRequest,
  type ListUsersQuery,
  type ServiceIdentity,
  type ServiceList,
  type CreateServiceRequest,
  type UpdateServiceRequest,
  type CreateServiceApiKeyRequest,
  type Group,
  type OAuthClientCredentials,
  type TokenResponse,
  type IntrospectionResponse,
  type Jwks,
  type DiscoveryDocument,
} from './identity.js';
export {
  AuthzClient,
  policyErrors,
  type ListBindingsQuery,
  type AuthzRole,
  type AuthzRoleList,
  type CreateRoleRequest,
  type UpdateRoleRequest,
  type AuthzBinding,
  type AuthzBindingList,
  type CreateBindingRequest,
  type GrantRequest,
  type PolicyVersion,
  type PolicyVersionList,
  type PolicyValidation,
  type PolicyProblem,
  type ExplainRequest,
  type Explanation,
  type DecisionStep,
} from './authz.js';
export { GatewayClient, type CreateSigningKeyRequest, type CreatedSigningKey, type SigningKeyInfo, type SigningKeyList, type ListSigningKeysQuery } from './gateway.js';
export { Transport, PalisadeApiError, APPROVAL_HEADER, type ClientOptions } from './transport.js';
export { spkiPin } from './pins.js';
export * from './fields/index.js';
export { BlindIndexer, BLIND_INDEX_CONTEXT_PURPOSE, BLIND_INDEX_DEFAULT_BITS, BLIND_INDEX_MIN_BITS, BLIND_INDEX_MAX_BITS, normaliseForIndex, type BlindIndexKms, type BlindIndexDefinition, type BlindIndexNormaliser, type BlindIndexEncoding } from './fields/blind-index.js';
export { FieldEncryptionPlugin, type FieldEncryptionPluginOptions, type TableFields, type EncryptedColumn, type BlindIndexColumn, type BlindIndexSource } from './fields/kysely.js';
export { sealBody, openBody, ENCRYPTED_FIELDS_HEADER, type Exchange } from './fields/body.js';
export { RequestSigner, type RequestSignerOptions, type RequestToSign } from './signing.js';

/** The Palisade client: `new PalisadeClient({ addr, token, ca }).kms.encrypt(...)`. */
export class PalisadeClient {
  readonly transport: Transport;
  readonly kms: KmsClient;
  readonly audit: AuditClient;
  readonly sys: SysClient;
  readonly approvals: ApprovalsClient;
  readonly pki: PkiClient;
  readonly identity: IdentityClient;
  readonly authz: AuthzClient;
  /** The API gateway's request-signing keys. */
  readonly gateway: GatewayClient;

  /** From options, or on an existing transport (see withApproval()). */
  constructor(opts: ClientOptions | Transport) {
    this.transport = opts instanceof Transport ? opts : new Transport(opts);
    this.kms = new KmsClient(this.transport);
    this.audit = new AuditClient(this.transport);
    this.sys = new SysClient(this.transport);
    this.approvals = new ApprovalsClient(this.transport);
    this.pki = new PkiClient(this.transport);
    this.identity = new IdentityClient(this.transport);
    this.authz = new AuthzClient(this.transport);
    this.gateway = new GatewayClient(this.transport);
  }

  /**
   * This client, its requests carrying `Palisade-Approval: <approvalId>`: for repeating an operation that answered
   * 403 PAL_APPROVAL_REQUIRED (its `approval_id`) once another principal approved it. An approval works for one
   * request. It shares this client's connections: its close() does nothing, this client's close() ends them.
   */
  withApproval(approvalId: string): PalisadeClient {
    return new PalisadeClient(this.transport.withHeaders({ [APPROVAL_HEADER]: approvalId }));
  }

  /** Field-level encryption with this client's KMS: `client.fields({ keys: { confidential: kekId, restricted: kekId } })`. Keep one per process so its DEK cache works. */
  fields(opts: Omit<FieldEncryptorOptions, 'kms'>): FieldEncryptor {
    return new FieldEncryptor({ ...opts, kms: this.kms });
  }

  whoami(): Promise<WhoAmI> {
    return this.transport.send('GET', '/v1/auth/whoami');
  }
  createApiKey(req: CreateApiKeyRequest): Promise<CreatedApiKey> {
    return this.transport.send('POST', '/v1/auth/api-keys', req);
  }
  listApiKeys(): Promise<ApiKeyList> {
    return this.transport.send('GET', '/v1/auth/api-keys');
  }
  revokeApiKey(id: string): Promise<ApiKeyInfo> {
    return this.transport.send('DELETE', `/v1/auth/api-keys/${encodeURIComponent(id)}`);
  }
  close(): void {
    this.transport.close();
  }
}
export { checkpointChecker, verifyAuditExport, type VerifyAuditExportOptions } from './verify.js';
