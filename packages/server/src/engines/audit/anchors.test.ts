import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyTimeStampToken } from '@palisade/core';
import { verifyAuditExport } from '@palisade/sdk';
import { startOpensslTsa, type OpensslTsaHandle } from '@palisade/testkit';
import { startServer, type TestServer } from '../../testing/harness.js';

describe('audit checkpoints are anchored', () => {
  let tsa: OpensslTsaHandle;
  let s: TestServer;
  let caFile = '';
  beforeAll(async () => {
    tsa = await startOpensslTsa();
    const dir = mkdtempSync(join(tmpdir(), 'palisade-anchor-'));
    caFile = join(dir, 'tsa-ca.pem');
    writeFileSync(caFile, tsa.caPem);
    s = await startServer('sqlite', { mutate: (c) => void (c.audit.anchors = [{ name: 'tsa', kind: 'rfc3161', url: tsa.url, ca_file: caFile }]) });
    await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
  });
  afterAll(async () => {
    await s?.close();
    await tsa?.stop();
  });

  it('by an RFC 3161 time-stamping authority (openssl ts): the token covers the checkpoint and openssl verifies it', async () => {
    await s.rt.checkpointer.tick(true);
    const cp = await s.client.audit.checkpoint();
    const stamp = cp.anchors.find((a) => a.anchor === 'tsa');
    expect(stamp).toMatchObject({ kind: 'rfc3161' });
    const body = cp.note.slice(0, cp.note.indexOf('\n\n') + 1);
    const token = Buffer.from(stamp!.receipt, 'base64');
    expect(verifyTimeStampToken(token, Buffer.from(body), { trusted: [tsa.caPem] })).toMatchObject({ ok: true });
    expect(verifyTimeStampToken(token, Buffer.from(body.replace(/\n\d+\n/, '\n1\n')), { trusted: [tsa.caPem] })).toMatchObject({ ok: false });
    const dir = mkdtempSync(join(tmpdir(), 'palisade-anchor-'));
    writeFileSync(join(dir, 'body'), body);
    writeFileSync(join(dir, 'token.der'), token);
    writeFileSync(join(dir, 'tsa.pem'), tsa.tsaCertPem);
    const out = execFileSync('openssl', ['ts', '-verify', '-data', join(dir, 'body'), '-in', join(dir, 'token.der'), '-token_in', '-CAfile', caFile, '-untrusted', join(dir, 'tsa.pem')], { encoding: 'utf8' });
    expect(out).toMatch(/Verification: OK/);

    // The export carries the token; the SDK verifier checks it with the TSA's CA.
    const lines: string[] = [];
    for await (const l of s.client.audit.exportLines()) lines.push(l);
    expect(await verifyAuditExport(lines, { tsaCaPems: [tsa.caPem] })).toMatchObject({ ok: true, timestamps: 1 });
  });

  it('an anchor that fails is counted and retried; the checkpoint is signed regardless', async () => {
    await tsa.stop();
    await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
    const cp = await s.rt.checkpointer.tick(true);
    expect(cp).not.toBeNull();
    expect((await s.client.audit.checkpoint()).anchors).toEqual([]);
    expect(await s.rt.registry.getSingleMetricAsString('audit_anchor_failures_total')).toMatch(/audit_anchor_failures_total\{anchor="tsa"\} [1-9]/);
    expect(await s.rt.registry.getSingleMetricAsString('audit_unanchored_entries')).toMatch(/audit_unanchored_entries\{anchor="tsa"\} [1-9]/);
  });
});
