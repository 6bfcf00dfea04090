import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from './services.js';
import { startOpensslTsa, type OpensslTsaHandle } from './tsa.js';

const openssl = requireService('openssl', 'testkit: openssl TSA');

const certText = (pem: string): string => execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' });

describe.skipIf(!openssl.available)('testkit: openssl TSA', () => {
  let tsa: OpensslTsaHandle;
  let query: Buffer;

  beforeAll(async () => {
    tsa = await startOpensslTsa();
    const f = join(tsa.dir, 'data.txt');
    writeFileSync(f, 'hello\n');
    query = execFileSync('openssl', ['ts', '-query', '-data', f, '-sha256', '-cert'], { stdio: ['ignore', 'pipe', 'pipe'] });
  });
  afterAll(async () => {
    await tsa?.stop();
  });

  it('makes a CA and a TSA certificate with the critical timeStamping extended key usage', () => {
    const ca = new X509Certificate(tsa.caPem);
    const cert = new X509Certificate(tsa.tsaCertPem);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=Palisade Test TSA CA');
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.8']); // node names the extended key usage "keyUsage"
    expect(certText(tsa.tsaCertPem)).toMatch(/X509v3 Extended Key Usage: critical\s+Time Stamping/);
    expect(cert.publicKey.asymmetricKeyType).toBe('ec');
  });

  it('answers POST application/timestamp-query with an application/timestamp-reply that openssl reads and verifies', async () => {
    const res = await fetch(tsa.url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: query });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/timestamp-reply');
    const reply = Buffer.from(await res.arrayBuffer());
    const r = join(tsa.dir, 'reply.tsr');
    writeFileSync(r, reply);
    const text = execFileSync('openssl', ['ts', '-reply', '-in', r, '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(text).toMatch(/Status: Granted/);
    expect(text).toContain(`Policy OID: ${tsa.policy}`);
    const verify = execFileSync('openssl', ['ts', '-verify', '-data', join(tsa.dir, 'data.txt'), '-in', r, '-CAfile', tsa.caPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(verify).toMatch(/Verification: OK/);
    expect(tsa.requests).toBeGreaterThanOrEqual(1);
  });

  it('refuses other methods and content types; rejects garbage queries', async () => {
    expect((await fetch(tsa.url)).status).toBe(405);
    expect((await fetch(tsa.url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: query })).status).toBe(415);
    const garbage = await fetch(tsa.url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: 'not a query' });
    // like a real TSA, openssl answers a malformed query with a rejection (badDataFormat), not an HTTP error
    expect(garbage.status).toBe(200);
    const r = join(tsa.dir, 'rejected.tsr');
    writeFileSync(r, Buffer.from(await garbage.arrayBuffer()));
    const text = execFileSync('openssl', ['ts', '-reply', '-in', r, '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(text).toMatch(/Status: Rejected/);
    expect(text).toMatch(/wrong format/);
  });

  it('issues certificates: without the usage, non-critical, intermediates, TLS server names', () => {
    expect(certText(tsa.issueCertificate({ cn: 'a', eku: 'none' }).certPem)).not.toMatch(/Extended Key Usage/);
    expect(certText(tsa.issueCertificate({ cn: 'b', eku: 'non-critical' }).certPem)).toMatch(/X509v3 Extended Key Usage:\s+Time Stamping/);
    const inter = tsa.issueCertificate({ cn: 'inter', ca: true });
    expect(new X509Certificate(inter.certPem).ca).toBe(true);
    const leaf = new X509Certificate(tsa.issueCertificate({ cn: 'leaf', issuer: inter }).certPem);
    expect(leaf.checkIssued(new X509Certificate(inter.certPem))).toBe(true);
    const server = new X509Certificate(tsa.issueCertificate({ cn: 'localhost', eku: 'none', extraEku: ['serverAuth'], san: ['IP:127.0.0.1'] }).certPem);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('RSA keys on request; stop() closes the server and removes the temp dir', async () => {
    const rsa = await startOpensslTsa({ keyType: 'rsa' });
    expect(new X509Certificate(rsa.tsaCertPem).publicKey.asymmetricKeyType).toBe('rsa');
    expect(existsSync(rsa.dir)).toBe(true);
    await rsa.stop();
    await rsa.stop(); // idempotent
    expect(existsSync(rsa.dir)).toBe(false);
    await expect(fetch(rsa.url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: query })).rejects.toThrow();
  });
});
