// The peers of the HTTP benchmark, each run as a child process, both with the same TLS settings as Palisade (TLS 1.3
// only, self-signed ECDSA P-256 certificate, keep-alive HTTP/1.1) and answering POST /v1/keys/:key_id/encrypt and
// /decrypt. Sends { port, ca, mode } over IPC once listening. The mode is argv[2] or BARE_MODE:
//
//   https-aead    (default) a bare node:https server that answers with Palisade's JSON shapes, doing nothing but JSON
//                 parsing, base64 and AES-256-GCM with node:crypto. No authentication, audit ledger, database or
//                 schema validation: the cost floor of "HTTPS + JSON + AEAD" on this machine.
//   fastify-noop  a Fastify 5 instance (the framework Palisade is built on, default options, no logger) whose two
//                 routes do nothing and return { ok: true }; Fastify still parses the JSON body with its default
//                 parser. The product requirement's peer: "a bare Fastify route that does nothing, same TLS settings".
import 'reflect-metadata'; // @peculiar/x509 needs it (as packages/server does)
import { createCipheriv, createDecipheriv, randomBytes, webcrypto } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import Fastify from 'fastify';

const BARE_MODES = ['fastify-noop', 'https-aead'] as const;
// Import only types from this module (import type): evaluating it starts a server.
export type BareMode = (typeof BARE_MODES)[number];

export interface BareReady {
  mode: BareMode;
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

/** TLS 1.3 only with an ECDSA P-256 certificate, as Palisade serves (tls.min_version defaults to TLSv1.3). */
const TLS_MIN_VERSION = 'TLSv1.3';
/** Node's and Fastify's default keep-alive timeout, set explicitly so both peers keep connections the same way. */
const KEEP_ALIVE_MS = 72_000;

function httpsAead(key: string, cert: string, ready: (port: number) => void): void {
  const server = createServer({ key, cert, minVersion: TLS_MIN_VERSION, keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => {
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
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port));
}

async function fastifyNoop(key: string, cert: string, ready: (port: number) => void): Promise<void> {
  const app = Fastify({ https: { key, cert, minVersion: TLS_MIN_VERSION }, keepAliveTimeout: KEEP_ALIVE_MS });
  const noop = async () => ({ ok: true });
  app.post('/v1/keys/:key_id/encrypt', noop);
  app.post('/v1/keys/:key_id/decrypt', noop);
  await app.listen({ port: 0, host: '127.0.0.1' });
  ready((app.server.address() as AddressInfo).port);
}

const mode = (process.argv[2] ?? process.env.BARE_MODE ?? 'https-aead') as BareMode;
if (!BARE_MODES.includes(mode)) {
  console.error(`bare-server: unknown mode ${mode} (expected ${BARE_MODES.join(' | ')})`);
  process.exit(2);
}
const { key, cert } = await selfSigned();
const ready = (port: number) => {
  const msg: BareReady = { mode, port, ca: cert };
  process.send!(msg);
};
if (mode === 'fastify-noop') await fastifyNoop(key, cert, ready);
else httpsAead(key, cert, ready);
process.on('disconnect', () => process.exit(0));
