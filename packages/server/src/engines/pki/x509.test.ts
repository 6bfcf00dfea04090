import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromPem, parseCsr, toPem } from './x509.js';

const dir = mkdtempSync(join(tmpdir(), 'csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function csr(name: string, keyArgs: string[], extra: string[] = []): string {
  execFileSync('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', join(dir, `${name}.key`), '-subj', '/CN=x', '-addext', 'subjectAltName=DNS:a.example.test,IP:10.0.0.1', ...extra, '-out', join(dir, `${name}.csr`)], { stdio: 'ignore' });
  return readFileSync(join(dir, `${name}.csr`), 'utf8');
}

const code = (p: Promise<unknown>) => p.then(() => 'accepted', (e: { code?: string }) => e.code ?? String(e));

describe('parseCsr', () => {
  it.each([
    ['EC P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['EC P-384 with SHA-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-sha384']],
    ['Ed25519', ['-newkey', 'ed25519']],
    ['RSA 2048', ['-newkey', 'rsa:2048']],
    ['RSA 2048 with PSS', ['-newkey', 'rsa:2048', '-sigopt', 'rsa_padding_mode:pss']],
  ])('accepts a %s request and reads its names', async (name, args) => {
    const info = await parseCsr(csr(name.replace(/\W/g, ''), args));
    expect(info.sans).toEqual({ dns: ['a.example.test'], ip: ['10.0.0.1'], uri: [], other: 0 });
    expect(info.asksForCa).toBe(false);
  });

  it('refuses a request whose signature was tampered with, a weak key, and one asking for CA:TRUE is flagged', async () => {
    const der = fromPem(csr('tamper', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), 'CERTIFICATE REQUEST')[0]!;
    der[der.length - 5] = der[der.length - 5]! ^ 0x01;
    expect(await code(parseCsr(toPem(der, 'CERTIFICATE REQUEST')))).toBe('PAL_PKI_CSR_INVALID');
    const secp256k1 = csr('k1', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1']);
    expect(await code(parseCsr(secp256k1))).toBe('PAL_PKI_CSR_INVALID');
    expect((await parseCsr(csr('ca', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'basicConstraints=critical,CA:TRUE']))).asksForCa).toBe(true);
  });
});
