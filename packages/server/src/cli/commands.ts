import { Command, Option } from 'commander';
import { ALGORITHMS, CLASSIFICATIONS, KEY_TYPES, USAGES, wrapForTransfer, type EncryptedData, type KeyMetadata, type Usage } from '@palisade/core';
import { isApproval, PalisadeApiError } from '@palisade/sdk';
import { CliError, parseContext, readInput, withClient } from './client.js';
import { auditCommands } from './audit.js';
import { progressBar } from './progress.js';
import { serve } from './serve.js';
import { operatorCommands } from './operator.js';
import { backupCommands } from './backup.js';
import { witnessCommands } from './witness.js';
import { pkiCommands } from './pki.js';
import { usersCommands } from './users.js';
import { servicesCommands } from './services.js';
import { authzCommands } from './authz.js';
import { gatewayCommands } from './gateway.js';

const out = (v: unknown): void => {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
};

function keyLine(k: KeyMetadata): string {
  return [k.key_id, k.name ?? '-', k.key_type, k.algorithm, k.classification, `v${k.version}`, k.status, k.expires_at].join('\t');
}

export function buildCli(): Command {
  const program = new Command('palisade')
    .description('Palisade: keys, certificates, identities and a tamper-evident audit ledger for AI agent frameworks.')
    .version('0.1.0')
    // Program options (-V/--version) only before a command: after it, `--version <n>` is the command's own option
    // (`keys export --version`, `authz policy get --version`), not a request for the CLI's version.
    .enablePositionalOptions()
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nEnvironment: PALISADE_ADDR (127.0.0.1:8443), PALISADE_TOKEN (API key), PALISADE_CA_FILE (<data>/tls/ca.pem),\n' +
        'PALISADE_DATA_DIR (./.palisade), PALISADE_DATABASE_URL, PALISADE_CONFIG (palisade.yaml).',
    );

  program.command('serve').description('run the server (HTTPS, TLS 1.3) on its configured address').action(serve);

  const keys = program.command('keys').description('manage KMS keys');
  keys
    .command('create')
    .description('create a key')
    .addOption(new Option('--type <key_type>', 'key type').choices(KEY_TYPES).default('DEK'))
    .addOption(new Option('--algorithm <algorithm>', 'algorithm').choices(ALGORITHMS).default('AES-256-GCM'))
    .option('--usage <list>', `comma-separated usages (${USAGES.join(', ')}); default: all the algorithm allows`)
    .addOption(new Option('--classification <c>', 'data classification').choices(CLASSIFICATIONS).default('internal'))
    .option('--name <name>', 'unique name')
    .option('--rotation-days <n>', 'rotation period (default by classification)', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(async (o: { type: KeyMetadata['key_type']; algorithm: KeyMetadata['algorithm']; usage?: string; classification: KeyMetadata['classification']; name?: string; rotationDays?: number; json?: boolean }) => {
      const k = await withClient((c) =>
        c.kms.createKey({
          key_type: o.type,
          algorithm: o.algorithm,
          classification: o.classification,
          ...(o.usage ? { usage: o.usage.split(',').map((s) => s.trim()) as Usage[] } : {}),
          ...(o.name ? { name: o.name } : {}),
          ...(o.rotationDays ? { rotation_period_days: o.rotationDays } : {}),
        }),
      );
      if (o.json) out(k);
      else process.stdout.write(`${k.key_id}\n`);
    });
  keys
    .command('list')
    .description('list keys')
    .addOption(new Option('--type <key_type>').choices(KEY_TYPES))
    .addOption(new Option('--status <status>'))
    .option('--json', 'print JSON')
    .action(async (o: { type?: KeyMetadata['key_type']; status?: KeyMetadata['status']; json?: boolean }) => {
      const all: KeyMetadata[] = [];
      await withClient(async (c) => {
        for await (const k of c.kms.allKeys({ ...(o.type ? { key_type: o.type } : {}), ...(o.status ? { status: o.status } : {}) })) all.push(k);
      });
      if (o.json) out(all);
      else {
        process.stdout.write(['KEY_ID', 'NAME', 'TYPE', 'ALGORITHM', 'CLASS', 'VERSION', 'STATUS', 'ROTATE_BY'].join('\t') + '\n');
        for (const k of all) process.stdout.write(keyLine(k) + '\n');
      }
    });
  keys
    .command('rewrap-all')
    .description('move every key still wrapped under an older KEK version to the current one, showing progress')
    .action(async () => {
      await withClient(async (c) => {
        const { pending } = await c.kms.rewrapAll();
        const bar = progressBar('rewrapping keys under the current KEK versions');
        let left = pending;
        while (left > 0) {
          bar(pending - left, pending);
          await new Promise((r) => setTimeout(r, 500));
          left = 0;
          for await (const k of c.kms.allKeys({ key_type: 'KEK' })) if (k.name?.startsWith('system/kek/')) left += (await c.kms.getKey(k.key_id)).rewrap?.pending ?? 0;
        }
        bar(pending, pending);
        process.stdout.write(`rewrapped ${pending} key versions; nothing is left under an older KEK version\n`);
      });
    });
  keys
    .command('import')
    .description('bring your own key: wrap the key file for this server (RSA_AES_KEY_WRAP_SHA_256) and import it')
    .requiredOption('--key-file <file>', 'raw key bytes (AES, ChaCha20, HMAC) or a PKCS#8 DER private key')
    .addOption(new Option('--type <key_type>', 'key type').choices(KEY_TYPES).default('DEK'))
    .addOption(new Option('--algorithm <algorithm>', 'algorithm').choices(ALGORITHMS).default('AES-256-GCM'))
    .addOption(new Option('--classification <c>', 'data classification').choices(CLASSIFICATIONS).default('internal'))
    .option('--name <name>', 'unique name')
    .option('--exportable', 'allow wrapped export later')
    .action(async (o: { keyFile: string; type: KeyMetadata['key_type']; algorithm: KeyMetadata['algorithm']; classification: KeyMetadata['classification']; name?: string; exportable?: boolean }) => {
      const material = await readInput(o.keyFile);
      const k = await withClient(async (c) => {
        const wrapped = wrapForTransfer((await c.kms.wrappingKey()).public_key_pem, material);
        return c.kms.importKey({ key_type: o.type, algorithm: o.algorithm, classification: o.classification, ...(o.name ? { name: o.name } : {}), ...(o.exportable ? { exportable: true } : {}), wrapped_key: wrapped.toString('base64') });
      });
      material.fill(0);
      process.stdout.write(`${k.key_id}\n`);
    });
  keys
    .command('export <key_id>')
    .description("export an exportable key wrapped for a receiver's RSA public key (prints the base64 wrapped key)")
    .requiredOption('--public-key <pem_file>', "the receiver's RSA public key (3072 bits or more)")
    .option('--version <n>', 'key version (default: current)', (v) => Number(v))
    .action(async (id: string, o: { publicKey: string; version?: number }) => {
      const pem = (await readInput(o.publicKey)).toString('utf8');
      out(await withClient((c) => c.kms.exportKey(id, pem, o.version)));
    });
  keys.command('show <key_id>').description('show a key and its versions').action(async (id: string) => out(await withClient((c) => c.kms.getKey(id))));
  keys
    .command('rotate <key_id>')
    .description('rotate a key (new version); for a system KEK, --wait follows the background rewrap of the keys under it')
    .option('--wait', 'wait until the rewrap is complete, showing progress')
    .action(async (id: string, o: { wait?: boolean }) => {
      const r = await withClient((c) => c.kms.rotateKey(id));
      if (isApproval(r)) {
        process.stderr.write(`rotation of ${id} needs approval by another principal: palisade approvals approve ${r.id}\n`);
        out(r);
        return;
      }
      let meta = r;
      if (o.wait && meta.rewrap) {
        const bar = progressBar(`rewrapping under ${meta.name ?? id} v${meta.version}`);
        await withClient(async (c) => {
          while (meta.rewrap && meta.rewrap.pending > 0) {
            bar(meta.rewrap.total - meta.rewrap.pending, meta.rewrap.total);
            await new Promise((r) => setTimeout(r, 500));
            meta = await c.kms.getKey(id);
          }
        });
        bar(meta.rewrap!.total, meta.rewrap!.total);
      }
      out(meta);
    });
  keys.command('disable <key_id>').description('disable a key').action(async (id: string) => out(await withClient((c) => c.kms.disableKey(id))));
  keys.command('enable <key_id>').description('enable a disabled key').action(async (id: string) => out(await withClient((c) => c.kms.enableKey(id))));

  program
    .command('encrypt')
    .description('encrypt stdin (or --in FILE) and print the EncryptedData JSON')
    .requiredOption('--key <key_id>', 'key to encrypt with')
    .option('--in <file>', 'input file (default: stdin)')
    .option('--context <json>', 'encryption context (JSON object), needed again to decrypt')
    .option('--base64', 'the input is base64 text, not raw bytes')
    .action(async (o: { key: string; in?: string; context?: string; base64?: boolean }) => {
      const context = parseContext(o.context);
      const input = await readInput(o.in);
      const bytes = o.base64 ? Buffer.from(input.toString('utf8').trim(), 'base64') : input;
      out(await withClient((c) => c.kms.encrypt(o.key, bytes, context)));
    });

  program
    .command('decrypt')
    .description('decrypt EncryptedData JSON from stdin (or --in FILE) and write the plaintext')
    .option('--in <file>', 'input file (default: stdin)')
    .option('--context <json>', 'the encryption context given at encryption')
    .option('--base64', 'print the plaintext as base64')
    .action(async (o: { in?: string; context?: string; base64?: boolean }) => {
      const context = parseContext(o.context);
      let data: EncryptedData;
      try {
        data = JSON.parse((await readInput(o.in)).toString('utf8')) as EncryptedData;
      } catch {
        throw new CliError('the input is not EncryptedData JSON (the output of `palisade encrypt`)', 2);
      }
      if (typeof data?.key_id !== 'string') throw new CliError('the input has no key_id', 2);
      const plaintext = await withClient((c) => c.kms.decrypt(data.key_id, data, context));
      process.stdout.write(o.base64 ? plaintext.toString('base64') + '\n' : plaintext);
    });

  auditCommands(program);
  pkiCommands(program);
  usersCommands(program);
  servicesCommands(program);
  authzCommands(program);
  gatewayCommands(program);
  operatorCommands(program);
  backupCommands(program);
  witnessCommands(program);
  const approvals = program.command('approvals').description('multi-person approval requests');
  approvals
    .command('list')
    .option('--status <status>', 'pending, approved, rejected or expired', 'pending')
    .action(async (o: { status: 'pending' }) => out((await withClient((c) => c.approvals.list({ status: o.status }))).approvals));
  approvals.command('show <id>').action(async (id: string) => out(await withClient((c) => c.approvals.get(id))));
  for (const decision of ['approve', 'reject'] as const) {
    approvals
      .command(`${decision} <id>`)
      .description(`${decision} a request (a different principal than the requester; approving runs the action)`)
      .option('--comment <text>', 'recorded in the audit log')
      .action(async (id: string, o: { comment?: string }) => out(await withClient((c) => c.approvals[decision](id, o.comment))));
  }
  return program;
}

/** Run the CLI; errors become one line on stderr and an exit code. */
export async function runCli(argv: string[]): Promise<void> {
  // `palisade … | head`: the reader has gone, which is how a pipeline ends, not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
  try {
    await buildCli().parseAsync(argv);
  } catch (e) {
    if (e instanceof PalisadeApiError) {
      process.stderr.write(`error: ${e.problem.code}: ${e.problem.detail}\n`);
      process.exitCode = 1;
    } else if (e instanceof CliError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'string' && String((e as { code: string }).code).startsWith('PAL_')) {
      process.stderr.write(`error: ${(e as unknown as Error).message}\n`);
      process.exitCode = 2;
    } else {
      const err = e as NodeJS.ErrnoException;
      process.stderr.write(`error: ${err.code === 'ECONNREFUSED' ? `cannot reach Palisade at ${process.env.PALISADE_ADDR ?? '127.0.0.1:8443'} (is it running?)` : err.message}\n`);
      process.exitCode = 1;
    }
  }
}
