import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeError, parseTimeStampToken, verifyTimeStampToken } from '@palisade/core';
import { requireService, startOpensslTsa, type OpensslTsaHandle } from '@palisade/testkit';
import type { AnchorContext, SignedCheckpoint } from './anchor.js';
import { Rfc3161Anchor } from './rfc3161.js';

const openssl = requireService('openssl', 'RFC 3161 audit anchor');

function checkpoint(size: number): SignedCheckpoint {
  const root = createHash('sha256').update(`root ${size}`).digest();
  const body = `palisade.test/audit\n${size}\n${root.toString('base64')}\n`;
  return { origin: 'palisade.test/audit', size, root, body, note: `${body}\n\u2014 palisade.test/audit ${randomBytes(68).toString('base64')}\n` };
}

const ctx: AnchorContext = { consistencyProof: async () => [], lastAnchoredSize: async () => 0 };

const listen = async (server: Server): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
};

const readBody = (req: IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });

describe.skipIf(!openssl.available)('Rfc3161Anchor', () => {
  let tsa: OpensslTsaHandle;
  let otherTsa: OpensslTsaHandle;
  let https: Server;
  let httpsUrl: string;
  let fault: Server;
  let faultUrl: string;
  /** What the fault server does with the next request. */
  let behave: (req: IncomingMessage, res: ServerResponse, query: Buffer) => void | Promise<void> = () => {};

  beforeAll(async () => {
    [tsa, otherTsa] = await Promise.all([startOpensslTsa(), startOpensslTsa()]);
    const tls = tsa.issueCertificate({ cn: 'localhost', eku: 'none', extraEku: ['serverAuth'], san: ['IP:127.0.0.1', 'DNS:localhost'] });
    // https in front of the TSA, with a server certificate from the same test CA
    https = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      void readBody(req)
        .then((q) => tsa.reply(q))
        .then((der) => res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(der))
        .catch(() => res.destroy());
    });
    httpsUrl = `https://${await listen(https)}/tsa`;
    fault = createServer((req, res) => {
      void readBody(req)
        .then((q) => behave(req, res, q))
        .catch(() => res.destroy());
    });
    faultUrl = `http://${await listen(fault)}/`;
  });
  afterAll(async () => {
    for (const s of [https, fault]) {
      s?.closeAllConnections();
      s?.close();
    }
    await Promise.all([tsa?.stop(), otherTsa?.stop()]);
  });

  describe('against the openssl TSA', () => {
    it('time-stamps the checkpoint body; the receipt is a token our verifier and `openssl ts -verify` accept', async () => {
      const anchor = new Rfc3161Anchor({ name: 'tsa1', url: tsa.url, caPem: tsa.caPem });
      expect(anchor.kind).toBe('rfc3161');
      const cp = checkpoint(42);
      const before = Date.now();
      const receipt = await anchor.anchor(cp, ctx);
      expect(receipt).toMatch(/^[A-Za-z0-9+/]+=*$/);
      const token = Buffer.from(receipt, 'base64');
      const v = verifyTimeStampToken(token, Buffer.from(cp.body), { trusted: [tsa.caPem] });
      expect(v.ok).toBe(true);
      if (v.ok) expect(Math.abs(v.genTime.getTime() - before)).toBeLessThan(5000);
      // the imprint covers the body (what the log's signatures cover), not the whole note
      expect(parseTimeStampToken(token).tstInfo.messageImprint.digest).toEqual(createHash('sha256').update(cp.body).digest());
      expect(anchor.verifyReceipt(cp, receipt)).toMatchObject({ ok: true });
      expect(anchor.verifyReceipt(checkpoint(43), receipt)).toEqual({ ok: false, reason: 'the message imprint does not match the data' });

      const dataFile = join(tsa.dir, 'cp.txt');
      const tokenFile = join(tsa.dir, 'cp.tst');
      writeFileSync(dataFile, cp.body);
      writeFileSync(tokenFile, token);
      const out = execFileSync('openssl', ['ts', '-verify', '-data', dataFile, '-in', tokenFile, '-token_in', '-CAfile', tsa.caPath, '-untrusted', tsa.tsaCertPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out).toContain('Verification: OK');
    });

    it('over https, trusting the configured CA', async () => {
      const anchor = new Rfc3161Anchor({ name: 'tsa-tls', url: httpsUrl, caPem: tsa.caPem });
      const cp = checkpoint(7);
      expect(anchor.verifyReceipt(cp, await anchor.anchor(cp, ctx))).toMatchObject({ ok: true });
    });

    it('https without the CA: the public roots do not know the test CA', async () => {
      const anchor = new Rfc3161Anchor({ name: 'tsa-tls', url: httpsUrl });
      await expect(anchor.anchor(checkpoint(7), ctx)).rejects.toThrow(/^rfc3161 anchor tsa-tls \(https:\/\/127\.0\.0\.1:\d+\/tsa\): request failed: .*certificate/);
    });

    it('without a CA the token is still checked for the imprint and the nonce, and stored', async () => {
      const anchor = new Rfc3161Anchor({ name: 'tsa-noca', url: tsa.url });
      const cp = checkpoint(8);
      const receipt = await anchor.anchor(cp, ctx);
      expect(verifyTimeStampToken(Buffer.from(receipt, 'base64'), Buffer.from(cp.body), { trusted: [tsa.caPem] })).toMatchObject({ ok: true });
      expect(anchor.verifyReceipt(cp, receipt)).toEqual({ ok: false, reason: 'rfc3161 anchor tsa-noca has no CA configured to verify with' });
    });

    it('a token from a TSA the configured CA does not vouch for is refused', async () => {
      const anchor = new Rfc3161Anchor({ name: 'tsa1', url: tsa.url, caPem: otherTsa.caPem });
      await expect(anchor.anchor(checkpoint(9), ctx)).rejects.toThrow(
        /^rfc3161 anchor tsa1 \(http:\/\/127\.0\.0\.1:\d+\/\): the time-stamp token does not verify: the TSA certificate \(CN=Palisade Test TSA\) does not chain to a trusted CA$/,
      );
    });
  });

  describe('a misbehaving TSA gives a clear error naming it, never a hang', () => {
    const reply = (res: ServerResponse, der: Buffer, type = 'application/timestamp-reply'): void => {
      res.writeHead(200, { 'content-type': type }).end(der);
    };
    const anchorTo = (caPem?: string, timeoutMs = 2000) => new Rfc3161Anchor({ name: 'flaky', url: faultUrl, timeoutMs, ...(caPem ? { caPem } : {}) });
    const name = /^rfc3161 anchor flaky \(http:\/\/127\.0\.0\.1:\d+\/\): /;

    it('no answer: times out', async () => {
      behave = () => {}; // never answers
      const t0 = Date.now();
      await expect(anchorTo(tsa.caPem, 300).anchor(checkpoint(1), ctx)).rejects.toThrow(new RegExp(`${name.source}no complete answer within 300 ms$`));
      expect(Date.now() - t0).toBeLessThan(2000);
    });

    it('headers, then a body that never ends: times out', async () => {
      behave = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/timestamp-reply' });
        res.write(Buffer.from([0x30, 0x82, 0x10, 0x00]));
      };
      await expect(anchorTo(tsa.caPem, 300).anchor(checkpoint(1), ctx)).rejects.toThrow(/no complete answer within 300 ms/);
    });

    it('HTTP errors, redirects, wrong content type, garbage, oversized replies, connection refused', async () => {
      behave = (_req, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('TSA key unavailable');
      };
      await expect(anchorTo().anchor(checkpoint(1), ctx)).rejects.toThrow(new RegExp(`${name.source}HTTP 500: TSA key unavailable$`));
      behave = (_req, res) => {
        res.writeHead(302, { location: 'http://example.invalid/' }).end();
      };
      await expect(anchorTo().anchor(checkpoint(1), ctx)).rejects.toThrow(/HTTP 302$/);
      behave = async (_req, res, q) => reply(res, await tsa.reply(q), 'text/html');
      await expect(anchorTo().anchor(checkpoint(1), ctx)).rejects.toThrow(new RegExp(`${name.source}the reply's content type is text/html, not application/timestamp-reply$`));
      behave = (_req, res) => reply(res, Buffer.from('<html>hello</html>'));
      await expect(anchorTo().anchor(checkpoint(1), ctx)).rejects.toThrow(new RegExp(`${name.source}the reply is not a time-stamp response: `));
      behave = (_req, res) => reply(res, Buffer.alloc(2 * 1024 * 1024));
      await expect(anchorTo().anchor(checkpoint(1), ctx)).rejects.toThrow(/the reply exceeds 1048576 bytes/);
      const closed = new Rfc3161Anchor({ name: 'gone', url: 'http://127.0.0.1:1/' });
      await expect(closed.anchor(checkpoint(1), ctx)).rejects.toThrow(/^rfc3161 anchor gone \(http:\/\/127\.0\.0\.1:1\/\): request failed: .*ECONNREFUSED/);
    });

    it('a rejection: status and failure info in the message', async () => {
      behave = async (_req, res) => reply(res, await tsa.reply(Buffer.from('not a query')));
      await expect(anchorTo(tsa.caPem).anchor(checkpoint(1), ctx)).rejects.toThrow(new RegExp(`${name.source}the TSA answered rejection \\(.*failInfo badDataFormat\\)$`));
    });

    it('a replayed token (old nonce) or one for other data is refused, with or without a CA', async () => {
      const cp = checkpoint(5);
      let stale: Buffer | undefined;
      behave = async (_req, res, q) => {
        stale ??= await tsa.reply(q); // the first answer, replayed forever
        reply(res, stale);
      };
      await anchorTo(tsa.caPem).anchor(cp, ctx); // first: fresh
      await expect(anchorTo(tsa.caPem).anchor(cp, ctx)).rejects.toThrow(new RegExp(`${name.source}the time-stamp token does not verify: the nonce does not match the request$`));
      await expect(anchorTo().anchor(cp, ctx)).rejects.toThrow(new RegExp(`${name.source}the time-stamp token does not answer this request \\(nonce mismatch\\)$`));
      await expect(anchorTo(tsa.caPem).anchor(checkpoint(6), ctx)).rejects.toThrow(/does not verify: the message imprint does not match the data$/);
      await expect(anchorTo().anchor(checkpoint(6), ctx)).rejects.toThrow(/does not cover this checkpoint \(message imprint mismatch\)$/);
    });
  });
});

describe('Rfc3161Anchor configuration', () => {
  it('refuses a bad URL, a non-http scheme, a CA file without a certificate, a bad timeout', () => {
    const make = (o: Partial<ConstructorParameters<typeof Rfc3161Anchor>[0]>) => () => new Rfc3161Anchor({ name: 'x', url: 'http://127.0.0.1/', ...o });
    for (const [o, msg] of [
      [{ url: 'not a url' }, /url not a url is not a URL/],
      [{ url: 'ftp://tsa.example/' }, /must be http or https/],
      [{ caPem: 'hello' }, /holds no PEM certificate/],
      [{ caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' }, /unreadable certificate/],
      [{ timeoutMs: 0 }, /must be a positive number/],
    ] as const) {
      expect(make(o)).toThrow(PalisadeError);
      expect(make(o)).toThrow(msg);
    }
  });
});
