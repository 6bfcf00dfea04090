/**
 * Palisade's own TLS certificate, from its own intermediate once the PKI exists (the bootstrap CA's until then, and
 * while sealed, so `operator unseal` still has HTTPS: ADR 0003). The certificate and key are files in
 * `<data>/tls/` (each node has its own); a new one is issued, audited, when less than `renewBeforeDays` remain,
 * when the names change, or when its issuer is no longer the active intermediate. The listener polls this source
 * and swaps certificates without dropping connections.
 */
import { createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { coversNames, type ListenerCertificateSource, type ListenerMaterial } from '../../http/listener-tls.js';
import type { Storage } from '../../storage/database.js';
import { runAsSystem } from '../../kernel/op-context.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { PkiService } from './service.js';
import { buildCertificate, fromPem, keyIdentifier, newSerial, spkiOf, toPem } from './x509.js';

const DAY_MS = 86_400_000;
const LISTENER_TTL_DAYS = 90;

export interface PkiListenerDeps {
  dataDir: string;
  names: string[];
  pki: PkiService;
  storage: Storage;
  ledger: AuditLedger;
  /** The bootstrap CA's material: served until the PKI can issue. */
  fallback: ListenerCertificateSource;
  ready: () => boolean;
  renewBeforeDays: number;
  clock: () => Date;
}

async function readMaybe(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

export function pkiListenerSource(deps: PkiListenerDeps): ListenerCertificateSource {
  const dir = join(deps.dataDir, 'tls');
  const certFile = join(dir, 'pki-server.pem');
  const keyFile = join(dir, 'pki-server-key.pem');
  const caFile = join(dir, 'ca.pem');

  const usable = (chain: string, issuer: Buffer): boolean => {
    try {
      const leaf = new X509Certificate(chain);
      if (!leaf.checkIssued(new X509Certificate(issuer))) return false;
      if (Date.parse(leaf.validTo) - deps.clock().getTime() < deps.renewBeforeDays * DAY_MS) return false;
      return coversNames(leaf, deps.names);
    } catch {
      return false;
    }
  };

  /** A listener certificate revoked (say after a key compromise) is replaced at once, not served until renewal. */
  const revoked = async (chain: string): Promise<boolean> => {
    const leaf = fromPem(chain)[0];
    return !leaf || (await deps.pki.find(deps.storage.db, { der: leaf }))?.status !== 'valid';
  };

  /**
   * The Palisade root, certified by this node's bootstrap CA: served after the intermediate, it lets a client that
   * trusts only the bootstrap CA (started before `pki init-root`) build leaf → intermediate → root → bootstrap CA,
   * while a client that trusts the Palisade root stops at it. Made once per root, kept beside the bootstrap CA.
   */
  const crossCertified = async (root: Buffer): Promise<string> => {
    const file = join(dir, `root-cross-${keyIdentifier(spkiOf(root)).toString('hex').slice(0, 16)}.pem`);
    const cached = await readMaybe(file);
    if (cached) return cached;
    const [caPem, caKeyPem] = await Promise.all([readMaybe(caFile), readMaybe(join(dir, 'ca-key.pem'))]);
    const bootstrapDer = caPem ? fromPem(caPem)[0] : undefined;
    if (!bootstrapDer || !caKeyPem) return '';
    const key = createPrivateKey(caKeyPem);
    const bootstrapCa = new X509Certificate(bootstrapDer);
    const rootCert = new X509Certificate(root);
    const der = await buildCertificate(
      { kind: 'root', serial: newSerial(), subject: Buffer.from(AsnConvert.serialize(AsnConvert.parse(root, asn.Certificate).tbsCertificate.subject)), issuer: bootstrapDer, publicKey: spkiOf(root), notBefore: deps.clock(), notAfter: new Date(Math.min(Date.parse(rootCert.validTo), Date.parse(bootstrapCa.validTo))), pathLength: 1 },
      { algorithm: 'ECDSA-P256', sign: async (tbs) => sign('sha256', tbs, { key, dsaEncoding: 'der' }) },
    );
    const pem = toPem(der);
    await writeAtomic(file, pem, 0o644);
    return pem;
  };

  /** Clients read `<data>/tls/ca.pem`: it holds the bootstrap CA first (sealed starts) and the Palisade root after it. */
  const publishRoot = async (rootPem: string): Promise<void> => {
    const current = (await readMaybe(caFile)) ?? '';
    if (current.includes(rootPem.trim())) return;
    const bootstrap = current.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/)?.[0] ?? '';
    await writeAtomic(caFile, `${bootstrap.trimEnd()}\n${rootPem}`, 0o644);
  };

  return {
    async current(): Promise<ListenerMaterial> {
      if (!deps.ready()) return deps.fallback.current();
      const db = deps.storage.db;
      const root = await deps.pki.cas.root(db);
      const issuing = root ? await deps.pki.cas.issuing(db).catch(() => null) : null;
      if (!root?.certificate || !issuing?.certificate) return deps.fallback.current();
      const rootPem = toPem(root.certificate);
      await publishRoot(rootPem);
      const chain = await readMaybe(certFile);
      const key = await readMaybe(keyFile);
      const cross = await crossCertified(root.certificate);
      if (chain && key && usable(chain, issuing.certificate) && !(await revoked(chain))) return { key, chain: chain + cross, trust: [rootPem] };
      const issued = await runAsSystem(deps.storage, deps.ledger, 'system:pki', (ctx) => deps.pki.issueListener(ctx, deps.names, LISTENER_TTL_DAYS));
      await writeAtomic(keyFile, issued.private_key_pem, 0o600);
      await writeAtomic(certFile, issued.chain_pem, 0o644);
      return { key: issued.private_key_pem, chain: issued.chain_pem + cross, trust: [rootPem] };
    },
  };
}
