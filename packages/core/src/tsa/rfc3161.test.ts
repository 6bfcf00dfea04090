/**
 * RFC 3161 against a real `openssl ts` TSA (packages/testkit/src/tsa.ts), with `openssl ts -verify` as the
 * independent client, plus tokens this file assembles itself (with the TSA's key, or with certificates the real TSA
 * would refuse to sign with) to reach the verifier's failure paths one at a time.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, constants, createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService, startOpensslTsa, type IssuedCertificate, type OpensslTsaHandle } from '@palisade/testkit';
import { PalisadeError } from '../errors/index.js';
import {
  TAG,
  contextTag,
  derInteger,
  derNull,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derTlv,
  parseDer,
  readBoolean,
  readInteger,
  readNull,
  readOctetString,
  readOid,
} from './der.js';
import { TSA_OID, parseTimeStampResponse, parseTimeStampToken, timeStampRequest, verifyTimeStampToken, type TsaHash } from './rfc3161.js';

describe('timeStampRequest', () => {
  it('builds a TimeStampReq v1: SHA-256 imprint with NULL parameters, 64-bit nonce, certReq TRUE', () => {
    const data = Buffer.from('checkpoint body\n');
    const req = timeStampRequest(data);
    const [version, imprint, nonce, certReq, ...rest] = parseDer(req.der).children;
    expect(rest).toEqual([]);
    expect(readInteger(version, 't', 'version')).toBe(1n);
    const [alg, digest] = imprint!.children;
    expect(readOid(alg!.children[0], 't', 'alg')).toBe(TSA_OID.sha256);
    readNull(alg!.children[1], 't', 'params');
    expect(readOctetString(digest, 't', 'digest')).toEqual(createHash('sha256').update(data).digest());
    expect(readInteger(nonce, 't', 'nonce')).toBe(req.nonce);
    expect(req.nonce! >= 0n && req.nonce! < 2n ** 64n).toBe(true);
    expect(readBoolean(certReq, 't', 'certReq')).toBe(true);
    expect(timeStampRequest(data).nonce).not.toBe(req.nonce);
  });

  it('takes a nonce (bigint or bytes) or none, a policy, certReq false (omitted: DEFAULT FALSE), other hashes', () => {
    const r1 = timeStampRequest(Buffer.from('x'), { nonce: 0x0102n, certReq: false, policy: '1.2.3.4' });
    const c1 = parseDer(r1.der).children;
    expect(c1).toHaveLength(4);
    expect(readOid(c1[2], 't', 'policy')).toBe('1.2.3.4');
    expect(readInteger(c1[3], 't', 'nonce')).toBe(0x0102n);
    expect(timeStampRequest(Buffer.from('x'), { nonce: Buffer.from([0xff, 0x01]) }).nonce).toBe(0xff01n);
    const none = timeStampRequest(Buffer.from('x'), { nonce: false });
    expect(none.nonce).toBeNull();
    expect(parseDer(none.der).children).toHaveLength(3);
    const r384 = timeStampRequest(Buffer.from('x'), { hash: 'sha384' });
    expect(readOid(parseDer(r384.der).children[1]!.children[0]!.children[0], 't', 'alg')).toBe(TSA_OID.sha384);
    expect(r384.digest).toHaveLength(48);
  });

  it('refuses a negative or oversized nonce and a malformed policy with PAL_VALIDATION_FAILED', () => {
    for (const opts of [{ nonce: -1n }, { nonce: 2n ** 256n }, { nonce: Buffer.alloc(0) }, { nonce: Buffer.alloc(33) }, { policy: 'not.an.oid' }]) {
      expect(() => timeStampRequest(Buffer.from('x'), opts)).toThrow(PalisadeError);
    }
  });
});

describe('parseTimeStampResponse (hand-built)', () => {
  it('reads a rejection with status text and failure bits', () => {
    const failInfo = derTlv(TAG.BIT_STRING, Buffer.from([0x02, 0x20, 0x04])); // bits 2 (badRequest) and 13
    const der = derSequence(derSequence(derInteger(2), derSequence(derTlv(TAG.UTF8_STRING, Buffer.from('no'))), failInfo));
    const r = parseTimeStampResponse(der);
    expect(r).toMatchObject({ status: 2, statusName: 'rejection', granted: false, statusString: ['no'], failInfo: ['badRequest', 'bit13'], token: null });
  });

  it('rejects granted without a token, a token with a rejection, unknown statuses, garbage', () => {
    const token = derSequence(derOid(TSA_OID.signedData));
    expect(() => parseTimeStampResponse(derSequence(derSequence(derInteger(0))))).toThrow(/no time-stamp token/);
    expect(() => parseTimeStampResponse(derSequence(derSequence(derInteger(2)), token))).toThrow(/must not carry/);
    expect(() => parseTimeStampResponse(derSequence(derSequence(derInteger(9))))).toThrow(/unknown PKIStatus/);
    expect(() => parseTimeStampResponse(Buffer.from('<html>502 Bad Gateway</html>'))).toThrow(PalisadeError);
    expect(() => parseTimeStampResponse(Buffer.alloc(0))).toThrow(PalisadeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Tokens assembled here (CMS SignedData over a TSTInfo), to reach each verifier check

interface ForgeOptions {
  data: Uint8Array;
  signer: { certPem: string; keyPem: string };
  imprintHash?: TsaHash;
  nonce?: bigint | null;
  /** GeneralizedTime text; default now. */
  genTime?: string;
  policy?: string;
  /** PEM certificates to embed; default the signer's. */
  certs?: string[];
  sid?: 'issuerAndSerialNumber' | 'subjectKeyIdentifier';
  ess?: 'v2' | 'v1' | 'none' | { otherCertPem: string };
  signature?: 'pkcs1' | 'pss' | 'ecdsa';
  digest?: TsaHash;
  contentType?: string;
  tstInfoVersion?: number;
}

const genTimeNow = (): string => new Date().toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

function certFields(pem: string): { der: Buffer; issuer: Buffer; serial: Buffer; ski: Buffer | null } {
  const der = new X509Certificate(pem).raw;
  const tbs = parseDer(der).children[0]!.children;
  const off = tbs[0]!.tag === contextTag(0, true) ? 1 : 0;
  const exts = tbs.find((n) => n.tag === contextTag(3, true))?.children[0]?.children ?? [];
  const skiExt = exts.find((e) => readOid(e.children[0], 't', 'oid') === TSA_OID.subjectKeyIdentifier);
  return { der, serial: tbs[off]!.der, issuer: tbs[off + 2]!.der, ski: skiExt ? parseDer(skiExt.children.at(-1)!.value).value : null };
}

function forgeToken(o: ForgeOptions): Buffer {
  const imprintHash = o.imprintHash ?? 'sha256';
  const digestHash = o.digest ?? 'sha256';
  const alg = (h: TsaHash) => derSequence(derOid(TSA_OID[h]), derNull());
  const tst = derSequence(
    derInteger(o.tstInfoVersion ?? 1),
    derOid(o.policy ?? '1.3.6.1.4.1.99999.3161.1'),
    derSequence(alg(imprintHash), derOctetString(createHash(imprintHash).update(o.data).digest())),
    derInteger(BigInt(`0x${randomBytes(8).toString('hex')}`)),
    derTlv(TAG.GENERALIZED_TIME, Buffer.from(o.genTime ?? genTimeNow())),
    ...(o.nonce === null || o.nonce === undefined ? [] : [derInteger(o.nonce)]),
  );
  const signer = certFields(o.signer.certPem);
  const attr = (oid: string, value: Buffer) => derSequence(derOid(oid), derSetOf(value));
  const attrs = [attr(TSA_OID.contentType, derOid(o.contentType ?? TSA_OID.tstInfo)), attr(TSA_OID.messageDigest, derOctetString(createHash(digestHash).update(tst).digest()))];
  const ess = o.ess ?? 'v2';
  if (ess !== 'none') {
    const certDer = typeof ess === 'object' ? new X509Certificate(ess.otherCertPem).raw : signer.der;
    const v1 = ess === 'v1';
    attrs.push(attr(v1 ? TSA_OID.signingCertificate : TSA_OID.signingCertificateV2, derSequence(derSequence(derSequence(derOctetString(createHash(v1 ? 'sha1' : 'sha256').update(certDer).digest()))))));
  }
  const signedAttrs = derSetOf(...attrs);
  const key = createPrivateKey(o.signer.keyPem);
  const kind = o.signature ?? (key.asymmetricKeyType === 'ec' ? 'ecdsa' : 'pkcs1');
  let sigAlg: Buffer;
  let signature: Buffer;
  if (kind === 'ecdsa') {
    sigAlg = derSequence(derOid({ sha256: TSA_OID.ecdsaWithSha256, sha384: TSA_OID.ecdsaWithSha384, sha512: TSA_OID.ecdsaWithSha512 }[digestHash]));
    signature = sign(digestHash, signedAttrs, key);
  } else if (kind === 'pkcs1') {
    sigAlg = derSequence(derOid({ sha256: TSA_OID.sha256WithRSAEncryption, sha384: TSA_OID.sha384WithRSAEncryption, sha512: TSA_OID.sha512WithRSAEncryption }[digestHash]), derNull());
    signature = sign(digestHash, signedAttrs, { key, padding: constants.RSA_PKCS1_PADDING });
  } else {
    const saltLength = { sha256: 32, sha384: 48, sha512: 64 }[digestHash];
    const params = derSequence(
      derTlv(contextTag(0, true), alg(digestHash)),
      derTlv(contextTag(1, true), derSequence(derOid(TSA_OID.mgf1), alg(digestHash))),
      derTlv(contextTag(2, true), derInteger(saltLength)),
    );
    sigAlg = derSequence(derOid(TSA_OID.rsassaPss), params);
    signature = sign(digestHash, signedAttrs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
  }
  const ski = o.sid === 'subjectKeyIdentifier';
  const sid = ski ? derTlv(contextTag(0, false), signer.ski!) : derSequence(signer.issuer, signer.serial);
  const signerInfo = derSequence(derInteger(ski ? 3 : 1), sid, alg(digestHash), Buffer.concat([Buffer.from([contextTag(0, true)]), signedAttrs.subarray(1)]), sigAlg, derOctetString(signature));
  const certs = (o.certs ?? [o.signer.certPem]).map((p) => new X509Certificate(p).raw);
  const signedData = derSequence(
    derInteger(3),
    derSetOf(alg(digestHash)),
    derSequence(derOid(TSA_OID.tstInfo), derTlv(contextTag(0, true), derOctetString(tst))),
    ...(certs.length ? [derTlv(contextTag(0, true), Buffer.concat(certs))] : []),
    derSetOf(signerInfo),
  );
  return derSequence(derOid(TSA_OID.signedData), derTlv(contextTag(0, true), signedData));
}

// ---------------------------------------------------------------------------------------------------------------

const quiet = { stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[] };
const openssl = requireService('openssl', 'RFC 3161 time-stamping against openssl ts');

describe.skipIf(!openssl.available)('RFC 3161 against a real openssl TSA', () => {
  let tsa: OpensslTsaHandle;
  let rsaTsa: OpensslTsaHandle;
  let otherTsa: OpensslTsaHandle;
  const data = Buffer.from('palisade/audit\n42\nq83kVq8D8JnmQkEUcGX9Rm9n1ZVBsPGfLDPBrk5KCn0=\n');
  let file = 0;
  const tmp = (content: Uint8Array): string => {
    const p = join(tsa.dir, `t${++file}.bin`);
    writeFileSync(p, content);
    return p;
  };
  /** `openssl ts -verify` (the independent client): true if it prints "Verification: OK". */
  const opensslVerify = (token: Uint8Array, content: Uint8Array, caPath: string, opts: { response?: boolean; untrusted?: string } = {}): boolean => {
    const args = ['ts', '-verify', '-data', tmp(content), '-in', tmp(token), ...(opts.response ? [] : ['-token_in']), '-CAfile', caPath, ...(opts.untrusted ? ['-untrusted', opts.untrusted] : [])];
    try {
      return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('Verification: OK');
    } catch {
      return false;
    }
  };
  const post = async (der: Uint8Array, url = tsa.url): Promise<Buffer> => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: der });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/timestamp-reply');
    return Buffer.from(await res.arrayBuffer());
  };
  const stamp = async (content: Uint8Array, opts: Parameters<typeof timeStampRequest>[1] = {}, handle?: OpensslTsaHandle) => {
    const req = timeStampRequest(content, opts);
    const raw = await post(req.der, (handle ?? tsa).url);
    const resp = parseTimeStampResponse(raw);
    expect(resp.statusName).toBe('granted');
    return { req, raw, resp, token: resp.token! };
  };

  beforeAll(async () => {
    [tsa, rsaTsa, otherTsa] = await Promise.all([startOpensslTsa(), startOpensslTsa({ keyType: 'rsa', includeChain: true, signerDigest: 'sha384' }), startOpensslTsa()]);
  });
  afterAll(async () => {
    await Promise.all([tsa?.stop(), rsaTsa?.stop(), otherTsa?.stop()]);
  });

  describe('requests', () => {
    it('equal, byte for byte, what `openssl ts -query -sha256 -cert -no_nonce` writes', () => {
      const ours = timeStampRequest(data, { nonce: false });
      const theirs = execFileSync('openssl', ['ts', '-query', '-data', tmp(data), '-sha256', '-cert', '-no_nonce'], quiet);
      expect(ours.der.toString('hex')).toBe(theirs.toString('hex'));
    });

    it('have the structure of an openssl request with a nonce (fields read back with our reader)', () => {
      const theirs = parseDer(execFileSync('openssl', ['ts', '-query', '-data', tmp(data), '-sha256', '-cert'], quiet), 'openssl request');
      const ours = parseDer(timeStampRequest(data).der);
      expect(theirs.children.map((c) => c.tag)).toEqual(ours.children.map((c) => c.tag)); // version, imprint, nonce, certReq
      expect(theirs.children[1]!.der).toEqual(ours.children[1]!.der); // identical messageImprint
      expect(readInteger(theirs.children[2], 't', 'nonce') > 0n).toBe(true);
      expect(readBoolean(theirs.children[3], 't', 'certReq')).toBe(true);
    });

    it('are read by `openssl ts -query -in` and answered by `openssl ts -reply`', async () => {
      const req = timeStampRequest(data, { nonce: 0xdeadbeefn, policy: '1.3.6.1.4.1.99999.3161.2' });
      const text = execFileSync('openssl', ['ts', '-query', '-in', tmp(req.der), '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(text).toMatch(/Nonce: 0xDEADBEEF/i);
      expect(text).toMatch(/Certificate required: yes/);
      expect(text).toMatch(/Policy OID: 1\.3\.6\.1\.4\.1\.99999\.3161\.2/);
      const resp = parseTimeStampResponse(await tsa.reply(req.der));
      expect(resp.statusName).toBe('granted');
      const info = parseTimeStampToken(resp.token!).tstInfo;
      expect(info.nonce).toBe(0xdeadbeefn);
      expect(info.policy).toBe('1.3.6.1.4.1.99999.3161.2');
    });

    it('a hash the TSA does not accept (SHA-1, from openssl) comes back as a rejection with badAlg', async () => {
      const sha1Query = execFileSync('openssl', ['ts', '-query', '-data', tmp(data), '-sha1', '-cert'], quiet);
      const resp = parseTimeStampResponse(await tsa.reply(sha1Query));
      expect(resp).toMatchObject({ status: 2, statusName: 'rejection', granted: false, token: null, failInfo: ['badAlg'] });
      expect(resp.statusString.join(' ')).toMatch(/algorithm/i);
    });
  });

  describe('round trip: request → openssl TSA over HTTP → token', () => {
    it('parses the token: TSTInfo fields and the SignedData pieces', async () => {
      const before = Date.now();
      const { req, token } = await stamp(data);
      const t = parseTimeStampToken(token);
      const tsaCert = new X509Certificate(tsa.tsaCertPem);
      expect(t.eContentType).toBe(TSA_OID.tstInfo);
      expect(t.tstInfo).toMatchObject({ version: 1, policy: tsa.policy, nonce: req.nonce, ordering: false, accuracy: { seconds: 1, millis: 500, micros: 100 }, extensions: [] });
      expect(t.tstInfo.messageImprint).toEqual({ hashAlgorithm: TSA_OID.sha256, digest: createHash('sha256').update(data).digest() });
      expect(t.tstInfo.genTime.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      expect(t.tstInfo.genTime.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
      expect(t.tstInfo.genTimeText).toMatch(/^\d{14}(\.\d{1,3})?Z$/);
      expect(t.tstInfo.tsa?.text).toBe('CN=Palisade Test TSA');
      expect(t.certificates).toHaveLength(1);
      expect(t.certificates[0]).toEqual(tsaCert.raw);
      const sid = t.signerInfo.sid;
      expect(sid.type).toBe('issuerAndSerialNumber');
      if (sid.type === 'issuerAndSerialNumber') expect(sid.serialNumber.toString('hex').toUpperCase().replace(/^0+/, '')).toBe(tsaCert.serialNumber.replace(/^0+/, ''));
      expect(t.signerInfo.digestAlgorithm.oid).toBe(TSA_OID.sha256);
      expect(t.signerInfo.signatureAlgorithm.oid).toBe(TSA_OID.ecdsaWithSha256);
      expect(t.signerInfo.signedAttributes![0]).toBe(0xa0);
      expect(t.signerInfo.signature.length).toBeGreaterThan(60);
    });

    it('verifies with our verifier and with `openssl ts -verify` (token and response)', async () => {
      const { req, raw, token } = await stamp(data);
      const v = verifyTimeStampToken(token, data, { trusted: [tsa.caPem], nonce: req.nonce! });
      expect(v).toMatchObject({ ok: true });
      if (!v.ok) return;
      expect(v.serial).toBe(parseTimeStampToken(token).tstInfo.serialNumber);
      expect(v.tsaCertificate.raw).toEqual(new X509Certificate(tsa.tsaCertPem).raw);
      expect(v.chain.map((c) => c.subject)).toEqual(['CN=Palisade Test TSA', 'CN=Palisade Test TSA CA']);
      expect(opensslVerify(token, data, tsa.caPath, { untrusted: tsa.tsaCertPath })).toBe(true);
      expect(opensslVerify(raw, data, tsa.caPath, { response: true, untrusted: tsa.tsaCertPath })).toBe(true);
    });

    it('RSA TSA with the CA in the token and SHA-384 signatures; SHA-384 and SHA-512 imprints', async () => {
      for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
        const { req, token } = await stamp(data, { hash }, rsaTsa);
        const t = parseTimeStampToken(token);
        expect(t.tstInfo.messageImprint.hashAlgorithm).toBe(TSA_OID[hash]);
        expect(t.certificates).toHaveLength(2);
        expect(t.signerInfo.digestAlgorithm.oid).toBe(TSA_OID.sha384);
        expect([TSA_OID.rsaEncryption, TSA_OID.sha384WithRSAEncryption]).toContain(t.signerInfo.signatureAlgorithm.oid);
        expect(verifyTimeStampToken(token, data, { trusted: [rsaTsa.caPem], nonce: req.nonce! })).toMatchObject({ ok: true });
        expect(opensslVerify(token, data, rsaTsa.caPath)).toBe(true);
      }
    });

    it('certReq false: no certificate in the token, the TSA certificate can be given as untrusted', async () => {
      const { token } = await stamp(data, { certReq: false });
      expect(parseTimeStampToken(token).certificates).toEqual([]);
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem] })).toEqual({ ok: false, reason: expect.stringMatching(/signer certificate is neither in the token/) });
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem], untrusted: [tsa.tsaCertPem] })).toMatchObject({ ok: true });
    });

    it('serves concurrent requests (openssl serial file kept consistent)', async () => {
      const tokens = await Promise.all(Array.from({ length: 6 }, (_, i) => stamp(Buffer.from(`n${i}`))));
      const serials = tokens.map(({ token }) => parseTimeStampToken(token).tstInfo.serialNumber);
      expect(new Set(serials).size).toBe(6);
    });
  });

  describe('failures carry a reason', () => {
    it('tampered data', async () => {
      const { token } = await stamp(data);
      const tampered = Buffer.from(data);
      tampered[5] = tampered[5]! ^ 1;
      expect(verifyTimeStampToken(token, tampered, { trusted: [tsa.caPem] })).toEqual({ ok: false, reason: 'the message imprint does not match the data' });
      expect(opensslVerify(token, tampered, tsa.caPath)).toBe(false);
    });

    it('tampered token: TSTInfo, signed attributes, signature, certificate — and no byte flip anywhere throws', async () => {
      const { token } = await stamp(data);
      const t = parseTimeStampToken(token);
      const at = (part: Buffer) => token.indexOf(part);
      const flip = (pos: number, bit = 1): Buffer => {
        const b = Buffer.from(token);
        b[pos] = b[pos]! ^ bit;
        return b;
      };
      const verify = (b: Buffer) => verifyTimeStampToken(b, data, { trusted: [tsa.caPem] });
      const genTimePos = at(Buffer.from(t.tstInfo.genTimeText)) + 3; // a digit of the year
      expect(verify(flip(genTimePos))).toEqual({ ok: false, reason: 'the message-digest attribute does not match the TSTInfo' });
      expect(opensslVerify(flip(genTimePos), data, tsa.caPath)).toBe(false);
      const attrs = at(t.signerInfo.signedAttributes!);
      expect(verify(flip(attrs + t.signerInfo.signedAttributes!.length - 40))).toMatchObject({ ok: false });
      const sigPos = at(t.signerInfo.signature) + t.signerInfo.signature.length - 3;
      expect(verify(flip(sigPos))).toMatchObject({ ok: false, reason: expect.stringMatching(/signature does not verify|DER|INTEGER/) });
      expect(opensslVerify(flip(sigPos), data, tsa.caPath)).toBe(false);
      const certPos = at(t.certificates[0]!) + 200;
      expect(verify(flip(certPos))).toMatchObject({ ok: false });

      // Every byte of the signed content (TSTInfo), the signer info and the certificate, each bit: never ok.
      const tst = at(t.tstInfoDer);
      const signerInfos = parseDer(token).children[1]!.children[0]!.children.at(-1)!; // SignedData.signerInfos
      const guarded = [
        [tst, tst + t.tstInfoDer.length],
        [at(t.certificates[0]!), at(t.certificates[0]!) + t.certificates[0]!.length],
        [signerInfos.offset, token.length],
      ] as const;
      let checked = 0;
      for (let pos = 0; pos < token.length; pos++) {
        const r = verify(flip(pos, 1 << (pos % 8))); // never throws
        if (guarded.some(([a, b]) => pos >= a && pos < b)) {
          expect(r.ok, `byte ${pos} flipped still verifies`).toBe(false);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(token.length / 2);
    });

    it('wrong CA', async () => {
      const { token } = await stamp(data);
      expect(verifyTimeStampToken(token, data, { trusted: [otherTsa.caPem] })).toEqual({ ok: false, reason: 'the TSA certificate (CN=Palisade Test TSA) does not chain to a trusted CA' });
      expect(opensslVerify(token, data, otherTsa.caPath)).toBe(false);
      // a token from another TSA whose CA we do not trust either
      const other = await stamp(data, {}, otherTsa);
      expect(verifyTimeStampToken(other.token, data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/does not chain to a trusted CA/) });
    });

    it('wrong or missing nonce, wrong policy', async () => {
      const { req, token } = await stamp(data);
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem], nonce: req.nonce! + 1n })).toEqual({ ok: false, reason: 'the nonce does not match the request' });
      const { token: noNonce } = await stamp(data, { nonce: false });
      expect(verifyTimeStampToken(noNonce, data, { trusted: [tsa.caPem], nonce: 1n })).toEqual({ ok: false, reason: 'the token carries no nonce' });
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem], policy: '1.2.3' })).toMatchObject({ ok: false, reason: expect.stringMatching(/policy/) });
    });

    it('invalid options throw instead: no trusted certificate, unreadable PEM', async () => {
      const { token } = await stamp(data);
      expect(() => verifyTimeStampToken(token, data, { trusted: [] })).toThrow(/no trusted CA/);
      expect(() => verifyTimeStampToken(token, data, { trusted: ['not a pem'] })).toThrow(/holds no PEM certificate/);
    });
  });

  describe('tokens assembled here (the TSA’s key, or certificates openssl ts would refuse)', () => {
    const ok = { ok: true };
    let noEku: IssuedCertificate;
    let nonCritical: IssuedCertificate;
    let extraEku: IssuedCertificate;
    let intermediate: IssuedCertificate;
    let tsaUnderIntermediate: IssuedCertificate;
    const tsaSigner = () => ({ certPem: tsa.tsaCertPem, keyPem: tsa.tsaKeyPem });

    beforeAll(() => {
      noEku = tsa.issueCertificate({ cn: 'No EKU', eku: 'none' });
      nonCritical = tsa.issueCertificate({ cn: 'Non-critical EKU', eku: 'non-critical' });
      extraEku = tsa.issueCertificate({ cn: 'Extra EKU', extraEku: ['codeSigning'] });
      intermediate = tsa.issueCertificate({ cn: 'Intermediate CA', ca: true });
      tsaUnderIntermediate = tsa.issueCertificate({ cn: 'TSA under intermediate', issuer: intermediate });
    });

    it('the assembler is sound: its token from the real TSA key verifies here and with openssl', () => {
      const token = forgeToken({ data, signer: tsaSigner(), nonce: 7n });
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem], nonce: 7n })).toMatchObject(ok);
      expect(opensslVerify(token, data, tsa.caPath, { untrusted: tsa.tsaCertPath })).toBe(true);
    });

    it('a TSA certificate without the timeStamping extended key usage fails (here and in openssl)', () => {
      const token = forgeToken({ data, signer: noEku });
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem] })).toEqual({ ok: false, reason: 'the TSA certificate (CN=No EKU) has no extended key usage (id-kp-timeStamping required)' });
      expect(opensslVerify(token, data, tsa.caPath)).toBe(false);
    });

    it('a non-critical timeStamping usage, or one beside other usages, fails', () => {
      expect(verifyTimeStampToken(forgeToken({ data, signer: nonCritical }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/non-critical extended key usage/) });
      expect(opensslVerify(forgeToken({ data, signer: nonCritical }), data, tsa.caPath)).toBe(false);
      expect(verifyTimeStampToken(forgeToken({ data, signer: extraEku }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/besides id-kp-timeStamping/) });
    });

    it('genTime outside the TSA certificate’s validity fails', () => {
      const token = forgeToken({ data, signer: tsaSigner(), genTime: '20010101000000Z' });
      expect(verifyTimeStampToken(token, data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/^the TSA certificate was not valid at genTime 2001-01-01T00:00:00.000Z/) });
    });

    it('the ESS signing-certificate attribute: v1 accepted; missing or naming another certificate fails', () => {
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), ess: 'v1' }), data, { trusted: [tsa.caPem] })).toMatchObject(ok);
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), ess: 'none' }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/lack the ESS signing-certificate/) });
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), ess: { otherCertPem: noEku.certPem } }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/does not match the signer certificate/) });
    });

    it('content-type attribute other than id-ct-TSTInfo, TSTInfo version 2: fail', () => {
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), contentType: '1.2.840.113549.1.7.1' }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/content-type attribute/) });
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), tstInfoVersion: 2 }), data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/version 2 is not 1/) });
    });

    it('signer by subject key identifier; RSA PKCS#1 v1.5 and RSA-PSS; SHA-384/512 imprints and digests', () => {
      const rsa = { certPem: rsaTsa.tsaCertPem, keyPem: rsaTsa.tsaKeyPem };
      const trusted = { trusted: [rsaTsa.caPem] };
      expect(verifyTimeStampToken(forgeToken({ data, signer: tsaSigner(), sid: 'subjectKeyIdentifier' }), data, { trusted: [tsa.caPem] })).toMatchObject(ok);
      expect(verifyTimeStampToken(forgeToken({ data, signer: rsa, signature: 'pkcs1', digest: 'sha512', imprintHash: 'sha384' }), data, trusted)).toMatchObject(ok);
      const pss = forgeToken({ data, signer: rsa, signature: 'pss', digest: 'sha256', imprintHash: 'sha512' });
      expect(verifyTimeStampToken(pss, data, trusted)).toMatchObject(ok);
      expect(parseTimeStampToken(pss).signerInfo.signatureAlgorithm.oid).toBe(TSA_OID.rsassaPss);
      // the PSS signature checked as PKCS#1 v1.5 must fail: rewrite the algorithm identifier in place
      const t = parseTimeStampToken(pss);
      const asPkcs1 = Buffer.from(pss);
      const pssOid = derOid(TSA_OID.rsassaPss);
      const i = asPkcs1.indexOf(pssOid, asPkcs1.indexOf(t.signerInfo.signedAttributes!) + t.signerInfo.signedAttributes!.length);
      derOid(TSA_OID.sha256WithRSAEncryption).copy(asPkcs1, i);
      expect(verifyTimeStampToken(asPkcs1, data, trusted)).toMatchObject({ ok: false });
    });

    it('intermediate CA: from the token or from `untrusted`; missing intermediate fails', () => {
      const signer = { certPem: tsaUnderIntermediate.certPem, keyPem: tsaUnderIntermediate.keyPem };
      const withChain = forgeToken({ data, signer, certs: [tsaUnderIntermediate.certPem, intermediate.certPem] });
      const v = verifyTimeStampToken(withChain, data, { trusted: [tsa.caPem] });
      expect(v.ok && v.chain.map((c) => c.subject)).toEqual(['CN=TSA under intermediate', 'CN=Intermediate CA', 'CN=Palisade Test TSA CA']);
      expect(opensslVerify(withChain, data, tsa.caPath)).toBe(true);
      const bare = forgeToken({ data, signer });
      expect(verifyTimeStampToken(bare, data, { trusted: [tsa.caPem] })).toMatchObject({ ok: false, reason: expect.stringMatching(/does not chain to a trusted CA/) });
      expect(verifyTimeStampToken(bare, data, { trusted: [tsa.caPem], untrusted: [intermediate.certPem] })).toMatchObject(ok);
      // an end-entity certificate (no keyCertSign, CA:FALSE) cannot act as an intermediate
      const fakeIssuer = tsa.issueCertificate({ cn: 'Not a CA', eku: 'none' });
      const underLeaf = tsa.issueCertificate({ cn: 'TSA under a leaf', issuer: fakeIssuer });
      const t = forgeToken({ data, signer: underLeaf, certs: [underLeaf.certPem, fakeIssuer.certPem] });
      expect(verifyTimeStampToken(t, data, { trusted: [tsa.caPem] })).toEqual({ ok: false, reason: 'the TSA certificate (CN=TSA under a leaf) does not chain to a trusted CA' });
      expect(opensslVerify(t, data, tsa.caPath)).toBe(false);
    });
  });

  it('random mutations of a real token: parse throws only PalisadeError, verify never throws', async () => {
    const { token } = await stamp(data);
    for (let i = 0; i < 1500; i++) {
      const b = Buffer.from(token);
      const n = 1 + (i % 4);
      for (let k = 0; k < n; k++) b[(i * 7919 + k * 31337) % b.length] = (i * 131 + k * 17) & 0xff;
      const cut = i % 5 === 0 ? b.subarray(0, (i * 13) % b.length) : b;
      try {
        parseTimeStampToken(cut);
      } catch (e) {
        expect(e).toBeInstanceOf(PalisadeError);
      }
      const r = verifyTimeStampToken(cut, data, { trusted: [tsa.caPem] });
      expect(typeof r.ok).toBe('boolean');
    }
  });
});
