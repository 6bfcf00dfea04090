/**
 * A real Node ACME client (acme-client) against Palisade's ACME server over HTTPS on loopback, issuing from the real
 * PKI engine: http-01 (a loopback HTTP server), dns-01 (the testkit DNS server, which is also the validation
 * resolver), tls-alpn-01 (a node TLS server with ALPN acme-tls/1), then a renewal naming the first certificate in
 * `replaces` (RFC 9773). Every chain verifies against the Palisade root with openssl.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import * as acme from 'acme-client';
import { AuthorityKeyIdentifierExtension, X509Certificate } from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type TestDnsServer } from '@palisade/testkit';
import { certId } from '../../packages/server/src/engines/acme/ari.js';
import { csrFor, label, startRealAcme, type AcmeTestServer } from '../../packages/server/src/testing/acme.js';

describe('acme-client (Node) against the ACME server', () => {
  let env: Awaited<ReturnType<typeof startRealAcme>>;
  let s: AcmeTestServer;
  let dns: TestDnsServer;
  let web: Server;
  let alpn: TlsServer;
  const http01 = new Map<string, string>();
  const txt = new Map<string, string[]>();
  const alpnCerts = new Map<string, { key: Buffer; cert: Buffer }>();
  const dir = mkdtempSync(join(tmpdir(), 'acme-node-'));
  let client: acme.Client;

  const listen = (srv: Server | TlsServer) => new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as { port: number }).port)));
  const verify = (chainPem: string) => {
    writeFileSync(join(dir, 'root.pem'), env.rootPem);
    writeFileSync(join(dir, 'chain.pem'), chainPem);
    const leaf = chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + 25);
    writeFileSync(join(dir, 'leaf.pem'), leaf);
    return execFileSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'chain.pem'), '-purpose', 'sslserver', join(dir, 'leaf.pem')], { encoding: 'utf8' });
  };

  beforeAll(async () => {
    dns = await startDnsServer();
    web = createServer((req, res) => {
      const answer = http01.get(req.url?.split('/').pop() ?? '');
      res.writeHead(answer ? 200 : 404).end(answer ?? '');
    });
    alpn = createTlsServer({
      ALPNProtocols: ['acme-tls/1'],
      SNICallback: (name, cb) => {
        const c = alpnCerts.get(name);
        if (c) cb(null, createSecureContext({ key: c.key, cert: c.cert }));
        else cb(new Error(`no certificate for ${name}`));
      },
    });
    const [httpPort, tlsPort] = [await listen(web), await listen(alpn)];
    env = await startRealAcme({
      mutate: (c) => {
        c.acme.challenge.dns_servers = [dns.address];
        c.acme.challenge.http_port = httpPort;
        c.acme.challenge.tls_port = tlsPort;
      },
    });
    s = env.s;
    acme.axios.defaults.httpsAgent = new Agent({ ca: env.trust });
    const eab = await env.eab();
    client = new acme.Client({ directoryUrl: `${s.base}/acme/directory`, accountKey: await acme.crypto.createPrivateEcdsaKey(), externalAccountBinding: { kid: eab.key_id, hmacKey: eab.hmac_key }, backoffMin: 50, backoffMax: 500, backoffAttempts: 40 });
    await client.createAccount({ termsOfServiceAgreed: true, contact: ['mailto:ops@example.com'] });
  });
  afterAll(async () => {
    await s?.close();
    await dns?.close();
    web?.close();
    alpn?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const challengeFns = {
    challengeCreateFn: async (authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string) => {
      const name = authz.identifier.value;
      if (challenge.type === 'http-01') http01.set(challenge.token, keyAuthorization);
      else if (challenge.type === 'dns-01') {
        // acme-client hands dns-01 the digest already; a name and its wildcard share one TXT name
        const at = `_acme-challenge.${name}`;
        txt.set(at, [...(txt.get(at) ?? []), keyAuthorization]);
        dns.set(at, 'TXT', txt.get(at)!);
      }
      else {
        const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
        alpnCerts.set(name, { key, cert });
      }
    },
    challengeRemoveFn: async () => undefined,
    skipChallengeVerification: true,
    termsOfServiceAgreed: true,
  };

  const issue = async (names: string[], challenge: 'http-01' | 'dns-01' | 'tls-alpn-01') => {
    for (const n of names) dns.set(n.replace(/^\*\./, ''), 'A', ['127.0.0.1']);
    const [, csr] = await acme.crypto.createCsr({ altNames: names });
    return client.auto({ csr, ...challengeFns, challengePriority: [challenge] });
  };

  it('obtains a certificate with http-01, one with dns-01 (a wildcard) and one with tls-alpn-01, each verifying against the Palisade root', async () => {
    const a = `${label()}.example`;
    const chainA = await issue([a], 'http-01');
    expect(verify(chainA)).toContain(': OK');
    expect(acme.crypto.readCertificateInfo(chainA).domains.altNames).toEqual([a]);

    const b = `${label()}.example`;
    const chainB = await issue([b, `*.${b}`], 'dns-01');
    expect(verify(chainB)).toContain(': OK');
    expect(acme.crypto.readCertificateInfo(chainB).domains.altNames.sort()).toEqual([`*.${b}`, b].sort());

    const c = `${label()}.example`;
    const chainC = await issue([c], 'tls-alpn-01');
    expect(verify(chainC)).toContain(': OK');

    const types = (await s.rt.ledger.query({ type: 'acme.challenge.validate', outcome: 'success', limit: 20 })).events.map((e) => e.details?.challenge_type);
    expect(new Set(types)).toEqual(new Set(['http-01', 'dns-01', 'tls-alpn-01']));
  });

  it('renews: the renewal information suggests a window, an order with replaces is issued, a second replacement is refused', async () => {
    const n = `${label()}.example`;
    const first = await issue([n], 'http-01');
    const leaf = new X509Certificate(first.slice(0, first.indexOf('-----END CERTIFICATE-----') + 25));
    const aki = Buffer.from(leaf.getExtension(AuthorityKeyIdentifierExtension)!.keyId!, 'hex');
    const id = certId(aki, leaf.serialNumber.toLowerCase());
    const info = await s.http('GET', `${s.base}/acme/renewal-info/${id}`);
    expect(info.status).toBe(200);
    const window = (JSON.parse(info.body) as { suggestedWindow: { start: string; end: string } }).suggestedWindow;
    expect(Date.parse(window.start)).toBeGreaterThan(leaf.notBefore.getTime());
    expect(Date.parse(window.end)).toBeLessThan(leaf.notAfter.getTime());

    const request = { identifiers: [{ type: 'dns', value: n }], replaces: id };
    const order = await client.createOrder(request);
    for (const authz of await client.getAuthorizations(order)) {
      const challenge = authz.challenges.find((x) => x.type === 'http-01')!;
      await challengeFns.challengeCreateFn(authz, challenge, await client.getChallengeKeyAuthorization(challenge));
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    const [, csr] = await acme.crypto.createCsr({ altNames: [n] });
    const finalized = await client.finalizeOrder(order, csr);
    const renewed = await client.getCertificate(finalized);
    expect(verify(renewed)).toContain(': OK');
    expect(new X509Certificate(renewed.slice(0, renewed.indexOf('-----END CERTIFICATE-----') + 25)).serialNumber).not.toBe(leaf.serialNumber);
    await expect(client.createOrder(request)).rejects.toThrow(/already replaced/);

    // revoking the old one (superseded) moves its window into the past
    await client.revokeCertificate(first, { reason: 4 });
    const after = (JSON.parse((await s.http('GET', `${s.base}/acme/renewal-info/${id}`)).body) as { suggestedWindow: { end: string } }).suggestedWindow;
    expect(Date.parse(after.end)).toBeLessThan(Date.now());
  });

  it('the real CA refuses a CSR asking for CA:TRUE: badCSR, nothing issued, the order stays ready', async () => {
    const n = `${label()}.example`;
    dns.set(n, 'A', ['127.0.0.1']);
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: n }] });
    for (const authz of await client.getAuthorizations(order)) {
      const challenge = authz.challenges.find((x) => x.type === 'http-01')!;
      await challengeFns.challengeCreateFn(authz, challenge, await client.getChallengeKeyAuthorization(challenge));
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    const count = async () => (await s.rt.storage.db.selectFrom('pki_certificates').select('serial').execute()).length;
    const before = await count();
    const { der } = await csrFor([n], { ca: true });
    await expect(client.finalizeOrder(order, `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`)).rejects.toThrow(/CA:TRUE/);
    expect(await count()).toBe(before);
    expect((await client.getOrder(order)).status).toBe('ready');
  });
});
