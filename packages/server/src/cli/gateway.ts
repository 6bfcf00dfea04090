import type { Command } from 'commander';
import type { SigningKeyInfo } from '@palisade/sdk';
import { withClient } from './client.js';

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
/** One table cell (the tables are tab-separated lines). */
const cell = (s: string) => s.replace(/[\t\r\n]+/g, ' ');
const keyLine = (k: SigningKeyInfo) => [k.id, k.principal_id, cell(k.name), k.created_at, k.revoked_at ?? '-'].join('\t');

/** `palisade gateway ...`: the API gateway's request-signing keys. */
export function gatewayCommands(program: Command): void {
  const gateway = program.command('gateway').description('the API gateway: request-signing keys');
  const keys = gateway.command('signing-keys').description('HMAC keys agents sign requests with (Palisade-Signature); the gateway accepts a key only from its principal');

  keys
    .command('create')
    .description('create a signing key for yourself (or, with gateway:signing-keys:manage, for --principal); its secret is printed once')
    .requiredOption('--name <name>', 'what the key is for, e.g. the agent that signs with it')
    .option('--principal <id>', 'whose requests it signs (default: yours)')
    .action(async (o: { name: string; principal?: string }) => {
      const key = await withClient((c) => c.gateway.createSigningKey({ name: o.name, ...(o.principal !== undefined ? { principal_id: o.principal } : {}) }));
      out(key);
      process.stderr.write(`store the secret now, it is not shown again (base64url, 32 bytes); sign with key id ${key.id}\n`);
    });

  keys
    .command('list')
    .description('your signing keys (never their secrets); with gateway:signing-keys:manage, everyone\'s')
    .option('--principal <id>', 'only this principal\'s keys')
    .option('--json', 'print JSON')
    .action(async (o: { principal?: string; json?: boolean }) => {
      const { signing_keys } = await withClient((c) => c.gateway.listSigningKeys(o.principal !== undefined ? { principal_id: o.principal } : {}));
      if (o.json) return out(signing_keys);
      process.stdout.write(['ID', 'PRINCIPAL', 'NAME', 'CREATED', 'REVOKED'].join('\t') + '\n');
      for (const k of signing_keys) process.stdout.write(keyLine(k) + '\n');
    });

  keys
    .command('revoke <key_id>')
    .description('revoke a signing key; the gateway refuses its signatures from then on')
    .action(async (id: string) => {
      out(await withClient((c) => c.gateway.revokeSigningKey(id)));
      process.stderr.write(`revoked ${id}\n`);
    });
}
