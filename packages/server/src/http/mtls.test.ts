/**
 * mTLS end to end on the real runtime (HTTPS on loopback): client certificates made in the test from the bootstrap
 * CA (the listener's trust root) or a foreign one, authenticated by the pipeline through the SDK's cert/key options.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeApiError, PalisadeClient } from '@palisade/sdk';
import type { WhoAmI } from '@palisade/core';
import { startServer, OWNER_TOKEN, type TestServer } from '../testing/harness.js';
import { loadCa, makeCa, makeLeaf, type LeafOptions, type TestCa } from '../testing/certs.js';

const DAY_MS = 86_400_000;
const AGENT = 'spiffe://test.palisade/agents/planner';

async function bootstrapCa(s: TestServer): Promise<TestCa> {
  const dir = join(s.dataDir, 'tls');
  return loadCa(await readFile(join(dir, 'ca.pem'), 'utf8'), await readFile(join(dir, 'ca-key.pem'), 'utf8'));
}

describe('mTLS client authentication (client_auth: optional)', () => {
  let s: TestServer;
  let ca: TestCa;
  const clients: PalisadeClient[] = [];
  const withCert = async (issuer: TestCa, opts: LeafOptions, token?: string) => {
    const leaf = await makeLeaf(issuer, { eku: ['clientAuth'], ...opts });
    const c = new PalisadeClient({ addr: s.addr, ca: s.ca, cert: leaf.cert, key: leaf.key, ...(token ? { token } : {}) });
    clients.push(c);
    return c;
  };
  /** The refusal's status, code and reason. */
  const refused = (p: Promise<unknown>) =>
    p.then(
      () => 'accepted',
      (e: unknown) => (e instanceof PalisadeApiError ? `${e.status} ${e.code} ${String(e.problem.reason ?? '')}`.trim() : String(e)),
    );

  beforeAll(async () => {
    s = await startServer('sqlite', { mutate: (c) => (c.tls.client_auth.identities = { 'spiffe://test.palisade/agents/*': ['auth:self:read'] }) });
    ca = await bootstrapCa(s);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s?.close();
  });

  it('a valid certificate is its SPIFFE id with the configured permissions, and nothing more', async () => {
    const c = await withCert(ca, { uris: [AGENT] });
    expect(await c.whoami()).toEqual<WhoAmI>({ principal_id: AGENT, api_key_id: null, permissions: ['auth:self:read'] });
    expect(await refused(c.kms.listKeys())).toBe('403 PAL_FORBIDDEN no role, binding or rule grants kms:keys:list');
    const unlisted = await withCert(ca, { uris: ['spiffe://test.palisade/services/other'] });
    expect(await refused(unlisted.whoami())).toBe('403 PAL_FORBIDDEN no role, binding or rule grants auth:self:read'); // least privilege: no identity entry, no permission
  });

  it('refuses expired, foreign, EKU-less and identity-less certificates with a 401 naming the reason, audited', async () => {
    const now = Date.now();
    expect(await refused((await withCert(ca, { uris: [AGENT], notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) })).whoami())).toBe('401 PAL_AUTH_INVALID expired');
    expect(await refused((await withCert(await makeCa('Foreign CA'), { uris: [AGENT] })).whoami())).toBe('401 PAL_AUTH_INVALID untrusted_issuer');
    expect(await refused((await withCert(ca, { uris: [AGENT], eku: ['serverAuth'] })).whoami())).toBe('401 PAL_AUTH_INVALID no_client_auth_eku');
    expect(await refused((await withCert(ca, { names: ['planner.test'] })).whoami())).toBe('401 PAL_AUTH_INVALID no_identity');
    const failed = (await s.rt.ledger.query({ type: 'auth.failed', limit: 10 })).events;
    expect(failed.map((e) => e.details?.reason)).toEqual(expect.arrayContaining(['expired', 'untrusted_issuer', 'no_client_auth_eku', 'no_identity']));
    expect(failed.find((e) => e.details?.reason === 'expired')).toMatchObject({ outcome: 'denied', error_code: 'PAL_AUTH_INVALID', action: 'auth:self:read', details: { method: 'client_certificate' } });
  });

  it('an Authorization header wins over the certificate; neither is PAL_AUTH_REQUIRED', async () => {
    const both = await withCert(ca, { uris: [AGENT] }, OWNER_TOKEN);
    expect((await both.whoami()).principal_id).toBe('owner');
    const none = new PalisadeClient({ addr: s.addr, ca: s.ca });
    clients.push(none);
    expect(await refused(none.whoami())).toBe('401 PAL_AUTH_REQUIRED');
  });
});

describe('client_auth: require and off', () => {
  const handshake = (addr: string, ca: string, client?: { cert: string; key: string }) =>
    new Promise<string>((resolve) => {
      const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
      const socket = connect({ host, port, ca, ...client });
      // TLS 1.3: the server's verdict on the client certificate arrives after the client's Finished, so wait for data or an error
      socket.once('secureConnect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      socket.once('data', (d: Buffer) => {
        resolve(d.toString('latin1').split('\r\n')[0]!);
        socket.destroy();
      });
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      socket.once('close', () => resolve('closed without an answer'));
    });

  it('require: no certificate or a foreign one fails the handshake (even /healthz); a trusted one is served', async () => {
    const s = await startServer('sqlite', { env: { PALISADE_TLS_CLIENT_AUTH: 'require' } });
    try {
      const ca = await bootstrapCa(s);
      expect(await handshake(s.addr, s.ca)).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET/);
      const foreign = await makeLeaf(await makeCa('Foreign CA'), { uris: [AGENT], eku: ['clientAuth'] });
      // the server's alert (unknown CA) may reach the client as an error or as a bare close: either way, no HTTP answer
      expect(await handshake(s.addr, s.ca, foreign)).toMatch(/UNKNOWN_CA|ECONNRESET|closed without an answer/);
      const mine = await makeLeaf(ca, { uris: [AGENT], eku: ['clientAuth'] });
      expect(await handshake(s.addr, s.ca, mine)).toBe('HTTP/1.1 200 OK');
    } finally {
      await s.close();
    }
  });

  it('off: no certificate is asked for, so one cannot authenticate', async () => {
    const s = await startServer('sqlite', { env: { PALISADE_TLS_CLIENT_AUTH: 'off' }, mutate: (c) => (c.tls.client_auth.identities = { 'spiffe://**': ['*'] }) });
    try {
      const mine = await makeLeaf(await bootstrapCa(s), { uris: [AGENT], eku: ['clientAuth'] });
      const c = new PalisadeClient({ addr: s.addr, ca: s.ca, cert: mine.cert, key: mine.key });
      const code = await c.whoami().then(
        () => 'accepted',
        (e: PalisadeApiError) => e.code,
      );
      c.close();
      expect(code).toBe('PAL_AUTH_REQUIRED');
    } finally {
      await s.close();
    }
  });
});
