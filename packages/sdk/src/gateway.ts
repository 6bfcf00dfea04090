import type { CreatedSigningKey, CreateSigningKeyRequest, ListSigningKeysQuery, SigningKeyInfo, SigningKeyList } from '@palisade/core';
export type { CreatedSigningKey, CreateSigningKeyRequest, ListSigningKeysQuery, SigningKeyInfo, SigningKeyList } from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

// The request and answer shapes are in @palisade/core (shared with the server).

const seg = encodeURIComponent;

/**
 * The API gateway's request-signing keys: HMAC secrets of a principal, with which its agents sign requests
 * (`RequestSigner`) and the gateway verifies them, accepting a key's signatures only from its own principal.
 *
 *   const { id, secret } = await client.gateway.createSigningKey({ name: 'agent-7' });
 *   const signer = new RequestSigner({ keyId: id, secret: Buffer.from(secret, 'base64url') });
 */
export class GatewayClient {
  constructor(private readonly t: Transport) {}

  /**
   * A new signing key for you (or, with gateway:signing-keys:manage, for `principal_id`). Its `secret` (32 bytes,
   * base64url) is in this answer only: the server keeps it wrapped and never shows it again.
   */
  createSigningKey(req: CreateSigningKeyRequest): Promise<CreatedSigningKey> {
    return this.t.send('POST', '/v1/gateway/signing-keys', req);
  }
  /** Your signing keys (never their secrets); with gateway:signing-keys:manage every principal's, or `principal_id`'s. */
  listSigningKeys(q: ListSigningKeysQuery = {}): Promise<SigningKeyList> {
    return this.t.send('GET', withQuery('/v1/gateway/signing-keys', q));
  }
  /** Revokes a signing key of yours (another principal's with gateway:signing-keys:manage); the gateway refuses its signatures from then on. */
  revokeSigningKey(id: string): Promise<SigningKeyInfo> {
    return this.t.send('DELETE', `/v1/gateway/signing-keys/${seg(id)}`);
  }
}
