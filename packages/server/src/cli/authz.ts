import { Option, type Command } from 'commander';
import { AUTHN_METHODS, type ExplainRequest, type PolicyProblem } from '@palisade/core';
import { policyErrors, type AuthzBinding, type AuthzRole, type Explanation } from '@palisade/sdk';
import { CliError, readInput, withClient } from './client.js';

const out = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
/** One table cell, whatever a description, reason or explanation holds (the tables are tab-separated lines). */
const cell = (s: string) => s.replace(/[\t\r\n]+/g, ' ');
const roleLine = (r: AuthzRole) => [r.name, r.builtin ? `tier ${r.tier}` : 'custom', r.permissions.join(',') || '-', cell(r.description ?? '-')].join('\t');
const bindingLine = (b: AuthzBinding) => [b.id, b.subject, b.role, b.scope, b.expires_at ?? '-', cell(b.reason ?? '-')].join('\t');

function intOption(flag: string, min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new CliError(`${flag} must be a whole number from ${min} to ${max}`, 2);
    return n;
  };
}

/** `<file>:<line>:<column>: <path>: <message>`, as compilers print them (the path left out when there is none: a YAML syntax error). */
export function formatPolicyProblem(file: string, p: PolicyProblem): string {
  return `${file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** A policy file's text (`-`: stdin) and the name its problems are reported under. */
async function readPolicy(file: string): Promise<{ name: string; source: string }> {
  try {
    return { name: file === '-' ? '<stdin>' : file, source: (await readInput(file)).toString('utf8') };
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, 2);
  }
}

/** Print the problems of an invalid policy, one per line on stderr, and fail (exit 1). */
function refuse(name: string, errors: PolicyProblem[]): never {
  for (const p of errors) process.stderr.write(formatPolicyProblem(name, p) + '\n');
  throw new CliError(`${name}: the policy is invalid (${errors.length} problem${errors.length === 1 ? '' : 's'}); nothing was stored`);
}

function printExplanation(e: Explanation): void {
  process.stdout.write(`decision: ${e.decision}\nreason: ${e.reason}\nprincipal: ${e.principal_id}\naction: ${e.action}\npolicy version: ${e.policy_version}\n\n`);
  process.stdout.write(['SOURCE', 'EFFECT', 'MATCHED', 'WHY'].join('\t') + '\n');
  for (const s of e.steps) process.stdout.write([s.source, s.effect, s.matched ? 'yes' : 'no', cell(s.why)].join('\t') + '\n');
}

interface ExplainOptions {
  action: string;
  principal?: string;
  resourceType?: string;
  resourceId?: string;
  name?: string;
  classification?: (typeof CLASSIFICATIONS)[number];
  org?: string;
  project?: string;
  sourceIp?: string;
  authentication?: (typeof AUTHN_METHODS)[number];
  mfaAge?: number;
  risk?: number;
  at?: string;
  approval?: string;
  json?: boolean;
}

export function explainRequest(o: ExplainOptions): ExplainRequest {
  const attrs = { id: o.resourceId, name: o.name, classification: o.classification, org: o.org, project: o.project };
  const given = Object.entries(attrs).filter((e): e is [string, string] => e[1] !== undefined);
  if (given.length > 0 && !o.resourceType) throw new CliError(`--${given.map(([k]) => (k === 'id' ? 'resource-id' : k)).join(', --')} describe${given.length === 1 ? 's' : ''} a resource: give its --resource-type too`, 2);
  let time: string | undefined;
  if (o.at !== undefined) {
    const t = new Date(o.at);
    if (Number.isNaN(t.getTime())) throw new CliError(`--at ${o.at} is not a time (ISO 8601, e.g. 2025-01-31T22:00:00Z)`, 2);
    time = t.toISOString();
  }
  const context = {
    ...(time ? { time } : {}),
    ...(o.sourceIp ? { source_ip: o.sourceIp } : {}),
    ...(o.authentication ? { authentication: o.authentication } : {}),
    ...(o.mfaAge !== undefined ? { mfa_age_seconds: o.mfaAge } : {}),
    ...(o.risk !== undefined ? { risk: o.risk } : {}),
    ...(o.approval ? { approval_id: o.approval } : {}),
  };
  return {
    action: o.action,
    ...(o.principal ? { principal_id: o.principal } : {}),
    ...(o.resourceType ? { resource: { type: o.resourceType, ...Object.fromEntries(given) } } : {}),
    ...(Object.keys(context).length > 0 ? { context } : {}),
  };
}

/** `palisade authz ...`: roles, bindings, time-boxed grants, policies as code, and why a request is allowed or not. */
export function authzCommands(program: Command): void {
  const authz = program.command('authz').description('authorization: roles, bindings, just-in-time grants, policies, explain');

  // ---------------------------------------------------------------------------------------------- explain
  authz
    .command('explain')
    .description('the decision for a principal (default: you), action, resource and context, with every role, binding and rule that took part')
    .requiredOption('--action <permission>', 'engine:resource:action, e.g. kms:keys:read')
    .option('--principal <id>', 'whom to ask about (usr_..., svc_...); someone else needs authz:decisions:explain-any')
    .option('--resource-type <type>', 'e.g. kms_key (default: the route)')
    .option('--resource-id <id>')
    .option('--name <name>', 'resource name (what names: globs match)')
    .addOption(new Option('--classification <c>', 'resource classification').choices(CLASSIFICATIONS))
    .option('--org <org_id>', 'resource organisation')
    .option('--project <project>', 'resource project')
    .option('--source-ip <ip>', 'as if the request came from this address')
    .addOption(new Option('--authentication <method>', 'as if authenticated so').choices(AUTHN_METHODS))
    .option('--mfa-age <seconds>', 'seconds since the second factor', intOption('--mfa-age', 0))
    .option('--risk <n>', 'risk score, 0 to 100', intOption('--risk', 0, 100))
    .option('--at <time>', 'as if at this time (ISO 8601)')
    .option('--approval <id>', 'with this approval (apr_...)')
    .option('--json', 'print JSON')
    .action(async (o: ExplainOptions) => {
      const req = explainRequest(o);
      const e = await withClient((c) => c.authz.explain(req));
      if (o.json) out(e);
      else printExplanation(e);
    });

  // ------------------------------------------------------------------------------------------------ roles
  authz
    .command('roles')
    .description('the six built-in tiers and the custom roles, with their permissions')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { roles } = await withClient((c) => c.authz.roles());
      if (o.json) return out(roles);
      process.stdout.write(['NAME', 'KIND', 'PERMISSIONS', 'DESCRIPTION'].join('\t') + '\n');
      for (const r of roles) process.stdout.write(roleLine(r) + '\n');
    });

  const role = authz.command('role').description('custom roles');
  role
    .command('show <name>')
    .description('show a role')
    .action(async (name: string) => out(await withClient((c) => c.authz.role(name))));
  role
    .command('create <name>')
    .description('create a custom role (only with permissions you hold)')
    .requiredOption('--permission <permission>', 'a permission (repeatable), e.g. kms:keys:read or kms:*', collect)
    .option('--description <text>')
    .action(async (name: string, o: { permission: string[]; description?: string }) => {
      out(await withClient((c) => c.authz.createRole({ name, permissions: o.permission, ...(o.description !== undefined ? { description: o.description } : {}) })));
    });
  role
    .command('update <name>')
    .description('change a custom role; every binding of it changes with it')
    .option('--permission <permission>', 'the new permissions, replacing the old ones (repeatable)', collect)
    .option('--description <text>')
    .action(async (name: string, o: { permission?: string[]; description?: string }) => {
      if (!o.permission && o.description === undefined) throw new CliError('nothing to change: give --permission or --description', 2);
      out(await withClient((c) => c.authz.updateRole(name, { ...(o.permission ? { permissions: o.permission } : {}), ...(o.description !== undefined ? { description: o.description } : {}) })));
    });
  role
    .command('delete <name>')
    .description('delete a custom role that is not bound')
    .action(async (name: string) => {
      await withClient((c) => c.authz.deleteRole(name));
      process.stderr.write(`deleted role ${name}\n`);
    });

  // --------------------------------------------------------------------------------------------- bindings
  authz
    .command('bindings')
    .description('role bindings and time-boxed grants, newest first')
    .option('--subject <id>', 'only this user, group or service identity')
    .option('--role <name>', 'only this role')
    .option('--active', 'only those that have not expired')
    .option('--json', 'print JSON')
    .action(async (o: { subject?: string; role?: string; active?: boolean; json?: boolean }) => {
      const { bindings } = await withClient((c) => c.authz.bindings({ ...(o.subject ? { subject: o.subject } : {}), ...(o.role ? { role: o.role } : {}), ...(o.active ? { active: true } : {}) }));
      if (o.json) return out(bindings);
      process.stdout.write(['ID', 'SUBJECT', 'ROLE', 'SCOPE', 'EXPIRES', 'REASON'].join('\t') + '\n');
      for (const b of bindings) process.stdout.write(bindingLine(b) + '\n');
    });
  authz
    .command('bind <subject> <role>')
    .description('bind a role to a user, group or service identity (usr_..., grp_..., svc_...); with --minutes, a grant that ends by itself')
    .option('--scope <scope>', '*, org:<org id> or org:<org id>/project:<project>', '*')
    .option('--minutes <n>', 'a just-in-time grant: ends after this many minutes', intOption('--minutes', 1, 525_600))
    .option('--reason <text>', 'kept with the binding and in the audit log')
    .action(async (subject: string, roleName: string, o: { scope: string; minutes?: number; reason?: string }) => {
      out(await withClient((c) => c.authz.bind({ subject, role: roleName, scope: o.scope, ...(o.minutes !== undefined ? { expires_in_minutes: o.minutes } : {}), ...(o.reason !== undefined ? { reason: o.reason } : {}) })));
    });
  authz
    .command('unbind <binding_id>')
    .description('remove a binding, or end a grant now')
    .action(async (id: string) => {
      await withClient((c) => c.authz.unbind(id));
      process.stderr.write(`removed ${id}\n`);
    });

  // ------------------------------------------------------------------------------------- requested grants
  const grant = authz.command('grant').description('just-in-time and break-glass access');
  grant
    .command('request <role>')
    .description('ask for a role for a while; a different principal approves it (palisade approvals approve <id>)')
    .requiredOption('--minutes <n>', 'how long the grant lasts once approved (at most 1440)', intOption('--minutes', 1, 1440))
    .requiredOption('--reason <text>', 'why (shown to the approvers, kept in the audit log)')
    .option('--scope <scope>', '*, org:<org id> or org:<org id>/project:<project>')
    .option('--break-glass', 'emergency access: the request is marked so and expires in an hour')
    .action(async (roleName: string, o: { minutes: number; reason: string; scope?: string; breakGlass?: boolean }) => {
      const a = await withClient((c) => c.authz.requestGrant({ role: roleName, minutes: o.minutes, reason: o.reason, ...(o.scope ? { scope: o.scope } : {}), ...(o.breakGlass ? { break_glass: true } : {}) }));
      out(a);
      process.stderr.write(`approval request ${a.id} is ${a.status} until ${a.expires_at}: another principal runs \`palisade approvals approve ${a.id}\`\n`);
    });

  // --------------------------------------------------------------------------------------------- policies
  const policy = authz.command('policy').description('policies as code (YAML or JSON), versioned');
  policy
    .command('get')
    .description('print the active policy document (or a stored version)')
    .option('--version <n>', 'a stored version', intOption('--version', 1))
    .option('--json', 'print the version with its metadata as JSON')
    .action(async (o: { version?: number; json?: boolean }) => {
      const v = await withClient((c) => (o.version !== undefined ? c.authz.policyVersion(o.version) : c.authz.policy()));
      if (o.json) return out(v);
      const source = v.source ?? '';
      process.stdout.write(source.endsWith('\n') || source === '' ? source : `${source}\n`);
      process.stderr.write(v.version === 0 ? 'no policy stored yet (roles and bindings only)\n' : `version ${v.version}, ${v.rules} rules, sha256 ${v.sha256}, by ${v.created_by ?? '-'} at ${v.created_at ?? '-'}\n`);
    });
  policy
    .command('apply <file>')
    .description('store the policy in <file> (YAML or JSON; - for stdin) as the next version; an invalid one is refused with each problem as file:line:column')
    .option('--comment <text>', 'kept with the version and in the audit log')
    .action(async (file: string, o: { comment?: string }) => {
      const { name, source } = await readPolicy(file);
      const v = await withClient(async (c) => {
        try {
          return await c.authz.putPolicy(source, o.comment);
        } catch (e) {
          const errors = policyErrors(e);
          if (errors) refuse(name, errors);
          throw e;
        }
      });
      process.stdout.write(`policy version ${v.version}: ${v.rules} rules, sha256 ${v.sha256}\n`);
    });
  policy
    .command('validate <file>')
    .description('check the policy in <file> without storing it; exit 1 with each problem as file:line:column when invalid')
    .action(async (file: string) => {
      const { name, source } = await readPolicy(file);
      const r = await withClient((c) => c.authz.validatePolicy(source));
      if (!r.valid) refuse(name, r.errors);
      process.stdout.write(`${name}: valid, ${r.rules} rules\n`);
    });
  policy
    .command('versions')
    .description('every stored policy version, newest first')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const { versions } = await withClient((c) => c.authz.policyVersions());
      if (o.json) return out(versions);
      process.stdout.write(['VERSION', 'RULES', 'CREATED_AT', 'CREATED_BY', 'SHA256', 'COMMENT'].join('\t') + '\n');
      for (const v of versions) process.stdout.write([v.version, v.rules, v.created_at ?? '-', v.created_by ?? '-', v.sha256, cell(v.comment ?? '-')].join('\t') + '\n');
    });
}
