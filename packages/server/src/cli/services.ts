import type { Command } from 'commander';
import type { PalisadeClient, ServiceIdentity } from '@palisade/sdk';
import { CliError, withClient } from './client.js';

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const serviceLine = (s: ServiceIdentity) => [s.id, s.name, s.active ? 'active' : 'disabled', s.roles.join(',') || '-', s.spiffe_id ?? '-'].join('\t');

function positiveInt(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`${flag} must be a whole number`, 2);
    return n;
  };
}

/** A service identity by id (`svc_...`) or by name (names cannot contain `_`, so the two never collide). */
export async function resolveService(c: PalisadeClient, ref: string): Promise<ServiceIdentity> {
  if (ref.startsWith('svc_')) return c.identity.getService(ref);
  const found = (await c.identity.listServices()).services.find((s) => s.name === ref);
  if (!found) throw new CliError(`no service identity has the id or name ${ref}`);
  return found;
}

/** `palisade services ...`: service identities (agents, services) and their API keys. */
export function servicesCommands(program: Command): void {
  const services = program.command('services').description('manage service identities (agents, services); <service> is an id (svc_...) or a name');

  services
    .command('create <name>')
    .description('create a service identity (roles default to agent)')
    .option('--role <role>', 'a role (repeatable)', collect)
    .option('--description <text>')
    .option('--spiffe-id <uri>', 'spiffe://... : it may also authenticate with a client certificate naming this id')
    .action(async (name: string, o: { role?: string[]; description?: string; spiffeId?: string }) => {
      out(await withClient((c) => c.identity.createService({ name, ...(o.role ? { roles: o.role } : {}), ...(o.description ? { description: o.description } : {}), ...(o.spiffeId ? { spiffe_id: o.spiffeId } : {}) })));
    });

  services
    .command('list')
    .description('list service identities')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { services: all } = await withClient((c) => c.identity.listServices());
      if (o.json) return out(all);
      process.stdout.write(['ID', 'NAME', 'STATUS', 'ROLES', 'SPIFFE_ID'].join('\t') + '\n');
      for (const s of all) process.stdout.write(serviceLine(s) + '\n');
    });

  services
    .command('get <service>')
    .description('show a service identity')
    .action(async (ref: string) => out(await withClient((c) => resolveService(c, ref))));

  services
    .command('disable <service>')
    .description('disable a service identity: its tokens and API keys stop working at once')
    .action(async (ref: string) => out(await withClient(async (c) => c.identity.updateService((await resolveService(c, ref)).id, { active: false }))));
  services
    .command('enable <service>')
    .description('enable a disabled service identity')
    .action(async (ref: string) => out(await withClient(async (c) => c.identity.updateService((await resolveService(c, ref)).id, { active: true }))));

  services
    .command('delete <service>')
    .description('delete a service identity with its tokens and API keys')
    .action(async (ref: string) => {
      const id = await withClient(async (c) => {
        const s = await resolveService(c, ref);
        await c.identity.deleteService(s.id);
        return s.id;
      });
      process.stderr.write(`deleted ${id}\n`);
    });

  services
    .command('api-key <service>')
    .description('an API key for the service, also its OAuth client secret (client_id: the service id); the token is printed once')
    .requiredOption('--name <name>', 'what the key is for')
    .option('--permission <permission>', 'a permission (repeatable); default: all the service holds', collect)
    .option('--expires-in-days <n>', 'lifetime in days', positiveInt('--expires-in-days'))
    .option('--replaces <key_id>', 'rotation: the key this one replaces; it keeps working for --overlap-hours')
    .option('--overlap-hours <n>', 'with --replaces: how long the old key still works (default 24; 0 ends it now)', positiveInt('--overlap-hours'))
    .action(async (ref: string, o: { name: string; permission?: string[]; expiresInDays?: number; replaces?: string; overlapHours?: number }) => {
      if (o.overlapHours !== undefined && !o.replaces) throw new CliError('--overlap-hours goes with --replaces <key id>', 2);
      const key = await withClient(async (c) =>
        c.identity.createServiceApiKey((await resolveService(c, ref)).id, {
          name: o.name,
          ...(o.permission ? { permissions: o.permission } : {}),
          ...(o.expiresInDays !== undefined ? { expires_in_days: o.expiresInDays } : {}),
          ...(o.replaces ? { replaces: o.replaces } : {}),
          ...(o.overlapHours !== undefined ? { overlap_hours: o.overlapHours } : {}),
        }),
      );
      out(key);
      process.stderr.write(`store the token now, it is not shown again; OAuth: client_id ${key.principal_id}, client_secret the token\n`);
    });

  services
    .command('api-keys <service>')
    .description("the service's API keys (never their tokens)")
    .action(async (ref: string) => {
      out(await withClient(async (c) => (await c.identity.listServiceApiKeys((await resolveService(c, ref)).id)).api_keys));
    });

  services
    .command('revoke-key <service> <key_id>')
    .description('revoke one API key of the service')
    .action(async (ref: string, keyId: string) => {
      out(await withClient(async (c) => c.identity.revokeServiceApiKey((await resolveService(c, ref)).id, keyId)));
    });
}
