/**
 * `palisade pki` end to end: a root that goes offline, an intermediate signed on the "offline machine" with the
 * exported key (no server involved), issuance and revocation, each checked with the openssl CLI.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServer, stopAll, tempDir, type CliResult, type Server } from './helpers.js';

afterAll(stopAll);

let srv: Server;
let env: NodeJS.ProcessEnv;
let dir = '';
const f = (n: string) => join(dir, n);
const cli = (args: string[]): Promise<CliResult> => runCli(args, { env });
const ok = (r: CliResult): string => {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.toString('utf8');
};
const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(async () => {
  srv = await startServer();
  env = { ...srv.env, PALISADE_TOKEN: srv.token, PALISADE_CA_FILE: srv.caFile };
  dir = tempDir('palisade-pki-cli-');
});

describe('palisade pki', () => {
  it('init-root, issue, verify with openssl, revoke', async () => {
    expect(ok(await cli(['pki', 'init-root', '--out', f('root.pem')]))).toMatch(/^root ca_[a-z0-9]+\t.*Palisade Root CA/m);
    ok(await cli(['pki', 'issue', '--service', 'billing', '--ip', '10.1.2.3', '--key-out', f('key.pem'), '--out', f('chain.pem')]));
    const chain = readFileSync(f('chain.pem'), 'utf8');
    writeFileSync(f('leaf.pem'), chain.slice(0, chain.indexOf('-----END CERTIFICATE-----') + 26));
    expect(openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('chain.pem'), f('leaf.pem')])).toContain(': OK');
    expect(openssl(['x509', '-in', f('leaf.pem'), '-noout', '-checkip', '10.1.2.3'])).toContain('does match');
    const serial = openssl(['x509', '-in', f('leaf.pem'), '-noout', '-serial']).trim().split('=')[1]!.toLowerCase();
    const listed = ok(await cli(['pki', 'list', '--service', 'billing']));
    expect(listed).toContain(serial);
    expect(ok(await cli(['pki', 'revoke', serial, '--reason', 'keyCompromise']))).toMatch(new RegExp(`^${serial}\\trevoked`));
    expect((await cli(['pki', 'revoke', serial])).stderr.toString()).toContain('PAL_PKI_ALREADY_REVOKED');
  });

  it('export-root-key takes the root offline; sign-intermediate signs on the offline machine; install-intermediate activates it', async () => {
    writeFileSync(f('pass'), 'a long offline ceremony passphrase\n');
    ok(await cli(['pki', 'export-root-key', '--out', f('root-key.pem'), '--passphrase-file', f('pass')]));
    expect(readFileSync(f('root-key.pem'), 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');
    const rotated = ok(await cli(['pki', 'rotate-intermediate', '--csr-out', f('int.csr')]));
    const pendingId = rotated.split('\t')[0]!;
    expect(rotated).toContain('\tpending\t');
    // the offline machine: no server address, no token
    const offline = await runCli(['pki', 'sign-intermediate', '--root-cert', f('root.pem'), '--root-key', f('root-key.pem'), '--passphrase-file', f('pass'), '--csr', f('int.csr'), '--validity-days', '365', '--out', f('int.pem')], { env: { PATH: process.env.PATH } });
    expect(offline.code, offline.stderr.toString()).toBe(0);
    expect(openssl(['verify', '-CAfile', f('root.pem'), f('int.pem')])).toContain(': OK');
    writeFileSync(f('wrong-pass'), 'not the passphrase at all\n');
    const wrong = await runCli(['pki', 'sign-intermediate', '--root-cert', f('root.pem'), '--root-key', f('root-key.pem'), '--passphrase-file', f('wrong-pass'), '--csr', f('int.csr')], { env: { PATH: process.env.PATH } });
    expect(wrong.code).toBe(1);
    expect(ok(await cli(['pki', 'install-intermediate', pendingId, '--cert', f('int.pem')]))).toContain(`${pendingId}\tintermediate\tactive`);
    ok(await cli(['pki', 'issue', '--service', 'after', '--key-out', f('k2.pem'), '--out', f('c2.pem')]));
    const c2 = readFileSync(f('c2.pem'), 'utf8');
    writeFileSync(f('l2.pem'), c2.slice(0, c2.indexOf('-----END CERTIFICATE-----') + 26));
    expect(openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('c2.pem'), f('l2.pem')])).toContain(': OK');
    const cas = ok(await cli(['pki', 'cas']));
    expect(cas).toMatch(/\troot\tactive\toffline\t/);
  });
});
