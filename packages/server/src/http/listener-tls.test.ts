import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertID, CertStatus, id_pkix_ocsp_basic, OCSPResponse, OCSPResponseStatus, ResponderID, ResponseBytes, ResponseData, SingleResponse } from '@peculiar/asn1-ocsp';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { requireService } from '@palisade/testkit';
import { createLogger } from '../logging.js';
import { makeCa, makeLeaf, type TestCa } from '../testing/certs.js';
import { bootstrapCertificateSource } from './bootstrap-tls.js';
import { ListenerTls, type ListenerCertificateSource, type ListenerMaterial } from './listener-tls.js';
import { ocspWindow, type OcspStapler } from './ocsp-staple.js';
import type { TlsMinVersion } from './tls.js';

const log = createLogger('silent');
const DAY_MS = 86_400_000;

class FakeSource implements ListenerCertificateSource {
  constructor(public material: ListenerMaterial) {}
  async current(): Promise<ListenerMaterial> {
    return this.material;
  }
}

/** A structurally complete OCSP response ("good") for the stapling path; its signature is filler: the listener staples bytes, clients judge them. */
function ocspResponse(leafDer: Buffer, issuerDer: Buffer, thisUpdate: Date, nextUpdate: Date): Buffer {
  const sha1 = (b: Buffer) => new OctetString(createHash('sha1').update(b).digest());
  const single = new SingleResponse({
    certID: new CertID({ hashAlgorithm: new AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26' }), issuerNameHash: sha1(issuerDer), issuerKeyHash: sha1(issuerDer), serialNumber: new Uint8Array(Buffer.from(new X509Certificate(leafDer).serialNumber, 'hex')).buffer }),
    certStatus: new CertStatus({ good: null }),
    thisUpdate,
    nextUpdate,
  });
  const basic = new BasicOCSPResponse({
    tbsResponseData: new ResponseData({ responderID: new ResponderID({ byKey: sha1(issuerDer) }), producedAt: thisUpdate, responses: [single] }),
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }),
    signature: new Uint8Array(64).buffer,
  });
  const res = new OCSPResponse({ responseStatus: OCSPResponseStatus.successful, responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(AsnConvert.serialize(basic)) }) });
  return Buffer.from(AsnConvert.serialize(res));
}

interface Running {
  server: Server;
  port: number;
  listener: ListenerTls;
}

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.listener.close();
    r.server.closeAllConnections();
    r.server.close();
  }
});

async function serve(source: ListenerCertificateSource, opts: { minVersion?: TlsMinVersion; staple?: OcspStapler; clock?: () => Date } = {}): Promise<Running> {
  const listener = await ListenerTls.open({ source, minVersion: opts.minVersion ?? 'TLSv1.3', clientAuth: 'optional', reloadCheckSeconds: 3600, clock: opts.clock ?? (() => new Date()), log, ...(opts.staple ? { staple: opts.staple } : {}) });
  const server = createServer(listener.serverOptions(), (_req, res) => res.end('ok'));
  listener.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const r = { server, port: (server.address() as AddressInfo).port, listener };
  running.push(r);
  return r;
}

type Handshake = { ok: true; protocol: string | null; cipher: string; fingerprint: string; ocsp: Buffer | null } | { ok: false; error: string };

/** `requestOCSP` is a TLSSocket option that tls.connect passes through (absent from ConnectionOptions' type). */
function handshake(port: number, opts: ConnectionOptions & { requestOCSP?: boolean }): Promise<Handshake> {
  return new Promise((resolve) => {
    let ocsp: Buffer | null = null;
    const socket = connect({ host: '127.0.0.1', port, ...opts });
    socket.on('OCSPResponse', (r: Buffer) => (ocsp = r));
    socket.once('secureConnect', () => {
      resolve({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher().standardName, fingerprint: socket.getPeerCertificate().fingerprint256, ocsp });
      socket.end();
    });
    socket.once('error', (e) => resolve({ ok: false, error: e.message }));
  });
}

describe('ListenerTls', () => {
  let ca: TestCa;
  let first: ListenerMaterial;
  let second: ListenerMaterial;
  beforeAll(async () => {
    ca = await makeCa('Listener Test CA');
    const a = await makeLeaf(ca, { names: ['127.0.0.1'], eku: ['serverAuth'] });
    const b = await makeLeaf(ca, { names: ['127.0.0.1'], eku: ['serverAuth'] });
    first = { key: a.key, chain: a.cert, trust: [ca.pem] };
    second = { key: b.key, chain: b.cert, trust: [ca.pem] };
  });
  const fp = (m: ListenerMaterial) => new X509Certificate(m.chain).fingerprint256;

  it('speaks TLS 1.3 only, with the seed suites in its order, and refuses TLS 1.2', async () => {
    const { port } = await serve(new FakeSource(first));
    expect(await handshake(port, { ca: ca.pem })).toMatchObject({ ok: true, protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' });
    for (const suite of ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256']) {
      expect(await handshake(port, { ca: ca.pem, ciphers: suite })).toMatchObject({ ok: true, cipher: suite });
    }
    expect(await handshake(port, { ca: ca.pem, ciphers: 'TLS_AES_128_CCM_SHA256' })).toMatchObject({ ok: false });
    expect(await handshake(port, { ca: ca.pem, maxVersion: 'TLSv1.2' })).toMatchObject({ ok: false });
  });

  it('with min_version TLSv1.2: ECDHE AEAD suites only', async () => {
    const { port } = await serve(new FakeSource(first), { minVersion: 'TLSv1.2' });
    const v12 = { ca: ca.pem, maxVersion: 'TLSv1.2' as const };
    expect(await handshake(port, v12)).toMatchObject({ ok: true, protocol: 'TLSv1.2', cipher: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384' });
    expect(await handshake(port, { ...v12, ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).toMatchObject({ ok: true, cipher: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256' });
    for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'AES256-GCM-SHA384']) {
      expect(await handshake(port, { ...v12, ciphers: weak })).toMatchObject({ ok: false });
    }
    expect(await handshake(port, { ca: ca.pem })).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });

  it('reload: open keep-alive connections keep working on the old certificate, new handshakes get the new one', async () => {
    const source = new FakeSource(first);
    const { port, listener } = await serve(source);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.pem });
    const get = (a: Agent | false) =>
      new Promise<{ fingerprint: string; reused: boolean; local: number }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', agent: a, ...(a ? {} : { ca: ca.pem }) }, (res) => {
          const socket = res.socket as TLSSocket;
          const seen = { fingerprint: socket.getPeerCertificate().fingerprint256, reused: req.reusedSocket, local: socket.localPort ?? 0 };
          res.resume().on('end', () => resolve(seen));
        });
        req.on('error', reject).end();
      });
    try {
      const before = await get(agent);
      expect(before).toMatchObject({ fingerprint: fp(first), reused: false });
      expect(await listener.reload()).toBe(false); // nothing changed
      source.material = second;
      expect(await listener.reload()).toBe(true);
      expect(listener.certificate.fingerprint256).toBe(fp(second));
      const same = await get(agent);
      expect(same).toMatchObject({ fingerprint: fp(first), reused: true, local: before.local }); // the same connection, untouched
      expect((await get(false)).fingerprint).toBe(fp(second));
      expect((await handshake(port, { ca: ca.pem })) as { fingerprint: string }).toMatchObject({ fingerprint: fp(second) });
    } finally {
      agent.destroy();
    }
  });

  it('reload refuses a key that does not match its certificate and keeps serving the previous one', async () => {
    const source = new FakeSource(first);
    const { port, listener } = await serve(source);
    source.material = { ...second, key: first.key };
    await expect(listener.reload()).rejects.toThrow(/does not match/);
    expect(await handshake(port, { ca: ca.pem })).toMatchObject({ ok: true, fingerprint: fp(first) });
  });

  it('the bootstrap source re-issues the server certificate once less than 30 days remain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-listener-'));
    try {
      let now = Date.now();
      const source = bootstrapCertificateSource(dir, ['127.0.0.1'], () => new Date(now));
      const listener = await ListenerTls.open({ source, minVersion: 'TLSv1.3', clientAuth: 'off', reloadCheckSeconds: 60, clock: () => new Date(now), log });
      const old = listener.certificate.fingerprint256;
      now += 30 * DAY_MS;
      expect(await listener.reload()).toBe(false); // 60 days left
      now += 31 * DAY_MS;
      expect(await listener.reload()).toBe(true);
      expect(listener.certificate.fingerprint256).not.toBe(old);
      expect(Date.parse(listener.certificate.validTo)).toBeGreaterThan(now + 80 * DAY_MS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('OCSP stapling', () => {
    it('staples what the port returns, caches it, and refreshes it halfway to nextUpdate', async () => {
      let now = Date.now();
      const calls: Array<{ leaf: Buffer; issuer: Buffer }> = [];
      const staple: OcspStapler = async (leaf, issuer) => {
        calls.push({ leaf, issuer });
        return ocspResponse(leaf, issuer, new Date(now), new Date(now + 4 * 3_600_000));
      };
      const { port } = await serve(new FakeSource(first), { staple, clock: () => new Date(now) });
      const h1 = await handshake(port, { ca: ca.pem, requestOCSP: true });
      expect(h1.ok && h1.ocsp && ocspWindow(h1.ocsp)).toMatchObject({ nextUpdate: expect.any(Number) });
      const h2 = await handshake(port, { ca: ca.pem, requestOCSP: true });
      expect(h2.ok && h2.ocsp).toEqual(h1.ok && h1.ocsp);
      expect(calls).toHaveLength(1); // prefetched once, served from the cache
      expect(calls[0]!.leaf).toEqual(new X509Certificate(first.chain).raw);
      expect(calls[0]!.issuer).toEqual(new X509Certificate(ca.pem).raw);

      now += 2 * 3_600_000 + 1; // past half of the window: the next handshake still gets the valid staple and a refresh starts
      const h3 = await handshake(port, { ca: ca.pem, requestOCSP: true });
      expect(h3.ok && h3.ocsp).toEqual(h1.ok && h1.ocsp);
      await vi.waitFor(() => expect(calls).toHaveLength(2));
      const h4 = await handshake(port, { ca: ca.pem, requestOCSP: true });
      expect(h4.ok && h4.ocsp).not.toEqual(h1.ok && h1.ocsp);
    });

    it('never staples a response past its nextUpdate, a failed fetch, or without a port', async () => {
      const stale: OcspStapler = async (leaf, issuer) => ocspResponse(leaf, issuer, new Date(Date.now() - 2 * DAY_MS), new Date(Date.now() - DAY_MS));
      const failing: OcspStapler = async () => {
        throw new Error('responder down');
      };
      for (const staple of [stale, failing, undefined]) {
        const { port } = await serve(new FakeSource(first), staple ? { staple } : {});
        const h = await handshake(port, { ca: ca.pem, requestOCSP: true });
        expect(h).toMatchObject({ ok: true });
        expect(h.ok && h.ocsp?.length).toBeFalsy();
      }
    });

    const openssl = requireService('openssl', 'OCSP stapling: openssl s_client -status');
    it.skipIf(!openssl.available)('openssl s_client -status shows the stapled response', async () => {
      const staple: OcspStapler = async (leaf, issuer) => ocspResponse(leaf, issuer, new Date(), new Date(Date.now() + 3_600_000));
      const { port } = await serve(new FakeSource(first), { staple });
      // asynchronously: the server answers from this process's event loop
      const run = promisify(execFile)('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-status', '-tls1_3'], { encoding: 'utf8', timeout: 15_000 });
      run.child.stdin?.end(); // EOF on stdin: s_client closes after the handshake
      const r = await run;
      expect(r.stdout).toMatch(/OCSP Response Status: successful \(0x0\)/);
      expect(r.stdout).toMatch(/Cert Status: good/);
    });
  });
});
