/**
 * Field-level request and response encryption at the gateway (the seed's APISecurityMiddleware), with the SDK's own
 * machinery: a client seals the route's request fields with `sealBody` and the gateway opens them for the upstream;
 * the upstream answers in clear and the gateway seals the route's response fields for the client's `openBody`. Each
 * field is bound to the exchange (direction, method, path, request id), so it cannot be moved to another request.
 *
 * Data keys come from the KMS in process, cached by the FieldEncryptor as in any SDK client (so a busy route asks the
 * KMS once per data key, not per field); each KMS call is audited as the API's would be, with the gateway as actor.
 */
import { FieldEncryptor, openBody, sealBody, type FieldKms } from '@palisade/sdk';
import type { Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { KmsService } from '../kms/service.js';
import type { EncryptedData } from '@palisade/core';
import type { FieldSpec, GatewayFields } from './gateway.js';

const ACTOR = { principal_id: 'system:gateway', api_key_id: null, source_ip: null };

/** The KMS as the FieldEncryptor asks for it, each call in its own audited transaction. */
function inProcessKms(kms: KmsService, storage: Storage, ledger: AuditLedger): FieldKms {
  return {
    async dataKey(keyId, opts) {
      return storage.transact(async (tx) => {
        const out = await kms.dataKey({ db: tx }, keyId, 32, opts.context);
        await ledger.append(tx, { type: 'kms.data_key', actor: ACTOR, outcome: 'success', action: 'kms:data-key', resource: { type: 'kms_key', id: keyId }, error_code: null, details: { key_version: out.ciphertext.key_version, bytes: 32 } });
        return { plaintext: Buffer.from(out.plaintext, 'base64'), ciphertext: out.ciphertext };
      });
    },
    async decrypt(keyId: string, data: EncryptedData, context?: Record<string, unknown>) {
      return storage.transact(async (tx) => {
        const out = await kms.decrypt(tx, keyId, data, context);
        await ledger.append(tx, { type: 'kms.decrypt', actor: ACTOR, outcome: 'success', action: 'kms:decrypt', resource: { type: 'kms_key', id: keyId }, error_code: null, details: { key_version: data.key_version } });
        return out;
      });
    },
    async getKey(keyId) {
      return { version: (await kms.get(storage.db, keyId, false)).version };
    },
  };
}

export function gatewayFields(o: { kms: KmsService; storage: Storage; ledger: AuditLedger; clock: () => Date }): GatewayFields {
  const fieldKms = inProcessKms(o.kms, o.storage, o.ledger);
  // One encryptor (and so one data-key cache) per set of KEKs routes name; names resolve to key ids once, so the
  // envelopes name the key as any SDK client would.
  const encryptors = new Map<string, Promise<FieldEncryptor>>();
  const idOf = async (ref: string | undefined) => (ref === undefined ? undefined : o.kms.keyIdOf(o.storage.db, ref));
  const encryptor = (keys: FieldSpec['keys']) => {
    const id = JSON.stringify([keys.internal, keys.confidential, keys.restricted]);
    let e = encryptors.get(id);
    if (!e) {
      e = Promise.all([idOf(keys.internal), idOf(keys.confidential), idOf(keys.restricted)]).then(
        ([internal, confidential, restricted]) => new FieldEncryptor({ kms: fieldKms, keys: { ...(internal ? { internal } : {}), ...(confidential ? { confidential } : {}), ...(restricted ? { restricted } : {}) }, clock: o.clock, form: 'compact' }),
      );
      e.catch(() => encryptors.delete(id)); // a key created later is found on the next request
      encryptors.set(id, e);
    }
    return e;
  };
  return {
    open: async (body, spec, exchange) => openBody(await encryptor(spec.keys), body, { fields: spec.fields }, exchange),
    seal: async (body, spec, exchange) => sealBody(await encryptor(spec.keys), body, { fields: spec.fields }, exchange),
  };
}
