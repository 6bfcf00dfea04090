import type {
  Approval,
  ExportedKey,
  ImportKeyRequest,
  WrappingKey,
  BatchDecryptResponse,
  BatchEncryptResponse,
  CreateKeyRequest,
  DataKeyResponse,
  DecryptRequest,
  EncryptedData,
  HmacResponse,
  KeyList,
  KeyMetadata,
  ListKeysQuery,
  PlaintextResponse,
  PublicKeyResponse,
  SignResponse,
  UpdateKeyRequest,
  VerifyResponse,
} from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

type Bytes = Uint8Array | string;
type Ctx = Record<string, unknown> | undefined;
const b64 = (v: Bytes) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v)).toString('base64');
const seg = (id: string) => encodeURIComponent(id);

/** The KMS API, typed from the server's own schemas. Byte arguments accept Uint8Array or UTF-8 strings. */
export class KmsClient {
  constructor(private readonly t: Transport) {}

  createKey(req: CreateKeyRequest): Promise<KeyMetadata> {
    return this.t.send('POST', '/v1/keys', req);
  }
  listKeys(q: ListKeysQuery = {}): Promise<KeyList> {
    return this.t.send('GET', withQuery('/v1/keys', q));
  }
  /** Every key, following cursors. */
  async *allKeys(q: Omit<ListKeysQuery, 'cursor'> = {}): AsyncGenerator<KeyMetadata> {
    let cursor: string | undefined;
    do {
      const page = await this.listKeys({ ...q, ...(cursor ? { cursor } : {}) });
      yield* page.keys;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }
  getKey(keyId: string): Promise<KeyMetadata> {
    return this.t.send('GET', `/v1/keys/${seg(keyId)}`);
  }
  updateKey(keyId: string, req: UpdateKeyRequest): Promise<KeyMetadata> {
    return this.t.send('PATCH', `/v1/keys/${seg(keyId)}`, req);
  }
  /** Start moving every key still under an older KEK version to the current one; follow `getKey(kek).rewrap`. */
  rewrapAll(): Promise<{ pending: number }> {
    return this.t.send('POST', '/v1/keys/rewrap-all');
  }
  /** The public key to wrap keys for import with (see `wrapForTransfer` in @palisade/core). */
  wrappingKey(): Promise<WrappingKey> {
    return this.t.send('GET', '/v1/keys/import/wrapping-key');
  }
  /** Bring your own key: `wrapped_key` = base64 of `wrapForTransfer(wrappingKey().public_key_pem, material)`. */
  importKey(req: ImportKeyRequest): Promise<KeyMetadata> {
    return this.t.send('POST', '/v1/keys/import', req);
  }
  /** An exportable key's version, wrapped for the receiver (open it with `unwrapTransfer` and the private key). */
  exportKey(keyId: string, publicKeyPem: string, version?: number): Promise<ExportedKey> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/export`, { public_key_pem: publicKeyPem, ...(version ? { version } : {}) });
  }
  /** The rotated key, or (when the key type's policy requires approval) the approval request to decide. */
  rotateKey(keyId: string): Promise<KeyMetadata | Approval> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/rotate`);
  }
  disableKey(keyId: string): Promise<KeyMetadata> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/disable`);
  }
  enableKey(keyId: string): Promise<KeyMetadata> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/enable`);
  }
  /** Scheduled (KeyMetadata), or with `force` on a version still in use, the approval request to decide. */
  scheduleDestruction(keyId: string, pendingDays: number, version?: number, opts: { force?: boolean } = {}): Promise<KeyMetadata | Approval> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/schedule-destruction`, { pending_days: pendingDays, ...(version ? { version } : {}), ...(opts.force ? { force: true } : {}) });
  }
  cancelDestruction(keyId: string, version?: number): Promise<KeyMetadata> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/cancel-destruction`, version ? { version } : {});
  }
  encrypt(keyId: string, plaintext: Bytes, context?: Ctx): Promise<EncryptedData> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/encrypt`, { plaintext: b64(plaintext), ...(context ? { context } : {}) });
  }
  async decrypt(keyId: string, data: EncryptedData, context?: Ctx): Promise<Buffer> {
    const body: DecryptRequest = { ...data, ...(context ? { context } : {}) };
    const r = await this.t.send<PlaintextResponse>('POST', `/v1/keys/${seg(keyId)}/decrypt`, body);
    return Buffer.from(r.plaintext, 'base64');
  }
  encryptBatch(keyId: string, items: Array<{ plaintext: Bytes; context?: Ctx }>): Promise<BatchEncryptResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/encrypt/batch`, { items: items.map((i) => ({ plaintext: b64(i.plaintext), ...(i.context ? { context: i.context } : {}) })) });
  }
  decryptBatch(keyId: string, items: Array<EncryptedData & { context?: Ctx }>): Promise<BatchDecryptResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/decrypt/batch`, { items });
  }
  async dataKey(keyId: string, opts: { context?: Ctx; bytes?: number } = {}): Promise<{ plaintext: Buffer; ciphertext: EncryptedData }> {
    const r = await this.t.send<DataKeyResponse>('POST', `/v1/keys/${seg(keyId)}/data-key`, { ...(opts.context ? { context: opts.context } : {}), ...(opts.bytes ? { bytes: opts.bytes } : {}) });
    return { plaintext: Buffer.from(r.plaintext, 'base64'), ciphertext: r.ciphertext };
  }
  rewrap(keyId: string, data: EncryptedData, context?: Ctx): Promise<EncryptedData> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/rewrap`, { ...data, ...(context ? { context } : {}) });
  }
  sign(keyId: string, message: Bytes): Promise<SignResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/sign`, { message: b64(message) });
  }
  verify(keyId: string, message: Bytes, signature: string, keyVersion?: number): Promise<VerifyResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/verify`, { message: b64(message), signature, ...(keyVersion ? { key_version: keyVersion } : {}) });
  }
  hmac(keyId: string, data: Bytes): Promise<HmacResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/hmac`, { data: b64(data) });
  }
  verifyHmac(keyId: string, data: Bytes, mac: string, keyVersion?: number): Promise<VerifyResponse> {
    return this.t.send('POST', `/v1/keys/${seg(keyId)}/hmac/verify`, { data: b64(data), mac, ...(keyVersion ? { key_version: keyVersion } : {}) });
  }
  publicKey(keyId: string, version?: number): Promise<PublicKeyResponse> {
    return this.t.send('GET', `/v1/keys/${seg(keyId)}/public-key${version ? `?version=${version}` : ''}`);
  }
}
