import type { Command } from 'commander';
import type { PalisadeClient, UpdateUserRequest, User } from '@palisade/sdk';
import { CliError, readInput, withClient } from './client.js';

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const userLine = (u: User) => [u.id, u.username, u.active ? 'active' : 'disabled', u.roles.join(',') || '-', u.mfa_required ? 'required' : '-', u.source, u.email ?? '-'].join('\t');

/** The password from stdin (one trailing newline dropped), so that it never lands in the shell's history. */
export async function passwordFromStdin(): Promise<string> {
  const password = (await readInput('-')).toString('utf8').replace(/\r?\n$/, '');
  if (!password) throw new CliError('--password-stdin: stdin is empty', 2);
  return password;
}

/** Ask on the terminal without echo. */
export function promptHidden(question: string): Promise<string> {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) return Promise.reject(new CliError('no terminal to ask for the password on: pipe it in with --password-stdin', 2));
  stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = () => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(typed);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          reject(new CliError('cancelled', 130));
          return;
        }
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** A new password: from stdin with --password-stdin, else asked twice on the terminal. */
export async function readNewPassword(o: { passwordStdin?: boolean }): Promise<string> {
  if (o.passwordStdin) return passwordFromStdin();
  const first = await promptHidden('New password: ');
  if (!first) throw new CliError('the password is empty', 2);
  if ((await promptHidden('Again: ')) !== first) throw new CliError('the passwords differ', 2);
  return first;
}

/** A user by id (`usr_...`) or by username. */
export async function resolveUser(c: PalisadeClient, ref: string): Promise<User> {
  if (/^usr_[a-z0-9]+$/i.test(ref)) {
    try {
      return await c.identity.getUser(ref);
    } catch (e) {
      if ((e as { code?: string }).code !== 'PAL_IDENTITY_USER_NOT_FOUND') throw e;
    }
  }
  const { users } = await c.identity.listUsers({ username: ref, limit: 1 });
  if (!users[0]) throw new CliError(`no user has the id or username ${ref}`);
  return users[0];
}

/** `palisade users ...`: people, their roles, passwords and sessions. */
export function usersCommands(program: Command): void {
  const users = program.command('users').description('manage users (people); <user> is an id (usr_...) or a username');

  users
    .command('create <username>')
    .description('create a user (roles default to viewer); without a password they sign in through federation or get one with set-password')
    .option('--role <role>', 'a role (repeatable): viewer, agent, developer, operator, security-admin, owner', collect)
    .option('--email <email>')
    .option('--display-name <name>')
    .option('--mfa-required', 'the user must enrol a second factor')
    .option('--password-stdin', 'read the password from stdin')
    .option('--password-prompt', 'ask for the password on the terminal')
    .action(async (username: string, o: { role?: string[]; email?: string; displayName?: string; mfaRequired?: boolean; passwordStdin?: boolean; passwordPrompt?: boolean }) => {
      if (o.passwordStdin && o.passwordPrompt) throw new CliError('--password-stdin or --password-prompt, not both', 2);
      const password = o.passwordStdin || o.passwordPrompt ? await readNewPassword(o) : undefined;
      out(
        await withClient((c) =>
          c.identity.createUser({
            username,
            ...(password ? { password } : {}),
            ...(o.role ? { roles: o.role } : {}),
            ...(o.email ? { email: o.email } : {}),
            ...(o.displayName ? { display_name: o.displayName } : {}),
            ...(o.mfaRequired ? { mfa_required: true } : {}),
          }),
        ),
      );
    });

  users
    .command('list')
    .description('list users')
    .option('--username <username>', 'only this username')
    .option('--json', 'print JSON')
    .action(async (o: { username?: string; json?: boolean }) => {
      const all: User[] = [];
      await withClient(async (c) => {
        for (let offset = 0; ; ) {
          const page = await c.identity.listUsers({ offset, limit: 1000, ...(o.username ? { username: o.username } : {}) });
          all.push(...page.users);
          offset += page.users.length;
          if (page.users.length === 0 || offset >= page.total) break;
        }
      });
      if (o.json) return out(all);
      process.stdout.write(['ID', 'USERNAME', 'STATUS', 'ROLES', 'MFA', 'SOURCE', 'EMAIL'].join('\t') + '\n');
      for (const u of all) process.stdout.write(userLine(u) + '\n');
    });

  users
    .command('get <user>')
    .description('show a user')
    .action(async (ref: string) => out(await withClient((c) => resolveUser(c, ref))));

  users
    .command('update <user>')
    .description('change a user\'s email, display name, roles or MFA requirement')
    .option('--role <role>', 'the new roles, replacing the old ones (repeatable)', collect)
    .option('--email <email>', 'new email ("" removes it)')
    .option('--display-name <name>', 'new display name ("" removes it)')
    .option('--mfa-required', 'the user must enrol a second factor')
    .option('--no-mfa-required', 'a second factor is optional')
    .action(async (ref: string, o: { role?: string[]; email?: string; displayName?: string; mfaRequired?: boolean }) => {
      const patch: UpdateUserRequest = {
        ...(o.role ? { roles: o.role } : {}),
        ...(o.email !== undefined ? { email: o.email || null } : {}),
        ...(o.displayName !== undefined ? { display_name: o.displayName || null } : {}),
        ...(o.mfaRequired !== undefined ? { mfa_required: o.mfaRequired } : {}),
      };
      if (Object.keys(patch).length === 0) throw new CliError('nothing to change: give --role, --email, --display-name or --[no-]mfa-required', 2);
      out(await withClient(async (c) => c.identity.updateUser((await resolveUser(c, ref)).id, patch)));
    });

  users
    .command('disable <user>')
    .description('deprovision a user: no sign-in; their sessions, tokens and API keys end at once')
    .action(async (ref: string) => out(await withClient(async (c) => c.identity.updateUser((await resolveUser(c, ref)).id, { active: false }))));
  users
    .command('enable <user>')
    .description('let a disabled user sign in again')
    .action(async (ref: string) => out(await withClient(async (c) => c.identity.updateUser((await resolveUser(c, ref)).id, { active: true }))));

  users
    .command('delete <user>')
    .description('delete a user with their factors, sessions, tokens and API keys')
    .action(async (ref: string) => {
      const id = await withClient(async (c) => {
        const u = await resolveUser(c, ref);
        await c.identity.deleteUser(u.id);
        return u.id;
      });
      process.stderr.write(`deleted ${id}\n`);
    });

  users
    .command('set-password <user>')
    .description('set a user\'s password (asked on the terminal, or --password-stdin); their sessions and tokens end')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (ref: string, o: { passwordStdin?: boolean }) => {
      const password = await readNewPassword(o);
      const id = await withClient(async (c) => {
        const u = await resolveUser(c, ref);
        await c.identity.setPassword(u.id, password);
        return u.id;
      });
      process.stderr.write(`password of ${id} set; their sessions and tokens ended\n`);
    });

  users
    .command('revoke-sessions <user>')
    .description('end every session of a user, on every node')
    .action(async (ref: string) => out(await withClient(async (c) => c.identity.revokeSessions((await resolveUser(c, ref)).id))));
}
