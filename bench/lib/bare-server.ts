// The peer of the HTTP benchmark, run as a child process: a bare node:https server (TLS 1.3, ECDSA P-256 certificate,
// keep-alive HTTP/1.1) that answers Palisade's encrypt/decrypt routes with the same JSON shapes, doing nothing but
// JSON parsing, base64 and AES-256-GCM with node:crypto. No authentication, audit ledger, database or schema validation:
// it is the cost floor of "HTTPS + JSON + AEAD" on this machine. Sends { port, ca } over IPC once listening.
import 'reflect-metadata'; // @peculiar/x509 needs it (as packages/server does)
import { createCipheriv, createDecipheriv, randomBytes, webcrypto } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';

export interface BareReady {
  port: number;
  /** PEM of the self-signed server certificate (it is its own CA). */
  ca: string;
}

x509.cryptoProvider.set(webcrypto as never);

async function selfSigned(): Promise<{ key: string; cert: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=bench bare peer',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  return { key, cert: cert.toString('pem') };
}

const KEY = randomBytes(32);
const KEY_ID = `key_${'0'.repeat(26)}`;

function encrypt(body: { plaintext: string }): object {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', KEY, iv, { authTagLength: 16 });
  const ct = Buffer.concat([c.update(Buffer.from(body.plaintext, 'base64')), c.final()]);
  return { ciphertext: ct.toString('base64'), iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), key_id: KEY_ID, key_version: 1, algorithm: 'AES-256-GCM' };
}

function decrypt(body: { ciphertext: string; iv: string; tag: string }): object {
  const d = createDecipheriv('aes-256-gcm', KEY, Buffer.from(body.iv, 'base64'), { authTagLength: 16 });
  d.setAuthTag(Buffer.from(body.tag, 'base64'));
  const pt = Buffer.concat([d.update(Buffer.from(body.ciphertext, 'base64')), d.final()]);
  return { plaintext: pt.toString('base64') };
}

const { key, cert } = await selfSigned();
const server = createServer({ key, cert, minVersion: 'TLSv1.3', keepAliveTimeout: 72_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    let status = 200;
    let out: object;
    try {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as never;
      if (req.method === 'POST' && req.url?.endsWith('/encrypt')) out = encrypt(body);
      else if (req.method === 'POST' && req.url?.endsWith('/decrypt')) out = decrypt(body);
      else [status, out] = [404, { code: 'NOT_FOUND' }];
    } catch {
      [status, out] = [400, { code: 'BAD_REQUEST' }];
    }
    const text = JSON.stringify(out);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});
server.listen(0, '127.0.0.1', () => {
  const ready: BareReady = { port: (server.address() as AddressInfo).port, ca: cert };
  process.send!(ready);
});
process.on('disconnect', () => process.exit(0));
