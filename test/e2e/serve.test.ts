/**
 * `palisade serve` end to end, as a real process: first start, restart, TLS, configuration errors, graceful drain
 * on SIGTERM, and the system endpoints (health, readiness, metrics, OpenAPI).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable, requireService } from '@palisade/testkit';
import { cleanEnv, freePort, request, spawnPalisade, startServer, stopAll, tempDir, terminate, waitExit, type Server } from './helpers.js';

afterAll(stopAll);

const mode = (path: string): number => statSync(path).mode & 0o777;
const occurrences = (haystack: string, needle: string): number => haystack.split(needle).length - 1;
const BANNER = 'Palisade initialised';

interface WhoAmI {
  principal_id: string;
  permissions: string[];
}

// ---------------------------------------------------------------------------------------------------------------

describe('first start', () => {
  let srv: Server;
  beforeAll(async () => {
    srv = await startServer();
  });

  it('writes <data>/bootstrap-token with mode 0600 and that token authenticates as the owner', async () => {
    const file = join(srv.dataDir, 'bootstrap-token');
    expect(existsSync(file)).toBe(true);
    expect(mode(file).toString(8)).toBe('600');
    expect(srv.token).toMatch(/^\S{32,}$/);
    const r = await request(srv, '/v1/auth/whoami', { token: srv.token });
    expect(r.status, r.text).toBe(200);
    expect(r.json<WhoAmI>().principal_id).toBe('owner');
    expect(r.json<WhoAmI>().permissions).toEqual(['*']);
    // and the token is really checked
    const bad = await request(srv, '/v1/auth/whoami', { token: `${srv.token}x` });
    expect(bad.status).toBe(401);
  });

  it('prints the token on stderr exactly once and never in the stdout logs', async () => {
    // a few authenticated requests first, so that request logging had its chance to leak the header
    await request(srv, '/v1/auth/whoami', { token: srv.token });
    await request(srv, '/metrics', { token: srv.token });
    expect(occurrences(srv.proc.stderr(), srv.token)).toBe(1);
    expect(srv.proc.stderr()).toContain(BANNER);
    expect(srv.proc.stdout()).not.toContain(srv.token);
    // the random part alone must not leak either (e.g. a log of the token without its prefix)
    expect(srv.proc.stdout()).not.toContain(srv.token.slice(-24));
  });

  it('writes <data>/seal.key with mode 0600', () => {
    const file = join(srv.dataDir, 'seal.key');
    expect(existsSync(file)).toBe(true);
    expect(mode(file).toString(8)).toBe('600');
  });

  it('logs the "file" seal warning', () => {
    const warning = srv.logs().find((l) => /SEAL PROVIDER "file" IS FOR DEVELOPMENT ONLY/.test(l.msg));
    expect(warning, srv.proc.stdout()).toBeDefined();
    expect(warning!.level).toBe(40); // pino warn
    const serving = srv.logs().find((l) => l.msg === 'palisade is serving');
    expect(serving).toMatchObject({ addr: srv.addr, tls_min_version: 'TLSv1.3', database: 'sqlite', seal: 'file' });
  });

  it('a second start on the same data dir prints no token and the first token still works', async () => {
    const token = srv.token;
    const caBefore = readFileSync(srv.caFile, 'utf8');
    const first = await srv.stop();
    expect(first, srv.proc.stdout().slice(-2000)).toEqual({ code: 0, signal: null });

    const again = await startServer({ dataDir: srv.dataDir });
    expect(again.proc.stderr()).not.toContain(BANNER);
    expect(again.proc.stderr()).not.toContain(token);
    expect(again.proc.stdout()).not.toContain(token);
    expect(readFileSync(join(srv.dataDir, 'bootstrap-token'), 'utf8').trim()).toBe(token);
    expect(readFileSync(again.caFile, 'utf8')).toBe(caBefore); // clients keep trusting the same CA
    const r = await request(again, '/v1/auth/whoami', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.json<WhoAmI>().principal_id).toBe('owner');
    expect(await again.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('first start with PALISADE_BOOTSTRAP_TOKEN', () => {
  const token = `pal_e2e_${randomBytes(24).toString('hex')}`;
  let srv: Server;
  beforeAll(async () => {
    srv = await startServer({ env: { PALISADE_BOOTSTRAP_TOKEN: token } });
  });

  it('that token works, no bootstrap-token file is written and the token is printed nowhere', async () => {
    const r = await request(srv, '/v1/auth/whoami', { token });
    expect(r.status, r.text).toBe(200);
    expect(r.json<WhoAmI>().principal_id).toBe('owner');
    expect(existsSync(join(srv.dataDir, 'bootstrap-token'))).toBe(false);
    expect(srv.proc.stderr()).not.toContain(BANNER);
    expect(srv.proc.stderr()).not.toContain(token);
    expect(srv.proc.stdout()).not.toContain(token);
  });
});

// ---------------------------------------------------------------------------------------------------------------

type Handshake = { ok: true; protocol: string | null; authorized: boolean; cert: PeerCertificate } | { ok: false; error: NodeJS.ErrnoException };

/** A bare TLS handshake with 127.0.0.1:<port>; verification on (rejectUnauthorized) unless `opts` says otherwise. */
function handshake(port: number, opts: ConnectionOptions, timeoutMs = 5_000): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...opts });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, error: Object.assign(new Error(`no handshake within ${timeoutMs} ms`), { code: 'E2E_TIMEOUT' }) });
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const result: Handshake = { ok: true, protocol: socket.getProtocol(), authorized: socket.authorized, cert: socket.getPeerCertificate() };
      socket.end();
      resolve(result);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: false, error });
    });
  });
}

const openssl = requireService('openssl', 'e2e: openssl s_client').available ? findExecutable('openssl') : null;
const promtool = requireService('promtool', 'e2e: promtool check metrics').available ? findExecutable('promtool') : null;

describe('TLS and system endpoints', () => {
  let srv: Server;
  beforeAll(async () => {
    srv = await startServer();
  });

  it('completes a TLS 1.3 handshake verified against <data>/tls/ca.pem', async () => {
    const h = await handshake(srv.port, { ca: srv.ca });
    expect(h.ok ? h : h.error.message).toMatchObject({ ok: true, protocol: 'TLSv1.3', authorized: true });
  });

  it('refuses a client limited to TLS 1.2', async () => {
    const h = await handshake(srv.port, { ca: srv.ca, maxVersion: 'TLSv1.2' });
    expect(h.ok).toBe(false);
    if (!h.ok) {
      expect(h.error.code).not.toBe('E2E_TIMEOUT');
      expect(`${h.error.code} ${h.error.message}`).toMatch(/protocol version|wrong version|unsupported protocol|no protocols available/i);
    }
  });

  it('does not answer plain HTTP with a 200', async () => {
    const answer = await new Promise<string>((resolve) => {
      const sock = netConnect({ host: '127.0.0.1', port: srv.port });
      let got = '';
      const done = () => {
        clearTimeout(timer);
        sock.destroy();
        resolve(got);
      };
      const timer = setTimeout(done, 3_000);
      sock.setEncoding('latin1');
      sock.on('data', (c: string) => (got += c));
      sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
      sock.on('close', done);
      sock.on('error', done);
    });
    expect(answer).not.toMatch(/^HTTP\/1\.[01] 200/);
    expect(answer).not.toContain('"status":"ok"');
  });

  it('serves a certificate that verifies against ca.pem for localhost and 127.0.0.1 (and for nothing else)', async () => {
    const byIp = await handshake(srv.port, { ca: srv.ca });
    expect(byIp.ok ? byIp.authorized : byIp.error.message).toBe(true);
    const byName = await handshake(srv.port, { ca: srv.ca, servername: 'localhost' });
    expect(byName.ok ? byName.authorized : byName.error.message).toBe(true);

    // negative controls: verification is really happening
    const wrongName = await handshake(srv.port, { ca: srv.ca, servername: 'not-palisade.example' });
    expect(wrongName.ok).toBe(false);
    if (!wrongName.ok) expect(wrongName.error.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const noCa = await handshake(srv.port, {});
    expect(noCa.ok).toBe(false);

    // the certificate itself
    const cert = new X509Certificate(readFileSync(join(srv.dataDir, 'tls', 'server.pem')));
    const ca = new X509Certificate(srv.ca);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(byIp.ok && byIp.cert.fingerprint256).toBe(cert.fingerprint256);
  });

  it.skipIf(!openssl)('openssl s_client: -tls1_2 fails, -tls1_3 succeeds and verifies', () => {
    const common = ['s_client', '-connect', `127.0.0.1:${srv.port}`, '-CAfile', srv.caFile, '-verify_return_error'];
    const v12 = spawnSync(openssl!, [...common, '-tls1_2'], { input: '', timeout: 10_000, encoding: 'utf8' });
    expect(v12.error).toBeUndefined();
    expect(v12.status, v12.stdout + v12.stderr).not.toBe(0);
    const v13 = spawnSync(openssl!, [...common, '-tls1_3', '-verify_ip', '127.0.0.1'], { input: '', timeout: 10_000, encoding: 'utf8' });
    expect(v13.error).toBeUndefined();
    expect(v13.status, v13.stdout + v13.stderr).toBe(0);
    expect(v13.stdout).toMatch(/TLSv1\.3/);
    expect(v13.stdout).toMatch(/Verify return code: 0 \(ok\)/);
  });

  it('GET /healthz answers 200', async () => {
    const r = await request(srv, '/healthz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with its checks', async () => {
    const r = await request(srv, '/readyz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', checks: { storage: 'ok', seal: 'ok', audit: 'ok' } });
  });

  let metricsBody = '';
  it('GET /metrics needs the token and then serves Prometheus text with encryption_operations_total', async () => {
    const anon = await request(srv, '/metrics');
    expect(anon.status).toBe(401);
    expect(anon.json<{ code: string }>().code).toBe('PAL_AUTH_REQUIRED');
    expect(anon.text).not.toContain('encryption_operations_total');
    const wrong = await request(srv, '/metrics', { token: 'pal_not_a_real_token_0123456789abcdef' });
    expect(wrong.status).toBe(401);

    // one encryption, so the counter has a sample and not only its HELP/TYPE lines
    const key = await request(srv, '/v1/keys', { token: srv.token, body: { key_type: 'DEK', algorithm: 'AES-256-GCM' } });
    expect(key.status, key.text).toBe(201);
    const keyId = key.json<{ key_id: string }>().key_id;
    const enc = await request(srv, `/v1/keys/${keyId}/encrypt`, { token: srv.token, body: { plaintext: Buffer.from('hello').toString('base64') } });
    expect(enc.status, enc.text).toBe(200);

    const r = await request(srv, '/metrics', { token: srv.token });
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/^text\/plain/);
    expect(r.text).toContain('# TYPE encryption_operations_total counter');
    expect(r.text).toMatch(/^encryption_operations_total\{[^}]*algorithm="AES-256-GCM"[^}]*\} 1$/m);
    metricsBody = r.text;
  });

  it.skipIf(!promtool)('promtool check metrics accepts the /metrics body', () => {
    expect(metricsBody, 'the /metrics test must run first').not.toBe('');
    const r = spawnSync(promtool!, ['check', 'metrics'], { input: metricsBody, timeout: 15_000, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    const output = `${r.stdout}${r.stderr}`.trim();
    if (output) console.warn(`[e2e] promtool check metrics said:\n${output}`);
    expect(r.status, output).toBe(0);
  });

  it('GET /v1/openapi.json is an OpenAPI 3.1.0 document with the KMS paths', async () => {
    const r = await request(srv, '/v1/openapi.json');
    expect(r.status).toBe(200);
    const doc = JSON.parse(r.text) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/keys', '/v1/keys/{key_id}/encrypt']));
    expect(doc.paths['/v1/keys/{key_id}/encrypt']).toHaveProperty('post');
    expect(doc.paths['/v1/keys']).toHaveProperty('post');
    expect(doc.paths['/v1/keys']).toHaveProperty('get');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('invalid configuration stops start-up naming the setting', () => {
  /** Run `serve` expecting it to refuse; returns stderr. */
  async function refuses(env: Record<string, string>): Promise<{ stderr: string; dataDir: string }> {
    const dataDir = join(tempDir(), 'data');
    const proc = spawnPalisade(['serve'], cleanEnv({ PALISADE_DATA_DIR: dataDir, PALISADE_ADDR: `127.0.0.1:${await freePort()}`, ...env }));
    const exit = await waitExit(proc, 15_000);
    if (!exit) await terminate(proc, 'SIGKILL');
    expect(exit, `serve kept running:\n${proc.stdout()}`).not.toBeNull();
    expect(exit!.code, proc.stderr()).not.toBe(0);
    expect(exit!.signal).toBeNull();
    expect(proc.stdout()).not.toContain('palisade is serving');
    return { stderr: proc.stderr(), dataDir };
  }
  const yamlFile = (text: string): string => {
    const dir = tempDir();
    writeFileSync(join(dir, 'palisade.yaml'), text);
    return join(dir, 'palisade.yaml');
  };

  it('PALISADE_ADDR=nonsense', async () => {
    const { stderr, dataDir } = await refuses({ PALISADE_ADDR: 'nonsense', PALISADE_CONFIG: yamlFile('') });
    expect(stderr).toMatch(/\baddr\b/);
    expect(stderr).toContain('PALISADE_ADDR');
    expect(stderr).not.toMatch(/\n\s+at /); // one line, no stack trace
    expect(existsSync(dataDir)).toBe(false); // refused before touching the disk
  });

  it('kms.max_encryptions_per_version: 0 in palisade.yaml', async () => {
    const { stderr } = await refuses({ PALISADE_CONFIG: yamlFile('kms: { max_encryptions_per_version: 0 }\n') });
    expect(stderr).toContain('kms.max_encryptions_per_version');
  });

  it('an unknown top-level key in palisade.yaml', async () => {
    const { stderr } = await refuses({ PALISADE_CONFIG: yamlFile('addr: 127.0.0.1:8443\nfrobnicate_level: 11\n') });
    expect(stderr).toMatch(/frobnicate_level|unexpected property/i);
  });

  it('palisade.yaml that is not YAML', async () => {
    const { stderr } = await refuses({ PALISADE_CONFIG: yamlFile('kms: [unclosed\n  : : :\n\t- nope\n') });
    expect(stderr).toMatch(/not valid YAML/i);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('SIGTERM', () => {
  let srv: Server;
  beforeAll(async () => {
    srv = await startServer();
  });

  it('drains an in-flight 8 MiB encrypt request, exits 0 logging "closed cleanly", then refuses connections', async () => {
    const key = await request(srv, '/v1/keys', { token: srv.token, body: { key_type: 'DEK', algorithm: 'AES-256-GCM' } });
    expect(key.status, key.text).toBe(201);
    const keyId = key.json<{ key_id: string }>().key_id;

    const plaintext = randomBytes(6 * 1024 * 1024); // 8 MiB of base64
    const body = Buffer.from(JSON.stringify({ plaintext: plaintext.toString('base64') }));
    let signalledAt = 0;
    const inFlight = request(srv, `/v1/keys/${keyId}/encrypt`, {
      token: srv.token,
      body,
      headers: { 'x-request-id': 'e2e-drain' },
      timeoutMs: 25_000,
      onWritten: () => {
        signalledAt = Date.now();
        srv.proc.child.kill('SIGTERM');
      },
    });
    const r = await inFlight;
    expect(signalledAt).toBeGreaterThan(0);
    expect(r.status, r.text.slice(0, 500)).toBe(200);
    const enc = r.json<{ key_id: string; ciphertext: string }>();
    expect(enc.key_id).toBe(keyId);
    expect(Buffer.from(enc.ciphertext, 'base64').length).toBeGreaterThanOrEqual(plaintext.length);

    const exit = await waitExit(srv.proc, 15_000);
    expect(exit, 'the server did not exit after SIGTERM').toEqual({ code: 0, signal: null });
    const logs = srv.logs();
    const msgs = logs.map((l) => l.msg);
    expect(msgs).toContain('closed cleanly');
    // the signal really arrived while the request was in flight: drain starts before that request completes
    const drainAt = msgs.indexOf('draining in-flight requests');
    const doneAt = logs.findIndex((l) => l.reqId === 'e2e-drain' && l.msg === 'request completed');
    expect(drainAt).toBeGreaterThanOrEqual(0);
    expect(doneAt).toBeGreaterThan(drainAt);
    expect(msgs.indexOf('closed cleanly')).toBeGreaterThan(doneAt);

    const after = await request(srv, '/healthz', { timeoutMs: 3_000 }).then(
      (res) => `answered ${res.status}`,
      (e: NodeJS.ErrnoException) => e.code ?? e.message,
    );
    expect(after).toBe('ECONNREFUSED');
  });
});
