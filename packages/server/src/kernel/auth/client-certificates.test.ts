import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPalisadeError } from '@palisade/core';
import { makeCa, makeLeaf, type TestCa } from '../../testing/certs.js';
import { normalizeSerial, peerCertificateChain, spiffeGlob, X509ClientAuthenticator, type RevocationSource } from './client-certificates.js';

const DAY_MS = 86_400_000;
const ID = 'spiffe://test.palisade/agents/planner';

/** The reason a chain is refused, or 'accepted'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    if (isPalisadeError(e) && e.code === 'PAL_AUTH_INVALID') return String(e.extensions.reason);
    throw e;
  }
}

class FakeRevocations implements RevocationSource {
  serials = new Set<string>();
  reads = 0;
  failing = false;
  async revokedSerials(): Promise<Set<string>> {
    this.reads++;
    if (this.failing) throw new Error('CRL store unreachable');
    return new Set(this.serials);
  }
}

describe('X509ClientAuthenticator', () => {
  let root: TestCa;
  let intermediate: TestCa;
  let foreign: TestCa;
  let now: number;
  let revocations: FakeRevocations;
  let auth: X509ClientAuthenticator;
  const der = (pem: string) => new X509Certificate(pem).raw;

  beforeAll(async () => {
    root = await makeCa('Test Root');
    intermediate = await makeCa('Test Intermediate', { issuer: root });
    foreign = await makeCa('Someone Else');
  });

  const setup = (identities: Record<string, string[]> = { 'spiffe://test.palisade/agents/*': ['auth:self:read'], 'spiffe://test.palisade/**': ['kms:keys:list'] }) => {
    now = Date.now();
    revocations = new FakeRevocations();
    const roots = [new X509Certificate(root.pem)];
    auth = new X509ClientAuthenticator({ trust: () => roots, revocation: revocations, identities, revocationCheckSeconds: 60, clock: () => new Date(now) });
  };

  it('maps a valid certificate to its SPIFFE id with the union of the matching grants', async () => {
    setup();
    const leaf = await makeLeaf(root, { uris: [ID], eku: ['clientAuth'] });
    expect(await auth.authenticate([leaf.der])).toEqual({ principal_id: ID, api_key_id: null, permissions: ['auth:self:read', 'kms:keys:list'] });
    const deeper = await makeLeaf(root, { uris: ['spiffe://test.palisade/agents/team/x'], eku: ['clientAuth'] });
    expect((await auth.authenticate([deeper.der])).permissions).toEqual(['kms:keys:list']); // `*` is one segment
  });

  it('grants nothing when no identity entry matches (least privilege by default)', async () => {
    setup({});
    const leaf = await makeLeaf(root, { uris: [ID] });
    expect(await auth.authenticate([leaf.der])).toEqual({ principal_id: ID, api_key_id: null, permissions: [] });
  });

  it('follows an intermediate the client sent, and a root appended to the chain changes nothing', async () => {
    setup();
    const leaf = await makeLeaf(intermediate, { uris: [ID] });
    expect((await auth.authenticate([leaf.der, der(intermediate.pem)])).principal_id).toBe(ID);
    expect((await auth.authenticate([leaf.der, der(intermediate.pem), der(root.pem)])).principal_id).toBe(ID);
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('untrusted_issuer'); // intermediate missing
  });

  it('refuses: expired, not yet valid, foreign CA, no clientAuth EKU, no or two SPIFFE ids', async () => {
    setup();
    const expired = await makeLeaf(root, { uris: [ID], notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) });
    const future = await makeLeaf(root, { uris: [ID], notBefore: new Date(now + DAY_MS), notAfter: new Date(now + 10 * DAY_MS) });
    const alien = await makeLeaf(foreign, { uris: [ID] });
    const serverOnly = await makeLeaf(root, { uris: [ID], eku: ['serverAuth'] });
    const noEku = await makeLeaf(root, { uris: [ID], eku: [] });
    const dnsOnly = await makeLeaf(root, { names: ['planner.test'] });
    const notSpiffe = await makeLeaf(root, { uris: ['https://planner.test/'] });
    const two = await makeLeaf(root, { uris: [ID, 'spiffe://test.palisade/agents/other'] });
    expect(await outcome(auth.authenticate([expired.der]))).toBe('expired');
    expect(await outcome(auth.authenticate([future.der]))).toBe('not_yet_valid');
    expect(await outcome(auth.authenticate([alien.der]))).toBe('untrusted_issuer');
    expect(await outcome(auth.authenticate([alien.der, der(foreign.pem)]))).toBe('untrusted_issuer');
    expect(await outcome(auth.authenticate([serverOnly.der]))).toBe('no_client_auth_eku');
    expect(await outcome(auth.authenticate([noEku.der]))).toBe('no_client_auth_eku');
    expect(await outcome(auth.authenticate([dnsOnly.der]))).toBe('no_identity');
    expect(await outcome(auth.authenticate([notSpiffe.der]))).toBe('no_identity');
    expect(await outcome(auth.authenticate([two.der]))).toBe('no_identity');
    expect(await outcome(auth.authenticate([Buffer.from('not a certificate')]))).toBe('untrusted_issuer');
  });

  it('a certificate that expires while cached is refused from then on (time is checked on every use)', async () => {
    setup();
    const leaf = await makeLeaf(root, { uris: [ID], notAfter: new Date(now + DAY_MS) });
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('accepted');
    now += 2 * DAY_MS;
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('expired');
  });

  it('a revocation takes effect once the revoked set is re-read, within revocation_check_seconds', async () => {
    setup();
    const leaf = await makeLeaf(root, { uris: [ID] });
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('accepted');
    revocations.serials.add(leaf.serial.toUpperCase()); // any case, leading zeros ignored
    now += 30_000;
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('accepted'); // still within the interval
    expect(revocations.reads).toBe(1);
    now += 31_000;
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('revoked');
    expect(revocations.reads).toBe(2);
  });

  it('a revoked intermediate refuses the certificates under it', async () => {
    setup();
    const leaf = await makeLeaf(intermediate, { uris: [ID] });
    revocations.serials.add(intermediate.cert.serialNumber);
    expect(await outcome(auth.authenticate([leaf.der, der(intermediate.pem)]))).toBe('revoked');
  });

  it('fails closed when the revoked set cannot be read', async () => {
    setup();
    revocations.failing = true;
    const leaf = await makeLeaf(root, { uris: [ID] });
    expect(await outcome(auth.authenticate([leaf.der]))).toBe('revocation_unavailable');
  });

  it('new trust roots drop the cache: a chain to a root no longer trusted is refused', async () => {
    let roots = [new X509Certificate(root.pem)];
    revocations = new FakeRevocations();
    const a = new X509ClientAuthenticator({ trust: () => roots, revocation: revocations, identities: {}, revocationCheckSeconds: 60, clock: () => new Date() });
    const leaf = await makeLeaf(root, { uris: [ID] });
    expect(await outcome(a.authenticate([leaf.der]))).toBe('accepted');
    roots = [new X509Certificate(foreign.pem)];
    expect(await outcome(a.authenticate([leaf.der]))).toBe('untrusted_issuer');
  });

  it('globs and serials', () => {
    expect(spiffeGlob('spiffe://td/agents/*').test('spiffe://td/agents/a')).toBe(true);
    expect(spiffeGlob('spiffe://td/agents/*').test('spiffe://td/agents/a/b')).toBe(false);
    expect(spiffeGlob('spiffe://td/**').test('spiffe://td/agents/a/b')).toBe(true);
    expect(spiffeGlob('spiffe://td/a.b').test('spiffe://td/aXb')).toBe(false);
    expect(normalizeSerial('00AB01')).toBe('ab01');
    expect(normalizeSerial('0')).toBe('0');
  });
});

describe('client certificates over real TLS (revocation within the interval)', () => {
  let root: TestCa;
  let server: Server;
  let port: number;
  let now = Date.now();
  const revocations = new FakeRevocations();

  beforeAll(async () => {
    root = await makeCa('Loopback Root');
    const serverCert = await makeLeaf(root, { names: ['127.0.0.1'] });
    const roots = [new X509Certificate(root.pem)];
    const auth = new X509ClientAuthenticator({ trust: () => roots, revocation: revocations, identities: {}, revocationCheckSeconds: 60, clock: () => new Date(now) });
    server = createServer({ key: serverCert.key, cert: serverCert.cert, ca: [root.pem], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
      auth.authenticate(peerCertificateChain(req.socket)).then(
        (p) => res.end(`ok ${p.principal_id}`),
        (e: unknown) => res.writeHead(401).end(isPalisadeError(e) ? String(e.extensions.reason ?? e.code) : 'error'),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => server?.close());

  const get = (client?: { cert: string; key: string }) =>
    new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', ca: root.pem, agent: false, ...client }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      });
      req.on('error', reject).end();
    });

  it('accepts the certificate, then refuses it on a new connection once the revocation was read', async () => {
    const client = await makeLeaf(root, { uris: [ID], eku: ['clientAuth'] });
    expect(await get(client)).toBe(`200 ok ${ID}`);
    expect(await get()).toBe('401 PAL_AUTH_REQUIRED');
    revocations.serials.add(client.serial);
    expect(await get(client)).toBe(`200 ok ${ID}`); // the cached set is still fresh
    now += 61_000;
    expect(await get(client)).toBe('401 revoked');
  });
});
