import 'reflect-metadata';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ocsp from '@peculiar/asn1-ocsp';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import { KEYS, run, testCa, type SigningTestCa as TestCa } from '../../testing/signing-ca.js';
import {
  MAX_OCSP_REQUESTS,
  buildOcspResponse,
  matchesIssuer,
  ocspErrorResponse,
  ocspRequestFromGetPath,
  parseOcspRequest,
  type OcspRequestInfo,
} from './ocsp.js';
import { signatureAlgorithmFor } from './signature.js';
import { CA_ALGORITHMS, type CertificateStatus, type SigningCa } from './types.js';

const openssl = requireService('openssl', 'OCSP codec against openssl');


const hour = 3600_000;
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();

/** The responder a caller would write: unknown for another issuer or an unknown serial. */
async function respond(ca: SigningCa, request: OcspRequestInfo, statuses: Map<string, CertificateStatus>, nonce = request.nonce): Promise<Buffer> {
  return buildOcspResponse({
    ca,
    producedAt: new Date(),
    responses: request.requests.map((certId) => ({
      certId,
      status: (matchesIssuer(certId, ca.certificate) && statuses.get(certId.serial)) || { status: 'unknown' },
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + hour),
    })),
    nonce,
  });
}

describe.skipIf(!openssl.available).each(CA_ALGORITHMS)('OCSP for a %s CA', (alg) => {
  let dir: string;
  let ca: TestCa;
  let other: TestCa;
  const statuses = new Map<string, CertificateStatus>();
  const leaves = { good: '41aa00000000000000000000000000a1', revoked: '41bb00000000000000000000000000b2', unspecified: '41cc00000000000000000000000000c3', unknown: '41dd00000000000000000000000000d4' };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-ocsp-'));
    ca = await testCa(alg, `Palisade OCSP CA ${alg}`);
    other = await testCa('ECDSA-P256', 'Another CA');
    await writeFile(join(dir, 'ca.pem'), ca.pem);
    for (const [name, serial] of Object.entries(leaves)) await writeFile(join(dir, `${name}.pem`), await ca.issue(serial));
    statuses.set(leaves.good, { status: 'good' });
    statuses.set(leaves.revoked, { status: 'revoked', revokedAt: new Date(Date.now() - 2 * hour), reason: 'keyCompromise' });
    statuses.set(leaves.unspecified, { status: 'revoked', revokedAt: new Date(Date.now() - 2 * hour), reason: 'unspecified' });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads openssl requests: SHA-1 and SHA-256 CertIDs, with and without a nonce, several certificates', async () => {
    const cases = [
      { file: 'plain.der', args: ['-issuer', 'ca.pem', '-cert', 'good.pem', '-no_nonce'], hash: 'sha1', count: 1, nonce: false },
      { file: 'nonce.der', args: ['-issuer', 'ca.pem', '-cert', 'good.pem'], hash: 'sha1', count: 1, nonce: true },
      { file: 'sha256.der', args: ['-sha256', '-issuer', 'ca.pem', '-cert', 'good.pem', '-cert', 'revoked.pem'], hash: 'sha256', count: 2, nonce: true },
    ];
    for (const c of cases) {
      const { code, output } = await run(['ocsp', ...c.args, '-reqout', c.file], dir);
      expect(code, output).toBe(0);
      const request = parseOcspRequest(await readFile(join(dir, c.file)));
      expect(request, c.file).not.toBeNull();
      expect(request!.requests).toHaveLength(c.count);
      expect(request!.nonce === null ? 0 : request!.nonce.length).toBe(c.nonce ? 16 : 0);
      const [first] = request!.requests;
      expect(first!.hashAlgorithm).toBe(c.hash);
      expect(first!.serial).toBe(serialOf(await readFile(join(dir, 'good.pem'), 'utf8')));
      expect(first!.issuerNameHash).toHaveLength(c.hash === 'sha1' ? 20 : 32);
      expect(matchesIssuer(first!, ca.ca.certificate)).toBe(true);
      expect(matchesIssuer(first!, other.ca.certificate)).toBe(false);
    }
  });

  it('answers good, revoked with its reason, revoked without a reason for unspecified, and unknown; openssl verifies the CA signature', async () => {
    const certs = Object.keys(leaves).flatMap((name) => ['-cert', `${name}.pem`]);
    expect((await run(['ocsp', '-issuer', 'ca.pem', ...certs, '-no_nonce', '-reqout', 'four.der'], dir)).code).toBe(0);
    const request = parseOcspRequest(await readFile(join(dir, 'four.der')))!;
    await writeFile(join(dir, 'four-resp.der'), await respond(ca.ca, request, statuses));
    const { code, output } = await run(['ocsp', '-respin', 'four-resp.der', '-issuer', 'ca.pem', ...certs, '-CAfile', 'ca.pem', '-no_nonce', '-resp_text'], dir);
    expect(code, output).toBe(0);
    expect(output).toContain('Response verify OK');
    expect(output).toContain('Response Type: Basic OCSP Response');
    expect(output).toContain(`Signature Algorithm: ${KEYS[alg].name}`);
    const spki = AsnConvert.parse(new x509.X509Certificate(ca.pem).publicKey.rawData, asn.SubjectPublicKeyInfo);
    expect(output).toContain(`Responder Id: ${createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest('hex').toUpperCase()}`);
    const summary = output.slice(output.indexOf('good.pem:'));
    const block = (name: string) => summary.slice(summary.indexOf(`${name}.pem:`)).split(/\n(?=\w+\.pem:)/)[0]!;
    expect(block('good')).toMatch(/^good\.pem: good\n/);
    expect(block('revoked')).toMatch(/^revoked\.pem: revoked\n/);
    expect(block('revoked')).toContain('Reason: keyCompromise');
    expect(block('revoked')).toContain('Revocation Time:');
    expect(block('unspecified')).toMatch(/^unspecified\.pem: revoked\n/);
    expect(block('unspecified')).not.toContain('Reason:');
    expect(block('unknown')).toMatch(/^unknown\.pem: unknown\n/);
  });

  it('answers openssl over HTTP with the nonce echoed (SHA-1 and SHA-256 CertIDs); without the echo openssl notices', async () => {
    let echo = true;
    const seen: Array<Buffer | null> = [];
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request = parseOcspRequest(Buffer.concat(chunks));
        seen.push(request?.nonce ?? null);
        const answer = request ? respond(ca.ca, request, statuses, echo ? request.nonce : null) : Promise.resolve(ocspErrorResponse('malformedRequest'));
        void answer.then((der) => res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(der));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      for (const digest of [[], ['-sha256']]) {
        const { code, output } = await run(['ocsp', '-url', url, ...digest, '-issuer', 'ca.pem', '-cert', 'revoked.pem', '-CAfile', 'ca.pem'], dir);
        expect(code, output).toBe(0);
        expect(output).toContain('Response verify OK');
        expect(output).toMatch(/revoked\.pem: revoked\n/);
        expect(output).not.toMatch(/nonce/i);
      }
      expect(seen.map((n) => n?.length)).toEqual([16, 16]);
      echo = false;
      const { output } = await run(['ocsp', '-url', url, '-issuer', 'ca.pem', '-cert', 'good.pem', '-CAfile', 'ca.pem'], dir);
      expect(output).toContain('WARNING: no nonce in response');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('writes GeneralizedTime in whole seconds, past 2050 too', async () => {
    expect((await run(['ocsp', '-issuer', 'ca.pem', '-cert', 'good.pem', '-no_nonce', '-reqout', 'y2050.der'], dir)).code).toBe(0);
    const [certId] = parseOcspRequest(await readFile(join(dir, 'y2050.der')))!.requests;
    const der = await buildOcspResponse({
      ca: ca.ca,
      producedAt: new Date('2051-03-04T05:06:07.890Z'),
      responses: [{ certId: certId!, status: { status: 'revoked', revokedAt: new Date('2050-01-01T00:00:00.999Z'), reason: 'superseded' }, thisUpdate: new Date('2051-03-04T05:00:00.5Z'), nextUpdate: new Date('2051-03-05T05:00:00Z') }],
      nonce: null,
    });
    const basic = AsnConvert.parse(AsnConvert.parse(der, ocsp.OCSPResponse).responseBytes!.response, ocsp.BasicOCSPResponse);
    expect(basic.tbsResponseData.producedAt.toISOString()).toBe('2051-03-04T05:06:07.000Z');
    const single = basic.tbsResponseData.responses[0]!;
    expect(single.thisUpdate.toISOString()).toBe('2051-03-04T05:00:00.000Z');
    expect(single.certStatus.revoked!.revocationTime.toISOString()).toBe('2050-01-01T00:00:00.000Z');
    expect(basic.signatureAlgorithm.isEqual(signatureAlgorithmFor(alg))).toBe(true);
    expect(basic.certs).toBeUndefined();
    await writeFile(join(dir, 'y2050-resp.der'), der);
    const { output } = await run(['ocsp', '-respin', 'y2050-resp.der', '-resp_text', '-noverify'], dir);
    expect(output).toContain('Produced At: Mar  4 05:06:07 2051 GMT');
    expect(output).toContain('Revocation Time: Jan  1 00:00:00 2050 GMT');
    expect(output).toContain('Revocation Reason: superseded (0x4)');
  });
});

// ---- requests built by hand: what openssl never sends ----

const SHA1 = new asn.AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26', parameters: null });

function certId(serial: number[] = [0x01]): ocsp.CertID {
  return new ocsp.CertID({ hashAlgorithm: SHA1, issuerNameHash: new OctetString(Buffer.alloc(20, 1)), issuerKeyHash: new OctetString(Buffer.alloc(20, 2)), serialNumber: Uint8Array.from(serial).buffer });
}

function nonceExtension(value: Buffer, critical = false): asn.Extension {
  return new asn.Extension({ extnID: ocsp.id_pkix_ocsp_nonce, critical, extnValue: new OctetString(value) });
}

const octetString = (b: Buffer) => Buffer.from(AsnConvert.serialize(new OctetString(b)));

function request(opts: { count?: number; extensions?: asn.Extension[]; signed?: boolean; ids?: ocsp.CertID[] } = {}): Buffer {
  const tbsRequest = new ocsp.TBSRequest({
    requestList: (opts.ids ?? Array.from({ length: opts.count ?? 1 }, (_, i) => certId([i + 1]))).map((reqCert) => new ocsp.Request({ reqCert })),
    ...(opts.extensions ? { requestExtensions: opts.extensions } : {}),
  });
  const signature = opts.signed ? new ocsp.Signature({ signatureAlgorithm: signatureAlgorithmFor('ECDSA-P256'), signature: Uint8Array.from(randomBytes(70)).buffer }) : undefined;
  return Buffer.from(AsnConvert.serialize(new ocsp.OCSPRequest({ tbsRequest, ...(signature ? { optionalSignature: signature } : {}) })));
}

describe('parseOcspRequest on hostile input', () => {
  it('reads a well-formed request, normalising the serial as the database keys it', () => {
    const parsed = parseOcspRequest(request({ ids: [certId([0x00, 0x80, 0xaa]), certId([0x7f])] }));
    expect(parsed?.requests.map((r) => [r.hashAlgorithm, r.serial])).toEqual([['sha1', '80aa'], ['sha1', '7f']]);
    expect(parsed?.nonce).toBeNull();
  });

  it('returns null for truncations, random bytes, a wrong tag, trailing bytes and 1 MB of junk', () => {
    const good = request({ count: 2, extensions: [nonceExtension(octetString(randomBytes(32)))] });
    for (let n = 0; n < good.length; n++) expect(parseOcspRequest(good.subarray(0, n))).toBeNull();
    for (let i = 0; i < 300; i++) expect(parseOcspRequest(randomBytes(1 + (i % 200)))).toBeNull();
    expect(parseOcspRequest(Buffer.from([0x31, ...good.subarray(1)]))).toBeNull();
    expect(parseOcspRequest(Buffer.concat([good, Buffer.of(0)]))).toBeNull();
    expect(parseOcspRequest(randomBytes(1 << 20))).toBeNull();
    expect(parseOcspRequest(Buffer.concat([Buffer.of(0x30, 0x83, 0x10, 0x00, 0x00), Buffer.alloc(0x100000, 0x30)]))).toBeNull();
    expect(parseOcspRequest(Buffer.alloc(0))).toBeNull();
  });

  it(`accepts up to ${MAX_OCSP_REQUESTS} CertIDs, not more and not none`, () => {
    expect(parseOcspRequest(request({ count: MAX_OCSP_REQUESTS }))?.requests).toHaveLength(MAX_OCSP_REQUESTS);
    expect(parseOcspRequest(request({ count: MAX_OCSP_REQUESTS + 1 }))).toBeNull();
    expect(parseOcspRequest(request({ count: 0 }))).toBeNull();
  });

  it('echoes nonces of 1 to 128 octets (RFC 9654) and refuses 0, 129, a bare value and two nonces', () => {
    for (const n of [1, 16, 32, 128]) {
      const nonce = randomBytes(n);
      expect(parseOcspRequest(request({ extensions: [nonceExtension(octetString(nonce))] }))?.nonce).toEqual(nonce);
    }
    expect(parseOcspRequest(request({ extensions: [nonceExtension(octetString(Buffer.alloc(0)))] }))).toBeNull();
    expect(parseOcspRequest(request({ extensions: [nonceExtension(octetString(randomBytes(129)))] }))).toBeNull();
    expect(parseOcspRequest(request({ extensions: [nonceExtension(Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'))] }))).toBeNull();
    const twice = [nonceExtension(octetString(randomBytes(16))), nonceExtension(octetString(randomBytes(16)))];
    expect(parseOcspRequest(request({ extensions: twice }))).toBeNull();
  });

  it('ignores unknown non-critical extensions, refuses unknown critical ones, answers signed requests', () => {
    const ext = (critical: boolean) => new asn.Extension({ extnID: ocsp.id_pkix_ocsp_pref_sig_algs, critical, extnValue: new OctetString(Buffer.of(0x30, 0x00)) });
    expect(parseOcspRequest(request({ extensions: [ext(false)] }))?.requests).toHaveLength(1);
    expect(parseOcspRequest(request({ extensions: [ext(true)] }))).toBeNull();
    expect(parseOcspRequest(request({ signed: true }))?.requests).toHaveLength(1);
  });

  it('names an unknown CertID hash by its OID and never matches it', async () => {
    const id = certId();
    id.hashAlgorithm = new asn.AlgorithmIdentifier({ algorithm: '1.2.840.113549.2.5' }); // MD5
    const parsed = parseOcspRequest(request({ ids: [id] }))!;
    expect(parsed.requests[0]!.hashAlgorithm).toBe('1.2.840.113549.2.5');
    const ca = await testCa('ECDSA-P256', 'MD5 CA');
    expect(matchesIssuer(parsed.requests[0]!, ca.ca.certificate)).toBe(false);
  });

  it('answers singleRequestExtensions as malformed (known gap of the @peculiar/asn1-ocsp schema), without throwing', () => {
    const base = request();
    // Request ::= SEQUENCE { CertID, [0] EXPLICIT Extensions }: splice [0] { SEQUENCE { nonce extension } } into it.
    const single = Buffer.from(AsnConvert.serialize(new asn.Extensions([nonceExtension(octetString(randomBytes(16)))])));
    const tagged = Buffer.concat([Buffer.of(0xa0, single.length), single]);
    const reqCert = Buffer.from(AsnConvert.serialize(certId()));
    const req = Buffer.concat([Buffer.of(0x30, reqCert.length + tagged.length), reqCert, tagged]);
    const list = Buffer.concat([Buffer.of(0x30, req.length), req]);
    const tbs = Buffer.concat([Buffer.of(0x30, list.length), list]);
    expect(parseOcspRequest(Buffer.concat([Buffer.of(0x30, tbs.length), tbs]))).toBeNull();
    expect(parseOcspRequest(base)).not.toBeNull();
  });
});

describe('ocspRequestFromGetPath', () => {
  it('decodes base64 with raw or escaped /, +, = and the usual client damage', () => {
    const der = Buffer.from('30fbff3e0fbf', 'hex');
    const b64 = der.toString('base64');
    expect(b64).toMatch(/\+/);
    expect(b64).toMatch(/\//);
    for (const tail of [b64, encodeURIComponent(b64), `/${b64}`, `//${encodeURIComponent(b64)}`, b64.replace(/\+/g, ' '), b64.replace(/\+/g, '-').replace(/\//g, '_'), b64.replace(/=+$/, ''), b64.replace(/\//g, '%2f')]) {
      expect(ocspRequestFromGetPath(tail), tail).toEqual(der);
    }
  });

  it('returns null for what is not base64', () => {
    for (const tail of ['', '/', '%E0%A4%A', 'MAo*', 'MAo=x', 'MAoAB', 'M A\n', '..%2F..']) expect(ocspRequestFromGetPath(tail), tail).toBeNull();
  });

  it('round-trips a real openssl request through the GET form', async () => {
    const ca = await testCa('ECDSA-P256', 'GET CA');
    const dir = await mkdtemp(join(tmpdir(), 'palisade-ocsp-get-'));
    try {
      await writeFile(join(dir, 'ca.pem'), ca.pem);
      await writeFile(join(dir, 'leaf.pem'), await ca.issue('4c00ff'));
      expect((await run(['ocsp', '-issuer', 'ca.pem', '-cert', 'leaf.pem', '-reqout', 'req.der'], dir)).code).toBe(0);
      const der = await readFile(join(dir, 'req.der'));
      const parsed = parseOcspRequest(ocspRequestFromGetPath(encodeURIComponent(der.toString('base64')))!);
      expect(parsed?.requests[0]?.serial).toBe('4c00ff');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!openssl.available)('ocspErrorResponse', () => {
  it.each([
    ['malformedRequest', 1],
    ['internalError', 2],
    ['tryLater', 3],
    ['unauthorized', 6],
  ] as const)('%s is an OCSPResponse without responseBytes that openssl reads', async (status, code) => {
    const der = ocspErrorResponse(status);
    expect(der.toString('hex')).toBe(`30030a010${code}`);
    const dir = await mkdtemp(join(tmpdir(), 'palisade-ocsp-err-'));
    try {
      await writeFile(join(dir, 'err.der'), der);
      const { output } = await run(['ocsp', '-respin', 'err.der', '-resp_text', '-noverify'], dir);
      expect(output).toContain(`Responder Error: ${status.toLowerCase()} (${code})`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
