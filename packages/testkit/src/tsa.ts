/**
 * A throwaway RFC 3161 time-stamping authority for tests: a temp dir holding a CA and a TSA certificate (extended key
 * usage timeStamping, critical) made with the `openssl` CLI, an `openssl ts` configuration, and a loopback HTTP server
 * that answers `POST` `application/timestamp-query` by running `openssl ts -reply` (RFC 3161 §3.4, HTTP transport).
 *
 *   const tsa = await startOpensslTsa();
 *   const res = await fetch(tsa.url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: req });
 *   ...
 *   await tsa.stop();
 *
 * openssl is a required test service: gate suites with `requireService('openssl', ...)`; startOpensslTsa throws when
 * the binary is missing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { findExecutable, makeTempDir, removeDirQuietly } from './proc.js';

export type TsaKeyType = 'ec' | 'rsa';

export interface StartOpensslTsaOptions {
  /** Key type of the CA and the TSA: EC P-256 (default) or RSA 2048. */
  keyType?: TsaKeyType;
  /** The TSA's signer digest (`signer_digest`). Default sha256. */
  signerDigest?: 'sha256' | 'sha384' | 'sha512';
  /** The TSA's default policy OID. Default 1.3.6.1.4.1.99999.3161.1 (a test arc). */
  policy?: string;
  /** Add the CA certificate to tokens that ask for certificates (`certs`), besides the TSA's own. Default false. */
  includeChain?: boolean;
}

export interface IssueCertificateOptions {
  /** Subject common name. */
  cn: string;
  /** The timeStamping extended key usage: critical (default), non-critical, or absent. */
  eku?: 'critical' | 'non-critical' | 'none';
  /** Extra extended key usages besides timeStamping (e.g. 'serverAuth'). */
  extraEku?: string[];
  keyType?: TsaKeyType;
  /** Validity in days from now. Default 365. */
  days?: number;
  /** Make it a CA certificate (for intermediates). Default false. */
  ca?: boolean;
  /** Issuer: the test CA (default), or another issued CA certificate. */
  issuer?: IssuedCertificate;
  /** subjectAltName entries, e.g. ['IP:127.0.0.1', 'DNS:localhost'] for a TLS server certificate. */
  san?: string[];
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
}

export interface OpensslTsaHandle {
  /** http://127.0.0.1:<port>/ — POST a DER TimeStampReq here. */
  readonly url: string;
  /** The CA that issued the TSA certificate (PEM): the trust anchor for verification. */
  readonly caPem: string;
  readonly tsaCertPem: string;
  readonly tsaKeyPem: string;
  readonly policy: string;
  /** The temp dir (ca.pem, tsa.pem, tsa.key, tsa.cnf, ...). */
  readonly dir: string;
  readonly caPath: string;
  readonly tsaCertPath: string;
  /** The `openssl ts` configuration file. */
  readonly configPath: string;
  /** How many requests the HTTP server answered. */
  readonly requests: number;
  /** `openssl ts -reply` for a DER TimeStampReq, without HTTP: resolves to the DER TimeStampResp. */
  reply(query: Uint8Array): Promise<Buffer>;
  /** A new key and certificate from the test CA (or `issuer`), e.g. a TSA certificate without timeStamping. */
  issueCertificate(opts: IssueCertificateOptions): IssuedCertificate;
  /** Close the server and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const MAX_QUERY_BYTES = 64 * 1024;
const DEFAULT_POLICY = '1.3.6.1.4.1.99999.3161.1';

export async function startOpensslTsa(opts: StartOpensslTsaOptions = {}): Promise<OpensslTsaHandle> {
  const openssl = findExecutable('openssl');
  if (!openssl) throw new Error('[palisade testkit] openssl not found (run: sudo scripts/install-services.sh)');
  const keyType = opts.keyType ?? 'ec';
  const policy = opts.policy ?? DEFAULT_POLICY;
  const dir = makeTempDir('palisade-tsa-', null);
  const cleanup = (): void => removeDirQuietly(dir);
  process.once('exit', cleanup);
  const p = (name: string): string => join(dir, name);
  // Every openssl command reads this file instead of the system openssl.cnf.
  const env = { ...process.env, OPENSSL_CONF: p('openssl.cnf') };

  const run = (args: string[]): string => {
    try {
      return execFileSync(openssl, args, { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`[palisade testkit] openssl ${args.slice(0, 2).join(' ')} failed: ${(err.stderr || err.message).trim()}`, { cause: e });
    }
  };
  const genKey = (path: string, type: TsaKeyType): void => {
    run(type === 'ec' ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path] : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', path]);
  };

  let seq = 0;
  const issue = (o: IssueCertificateOptions): IssuedCertificate => {
    const id = `cert${++seq}`;
    const keyPath = p(`${id}.key`);
    const certPath = p(`${id}.pem`);
    genKey(keyPath, o.keyType ?? keyType);
    run(['req', '-new', '-key', keyPath, '-subj', `/CN=${o.cn.replace(/[/\\]/g, '')}`, '-out', p(`${id}.csr`)]);
    const ext: string[] = ['subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'];
    if (o.ca) {
      ext.push('basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign');
    } else {
      ext.push('basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,nonRepudiation');
      const purposes = [...(o.eku === 'none' ? [] : ['timeStamping']), ...(o.extraEku ?? [])];
      if (purposes.length > 0) ext.push(`extendedKeyUsage = ${o.eku === 'non-critical' || o.eku === 'none' ? '' : 'critical,'}${purposes.join(',')}`);
    }
    if (o.san?.length) ext.push(`subjectAltName = ${o.san.join(',')}`);
    writeFileSync(p(`${id}.ext`), `${ext.join('\n')}\n`);
    const issuerCert = o.issuer?.certPath ?? p('ca.pem');
    const issuerKey = o.issuer?.keyPath ?? p('ca.key');
    run(['x509', '-req', '-in', p(`${id}.csr`), '-CA', issuerCert, '-CAkey', issuerKey, '-set_serial', `0x${Date.now().toString(16)}${seq.toString(16).padStart(4, '0')}`, '-days', String(o.days ?? 365), '-sha256', '-extfile', p(`${id}.ext`), '-out', certPath]);
    return { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8'), certPath, keyPath };
  };

  let tsa: IssuedCertificate;
  try {
    writeFileSync(
      p('openssl.cnf'),
      [
        '[ req ]',
        'distinguished_name = dn',
        'prompt = no',
        '[ dn ]',
        'CN = unused',
        '[ v3_ca ]',
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    genKey(p('ca.key'), keyType);
    run(['req', '-x509', '-new', '-key', p('ca.key'), '-subj', '/CN=Palisade Test TSA CA', '-days', '3650', '-sha256', '-extensions', 'v3_ca', '-out', p('ca.pem')]);
    tsa = issue({ cn: 'Palisade Test TSA', eku: 'critical' });
    writeFileSync(
      p('tsa.cnf'),
      [
        '[ tsa ]',
        'default_tsa = tsa_config',
        '[ tsa_config ]',
        `serial = ${p('tsaserial')}`,
        'crypto_device = builtin',
        `signer_cert = ${tsa.certPath}`,
        `signer_key = ${tsa.keyPath}`,
        ...(opts.includeChain ? [`certs = ${p('ca.pem')}`] : []),
        `signer_digest = ${opts.signerDigest ?? 'sha256'}`,
        `default_policy = ${policy}`,
        'other_policies = 1.3.6.1.4.1.99999.3161.2',
        'digests = sha256, sha384, sha512',
        'accuracy = secs:1, millisecs:500, microsecs:100',
        'clock_precision_digits = 3',
        'ordering = no',
        'tsa_name = yes',
        'ess_cert_id_chain = no',
        'ess_cert_id_alg = sha256',
        '',
      ].join('\n'),
    );
    writeFileSync(p('tsaserial'), '01\n');
  } catch (e) {
    cleanup();
    process.removeListener('exit', cleanup);
    throw e;
  }

  // openssl ts -reply reads and rewrites the serial file: one invocation at a time.
  let queue: Promise<unknown> = Promise.resolve();
  let replies = 0;
  const reply = (query: Uint8Array): Promise<Buffer> => {
    const n = ++replies;
    const job = queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const q = p(`q${n}.tsq`);
          const r = p(`r${n}.tsr`);
          writeFileSync(q, query);
          execFile(openssl, ['ts', '-reply', '-config', p('tsa.cnf'), '-queryfile', q, '-out', r], { cwd: dir, env, timeout: 30_000 }, (err, _stdout, stderr) => {
            if (err) reject(new Error(`[palisade testkit] openssl ts -reply failed: ${String(stderr).trim() || err.message}`, { cause: err }));
            else resolve(readFileSync(r));
          });
        }),
    );
    queue = job.catch(() => undefined);
    return job;
  };

  let answered = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, message: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain' }).end(`${message}\n`);
    };
    if (req.method !== 'POST') return fail(405, 'POST a DER TimeStampReq');
    if ((req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/timestamp-query') return fail(415, 'expected application/timestamp-query');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_QUERY_BYTES) {
        fail(413, 'query too large');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_QUERY_BYTES) return;
      reply(Buffer.concat(chunks)).then(
        (der) => {
          answered++;
          res.writeHead(200, { 'content-type': 'application/timestamp-reply', 'content-length': der.length }).end(der);
        },
        (e: Error) => fail(500, e.message),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}/`,
    caPem: readFileSync(p('ca.pem'), 'utf8'),
    tsaCertPem: tsa.certPem,
    tsaKeyPem: tsa.keyPem,
    policy,
    dir,
    caPath: p('ca.pem'),
    tsaCertPath: tsa.certPath,
    configPath: p('tsa.cnf'),
    get requests() {
      return answered;
    },
    reply,
    issueCertificate: issue,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await queue;
      cleanup();
      process.removeListener('exit', cleanup);
    },
  };
}
