import { AuditClient } from './audit.js';
import { KmsClient } from './kms.js';
import { SysClient } from './sys.js';
import { ApprovalsClient } from './approvals.js';
import { PkiClient } from './pki.js';
import { IdentityClient } from './identity.js';
import { Transport, type ClientOptions } from './transport.js';
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
export { Transport, PalisadeApiError, type ClientOptions } from './transport.js';
export { spkiPin } from './pins.js';

/** The Palisade client: `new PalisadeClient({ addr, token, ca }).kms.encrypt(...)`. */
export class PalisadeClient {
  readonly transport: Transport;
  readonly kms: KmsClient;
  readonly audit: AuditClient;
  readonly sys: SysClient;
  readonly approvals: ApprovalsClient;
  readonly pki: PkiClient;
  readonly identity: IdentityClient;

  constructor(opts: ClientOptions) {
    this.transport = new Transport(opts);
    this.kms = new KmsClient(this.transport);
    this.audit = new AuditClient(this.transport);
    this.sys = new SysClient(this.transport);
    this.approvals = new ApprovalsClient(this.transport);
    this.pki = new PkiClient(this.transport);
    this.identity = new IdentityClient(this.transport);
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
