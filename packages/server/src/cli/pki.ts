import { createPrivateKey, sign as cryptoSign, constants } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { PKI_CA_ALGORITHMS, PKI_LEAF_KEY_ALGORITHMS, PKI_REVOCATION_REASONS, type Certificate, type CertificateAuthority, type PkiRevocationReason } from '@palisade/core';
import { signIntermediateOffline } from '../engines/pki/cas.js';
import type { CaAlgorithm } from '../engines/pki/types.js';
import { CliError, readInput, withClient } from './client.js';

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
const caLine = (c: CertificateAuthority) => [c.id, c.kind, c.status, c.key_store, c.algorithm, c.not_after ?? '-', c.subject_dn].join('\t');
const certLine = (c: Certificate) => [c.serial, c.status, c.service ?? '-', c.not_after, c.template, c.sans.join(',')].join('\t');
const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

function write(file: string | undefined, text: string, mode = 0o644): void {
  if (file) writeFileSync(file, text, { mode });
  else process.stdout.write(text);
}

/** `palisade pki ...`: the CA hierarchy, issuance and revocation, and offline signing for a root kept off the server. */
export function pkiCommands(program: Command): void {
  const pki = program.command('pki').description('internal PKI: CAs, certificates, revocation');

  pki
    .command('init-root')
    .description('create the root CA (ECDSA P-384, 10 years by default) and its first intermediate')
    .addOption(new Option('--algorithm <alg>').choices(PKI_CA_ALGORITHMS))
    .option('--common-name <cn>', 'root subject CN')
    .option('--validity-days <n>', 'root lifetime', (v) => Number(v))
    .addOption(new Option('--key-store <store>', 'kms: a KMS key (exportable with export-root-key); hsm: generated in the PKCS#11 token of the seal, never extractable').choices(['kms', 'hsm'] as const))
    .option('--out <file>', 'write the root certificate (PEM) here: what clients trust')
    .action(async (o: { algorithm?: (typeof PKI_CA_ALGORITHMS)[number]; commonName?: string; validityDays?: number; keyStore?: 'kms' | 'hsm'; out?: string }) => {
      const r = await withClient((c) =>
        c.pki.initRoot({ ...(o.algorithm ? { algorithm: o.algorithm } : {}), ...(o.commonName ? { common_name: o.commonName } : {}), ...(o.validityDays ? { validity_days: o.validityDays } : {}), ...(o.keyStore ? { key_store: o.keyStore } : {}) }),
      );
      process.stdout.write(`root ${r.root.id}\t${r.root.subject_dn}\nintermediate ${r.intermediate.id}\t${r.intermediate.subject_dn}\n`);
      if (o.out) writeFileSync(o.out, r.root.certificate_pem!);
    });

  pki
    .command('cas')
    .description('list the root and the intermediates')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { cas } = await withClient((c) => c.pki.listCas());
      if (o.json) return out(cas);
      process.stdout.write(['ID', 'KIND', 'STATUS', 'KEY', 'ALGORITHM', 'NOT_AFTER', 'SUBJECT'].join('\t') + '\n');
      for (const c of cas) process.stdout.write(caLine(c) + '\n');
    });

  pki
    .command('rotate-intermediate')
    .description('a new intermediate: active at once with an online root; with the root offline, prints the CSR to sign (`sign-intermediate`)')
    .addOption(new Option('--algorithm <alg>').choices(PKI_CA_ALGORITHMS))
    .option('--csr-out <file>', 'where to write the CSR when the root is offline')
    .action(async (o: { algorithm?: (typeof PKI_CA_ALGORITHMS)[number]; csrOut?: string }) => {
      const ca = await withClient((c) => c.pki.rotateIntermediate(o.algorithm ? { algorithm: o.algorithm } : {}));
      process.stdout.write(caLine(ca) + '\n');
      if (ca.status === 'pending') {
        write(o.csrOut, ca.csr_pem!);
        process.stderr.write(`the root is offline: sign the CSR with \`palisade pki sign-intermediate\`, then \`palisade pki install-intermediate ${ca.id} --cert <file>\`\n`);
      }
    });

  pki
    .command('install-intermediate <ca_id>')
    .description('install the certificate an offline root signed for a pending intermediate')
    .requiredOption('--cert <file>', 'the signed certificate (PEM)')
    .action(async (id: string, o: { cert: string }) => {
      const ca = await withClient((c) => c.pki.installIntermediate(id, readFileSync(o.cert, 'utf8')));
      process.stdout.write(caLine(ca) + '\n');
    });

  pki
    .command('export-root-key')
    .description('take the root offline: write its key as an encrypted PKCS#8 PEM and erase it from the server')
    .requiredOption('--out <file>', 'where to write the encrypted key (mode 0600)')
    .requiredOption('--passphrase-file <file>', 'file holding the passphrase (at least 16 characters)')
    .option('--keep', 'keep the key on the server too (a backup copy, not offline)')
    .action(async (o: { out: string; passphraseFile: string; keep?: boolean }) => {
      const passphrase = readFileSync(o.passphraseFile, 'utf8').replace(/\r?\n$/, '');
      const r = await withClient((c) => c.pki.exportRootKey(passphrase, !o.keep));
      writeFileSync(o.out, r.encrypted_private_key_pem, { mode: 0o600 });
      process.stderr.write(r.removed ? `root key written to ${o.out} and erased from the server\n` : `root key written to ${o.out} (still on the server)\n`);
    });

  pki
    .command('sign-intermediate')
    .description('OFFLINE: sign an intermediate CSR with the exported root key (no server needed)')
    .requiredOption('--root-cert <file>', 'the root certificate (PEM)')
    .requiredOption('--root-key <file>', 'the encrypted root key from export-root-key')
    .requiredOption('--passphrase-file <file>', 'its passphrase')
    .requiredOption('--csr <file>', 'the intermediate CSR (PEM)')
    .option('--validity-days <n>', 'intermediate lifetime (capped at the root\'s)', (v) => Number(v), 1825)
    .option('--ca-issuers-url <url>', 'caIssuers URL of the root certificate (https://<server>/pki/ca/<root id>.crt)')
    .option('--out <file>', 'where to write the certificate (PEM); stdout otherwise')
    .action(async (o: { rootCert: string; rootKey: string; passphraseFile: string; csr: string; validityDays: number; caIssuersUrl?: string; out?: string }) => {
      const passphrase = readFileSync(o.passphraseFile, 'utf8').replace(/\r?\n$/, '');
      let key;
      try {
        key = createPrivateKey({ key: readFileSync(o.rootKey), passphrase });
      } catch {
        throw new CliError('the root key does not open with this passphrase');
      }
      const d = key.asymmetricKeyDetails ?? {};
      const algorithm: CaAlgorithm = key.asymmetricKeyType === 'rsa' ? 'RSA-4096' : d.namedCurve === 'secp384r1' ? 'ECDSA-P384' : 'ECDSA-P256';
      const hash = algorithm === 'ECDSA-P384' ? 'sha384' : 'sha256';
      const pem = await signIntermediateOffline({
        rootPem: readFileSync(o.rootCert, 'utf8'),
        csrPem: readFileSync(o.csr, 'utf8'),
        validityDays: o.validityDays,
        ...(o.caIssuersUrl ? { caIssuersUrl: o.caIssuersUrl } : {}),
        rootKey: { algorithm, sign: async (tbs) => cryptoSign(hash, tbs, algorithm === 'RSA-4096' ? { key, padding: constants.RSA_PKCS1_PADDING } : { key, dsaEncoding: 'der' }) },
      });
      write(o.out, pem);
    });

  const issueOptions = (cmd: Command) =>
    cmd
      .requiredOption('--service <name>', '{service}: the identity the certificate names')
      .option('--template <name>', 'issuance template', 'service')
      .option('--environment <env>', '{environment}')
      .option('--namespace <ns>', '{namespace}')
      .option('--department <ou>', '{department}')
      .option('--ip <list>', 'IP SANs, comma-separated', list)
      .option('--dns <list>', 'further DNS names, comma-separated (if the policy allows)', list)
      .option('--ttl-days <n>', 'validity', (v) => Number(v))
      .option('--out <file>', 'certificate chain (PEM): the certificate, then the intermediate');
  type IssueOpts = { service: string; template: string; environment?: string; namespace?: string; department?: string; ip?: string[]; dns?: string[]; ttlDays?: number; out?: string };
  const fields = (o: IssueOpts) => ({
    service: o.service,
    template: o.template,
    ...(o.environment ? { environment: o.environment } : {}),
    ...(o.namespace ? { namespace: o.namespace } : {}),
    ...(o.department ? { department: o.department } : {}),
    ...(o.ip ? { ip: o.ip } : {}),
    ...(o.dns ? { extra_dns: o.dns } : {}),
    ...(o.ttlDays ? { ttl_days: o.ttlDays } : {}),
  });

  issueOptions(pki.command('issue').description('issue a certificate with a key generated by the server (written with --key-out, never stored)'))
    .requiredOption('--key-out <file>', 'where to write the private key (mode 0600)')
    .addOption(new Option('--key-algorithm <alg>').choices(PKI_LEAF_KEY_ALGORITHMS))
    .action(async (o: IssueOpts & { keyOut: string; keyAlgorithm?: (typeof PKI_LEAF_KEY_ALGORITHMS)[number] }) => {
      const r = await withClient((c) => c.pki.issue({ ...fields(o), ...(o.keyAlgorithm ? { key_algorithm: o.keyAlgorithm } : {}) }));
      writeFileSync(o.keyOut, r.private_key_pem!, { mode: 0o600 });
      write(o.out, r.chain_pem);
      process.stderr.write(`issued ${r.serial}, valid until ${r.not_after}\n`);
    });

  issueOptions(pki.command('sign').description("issue a certificate for a CSR's key"))
    .requiredOption('--csr <file>', 'PKCS#10 request (PEM), - for stdin')
    .action(async (o: IssueOpts & { csr: string }) => {
      const csr = (await readInput(o.csr)).toString('utf8');
      const r = await withClient((c) => c.pki.sign({ ...fields(o), csr }));
      write(o.out, r.chain_pem);
      process.stderr.write(`issued ${r.serial}, valid until ${r.not_after}\n`);
    });

  pki
    .command('list')
    .description('issued certificates')
    .option('--service <name>')
    .addOption(new Option('--status <s>').choices(['valid', 'revoked', 'expired']))
    .option('--json', 'print JSON')
    .action(async (o: { service?: string; status?: 'valid' | 'revoked' | 'expired'; json?: boolean }) => {
      const all: Certificate[] = [];
      await withClient(async (c) => {
        let cursor: string | undefined;
        do {
          const page = await c.pki.list({ ...(o.service ? { service: o.service } : {}), ...(o.status ? { status: o.status } : {}), ...(cursor ? { cursor } : {}), limit: 500 });
          all.push(...page.certificates);
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
      });
      if (o.json) return out(all);
      process.stdout.write(['SERIAL', 'STATUS', 'SERVICE', 'NOT_AFTER', 'TEMPLATE', 'SANS'].join('\t') + '\n');
      for (const c of all) process.stdout.write(certLine(c) + '\n');
    });

  pki
    .command('revoke <serial>')
    .description('revoke a certificate (the CRL and OCSP say so at once)')
    .addOption(new Option('--reason <reason>', 'RFC 5280 reason').choices(PKI_REVOCATION_REASONS).default('unspecified'))
    .action(async (serial: string, o: { reason: PkiRevocationReason }) => {
      const c = await withClient((cl) => cl.pki.revoke(serial, o.reason));
      process.stdout.write(certLine(c) + '\n');
    });
}
