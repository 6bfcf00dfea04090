/**
 * Test-only helpers for the ACME engine: a runtime with a substitute CA (inject or listening over HTTPS), and a
 * minimal ACME client that signs exactly what a test asks for (including what a real client never would).
 */
import 'reflect-metadata';
import { createHash, createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, webcrypto, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { rm } from 'node:fs/promises';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Config } from '../config/config.js';
import { createLogger } from '../logging.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { OWNER_TOKEN, TestClock, testConfig, type DialectName } from './harness.js';
import { expect } from 'vitest';
import { startDnsServer, type TestDnsServer } from '@palisade/testkit';
import type { AcmeCertificateAuthority } from '../engines/acme/ports.js';
import { TestingCa } from './acme-ca.js';

x509.cryptoProvider.set(webcrypto as never);

export const OWNER = OWNER_TOKEN;

export interface AcmeTestServer {
  rt: Runtime;
  clock: TestClock;
  /** scheme://host[:port] the ACME URLs are under. */
  base: string;
  /** PEM of the CA that signed the listener's certificate (listening servers only). */
  listenerCa: string | null;
  http: Transport;
  close(): Promise<void>;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}
export type Transport = (method: string, url: string, opts?: { body?: string; headers?: Record<string, string> }) => Promise<HttpAnswer>;

/** A runtime (SQLite or a fresh PostgreSQL database) whose ACME server uses `ca` (the PKI engine's when absent). */
export async function startAcmeServer(dialect: DialectName, opts: { ca?: AcmeCertificateAuthority; listen?: boolean; mutate?: (c: Config) => void } = {}): Promise<AcmeTestServer> {
  const { config, dataDir } = await testConfig(dialect, { prefix: 'palisade-acme-' });
  config.acme.challenge.allow_loopback = true;
  config.acme.challenge.timeout_seconds = 5;
  opts.mutate?.(config);
  const clock = new TestClock();
  const rt = await createRuntime(config, { log: createLogger(process.env.DBG_LOG ?? 'silent'), clock: clock.now, tls: opts.listen ?? false, ...(opts.ca ? { acmeCa: opts.ca } : {}) });
  let base = 'http://localhost';
  let http: Transport = async (method, url, o = {}) => {
    const u = new URL(url);
    const res = await rt.app.inject({ method: method as 'GET', url: u.pathname + u.search, headers: { host: u.host, ...o.headers }, ...(o.body !== undefined ? { payload: o.body } : {}) });
    return { status: res.statusCode, headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])), body: res.body };
  };
  if (opts.listen) {
    await rt.app.listen({ host: '127.0.0.1', port: 0 });
    base = `https://127.0.0.1:${(rt.app.server.address() as { port: number }).port}`;
    const agent = new HttpsAgent({ ca: rt.tls!.ca, keepAlive: false });
    http = (method, url, o = {}) =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(url, { method, agent, headers: o.headers ?? {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)])), body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(o.body);
      });
  }
  return {
    rt,
    clock,
    base,
    listenerCa: rt.tls?.ca ?? null,
    http,
    async close() {
      await rt.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export type TestAlg = 'ES256' | 'ES384' | 'RS256' | 'EdDSA';

export function accountKey(alg: TestAlg = 'ES256'): KeyObject {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'RS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    case 'EdDSA':
      return generateKeyPairSync('ed25519').privateKey;
  }
}

export const publicJwkOf = (key: KeyObject) => createPublicKey(key).export({ format: 'jwk' });

const b64u = (v: string | Buffer) => Buffer.from(v).toString('base64url');

export function signJws(key: KeyObject, alg: string, protectedHeader: Record<string, unknown>, payload: unknown): { protected: string; payload: string; signature: string } {
  const p = b64u(JSON.stringify({ alg, ...protectedHeader }));
  const body = payload === '' ? '' : b64u(JSON.stringify(payload));
  const data = Buffer.from(`${p}.${body}`);
  const sig = alg === 'ES256' || alg === 'ES384' ? sign(alg === 'ES256' ? 'sha256' : 'sha384', data, { key, dsaEncoding: 'ieee-p1363' }) : alg === 'EdDSA' ? sign(null, data, key) : sign('sha256', data, key);
  return { protected: p, payload: body, signature: b64u(sig) };
}

/** An EAB binding (RFC 8555 §7.3.4) of `key` made with an EAB key id and base64url HMAC key. */
export function eabBinding(kid: string, hmacKey: string, key: KeyObject, url: string) {
  const p = b64u(JSON.stringify({ alg: 'HS256', kid, url }));
  const body = b64u(JSON.stringify(publicJwkOf(key)));
  return { protected: p, payload: body, signature: b64u(createHmac('sha256', Buffer.from(hmacKey, 'base64url')).update(`${p}.${body}`).digest()) };
}

export interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert: string;
  keyChange: string;
  renewalInfo: string;
  meta: { externalAccountRequired: boolean };
}

/** A hand-rolled ACME client: every call can be bent (nonce, url, key, alg, header) to test the server's checks. */
export class TestAcmeClient {
  kid: string | null = null;
  #dir: Directory | null = null;

  constructor(
    readonly http: Transport,
    readonly base: string,
    public key: KeyObject = accountKey(),
    public alg: TestAlg = 'ES256',
  ) {}

  async directory(): Promise<Directory> {
    this.#dir ??= JSON.parse((await this.http('GET', `${this.base}/acme/directory`)).body) as Directory;
    return this.#dir;
  }

  async nonce(): Promise<string> {
    const res = await this.http('HEAD', (await this.directory()).newNonce);
    return res.headers['replay-nonce']!;
  }

  get thumbprint(): string {
    const j = publicJwkOf(this.key) as Record<string, string>;
    const members = j.kty === 'EC' ? { crv: j.crv, kty: j.kty, x: j.x, y: j.y } : j.kty === 'RSA' ? { e: j.e, kty: j.kty, n: j.n } : { crv: j.crv, kty: j.kty, x: j.x };
    return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  }

  /** POST a JWS; `payload: ''` is POST-as-GET. */
  async post(url: string, payload: unknown, o: { jwk?: boolean; nonce?: string; headerUrl?: string; key?: KeyObject; alg?: string; header?: Record<string, unknown>; kid?: string; contentType?: string } = {}): Promise<HttpAnswer & { json: Record<string, unknown> }> {
    const key = o.key ?? this.key;
    const header: Record<string, unknown> = { nonce: o.nonce ?? (await this.nonce()), url: o.headerUrl ?? url, ...(o.jwk ? { jwk: publicJwkOf(key) } : { kid: o.kid ?? this.kid }), ...o.header };
    const jws = signJws(key, o.alg ?? this.alg, header, payload);
    const res = await this.http('POST', url, { body: JSON.stringify(jws), headers: { 'content-type': o.contentType ?? 'application/jose+json' } });
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(res.body) as Record<string, unknown>;
    } catch {
      // PEM and empty bodies
    }
    return { ...res, json };
  }

  async register(eab?: { key_id: string; hmac_key: string }, extra: Record<string, unknown> = {}) {
    const dir = await this.directory();
    const payload = { termsOfServiceAgreed: true, ...(eab ? { externalAccountBinding: eabBinding(eab.key_id, eab.hmac_key, this.key, dir.newAccount) } : {}), ...extra };
    const res = await this.post(dir.newAccount, payload, { jwk: true });
    if (res.status === 201 || res.status === 200) this.kid = res.headers.location!;
    return res;
  }

  keyAuthorization(token: string): string {
    return `${token}.${this.thumbprint}`;
  }
}

/** A random DNS label, so that tests never share names. */
export const label = (): string => `t${randomBytes(5).toString('hex')}`;

/** A DER CSR for `names` (dns names and IPs) with a fresh P-256 key; `ca: true` asks for CA:TRUE. */
export async function csrFor(names: string[], o: { ca?: boolean } = {}): Promise<{ der: Buffer; keyPem: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: names[0] && !isIP(names[0]) ? `CN=${names[0]}` : '',
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? 'ip' : 'dns', value: n }))),
      ...(o.ca ? [new x509.BasicConstraintsExtension(true, undefined, true)] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { der: Buffer.from(csr.rawData), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n` };
}

/**
 * A listening server (HTTPS on loopback) whose ACME server issues from the real PKI engine: the root and
 * intermediate are created first. `eab()` makes a single-use EAB key through the admin API.
 */
export async function startRealAcme(opts: { mutate?: (c: Config) => void } = {}): Promise<{ s: AcmeTestServer; rootPem: string; trust: string; eab(): Promise<{ key_id: string; hmac_key: string }> }> {
  const s = await startAcmeServer('sqlite', { listen: true, ...(opts.mutate ? { mutate: opts.mutate } : {}) });
  const owner = { authorization: `Bearer ${OWNER}`, 'content-type': 'application/json' };
  const init = await s.http('POST', `${s.base}/v1/pki/root`, { body: '{}', headers: owner });
  if (init.status !== 201) throw new Error(`pki init-root failed: ${init.status} ${init.body}`);
  const rootPem = (JSON.parse(init.body) as { root: { certificate_pem: string } }).root.certificate_pem;
  return {
    s,
    rootPem,
    // the listener's certificate may come from the bootstrap CA or (once initialised) from the Palisade root
    trust: `${s.listenerCa ?? ''}\n${rootPem}`,
    async eab() {
      const res = await s.http('POST', `${s.base}/v1/acme/eab-keys`, { body: JSON.stringify({ name: 'e2e' }), headers: owner });
      if (res.status !== 201) throw new Error(`EAB key: ${res.status} ${res.body}`);
      return JSON.parse(res.body) as { key_id: string; hmac_key: string };
    },
  };
}

export const ACME_ERR = 'urn:ietf:params:acme:error:';

/** A loopback HTTP server answering http-01 tokens from a map. */
export async function http01Server(tokens: Map<string, string>): Promise<{ server: HttpServer; port: number }> {
  const server = createHttpServer((req, res) => {
    const token = req.url?.split('/').pop() ?? '';
    const answer = req.url?.startsWith('/.well-known/acme-challenge/') ? tokens.get(token) : undefined;
    res.writeHead(answer ? 200 : 404).end(answer ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** An ACME server on a substitute CA with a loopback DNS server and http-01 responder, and the steps tests repeat. */
export interface AcmeFixture {
  s: AcmeTestServer;
  ca: TestingCa;
  dns: TestDnsServer;
  /** http-01 answers served by the responder, by token. */
  tokens: Map<string, string>;
  eabKey(body?: Record<string, unknown>): Promise<{ key_id: string; hmac_key: string }>;
  /** A client with a registered account (EAB-bound). */
  registered(key?: KeyObject): Promise<TestAcmeClient>;
  /** An order for `names` whose authorizations are all proven with http-01 (names resolve to 127.0.0.1). */
  readyOrder(c: TestAcmeClient, names: string[]): Promise<{ url: string; finalize: string }>;
  close(): Promise<void>;
}

export async function acmeFixture(dialect: DialectName): Promise<AcmeFixture> {
  const tokens = new Map<string, string>();
  const dns = await startDnsServer();
  const web = await http01Server(tokens);
  const ca = await TestingCa.create();
  const s = await startAcmeServer(dialect, {
    ca,
    mutate: (c) => {
      c.acme.challenge.dns_servers = [dns.address];
      c.acme.challenge.http_port = web.port;
    },
  });
  const eabKey: AcmeFixture['eabKey'] = async (body = { name: 'test' }) => {
    const res = await s.rt.app.inject({ method: 'POST', url: '/v1/acme/eab-keys', headers: { authorization: `Bearer ${OWNER}` }, payload: body });
    expect(res.statusCode).toBe(201);
    return res.json<{ key_id: string; hmac_key: string }>();
  };
  return {
    s,
    ca,
    dns,
    tokens,
    eabKey,
    async registered(key) {
      const c = new TestAcmeClient(s.http, s.base, key);
      expect((await c.register(await eabKey())).status).toBe(201);
      return c;
    },
    async readyOrder(c, names) {
      for (const n of names) dns.set(n, 'A', ['127.0.0.1']);
      const order = await c.post((await c.directory()).newOrder, { identifiers: names.map((value) => ({ type: 'dns', value })) });
      expect(order.status).toBe(201);
      for (const url of order.json.authorizations as string[]) {
        const authz = (await c.post(url, '')).json as { challenges: Array<{ type: string; url: string; token: string }> };
        const ch = authz.challenges.find((x) => x.type === 'http-01')!;
        tokens.set(ch.token, c.keyAuthorization(ch.token));
        // The validator runs in the background: on a fast path it may already be done when the answer is written.
        expect(['processing', 'valid']).toContain((await c.post(ch.url, {})).json.status);
      }
      await s.rt.acme.validator.idle();
      expect((await c.post(order.headers.location!, '')).json.status).toBe('ready');
      return { url: order.headers.location!, finalize: order.json.finalize as string };
    },
    async close() {
      await s.close();
      await dns.close();
      web.server.close();
    },
  };
}
