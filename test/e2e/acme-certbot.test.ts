/**
 * certbot (Debian's) against Palisade's ACME server over HTTPS on loopback: enrols with an EAB key, obtains a
 * certificate through http-01 (certbot's standalone server on a free port, the name resolved by the testkit DNS
 * server that the ACME server validates with), then renews it; both chains verify against the Palisade root.
 * Without certbot the suite is skipped loudly, except in CI (CI=true), where that is a failure.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable, getFreePort, isCI, startDnsServer, type TestDnsServer } from '@palisade/testkit';
import { label, startRealAcme } from '../../packages/server/src/testing/acme.js';

const run = promisify(execFile);
const certbot = findExecutable('certbot');
if (!certbot) {
  if (isCI()) throw new Error('certbot is not installed: CI must run scripts/install-services.sh');
  console.warn('SKIPPING certbot ACME tests: certbot not found on PATH (apt-get install certbot, or sudo scripts/install-services.sh)');
}

describe.skipIf(!certbot)('certbot against the ACME server', () => {
  let env: Awaited<ReturnType<typeof startRealAcme>>;
  let dns: TestDnsServer;
  let port = 0;
  const dir = mkdtempSync(join(tmpdir(), 'acme-certbot-'));
  const name = `${label()}.example`;
  const live = (f: string) => readFileSync(join(dir, 'config', 'live', name, f), 'utf8');

  const certbotRun = async (args: string[]) => {
    const common = ['--config-dir', join(dir, 'config'), '--work-dir', join(dir, 'work'), '--logs-dir', join(dir, 'logs'), '--non-interactive'];
    try {
      return await run(certbot!, [...args, ...common], { env: { ...process.env, REQUESTS_CA_BUNDLE: join(dir, 'trust.pem') }, timeout: 150_000 });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      let log = '';
      try {
        log = readFileSync(join(dir, 'logs', 'letsencrypt.log'), 'utf8').slice(-4000);
      } catch {
        // no log yet
      }
      throw new Error(`certbot ${args[0]} failed:\n${err.stdout ?? ''}\n${err.stderr ?? ''}\n${log}`, { cause: e });
    }
  };
  const verify = (chain: string) => {
    writeFileSync(join(dir, 'root.pem'), env.rootPem);
    writeFileSync(join(dir, 'check-chain.pem'), chain);
    return run('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'check-chain.pem'), '-purpose', 'sslserver', join(dir, 'check-cert.pem')]);
  };

  beforeAll(async () => {
    dns = await startDnsServer();
    dns.set(name, 'A', ['127.0.0.1']);
    port = await getFreePort();
    env = await startRealAcme({
      mutate: (c) => {
        c.acme.challenge.dns_servers = [dns.address];
        c.acme.challenge.http_port = port;
      },
    });
    writeFileSync(join(dir, 'trust.pem'), env.trust);
  });
  afterAll(async () => {
    await env?.s.close();
    await dns?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('obtains a certificate with EAB and http-01, then renews it', { timeout: 360_000 }, async () => {
    const eab = await env.eab();
    await certbotRun([
      'certonly',
      '--standalone',
      '--http-01-port',
      String(port),
      '--http-01-address',
      '127.0.0.1',
      '--server',
      `${env.s.base}/acme/directory`,
      '--eab-kid',
      eab.key_id,
      // One argument with `=`: a base64url key may start with '-', which argparse would take for an option.
      `--eab-hmac-key=${eab.hmac_key}`,
      '--agree-tos',
      '--register-unsafely-without-email',
      '-d',
      name,
    ]);
    const first = live('cert.pem');
    writeFileSync(join(dir, 'check-cert.pem'), first);
    expect((await verify(live('fullchain.pem'))).stdout).toContain(': OK');
    const serial = async (pem: string) => {
      writeFileSync(join(dir, 'serial.pem'), pem);
      return (await run('openssl', ['x509', '-noout', '-serial', '-in', join(dir, 'serial.pem')])).stdout.trim();
    };
    const firstSerial = await serial(first);

    await certbotRun(['renew', '--force-renewal', '--no-random-sleep-on-renew']);
    const renewed = live('cert.pem');
    expect(await serial(renewed)).not.toBe(firstSerial);
    writeFileSync(join(dir, 'check-cert.pem'), renewed);
    expect((await verify(live('fullchain.pem'))).stdout).toContain(': OK');

    const orders = (await env.s.rt.ledger.query({ type: 'acme.order.finalize', outcome: 'success', limit: 10 })).events;
    expect(orders).toHaveLength(2);
    const accounts = (await env.s.rt.ledger.query({ type: 'acme.account.create', outcome: 'success', limit: 10 })).events;
    expect(accounts.map((e) => e.details?.eab_key_id)).toEqual([eab.key_id]);
  });
});
