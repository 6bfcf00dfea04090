import type { Command } from 'commander';
import type { SealStatus } from '@palisade/core';
import { clientFromEnv, CliError, readInput } from './client.js';

const readSecret = async (file: string | undefined, what: string): Promise<string> => {
  const text = (await readInput(file)).toString('utf8').replace(/\r?\n$/, '');
  if (!text) throw new CliError(`no ${what} given (on stdin or with --${what}-file)`, 2);
  return text;
};

function statusLine(s: SealStatus): string {
  const progress = s.recovery && s.state === 'sealed' ? `; recovery ${s.recovery.threshold} of ${s.recovery.shares}, ${s.recovery.submitted} given so far` : '';
  return `seal: ${s.provider}, ${s.state}${progress}\n`;
}

async function call<T>(fn: (c: ReturnType<typeof clientFromEnv>) => Promise<T>, tokenOptional = true): Promise<T> {
  const c = clientFromEnv(process.env, { tokenOptional });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

function printShares(shares: string[], threshold: number): void {
  process.stdout.write(
    [
      `Recovery shares (any ${threshold} of ${shares.length} open or re-key the seal). Shown once: give each to a different custodian.`,
      '',
      ...shares.map((s, i) => `  share ${i + 1}: ${s}`),
      '',
    ].join('\n'),
  );
}

/** `palisade operator init|unseal|seal|status|rekey`: the seal ceremony. Secrets come from files or stdin, never flags. */
export function operatorCommands(program: Command): void {
  const op = program.command('operator').description('seal ceremony: init, unseal, seal, status, rekey');

  op.command('status')
    .description('seal provider and state')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const s = await call((c) => c.sys.sealStatus());
      process.stdout.write(o.json ? JSON.stringify(s, null, 2) + '\n' : statusLine(s));
    });

  op.command('init')
    .description('passphrase seal: create the root key and split a recovery key into shares (once)')
    .option('--shares <n>', 'recovery shares to create', (v) => Number(v), 5)
    .option('--threshold <n>', 'shares needed to recover', (v) => Number(v), 3)
    .option('--passphrase-file <file>', 'file holding the passphrase (default: stdin)')
    .action(async (o: { shares: number; threshold: number; passphraseFile?: string }) => {
      const passphrase = await readSecret(o.passphraseFile, 'passphrase');
      const r = await call((c) => c.sys.init({ passphrase, shares: o.shares, threshold: o.threshold }));
      printShares(r.shares, r.threshold);
    });

  op.command('unseal')
    .description('open the seal with the passphrase, or with recovery shares (--share, repeatable; over several runs is fine)')
    .option('--passphrase-file <file>', 'file holding the passphrase (default: stdin, unless --share is given)')
    .option('--share <share>', 'a recovery share', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--reset', 'forget the shares given so far')
    .action(async (o: { passphraseFile?: string; share: string[]; reset?: boolean }) => {
      const body = o.share.length ? { shares: o.share } : o.reset && !o.passphraseFile ? {} : { passphrase: await readSecret(o.passphraseFile, 'passphrase') };
      const s = await call((c) => c.sys.unseal({ ...body, ...(o.reset ? { reset: true } : {}) }));
      process.stdout.write(statusLine(s));
      if (s.state !== 'unsealed' && o.share.length) process.exitCode = 3; // more shares needed
    });

  op.command('seal')
    .description('seal the server now (needs sys:seal:seal)')
    .action(async () => {
      process.stdout.write(statusLine(await call((c) => c.sys.seal(), false)));
    });

  op.command('rotate-root')
    .description('request a root key rotation (file, pkcs11); another principal approves it: palisade approvals approve <id>')
    .action(async () => {
      const a = await call((c) => c.sys.rotateRoot(), false);
      process.stdout.write(`root rotation requested: approval ${a.id} (by another principal holding ${a.permission})\n`);
    });

  op.command('rekey')
    .description('new recovery shares and passphrase, proven by --share (threshold of them) or the current passphrase (needs sys:seal:rekey)')
    .option('--share <share>', 'a current recovery share', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--passphrase-file <file>', 'the current passphrase (instead of shares)')
    .requiredOption('--new-passphrase-file <file>', 'file holding the new passphrase')
    .option('--shares <n>', 'new recovery shares', (v) => Number(v), 5)
    .option('--threshold <n>', 'new threshold', (v) => Number(v), 3)
    .option('--rotate-root', 'also replace the root key (the yearly ceremony)')
    .action(async (o: { share: string[]; passphraseFile?: string; newPassphraseFile: string; shares: number; threshold: number; rotateRoot?: boolean }) => {
      if (!o.share.length && !o.passphraseFile) throw new CliError('prove possession with --share (repeat it) or --passphrase-file', 2);
      const proof = o.share.length ? { shares: o.share } : { passphrase: await readSecret(o.passphraseFile, 'passphrase') };
      const new_passphrase = await readSecret(o.newPassphraseFile, 'new-passphrase');
      const r = await call((c) => c.sys.rekey({ ...proof, new_passphrase, new_shares: o.shares, new_threshold: o.threshold, ...(o.rotateRoot ? { rotate_root: true } : {}) }), false);
      printShares(r.shares, r.threshold);
    });
}
