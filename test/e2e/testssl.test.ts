/**
 * testssl.sh against the real `palisade serve` after `palisade pki init-root`, so the listener serves its certificate
 * from Palisade's own intermediate: TLS 1.3 only, the chain verifies against the Palisade root, OCSP is stapled,
 * HSTS is set, and testssl reports nothing of severity MEDIUM or above. About 15-25 s on two cores.
 * Without the `testssl` binary (Debian's testssl.sh): skipped loudly, or a failure when CI=true.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import { runCli, startServer, stopAll, tempDir, type Server } from './helpers.js';

interface Finding {
  id: string;
  severity: 'OK' | 'INFO' | 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL' | 'WARN' | 'FATAL' | 'DEBUG';
  finding: string;
}

const FAILING = new Set(['MEDIUM', 'HIGH', 'CRITICAL', 'FATAL']);
const testssl = requireService('testssl', 'e2e: testssl.sh against palisade serve');

describe.skipIf(!testssl.available)('testssl.sh', () => {
  let srv: Server;
  let findings: Finding[] = [];

  beforeAll(async () => {
    srv = await startServer();
    const dir = tempDir();
    const root = join(dir, 'root.pem');
    const init = await runCli(['pki', 'init-root', '--out', root], { env: { ...srv.env, PALISADE_TOKEN: srv.token, PALISADE_CA_FILE: srv.caFile } });
    expect(init.code, init.stderr.toString()).toBe(0);
    const json = join(dir, 'testssl.json');
    // -p protocols, -s cipher categories, -f forward secrecy, -S server defaults and certificate, -h HTTP headers,
    // -U vulnerabilities. testssl exits non-zero when it finds problems: the findings are judged below.
    const args = ['--jsonfile-pretty', json, '--add-ca', root, '--warnings', 'batch', '--quiet', '--color', '0', '-p', '-s', '-f', '-S', '-h', '-U', `https://127.0.0.1:${srv.port}`];
    const run = await promisify(execFile)('testssl', args, { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }).catch((e: { stdout?: string; stderr?: string; killed?: boolean }) => {
      if (e.killed) throw new Error(`testssl did not finish within 240 s:\n${e.stdout ?? ''}`);
      return { stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    });
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { scanResult: Array<Record<string, unknown>> };
    findings = doc.scanResult.flatMap((section) => Object.values(section).filter((v): v is Finding[] => Array.isArray(v)).flat());
    expect(findings.length, run.stdout).toBeGreaterThan(20);
  }, 300_000);
  afterAll(stopAll);

  const one = (id: string): Finding => {
    const f = findings.find((x) => x.id === id);
    expect(f, `testssl reported no ${id}`).toBeDefined();
    return f!;
  };

  it('offers TLS 1.3 and nothing older', () => {
    expect(one('TLS1_3').finding).toMatch(/^offered/);
    for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2']) expect(one(id).finding, id).toMatch(/^not offered/);
  });

  it('the chain of trust verifies against the Palisade root; the certificate names its OCSP responder and CRL, and OCSP is stapled', () => {
    expect(one('cert_chain_of_trust')).toMatchObject({ severity: 'OK', finding: expect.stringMatching(/^passed/) });
    expect(one('cert_trust').severity).toBe('OK');
    expect(one('cert_caIssuers').finding).toMatch(/Palisade Intermediate CA/);
    expect(one('cert_ocspURL').finding).toMatch(/\/pki\/ocsp$/);
    expect(one('cert_crlDistributionPoints').finding).toMatch(/\/pki\/crl\/ca_[a-z0-9]+\.crl$/);
    expect(one('OCSP_stapling').finding).toMatch(/^offered/);
  });

  it('sends HSTS for a year with includeSubDomains and preload, and the other security headers', () => {
    expect(one('HSTS_time')).toMatchObject({ severity: 'OK', finding: expect.stringMatching(/^365 days/) });
    expect(one('HSTS_subdomains').severity).toBe('OK');
    expect(one('HSTS_preload').severity).toBe('OK');
    expect(one('X-Frame-Options')).toMatchObject({ severity: 'OK', finding: 'DENY' });
    expect(one('X-Content-Type-Options')).toMatchObject({ severity: 'OK', finding: 'nosniff' });
    expect(one('Content-Security-Policy')).toMatchObject({ severity: 'OK', finding: "default-src 'none'; frame-ancestors 'none'" });
    expect(one('Referrer-Policy').finding).toBe('no-referrer');
  });

  it('reports nothing of severity MEDIUM or above', () => {
    expect(findings.filter((f) => FAILING.has(f.severity))).toEqual([]);
  });
});
