/**
 * The PKI in front of Palisade's own listener: after `init-root` new handshakes get a certificate from the
 * intermediate (clients that trusted only the bootstrap CA keep working through the cross-certified root), OCSP
 * answers are stapled, and mTLS clients with PKI certificates map to their SPIFFE identity — until revoked.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeApiError, PalisadeClient } from '@palisade/sdk';
import { startServer, type TestServer } from '../../testing/harness.js';

const run = promisify(execFile);

function peer(addr: string, ca: string, opts: { cert?: string; key?: string } = {}): Promise<PeerCertificate & { issuerCertificate?: PeerCertificate }> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port: Number(port), ca, servername: 'localhost', ...opts }, () => {
      resolve(sock.getPeerCertificate(true));
      sock.end();
    });
    sock.on('error', reject);
  });
}

describe('Palisade listener on its own PKI', () => {
  let s: TestServer;
  let dir = '';
  let rootPem = '';
  const clients: PalisadeClient[] = [];
  beforeAll(async () => {
    s = await startServer('sqlite', {
      mutate: (c) => {
        c.tls.client_auth.identities = { 'spiffe://palisade.internal/ns/*/sa/*': ['auth:self:read'] };
        c.tls.client_auth.revocation_check_seconds = 1;
        c.tls.names = ['*.agents.palisade.test']; // matched literally, so polling does not re-issue
      },
    });
    dir = await mkdtemp(join(tmpdir(), 'pki-listener-'));
    rootPem = (await s.client.pki.initRoot()).root.certificate_pem!;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves a certificate from the intermediate right after init-root, trusted by the Palisade root and by the bootstrap CA', async () => {
    const byRoot = await peer(s.addr, rootPem);
    expect(byRoot.issuer.CN).toMatch(/^Palisade Intermediate CA/);
    expect(byRoot.subjectaltname).toContain('IP Address:127.0.0.1');
    const byBootstrap = await peer(s.addr, s.ca);
    expect(byBootstrap.fingerprint256).toBe(byRoot.fingerprint256);
    expect(await s.rt.listener!.reload()).toBe(false);
    const listed = await s.client.pki.list({ service: 'palisade' });
    expect(listed.certificates.map((c) => c.template)).toEqual(['listener']);
    expect(listed.certificates[0]!.sans).toContain('dns:*.agents.palisade.test');
  });

  it('staples a good OCSP answer signed by the intermediate', async () => {
    await writeFile(join(dir, 'root.pem'), rootPem);
    let out = '';
    for (let i = 0; i < 20 && !out.includes('Cert Status: good'); i++) {
      // the first handshake may come before the staple was fetched
      const r = await run('sh', ['-c', `echo | openssl s_client -connect ${s.addr} -servername localhost -status -CAfile ${join(dir, 'root.pem')} 2>&1`]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
      out = r.stdout;
      if (!out.includes('Cert Status: good')) await new Promise((res) => setTimeout(res, 100));
    }
    expect(out).toContain('OCSP Response Status: successful');
    expect(out).toContain('Cert Status: good');
    expect(out).toContain('Verify return code: 0 (ok)');
  });

  it('maps a PKI client certificate to its SPIFFE identity, and refuses it once revoked', async () => {
    const cert = await s.client.pki.issue({ service: 'planner', namespace: 'agents', key_algorithm: 'ECDSA-P256' });
    const client = new PalisadeClient({ addr: s.addr, ca: rootPem, cert: cert.chain_pem, key: cert.private_key_pem! });
    clients.push(client);
    expect((await client.whoami()).principal_id).toBe('spiffe://palisade.internal/ns/agents/sa/planner');
    await s.client.pki.revoke(cert.serial, 'keyCompromise');
    let answer = '';
    for (let i = 0; i < 50 && answer !== 'revoked'; i++) {
      const fresh = new PalisadeClient({ addr: s.addr, ca: rootPem, cert: cert.chain_pem, key: cert.private_key_pem! });
      clients.push(fresh);
      answer = await fresh.whoami().then(
        () => 'accepted',
        (e: unknown) => (e instanceof PalisadeApiError ? String(e.problem.reason ?? e.code) : String(e)),
      );
      if (answer !== 'revoked') s.clock.advanceDays(1 / 86_400); // the revocation list is re-read each second of the server's clock
    }
    expect(answer).toBe('revoked');
  });
});
