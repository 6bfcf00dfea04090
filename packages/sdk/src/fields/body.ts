/**
 * Request and response field encryption (the seed's APISecurityMiddleware): the sensitive fields of a JSON body are
 * encrypted by the sender and decrypted by the receiver with the field-level machinery, so a TLS-terminating proxy,
 * a request log or a queue in between sees envelopes, not values.
 *
 * Each field is bound to the exchange: its direction, method, path and an id both sides know (the request id, or
 * the signature's nonce). A field lifted from one request cannot be replayed in another, nor reflected from a
 * request into a response. The sender names the encrypted paths in `Palisade-Encrypted-Fields`; the receiver
 * decrypts by its own schema for the route (never by what the header claims), and refuses a body where a field
 * its schema encrypts arrived in clear.
 */
import type { FieldEncryptor } from './field-encryptor.js';
import type { ClassificationSchema } from './schema.js';

export const ENCRYPTED_FIELDS_HEADER = 'palisade-encrypted-fields';

/** What both sides bind the fields of one request (or its response) to. */
export interface Exchange {
  direction: 'request' | 'response';
  method: string;
  /** The path without the query (`/v1/patients`). */
  path: string;
  /** An id both sides know: the X-Request-Id the client sets, or the request signature's nonce. */
  id: string;
}

function bindingOf(x: Exchange): string {
  return `${x.direction} ${x.method.toUpperCase()} ${x.path} ${x.id}`;
}

/** The body with the schema's fields encrypted, and the header naming them. */
export async function sealBody<T>(encryptor: Pick<FieldEncryptor, 'encryptFields'>, body: T, schema: ClassificationSchema, exchange: Exchange): Promise<{ body: T; headers: Record<string, string> }> {
  const sealed = await encryptor.encryptFields(body, schema, { recordId: bindingOf(exchange), form: 'compact' });
  const paths = Object.entries(schema.fields)
    .filter(([, rule]) => rule.classification !== 'public')
    .map(([path]) => path);
  return { body: sealed, headers: { [ENCRYPTED_FIELDS_HEADER]: paths.join(',') } };
}

/** The body with the schema's fields decrypted; PAL_FIELD_* errors when a field is missing its envelope, moved or tampered. */
export async function openBody<T>(encryptor: Pick<FieldEncryptor, 'decryptFields'>, body: T, schema: ClassificationSchema, exchange: Exchange): Promise<T> {
  return encryptor.decryptFields(body, schema, { recordId: bindingOf(exchange) });
}
