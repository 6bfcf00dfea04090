/**
 * The exporter end to end, over real loopback sockets: an RFC 5425 TLS syslog collector (node:tls, certificate from
 * an openssl test CA) that parses octet-counted frames, and an https webhook receiver that checks Standard Webhooks
 * signatures. The ledger is real (SQLite, and PostgreSQL when available).
 */
import { randomBytes, timingSafeEqual, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { canonicalJson } from '@palisade/core';
import { freshPostgresDatabase, getFreePort, requireService, startOpensslTsa, type IssuedCertificate, type OpensslTsaHandle } from '@palisade/testkit';
import { AuditLedger } from '../../../kernel/audit/ledger.js';
import type { AuditEvent } from '../../../kernel/audit/events.js';
import { Barrier } from '../../../kernel/seal/barrier.js';
import { createLogger } from '../../../logging.js';
import { openStorage, type Storage } from '../../../storage/database.js';
import { dialects } from '../../../testing/harness.js';
import { createAuditSink, startAuditExports, type AuditExportConfig, type AuditExports, type AuditExportsOptions } from './exporter.js';

const openssl = requireService('openssl', 'audit export (TLS test certificates)');

// ---------------------------------------------------------------------------------------------- receivers

/** An RFC 5425 collector: TLS (or plain TCP), octet-counted frames, each message kept in arrival order. */
class SyslogCollector {
  readonly messages: string[] = [];
  readonly protocols: string[] = [];
  readonly #sockets = new Set<Socket>();
  #server: NetServer | null = null;
  port = 0;

  constructor(private readonly cert: IssuedCertificate | null) {}

  async start(port = 0): Promise<this> {
    const onSocket = (s: Socket): void => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => undefined);
      if (this.cert) this.protocols.push((s as TLSSocket).getProtocol() ?? '?');
      let buf = Buffer.alloc(0);
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp < 0) break;
          const len = buf.subarray(0, sp).toString('ascii');
          if (!/^[1-9][0-9]*$/.test(len)) throw new Error(`bad MSG-LEN ${JSON.stringify(len)}`);
          const end = sp + 1 + Number(len);
          if (buf.length < end) break;
          this.messages.push(buf.subarray(sp + 1, end).toString('utf8'));
          buf = buf.subarray(end);
        }
      });
    };
    this.#server = this.cert ? createTlsServer({ cert: this.cert.certPem, key: this.cert.keyPem, minVersion: 'TLSv1.2' }, onSocket) : createNetServer(onSocket);
    const server = this.#server;
    // Track raw connections too (a TLS one is not handed to onSocket before its handshake), so stop() closes them all.
    server.on('connection', (raw: Socket) => {
      this.#sockets.add(raw);
      raw.on('close', () => this.#sockets.delete(raw));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Syslog has no acknowledgement: what the exporter flushed reaches the collector's reads a little later. */
  async received(n: number): Promise<void> {
    await until(`${n} syslog messages (have ${this.messages.length})`, () => this.messages.length >= n);
  }

  /** The log index of each message, from the SD-PARAM index="N" (rfc5424) or externalId=N (CEF). */
  indices(): number[] {
    return this.messages.map((m) => Number((/ index="(\d+)"/.exec(m) ?? / externalId=(\d+)/.exec(m))![1]));
  }
}

interface Delivery {
  id: string;
  timestamp: number;
  signatureOk: boolean;
  status: number;
  body: unknown[];
}

/** A Standard Webhooks receiver over https: checks each delivery's signature; answers `status()` (2xx = accepted). */
class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  status: () => number = () => 204;
  #server: HttpsServer | null = null;
  url = '';

  constructor(
    private readonly cert: IssuedCertificate,
    private readonly key: Buffer,
  ) {}

  async start(): Promise<this> {
    this.#server = createHttpsServer({ cert: this.cert.certPem, key: this.cert.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const id = String(req.headers['webhook-id']);
        const timestamp = Number(req.headers['webhook-timestamp']);
        const expected = Buffer.from(createHmac('sha256', this.key).update(`${id}.${timestamp}.`).update(body).digest('base64'));
        const signatureOk =
          Math.abs(Date.now() / 1000 - timestamp) < 300 &&
          String(req.headers['webhook-signature'])
            .split(' ')
            .some((s) => {
              const got = Buffer.from(s.startsWith('v1,') ? s.slice(3) : '');
              return got.length === expected.length && timingSafeEqual(got, expected);
            });
        const status = signatureOk ? this.status() : 401;
        this.deliveries.push({ id, timestamp, signatureOk, status, body: JSON.parse(body.toString('utf8')) as unknown[] });
        res.writeHead(status).end();
      });
    });
    const server = this.#server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/audit`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    server?.closeAllConnections();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Log indices of the OCSF events of accepted deliveries, in arrival order. */
  accepted(): number[] {
    return this.deliveries.filter((d) => d.status >= 200 && d.status < 300).flatMap((d) => d.body.map((o) => Number((o as { metadata: { uid: string } }).metadata.uid)));
  }
}

// ---------------------------------------------------------------------------------------------- helpers

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const TYPES = ['kms.encrypt', 'kms.key.create', 'auth.failed', 'authz.denied', 'kms.decrypt'] as const;

describe.each(dialects())('audit export to SIEMs ($name)', ({ name: dialect, available }) => {
  let dir: string;
  let storage: Storage;
  let ledger: AuditLedger;
  let tsa: OpensslTsaHandle;
  let otherCa: OpensslTsaHandle;
  let serverCert: IssuedCertificate;
  let secretKey: Buffer;
  let secretFile: string;
  let appended = 0;
  const running: AuditExports[] = [];
  const logLines: string[] = [];
  const log = createLogger('debug', { write: (l: string) => void logLines.push(l) });

  async function append(n: number, types: readonly string[] = TYPES): Promise<void> {
    await storage.transact((tx) =>
      ledger.appendMany(
        tx,
        range(0, n).map((i) => {
          const type = types[(appended + i) % types.length]!;
          const denied = type === 'auth.failed' || type === 'authz.denied';
          return { type, actor: { principal_id: denied ? null : 'svc_test', source_ip: '127.0.0.1' }, outcome: denied ? 'denied' : 'success', request_id: `req-${appended + i}`, details: { n: appended + i, note: 'line\nbreak' } };
        }),
      ),
    );
    appended += n;
  }

  function start(sinks: AuditExportConfig[], extra: Partial<AuditExportsOptions> = {}): { x: AuditExports; registry: Registry } {
    const registry = new Registry();
    const x = startAuditExports({ storage, ledger, sinks, log, registry, pollMs: 20, backoff: { initialMs: 20, maxMs: 200 }, hostname: 'node1.test', ...extra });
    running.push(x);
    return { x, registry };
  }

  const cursor = async (sink: string) => storage.db.selectFrom('audit_export_cursors').selectAll().where('sink', '=', sink).executeTakeFirst();
  const metric = async (registry: Registry, name: string, sink: string) => Number(new RegExp(`${name}\\{sink="${sink}"\\} (\\d+)`).exec(await registry.getSingleMetricAsString(name))?.[1]);
  const allEvents = async (): Promise<AuditEvent[]> => (await ledger.query({ order: 'asc', limit: 500 })).events;

  beforeAll(async () => {
    if (!available || !openssl.available) return;
    dir = mkdtempSync(join(tmpdir(), 'palisade-export-'));
    const url = dialect === 'postgres' ? await freshPostgresDatabase(inject('pgUrl')!) : join(dir, 'db.sqlite');
    storage = await openStorage({ url });
    const barrier = new Barrier(randomBytes(32));
    ledger = new AuditLedger(storage, () => barrier, { check: () => null }); // synthetic events, outside the catalogue
    [tsa, otherCa] = await Promise.all([startOpensslTsa(), startOpensslTsa()]);
    serverCert = tsa.issueCertificate({ cn: 'localhost', eku: 'none', extraEku: ['serverAuth'], san: ['IP:127.0.0.1', 'DNS:localhost'] });
    secretKey = randomBytes(32);
    secretFile = join(dir, 'webhook.secret');
    writeFileSync(secretFile, `whsec_${secretKey.toString('base64')}\n`, { mode: 0o600 });
    await append(40);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((x) => x.stop()));
  });
  afterAll(async () => {
    await storage?.close();
    await Promise.all([tsa?.stop(), otherCa?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.skipIf(!available || !openssl.available)('', () => {
    it('syslog over TLS: every event arrives once, in order, as an octet-counted RFC 5424 message; the cursor and metrics follow', async () => {
      const collector = await new SyslogCollector(serverCert).start();
      try {
        const { x, registry } = start([{ name: 'siem-tls', kind: 'syslog', format: 'rfc5424', url: `tls://127.0.0.1:${collector.port}`, ca_file: tsa.caPath }], { batchSize: 16 });
        await x.flush();
        await append(25);
        x.wake();
        await x.flush();
        const size = await ledger.size();
        await collector.received(size);
        expect(collector.indices()).toEqual(range(0, size));
        expect(collector.protocols.every((p) => p === 'TLSv1.2' || p === 'TLSv1.3')).toBe(true);
        expect(collector.protocols).toHaveLength(1); // one connection for all the batches
        const events = await allEvents();
        for (const [i, m] of collector.messages.entries()) {
          const e = events[i]!;
          expect(m).toMatch(new RegExp(`^<\\d+>1 ${e.time.replace(/\./g, '\\.')} node1\\.test palisade - ${e.type.replace(/\./g, '\\.')} \\[palisade@32473 index="${e.index}" `));
          expect(m.endsWith(` ${canonicalJson(e)}`)).toBe(true); // MSG: the canonical event, its Merkle leaf
        }
        expect(await cursor('siem-tls')).toMatchObject({ next_index: size, last_error: null });
        expect(await metric(registry, 'audit_export_events_total', 'siem-tls')).toBe(size);
        expect(await metric(registry, 'audit_export_failures_total', 'siem-tls')).toBe(0);
        expect(await metric(registry, 'audit_export_lag_events', 'siem-tls')).toBe(0);
      } finally {
        await collector.stop();
      }
    });

    it('a collector whose certificate does not chain to ca_file gets nothing: the cursor stays, last_error says why', async () => {
      const collector = await new SyslogCollector(serverCert).start();
      try {
        const { x, registry } = start([{ name: 'siem-untrusted', kind: 'syslog', format: 'rfc5424', url: `tls://127.0.0.1:${collector.port}`, ca_file: otherCa.caPath }]);
        await expect(x.flush(500)).rejects.toThrow(/siem-untrusted is at 0/);
        expect(collector.messages).toEqual([]);
        const row = await cursor('siem-untrusted');
        expect(row?.next_index).toBe(0);
        expect(row?.last_error).toMatch(/certificate|issuer/i);
        expect(await metric(registry, 'audit_export_failures_total', 'siem-untrusted')).toBeGreaterThan(0);
        expect(await metric(registry, 'audit_export_lag_events', 'siem-untrusted')).toBe(await ledger.size());
      } finally {
        await collector.stop();
      }
      // A certificate from the right CA, but for another name: refused too.
      const elsewhere = await new SyslogCollector(tsa.issueCertificate({ cn: 'elsewhere.example', eku: 'none', extraEku: ['serverAuth'], san: ['DNS:elsewhere.example'] })).start();
      try {
        const { x } = start([{ name: 'siem-wrong-name', kind: 'syslog', format: 'rfc5424', url: `tls://127.0.0.1:${elsewhere.port}`, ca_file: tsa.caPath }]);
        await expect(x.flush(500)).rejects.toThrow(/siem-wrong-name is at 0/);
        expect(elsewhere.messages).toEqual([]);
        expect((await cursor('siem-wrong-name'))?.last_error).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|does not match/i);
      } finally {
        await elsewhere.stop();
      }
    });

    it('collector down: the cursor does not move and last_error is set; delivery resumes when it is back, without gaps', async () => {
      const port = await getFreePort();
      const { x } = start([{ name: 'siem-down', kind: 'syslog', format: 'rfc5424', url: `tls://127.0.0.1:${port}`, ca_file: tsa.caPath }], { batchSize: 10 });
      await until('a recorded failure', async () => !!(await cursor('siem-down'))?.last_error);
      expect(await cursor('siem-down')).toMatchObject({ next_index: 0, last_error: expect.stringMatching(/ECONNREFUSED/) });
      const collector = await new SyslogCollector(serverCert).start(port);
      try {
        await x.flush();
        const size = await ledger.size();
        await collector.received(size);
        expect(collector.indices()).toEqual(range(0, size));
        expect(await cursor('siem-down')).toMatchObject({ next_index: size, last_error: null });

        // The collector restarts between batches: the closed connection is noticed and a new one opened. (Syslog has
        // no acknowledgement: a collector dying right after a write can lose that write; see syslog-sink.ts.)
        await collector.stop();
        await new Promise((r) => setTimeout(r, 100));
        await append(5);
        x.wake();
        await until('a recorded failure', async () => !!(await cursor('siem-down'))?.last_error);
        expect((await cursor('siem-down'))?.next_index).toBe(size);
        await collector.start(port);
        await x.flush();
        await until('the events after the restart', () => collector.indices().includes(appended - 1));
        const after = collector.indices();
        expect([...new Set(after)]).toEqual(range(0, await ledger.size())); // duplicates allowed, gaps and reordering not
      } finally {
        await collector.stop();
      }
    });

    it('CEF over plain TCP (development only: warned about) and type filters: only wanted types are sent, the cursor passes the rest', async () => {
      const collector = await new SyslogCollector(null).start();
      try {
        const { x, registry } = start([{ name: 'siem-cef', kind: 'syslog', format: 'cef', url: `tcp://127.0.0.1:${collector.port}`, types: ['kms.key.*', 'auth.failed'] }]);
        await x.flush();
        const size = await ledger.size();
        const wanted = (await allEvents()).filter((e) => e.type === 'kms.key.create' || e.type === 'auth.failed');
        await collector.received(wanted.length);
        expect(collector.indices()).toEqual(wanted.map((e) => e.index));
        for (const m of collector.messages) {
          expect(m).toMatch(/^<\d+>1 \S+ node1\.test palisade - \S+ - CEF:0\|Palisade\|Palisade\|/);
          expect(m).not.toMatch(/\n/);
          expect(m).toContain('line\\\\nbreak'); // the detail's newline, JSON-escaped then CEF-escaped
        }
        expect(await cursor('siem-cef')).toMatchObject({ next_index: size });
        expect(await metric(registry, 'audit_export_events_total', 'siem-cef')).toBe(wanted.length);
        expect(await metric(registry, 'audit_export_lag_events', 'siem-cef')).toBe(0);
        expect(logLines.some((l) => l.includes('"sink":"siem-cef"') && l.includes('plain TCP'))).toBe(true);
      } finally {
        await collector.stop();
      }
    });

    it('webhook: signed OCSF batches, delivered only on 2xx; a retried batch keeps its webhook-id', async () => {
      const receiver = await new WebhookReceiver(serverCert, secretKey).start();
      try {
        let failures = 2;
        receiver.status = () => (failures-- > 0 ? 500 : 204);
        const { x } = start([{ name: 'hook', kind: 'webhook', format: 'ocsf', url: receiver.url, ca_file: tsa.caPath, secret_file: secretFile }], { batchSize: 15 });
        await until('a recorded failure', async () => (await cursor('hook'))?.last_error === 'webhook https://127.0.0.1:' + receiver.url.split(':')[2] + ': HTTP 500');
        expect((await cursor('hook'))?.next_index).toBe(0);
        await x.flush();
        const size = await ledger.size();
        expect(receiver.deliveries.every((d) => d.signatureOk)).toBe(true);
        expect(receiver.deliveries.slice(0, 3).map((d) => [d.id, d.status])).toEqual([
          ['hook-0-14', 500],
          ['hook-0-14', 500],
          ['hook-0-14', 204],
        ]);
        expect(receiver.accepted()).toEqual(range(0, size));
        const events = await allEvents();
        const first = receiver.deliveries[2]!.body[0] as Record<string, unknown>;
        expect(first).toMatchObject({ class_uid: 6003, time: Date.parse(events[0]!.time), metadata: { uid: '0', product: { name: 'Palisade' } }, api: { operation: events[0]!.type, request: { uid: 'req-0' } } });
        expect(await cursor('hook')).toMatchObject({ next_index: size, last_error: null });
      } finally {
        await receiver.stop();
      }
    });

    it('a wrong signature would be refused by the receiver: the secret is what signs', async () => {
      const receiver = await new WebhookReceiver(serverCert, randomBytes(32)).start();
      try {
        const { x } = start([{ name: 'hook-wrong-key', kind: 'webhook', format: 'ocsf', url: receiver.url, ca_file: tsa.caPath, secret_file: secretFile }]);
        await expect(x.flush(500)).rejects.toThrow(/HTTP 401/);
        expect(receiver.deliveries.length).toBeGreaterThan(0);
        expect(receiver.deliveries.every((d) => !d.signatureOk)).toBe(true);
        expect((await cursor('hook-wrong-key'))?.next_index).toBe(0);
      } finally {
        await receiver.stop();
      }
    });

    it('at least once across restarts: a new exporter on the same database continues from the cursor; a crash after delivery replays only that batch', async () => {
      const receiver = await new WebhookReceiver(serverCert, secretKey).start();
      const sink: AuditExportConfig = { name: 'hook-restart', kind: 'webhook', format: 'ocsf', url: receiver.url, ca_file: tsa.caPath, secret_file: secretFile };
      try {
        const first = start([sink], { nodeId: 'node-1', batchSize: 20 }).x;
        await first.flush();
        const before = await ledger.size();
        await first.stop();
        await append(30);

        // The next instance "crashes" once between a delivery and the cursor update (the delivery reached the receiver).
        let crashes = 1;
        const second = start([sink], {
          nodeId: 'node-2',
          batchSize: 20,
          createSink: (cfg, syslog) => {
            const real = createAuditSink(cfg, syslog, log, () => new Date());
            return {
              name: real.name,
              close: () => real.close(),
              async deliver(events) {
                await real.deliver(events);
                if (crashes-- > 0) throw new Error('simulated crash before the cursor update');
              },
            };
          },
        }).x;
        await second.flush();
        const size = await ledger.size();
        const got = receiver.accepted();
        // Everything, in order; the only duplicate is the batch whose acknowledgement was lost, under the same id.
        expect([...new Set(got)]).toEqual(range(0, size));
        const ids = receiver.deliveries.map((d) => d.id);
        const replayed = ids.filter((id, i) => ids.indexOf(id) !== i);
        expect(replayed).toEqual([`hook-restart-${before}-${before + 19}`]);
        expect(got).toHaveLength(size + 20);
      } finally {
        await receiver.stop();
      }
    });

    it('two nodes on one database: only the lease holder delivers; the other takes over from the cursor when it stops', async () => {
      const [ra, rb] = await Promise.all([new WebhookReceiver(serverCert, secretKey).start(), new WebhookReceiver(serverCert, secretKey).start()]);
      // The same sink, configured on two nodes; each node's copy points at its own receiver to show who delivered.
      const sink = (url: string): AuditExportConfig => ({ name: 'hook-shared', kind: 'webhook', format: 'ocsf', url, ca_file: tsa.caPath, secret_file: secretFile });
      try {
        const a = start([sink(ra.url)], { nodeId: 'node-a' }).x;
        await a.flush();
        const b = start([sink(rb.url)], { nodeId: 'node-b' }).x;
        await append(20);
        a.wake();
        b.wake();
        await a.flush();
        await b.flush(); // node b sees the shared cursor reach the size
        await new Promise((r) => setTimeout(r, 200));
        const mid = await ledger.size();
        expect(ra.accepted()).toEqual(range(0, mid));
        expect(rb.deliveries).toEqual([]);

        await a.stop(); // releases the lease
        await append(10);
        b.wake();
        await b.flush();
        expect(rb.accepted()).toEqual(range(mid, await ledger.size()));
        expect(ra.accepted()).toEqual(range(0, mid));
      } finally {
        await Promise.all([ra.stop(), rb.stop()]);
      }
    });

    it('refuses unusable configurations at start', () => {
      const base = { name: 'bad', format: 'ocsf' as const };
      expect(() => start([{ ...base, kind: 'webhook', url: 'https://127.0.0.1:1/' }])).toThrow(/needs secret_file/);
      expect(() => start([{ ...base, kind: 'syslog', url: 'https://127.0.0.1:1/' }])).toThrow(/tls:\/\/host:port/);
      expect(() => start([{ ...base, kind: 'syslog', url: 'tls://127.0.0.1:1', ca_file: secretFile }])).toThrow(/holds no PEM certificate/);
      expect(() => start([{ ...base, kind: 'webhook', url: 'https://127.0.0.1:1/', secret_file: join(dir, 'missing') }])).toThrow(/cannot read secret_file/);
      expect(() => start([{ ...base, kind: 'syslog', url: 'tcp://127.0.0.1:1' }, { ...base, kind: 'syslog', url: 'tcp://127.0.0.1:2' }])).toThrow(/two sinks/);
      let message = '';
      try {
        start([{ ...base, kind: 'webhook', url: 'https://user:pw@127.0.0.1:1/', secret_file: secretFile }]);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/no credentials/);
      expect(message).not.toContain('pw');
    });
  });
});
