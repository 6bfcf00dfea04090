/**
 * Request/response field encryption between two principals: the SDK client seals a request's sensitive fields, a
 * receiver (another service identity with its own KMS access) opens them and seals its answer's; each field is bound
 * to its exchange, so it cannot be replayed in another request or reflected into a response.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { PalisadeError } from '@palisade/core';
import { startServer, type TestServer } from '../../../server/src/testing/harness.js';
import type { FieldEncryptor } from './field-encryptor.js';
import { ENCRYPTED_FIELDS_HEADER, openBody, sealBody, type Exchange } from './body.js';
import type { ClassificationSchema } from './schema.js';

const REQUEST: ClassificationSchema = { fields: { ssn: { classification: 'restricted', data_type: 'pii' }, 'contacts[*].phone': { classification: 'confidential', data_type: 'pii' } } };
const RESPONSE: ClassificationSchema = { fields: { diagnosis: { classification: 'restricted', data_type: 'phi' } } };

let server: TestServer;
let sender: FieldEncryptor;
let receiverApp: FastifyInstance;

const exchange = (direction: Exchange['direction'], id: string): Exchange => ({ direction, method: 'POST', path: '/v1/patients', id });

beforeAll(async () => {
  server = await startServer('sqlite');
  const kek = (await server.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: 'app/patients', classification: 'restricted' })).key_id;
  const keys = { confidential: kek, restricted: kek };
  sender = server.client.fields({ keys });
  // The receiver is another principal: a service identity that may encrypt and decrypt, nothing more.
  const svc = await server.client.identity.createService({ name: 'patients-api', roles: ['agent'] });
  const key = await server.client.identity.createServiceApiKey(svc.id, { name: 'runtime' });
  const receiver = server.clientWith(key.token).fields({ keys });
  receiverApp = Fastify();
  receiverApp.setErrorHandler((e: unknown, _req, reply) => {
    const pe = e instanceof PalisadeError ? e : null;
    void reply.code(pe?.status ?? 500).send({ code: pe?.code ?? 'internal', detail: (e as Error).message });
  });
  receiverApp.post('/v1/patients', async (req) => {
    const id = String(req.headers['x-request-id']);
    const body = await openBody(receiver, req.body as { name: string; ssn: string; contacts: Array<{ phone: string }> }, REQUEST, exchange('request', id));
    const answer = { patient: body.name, ssn_last4: body.ssn.slice(-4), phones: body.contacts.length, diagnosis: `checked ${body.contacts.map((c) => c.phone).join(' ')}` };
    return (await sealBody(receiver, answer, RESPONSE, exchange('response', id))).body;
  });
});
afterAll(async () => {
  await receiverApp?.close();
  await server?.close();
});

describe('request and response field encryption', () => {
  const payload = { name: 'Ada', ssn: '123-45-6789', contacts: [{ phone: '+44 20 7946 0000' }, { phone: '+44 20 7946 0001' }] };

  it('the client seals, the receiver opens and seals its answer, the client opens it; nothing sensitive travels in clear', async () => {
    const sealed = await sealBody(sender, payload, REQUEST, exchange('request', 'req-1'));
    expect(sealed.headers).toEqual({ [ENCRYPTED_FIELDS_HEADER]: 'ssn,contacts[*].phone' });
    expect(JSON.stringify(sealed.body)).not.toContain('6789');
    expect(JSON.stringify(sealed.body)).not.toContain('7946');
    expect(sealed.body.name).toBe('Ada'); // not in the schema: in clear
    const r = await receiverApp.inject({ method: 'POST', url: '/v1/patients', headers: { 'x-request-id': 'req-1', ...sealed.headers }, payload: sealed.body });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.body).not.toContain('checked');
    const answer = await openBody(sender, r.json() as { diagnosis: string; ssn_last4: string }, RESPONSE, exchange('response', 'req-1'));
    expect(answer).toEqual({ patient: 'Ada', ssn_last4: '6789', phones: 2, diagnosis: 'checked +44 20 7946 0000 +44 20 7946 0001' });
  });

  it('a sealed body replayed under another request id, a field reflected into a response, and a field sent in clear are refused', async () => {
    const sealed = await sealBody(sender, payload, REQUEST, exchange('request', 'req-2'));
    const replayed = await receiverApp.inject({ method: 'POST', url: '/v1/patients', headers: { 'x-request-id': 'req-3' }, payload: sealed.body });
    expect(replayed.statusCode).toBe(400);
    expect(replayed.json().code).toBe('PAL_FIELD_DECRYPT_FAILED');
    const clear = await receiverApp.inject({ method: 'POST', url: '/v1/patients', headers: { 'x-request-id': 'req-4' }, payload });
    expect(clear.statusCode).toBe(400);
    expect(clear.json().code).toMatch(/^PAL_FIELD_/);
    // A request's field put where the response's is expected: bound to the other direction (and path), refused.
    const reflected = { diagnosis: (sealed.body as { ssn: unknown }).ssn };
    await expect(openBody(sender, reflected, RESPONSE, exchange('response', 'req-2'))).rejects.toMatchObject({ code: 'PAL_FIELD_DECRYPT_FAILED' });
  });
});
