/**
 * Defects a security review of the ACME server found, each pinned by a test: zone ids, IPv4 spelt as DNS names,
 * a certificate key equal to the account key, an account update echoing its status.
 */
import 'reflect-metadata';
import { KeyObject, webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type TestDnsServer } from '@palisade/testkit';
import { label, OWNER, startAcmeServer, TestAcmeClient, type AcmeTestServer } from '../../testing/acme.js';
import { TestingCa } from '../../testing/acme-ca.js';

const ERR = 'urn:ietf:params:acme:error:';

async function http01Server(tokens: Map<string, string>): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const token = req.url?.split('/').pop() ?? '';
    const answer = req.url?.startsWith('/.well-known/acme-challenge/') ? tokens.get(token) : undefined;
    res.writeHead(answer ? 200 : 404).end(answer ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

describe('ACME security review (sqlite)', () => {
  let s: AcmeTestServer;
  let dns: TestDnsServer;
  let web: { server: Server; port: number };
  const tokens = new Map<string, string>();

  const eabKey = async () => {
    const res = await s.rt.app.inject({ method: 'POST', url: '/v1/acme/eab-keys', headers: { authorization: `Bearer ${OWNER}` }, payload: { name: 'review' } });
    expect(res.statusCode).toBe(201);
    return res.json<{ key_id: string; hmac_key: string }>();
  };
  const registered = async (key?: KeyObject) => {
    const c = new TestAcmeClient(s.http, s.base, key);
    expect((await c.register(await eabKey())).status).toBe(201);
    return c;
  };
  const readyOrder = async (c: TestAcmeClient, names: string[]) => {
    for (const n of names) dns.set(n, 'A', ['127.0.0.1']);
    const order = await c.post((await c.directory()).newOrder, { identifiers: names.map((value) => ({ type: 'dns', value })) });
    expect(order.status).toBe(201);
    for (const url of order.json.authorizations as string[]) {
      const authz = (await c.post(url, '')).json as { challenges: Array<{ type: string; url: string; token: string }> };
      const ch = authz.challenges.find((x) => x.type === 'http-01')!;
      tokens.set(ch.token, c.keyAuthorization(ch.token));
      expect((await c.post(ch.url, {})).json.status).toBe('processing');
    }
    await s.rt.acme.validator.idle();
    expect((await c.post(order.headers.location!, '')).json.status).toBe('ready');
    return { url: order.headers.location!, finalize: order.json.finalize as string };
  };

  beforeAll(async () => {
    dns = await startDnsServer();
    web = await http01Server(tokens);
    s = await startAcmeServer('sqlite', {
      ca: await TestingCa.create(),
      mutate: (c) => {
        c.acme.challenge.dns_servers = [dns.address];
        c.acme.challenge.http_port = web.port;
      },
    });
  });
  afterAll(async () => {
    await s?.close();
    await dns?.close();
    web?.server.close();
  });

  it('newOrder with an IPv6 zone id (fe80::1%eth0) is rejectedIdentifier, not a 500', async () => {
    const c = await registered();
    const r = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'ip', value: 'fe80::1%eth0' }] });
    expect([r.status, r.json.type]).toEqual([400, `${ERR}rejectedIdentifier`]);
  });

  it('a dns identifier that is an IPv4 address in hex/short notation (0x7f.0.0.1, 0x7f.1) is rejected', async () => {
    const c = await registered();
    const dir = await c.directory();
    for (const value of ['0x7f.0.0.1', '0x7f.1']) {
      const r = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value }] });
      expect([value, r.status, r.json.type]).toEqual([value, 400, `${ERR}rejectedIdentifier`]);
    }
  });

  it('finalize refuses a CSR whose public key is the account key (badCSR), issuing nothing', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const c = await registered(KeyObject.from(keys.privateKey));
    const n = `${label()}.example`;
    const { finalize } = await readyOrder(c, [n]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${n}`, keys, signingAlgorithm: alg, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: n }])] });
    const r = await c.post(finalize, { csr: Buffer.from(csr.rawData).toString('base64url') });
    expect([r.status, r.json.type]).toEqual([400, `${ERR}badCSR`]);
  });

  it('an account update that echoes status "valid" (what certbot update_account sends) is accepted', async () => {
    const c = await registered();
    const r = await c.post(c.kid!, { status: 'valid', contact: ['mailto:ops@example.com'], termsOfServiceAgreed: true });
    expect([r.status, r.json.contact]).toEqual([200, ['mailto:ops@example.com']]);
  });
});
