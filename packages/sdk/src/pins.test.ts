import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import { makeCa, makeLeaf, type TestCa, type TestLeaf } from '../../server/src/testing/certs.js';
import { spkiPin } from './index.js';
import { Transport } from './transport.js';

const backup = () => spkiPin(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));

describe('SDK: SPKI pins and client certificates against a real HTTPS server', () => {
  let root: TestCa;
  let clientCa: TestCa;
  let serverCert: TestLeaf;
  let server: Server;
  let addr: string;
  const transports: Transport[] = [];
  const client = (opts: Omit<ConstructorParameters<typeof Transport>[0], 'addr'>) => {
    const t = new Transport({ addr, ...opts });
    transports.push(t);
    return t;
  };

  beforeAll(async () => {
    root = await makeCa('Pinning Root');
    clientCa = await makeCa('Client CA');
    serverCert = await makeLeaf(root, { names: ['127.0.0.1'], eku: ['serverAuth'] });
    server = createServer({ key: serverCert.key, cert: serverCert.cert, ca: [clientCa.pem], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ client: socket.authorized ? peer.subject.CN : null }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    for (const t of transports) t.close();
    server?.close();
  });

  const refusal = (p: Promise<unknown>) => p.then(() => 'connected', (e: NodeJS.ErrnoException) => e.code ?? e.message);

  it.skipIf(!requireService('openssl', 'spkiPin against openssl').available)('spkiPin is the HPKP pin openssl computes', () => {
    const spki = execFileSync('openssl', ['x509', '-noout', '-pubkey'], { input: serverCert.cert });
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: spki });
    const b64 = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
    expect(spkiPin(serverCert.cert)).toBe(`sha256/${b64}`);
    expect(spkiPin(spki)).toBe(`sha256/${b64}`); // a public key PEM gives the same pin
  });

  it('refuses fewer than three pins (the key in use and two backups), duplicates and malformed pins', () => {
    const pin = spkiPin(serverCert.cert);
    expect(() => new Transport({ addr: 'x:1', pins: [pin] })).toThrow(/at least 2 backup pins/);
    expect(() => new Transport({ addr: 'x:1', pins: [pin, backup()] })).toThrow(/at least 2 backup pins/);
    expect(() => new Transport({ addr: 'x:1', pins: [pin, pin, pin] })).toThrow(/1 distinct given/);
    expect(() => new Transport({ addr: 'x:1', pins: [pin, backup(), 'sha256/abc'] })).toThrow(/must look like/);
    expect(() => new Transport({ addr: 'x:1', pins: [pin, backup(), pin.replace('sha256', 'sha1')] })).toThrow(/must look like/);
  });

  it('connects when the leaf key or the root key is pinned', async () => {
    expect(await client({ ca: root.pem, pins: [spkiPin(serverCert.cert), backup(), backup()] }).send('GET', '/')).toEqual({ client: null });
    expect(await client({ ca: root.pem, pins: [backup(), spkiPin(root.pem), backup()] }).send('GET', '/')).toEqual({ client: null });
  });

  it('refuses the connection when no key of the chain is pinned', async () => {
    const t = client({ ca: root.pem, pins: [backup(), backup(), backup()] });
    const err = await t.send('GET', '/').catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: 'ERR_PALISADE_PIN_MISMATCH' });
    expect((err as Error).message).toContain(spkiPin(serverCert.cert));
  });

  it('pins come on top of normal verification, never instead of it', async () => {
    const stranger = await makeCa('Stranger');
    expect(await refusal(client({ ca: stranger.pem, pins: [spkiPin(serverCert.cert), backup(), backup()] }).send('GET', '/'))).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED/);
  });

  it('presents a client certificate for mTLS', async () => {
    const mine = await makeLeaf(clientCa, { cn: 'agent-7', uris: ['spiffe://test.palisade/agents/7'], eku: ['clientAuth'] });
    expect(await client({ ca: root.pem, cert: mine.cert, key: mine.key }).send('GET', '/')).toEqual({ client: 'agent-7' });
    expect(() => new Transport({ addr, cert: mine.cert })).toThrow(/cert and key go together/);
  });
});
