/**
 * Acceptance tests of the built-in role tiers and of the decision point:
 *
 * - a table-driven test covers every role × permission: for every permission a route requires (read from the real
 *   routes), the lowest tier that should hold it is written out below by hand, from the design, and every tier is
 *   checked against it; a route whose permission is not in the table fails, so a new route forces a decision;
 * - the tiers are strict supersets of each other;
 * - a property test shows no role gains a permission nobody granted: random custom roles, bindings (scopes, expiries,
 *   groups) and allow/deny/require_approval rules, and for random requests an allow (or approval_required) always has
 *   a source that covers the action (the credential's permissions, an in-scope unexpired binding of the principal or
 *   one of its groups, or an applicable allow rule), a ceiling is never exceeded, and a deny rule without conditions
 *   that matches always wins; the decision point's cache, `explain` and a fresh decision point agree. The oracle is
 *   written from the design (ADR 0011), not from decide.ts;
 * - a principal with no roles, no bindings and no allow rules is never allowed anything.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grants, hasPermission } from '../../kernel/auth/permissions.js';
import { permissionsOf, ROLES } from '../../kernel/auth/roles.js';
import { routePermissions } from '../../testing/route-permissions.js';
import { evaluate, globMatch, type DecisionContext } from './conditions.js';
import { DecisionPoint, type BindingRow, type DecisionInput, type ResourceAttrs, type Snapshot, type SubjectInfo } from './decide.js';
import { HANDLER_PERMISSIONS } from './doc.js';
import { parsePolicy, type Policy, type PolicyDocument, type Rule } from './policy.js';

// ------------------------------------------------------------------------------------------ the intended design

const TIERS = ['viewer', 'agent', 'developer', 'operator', 'security-admin', 'owner'] as const;
type Tier = (typeof TIERS)[number];

/**
 * Permission → the lowest tier that holds it (every tier above holds it too). Written from the design, not from
 * roles.ts: viewers read and manage themselves; agents use keys and get certificates; developers manage their keys
 * and API keys; operators run the service (services, revocation, EAB, audit reading, metrics); security admins
 * manage people, policy, audit, approvals and the dangerous key and CA operations; the root of trust is the owner's.
 */
const EXPECTED: Readonly<Record<string, Tier>> = {
  // viewer
  'auth:self:read': 'viewer',
  'auth:self:write': 'viewer',
  'authz:decisions:explain': 'viewer',
  'authz:grants:request': 'viewer',
  'authz:roles:read': 'viewer',
  'identity:groups:read': 'viewer',
  'identity:services:read': 'viewer',
  'identity:users:read': 'viewer',
  'kms:keys:list': 'viewer',
  'kms:keys:read': 'viewer',
  'pki:ca:read': 'viewer',
  'pki:certificates:read': 'viewer',
  // agent
  'kms:data-key': 'agent',
  'kms:decrypt': 'agent',
  'kms:encrypt': 'agent',
  'kms:hmac': 'agent',
  'kms:sign': 'agent',
  'kms:verify': 'agent',
  'pki:certificates:issue': 'agent',
  'gateway:signing-keys:create': 'agent',
  // developer
  'auth:api-keys:create': 'developer',
  'auth:api-keys:list': 'developer',
  'kms:keys:create': 'developer',
  'kms:keys:rotate': 'developer',
  'kms:keys:update': 'developer',
  'kms:rewrap': 'developer',
  // operator
  'acme:eab:create': 'operator',
  'acme:eab:list': 'operator',
  'acme:eab:revoke': 'operator',
  'approvals:requests:list': 'operator',
  'approvals:requests:read': 'operator',
  'audit:events:read': 'operator',
  'auth:api-keys:revoke': 'operator',
  'authz:bindings:read': 'operator',
  'authz:decisions:explain-any': 'operator',
  'authz:policies:read': 'operator',
  'identity:services:create': 'operator',
  'identity:services:delete': 'operator',
  'identity:services:update': 'operator',
  'pki:certificates:revoke': 'operator',
  'system:metrics:read': 'operator',
  // security-admin
  'approvals:requests:decide': 'security-admin',
  'audit:events:export': 'security-admin',
  'audit:hash': 'security-admin',
  'audit:holds:create': 'security-admin',
  'audit:holds:read': 'security-admin',
  'audit:holds:release': 'security-admin',
  'audit:personal:read': 'security-admin',
  'audit:subjects:erase': 'security-admin',
  'authz:bindings:create': 'security-admin',
  'authz:bindings:delete': 'security-admin',
  'authz:grants:approve': 'security-admin',
  'authz:policies:write': 'security-admin',
  'authz:roles:create': 'security-admin',
  'authz:roles:delete': 'security-admin',
  'authz:roles:update': 'security-admin',
  'gateway:signing-keys:manage': 'security-admin',
  'identity:groups:create': 'security-admin',
  'identity:groups:update': 'security-admin',
  'identity:orgs:create': 'security-admin',
  'identity:orgs:read': 'security-admin',
  'identity:users:create': 'security-admin',
  'identity:users:delete': 'security-admin',
  'identity:users:update': 'security-admin',
  'kms:keys:destroy': 'security-admin',
  // Disabling a key is reversible and milder than scheduling its destruction (security-admin), and is how an
  // incident is contained; a security admin who may destroy a key but not disable it is a gap in the tiers.
  'kms:keys:disable': 'security-admin',
  'kms:keys:enable': 'security-admin',
  'kms:keys:export': 'security-admin',
  'kms:keys:import': 'security-admin',
  'oauth:tokens:introspect': 'security-admin',
  'oauth:tokens:revoke': 'security-admin',
  'pki:ca:create': 'security-admin',
  'pki:ca:export': 'security-admin',
  'scim:groups:read': 'security-admin',
  'scim:groups:write': 'security-admin',
  'scim:users:read': 'security-admin',
  'scim:users:write': 'security-admin',
  'sys:seal:seal': 'security-admin',
  // owner: the root of trust
  'sys:seal:rekey': 'owner',
  'sys:seal:rotate-root': 'owner',
};

const routes = await routePermissions();
const byPermission = new Map<string, string[]>();
for (const r of routes) if (r.permission !== null) byPermission.set(r.permission, [...(byPermission.get(r.permission) ?? []), `${r.method} ${r.url}`]);
const required = [...byPermission.keys()].sort();
const handlerChecked = HANDLER_PERMISSIONS.map((h) => h.permission);

/** Which tiers hold `permission`, as roles.ts has them and as the table says. */
function row(permission: string): { actual: Record<Tier, boolean>; expected: Record<Tier, boolean> | undefined } {
  const lowest = EXPECTED[permission];
  const actual = Object.fromEntries(TIERS.map((t) => [t, hasPermission(permissionsOf([t]), permission)])) as Record<Tier, boolean>;
  const expected = lowest === undefined ? undefined : (Object.fromEntries(TIERS.map((t, i) => [t, i >= TIERS.indexOf(lowest)])) as Record<Tier, boolean>);
  return { actual, expected };
}

describe('role × permission matrix', () => {
  it('the routes were collected', () => {
    expect(routes.length).toBeGreaterThan(100);
    expect(required.length).toBeGreaterThan(50);
  });

  it('the built-in roles are the six tiers, lowest first', () => {
    expect(ROLES).toEqual(TIERS);
  });

  it('every permission a route requires has a lowest tier in the table (a new route needs a decision here)', () => {
    const missing = required.filter((p) => !(p in EXPECTED)).map((p) => `${p} (${byPermission.get(p)!.join(', ')})`);
    expect(missing, 'add these to EXPECTED with the lowest tier that should hold them').toEqual([]);
  });

  it('every entry of the table is a permission some route or handler requires', () => {
    const stale = Object.keys(EXPECTED).filter((p) => !byPermission.has(p) && !handlerChecked.includes(p));
    expect(stale, 'no route requires these any more: remove them from EXPECTED').toEqual([]);
  });

  it.each([...required, ...handlerChecked])('%s: held by its lowest tier and every tier above, by none below', (permission) => {
    const { actual, expected } = row(permission);
    expect(expected, `${permission} is not in EXPECTED`).toBeDefined();
    expect(actual, `which tiers hold ${permission} (required by ${byPermission.get(permission)?.join(', ') ?? 'a handler'})`).toEqual(expected);
  });
});

describe('tiers', () => {
  it('each tier holds everything the one below holds, and more', () => {
    for (let i = 1; i < TIERS.length; i++) {
      const below = permissionsOf([TIERS[i - 1]!]);
      const here = permissionsOf([TIERS[i]!]);
      expect(below.filter((p) => !hasPermission(here, p)), `${TIERS[i]} lacks what ${TIERS[i - 1]} holds`).toEqual([]);
      expect(here.filter((p) => !hasPermission(below, p)).length, `${TIERS[i]} adds nothing to ${TIERS[i - 1]}`).toBeGreaterThan(0);
      // ... and more that some route asks for
      expect(required.filter((p) => hasPermission(here, p) && !hasPermission(below, p)).length, `${TIERS[i]} opens no route ${TIERS[i - 1]} cannot use`).toBeGreaterThan(0);
    }
  });

  it('no tier but the owner holds everything', () => {
    for (const t of TIERS.slice(0, -1)) expect(required.filter((p) => !hasPermission(permissionsOf([t]), p)).length, t).toBeGreaterThan(0);
    expect(required.every((p) => hasPermission(permissionsOf(['owner']), p))).toBe(true);
  });
});

// -------------------------------------------------------------------------------------------- the property test

const T0 = Date.UTC(2026, 5, 15, 12, 0, 0);
const HOUR = 3_600_000;
const CUSTOM = ['c0', 'c1', 'c2'];
const GROUPS = ['g0', 'g1', 'g2'];
/** Directory principals (u*, s*) and one that is not in the directory (the bootstrap key, a configured certificate). */
const PRINCIPALS = ['u0', 'u1', 's0', 'boot'];
const SEGMENTS = ['kms', 'pki', 'authz', 'keys', 'ca', 'roles', 'read', 'create', 'encrypt'];

/** A concrete permission (what a route requires): mostly a few real ones, so that grants and rules meet. */
const action = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('kms:keys:read', 'kms:keys:create', 'kms:encrypt', 'pki:ca:read', 'authz:roles:create', 'sys:seal:rekey') },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 3 }).map((s) => s.join(':')) },
);
/** A granted permission pattern, with wildcards. */
const pattern = fc.oneof(
  { weight: 3, arbitrary: action },
  { weight: 2, arbitrary: fc.constantFrom('*', 'kms:*', 'kms:keys:*', '*:keys:read', 'kms:*:read', 'pki:*', '*:*:create', '*:encrypt', 'kms:keys') },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...SEGMENTS, '*'), { minLength: 1, maxLength: 3 }).map((s) => s.join(':')) },
);
const patterns = (max: number) => fc.array(pattern, { maxLength: max });
const roleName = fc.constantFrom(...ROLES, ...CUSTOM, 'ghost');
const scope = fc.constantFrom('*', 'org:a', 'org:b', 'org:default', 'org:a/project:p', 'org:b/project:q', 'org:a/project:q', 'project:p');
const expiry = fc.option(fc.integer({ min: -3 * HOUR, max: 3 * HOUR }).map((d) => T0 + d), { nil: null });

const conditions = fc.oneof(
  fc.record({ authentication: fc.subarray(['api_key', 'session', 'access_token', 'client_certificate'] as const, { minLength: 1 }) }),
  fc.record({ risk: fc.record({ min: fc.integer({ min: 0, max: 60 }) }) }),
  fc.record({ source_ip: fc.constantFrom(['10.0.0.0/8'], ['192.168.0.0/16', '2001:db8::/32']) }),
  fc.record({ mfa: fc.record({ max_age_seconds: fc.constantFrom(60, 3600) }) }),
  fc.record({ time: fc.record({ from: fc.constantFrom('09:00', '22:00'), to: fc.constantFrom('17:00', '06:00') }) }),
);
const resources = fc.record(
  {
    types: fc.subarray(['kms_key', 'route'], { minLength: 1 }),
    orgs: fc.subarray(['a', 'b', 'default'], { minLength: 1 }),
    projects: fc.subarray(['p', 'q'], { minLength: 1 }),
    names: fc.subarray(['pay/*', 'ops/y'], { minLength: 1 }),
    classifications: fc.subarray(['internal', 'restricted'] as const, { minLength: 1 }),
  },
  { requiredKeys: [] },
);
const rulePrincipal = fc.constantFrom('*', 'role:viewer', 'role:owner', 'role:c0', 'role:c1', 'role:ghost', 'user:u0', 'user:u1', 'service:s0', 'user:boot', 'group:g0', 'group:g1');

/** `arb` one time in `1 + absent`, else absent. */
const sometimes = <T,>(arb: fc.Arbitrary<T>, absent = 2) => fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

function ruleArb(effects: ReadonlyArray<Rule['effect']>) {
  return fc
    .record({
      effect: fc.constantFrom(...effects),
      principals: sometimes(fc.array(rulePrincipal, { minLength: 1, maxLength: 3 }), 1),
      actions: fc.array(pattern, { minLength: 1, maxLength: 3 }),
      resources: sometimes(resources.filter((r) => Object.keys(r).length > 0)),
      when: sometimes(conditions),
      unless: sometimes(conditions, 3),
    })
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Omit<Rule, 'id'>);
}

interface World {
  snapshot: Snapshot;
  subjects: ReadonlyMap<string, SubjectInfo | null>;
}

function worldArb(effects: ReadonlyArray<Rule['effect']>) {
  const subject = fc.record({
    org_id: fc.constantFrom('a', 'b', 'default'),
    roles: fc.array(fc.record({ role: roleName, via: fc.constantFrom('user', 'service', 'group:g0') }), { maxLength: 2 }),
    groups: fc.subarray(GROUPS),
  });
  return fc
    .record({
      custom: fc.tuple(patterns(4), patterns(4), patterns(4)),
      bindings: fc.array(fc.record({ subject: fc.constantFrom(...PRINCIPALS, ...GROUPS), role: roleName, scope, expires_at: expiry }), { maxLength: 8 }),
      rules: fc.array(ruleArb(effects), { maxLength: 6 }),
      subjects: fc.tuple(subject, subject, subject),
    })
    .map(({ custom, bindings, rules, subjects }): World => {
      const doc: PolicyDocument = { version: 1, rules: rules.map((r, i) => ({ id: `r${i}`, ...r })) };
      const policy: Policy = parsePolicy(JSON.stringify(doc)); // what the store would accept
      const roles = new Map<string, readonly string[]>(ROLES.map((r) => [r, permissionsOf([r])]));
      CUSTOM.forEach((c, i) => roles.set(c, custom[i]!));
      const bySubject = new Map<string, BindingRow[]>();
      bindings.forEach((b, i) => bySubject.set(b.subject, [...(bySubject.get(b.subject) ?? []), { id: `bnd_${i}`, reason: null, ...b }]));
      return {
        snapshot: { policy, policyVersion: 1, roles, bindingsBySubject: bySubject },
        subjects: new Map<string, SubjectInfo | null>([
          ['u0', subjects[0]],
          ['u1', subjects[1]],
          ['s0', subjects[2]],
          ['boot', null],
        ]),
      };
    });
}

const resourceArb = fc.record({
  type: fc.constantFrom('kms_key', 'route'),
  id: fc.option(fc.constantFrom('key_1', 'key_2'), { nil: null }),
  name: fc.option(fc.constantFrom('pay/cards', 'ops/y', 'other'), { nil: null }),
  classification: fc.option(fc.constantFrom('internal', 'restricted'), { nil: null }),
  org: fc.option(fc.constantFrom('a', 'b', 'default'), { nil: null }),
  project: fc.option(fc.constantFrom('p', 'q'), { nil: null }),
});

/** A request: who (a principal of the world, with the credential it came with), what, on what, in what context. */
const requestArb = fc.record({
  principal: fc.constantFrom(...PRINCIPALS),
  credential: fc.oneof(
    fc.constant({ kind: 'session' as const }),
    patterns(4).map((list) => ({ kind: 'api_key' as const, list })),
    fc.tuple(patterns(4), patterns(3)).map(([list, ceiling]) => ({ kind: 'token' as const, list, ceiling })),
    fc.constant({ kind: 'none' as const }),
  ),
  action,
  resource: resourceArb,
  context: fc.record({
    offset: fc.integer({ min: -4 * HOUR, max: 4 * HOUR }),
    source_ip: fc.option(fc.constantFrom('10.1.2.3', '192.168.7.7', '2001:db8::1', '::ffff:10.9.9.9', '8.8.8.8'), { nil: null }),
    authentication: fc.constantFrom('api_key', 'session', 'access_token', 'client_certificate', null),
    mfa_age: fc.option(fc.integer({ min: 0, max: 7200 }), { nil: null }),
    mfa_method: fc.option(fc.constantFrom('totp', 'webauthn'), { nil: null }),
    risk: fc.integer({ min: 0, max: 100 }),
  }),
  approval: fc.option(fc.constant('apr_1'), { nil: null }),
});
type RequestSpec = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

function toInput(world: World, r: RequestSpec): DecisionInput {
  const subject = world.subjects.get(r.principal) ?? null;
  const time = new Date(T0 + r.context.offset);
  const context: DecisionContext = {
    time,
    source_ip: r.context.source_ip,
    authentication: r.context.authentication,
    mfa_at: r.context.mfa_age === null ? null : time.getTime() - r.context.mfa_age * 1000,
    mfa_method: r.context.mfa_age === null ? null : r.context.mfa_method,
    certificate: null,
    risk: r.context.risk,
  };
  const c = r.credential;
  // A session carries the union of its roles' permissions (as authentication builds it); an API key its list.
  const sessionPermissions = [...new Set((subject?.roles ?? []).flatMap((x) => world.snapshot.roles.get(x.role) ?? []))];
  const base = { principal_id: r.principal, subject, action: r.action, resource: r.resource, context, approval: r.approval };
  if (c.kind === 'session') return { ...base, permissions: sessionPermissions, credential: 'role', ceiling: null };
  if (c.kind === 'api_key') return { ...base, permissions: c.list, credential: 'api_key:k1', ceiling: c.list };
  if (c.kind === 'token') return { ...base, permissions: c.list, credential: 'token:client', ceiling: c.ceiling };
  return { ...base, permissions: [], credential: 'role', ceiling: null };
}

// The oracle: what the design says grants, written independently of decide.ts.

function orgOf(resource: ResourceAttrs, subject: SubjectInfo | null): string {
  return resource.org ?? subject?.org_id ?? 'default';
}

function inScope(s: string, resource: ResourceAttrs, subject: SubjectInfo | null): boolean {
  if (s === '*') return true;
  const m = /^org:([^/]+)(\/project:(.+))?$/.exec(s);
  if (!m) return false;
  return orgOf(resource, subject) === m[1] && (m[3] === undefined || resource.project === m[3]);
}

/** The principal's and its groups' bindings that are in scope and have not expired. */
function liveBindings(world: World, input: DecisionInput): BindingRow[] {
  const now = input.context.time.getTime();
  return [input.principal_id, ...(input.subject?.groups ?? [])]
    .flatMap((id) => world.snapshot.bindingsBySubject.get(id) ?? [])
    .filter((b) => inScope(b.scope, input.resource, input.subject) && (b.expires_at === null || b.expires_at > now));
}

function names(rule: Rule, world: World, input: DecisionInput): boolean {
  const live = liveBindings(world, input);
  return (rule.principals ?? ['*']).some((p) => {
    if (p === '*' || p === `user:${input.principal_id}` || p === `service:${input.principal_id}`) return true;
    if (p.startsWith('group:')) return (input.subject?.groups ?? []).includes(p.slice(6));
    if (p.startsWith('role:')) return (input.subject?.roles ?? []).some((r) => r.role === p.slice(5)) || live.some((b) => b.role === p.slice(5));
    return false;
  });
}

function targets(rule: Rule, input: DecisionInput): boolean {
  const m = rule.resources ?? {};
  const r = input.resource;
  return (
    rule.actions.some((a) => grants(a, input.action)) &&
    (!m.types || m.types.includes(r.type)) &&
    (!m.ids || (!!r.id && m.ids.some((g) => globMatch(g, r.id!)))) &&
    (!m.names || (!!r.name && m.names.some((g) => globMatch(g, r.name!)))) &&
    (!m.classifications || (!!r.classification && (m.classifications as readonly string[]).includes(r.classification))) &&
    (!m.orgs || m.orgs.includes(orgOf(r, input.subject))) &&
    (!m.projects || (!!r.project && m.projects.includes(r.project)))
  );
}

function applies(rule: Rule, world: World, input: DecisionInput): boolean {
  const policy = world.snapshot.policy;
  return targets(rule, input) && names(rule, world, input) && (!rule.when || evaluate(rule.when, input.context, policy).holds) && !(rule.unless && evaluate(rule.unless, input.context, policy).holds);
}

/** Every source that grants the action to this request, in words; empty when nothing does. */
function grantSources(world: World, input: DecisionInput): string[] {
  const out: string[] = [];
  for (const g of input.permissions) if (grants(g, input.action)) out.push(`credential carries ${g}`);
  for (const b of liveBindings(world, input)) for (const g of world.snapshot.roles.get(b.role) ?? []) if (grants(g, input.action)) out.push(`${b.id} (${b.role}) grants ${g}`);
  for (const rule of world.snapshot.policy.document.rules) if (rule.effect === 'allow' && applies(rule, world, input)) out.push(`rule ${rule.id} allows`);
  return out;
}

const describeCase = (world: World, input: DecisionInput) =>
  JSON.stringify({ input: { ...input, context: { ...input.context, time: input.context.time.toISOString() } }, rules: world.snapshot.policy.document.rules, bindings: [...world.snapshot.bindingsBySubject.values()].flat(), roles: Object.fromEntries([...world.snapshot.roles].filter(([r]) => CUSTOM.includes(r))) });

describe('decision point properties', () => {
  it('no role gains a permission nobody granted; a deny rule without conditions that matches always wins', () => {
    fc.assert(
      fc.property(worldArb(['allow', 'deny', 'require_approval']), fc.array(fc.tuple(requestArb, resourceArb), { minLength: 1, maxLength: 8 }), (world, requests) => {
        // shared: decisions go through their caches, one of them so small that it evicts all the time
        const point = new DecisionPoint(world.snapshot);
        const small = new DecisionPoint(world.snapshot, 2);
        for (const [r, elsewhere] of requests) {
          const input = toInput(world, r);
          point.decide({ ...input, resource: elsewhere }); // the same principal and action on another resource first
          small.decide({ ...input, resource: elsewhere });
          const d = point.decide(input);
          const why = describeCase(world, input);
          // the caches, explain and a fresh decision point agree
          expect(new DecisionPoint(world.snapshot).decide(input).decision, `fresh decision point: ${why}`).toBe(d.decision);
          expect(small.decide(input).decision, `decision point with a small cache: ${why}`).toBe(d.decision);
          expect(point.decide(input, true).decision, `explain: ${why}`).toBe(d.decision);
          if (d.decision !== 'deny') {
            const sources = grantSources(world, input);
            expect(sources.length, `${d.decision} (${d.reason}) with nothing granting ${input.action}: ${why}`).toBeGreaterThan(0);
            // a credential with its own list (a ceiling) is never taken beyond it
            if (input.ceiling && !hasPermission(input.permissions, input.action)) expect(hasPermission(input.ceiling, input.action), `${d.decision} beyond the ceiling: ${why}`).toBe(true);
          }
          const denying = world.snapshot.policy.document.rules.find((rule) => rule.effect === 'deny' && !rule.when && !rule.unless && applies(rule, world, input));
          if (denying) {
            expect(d.decision, `rule ${denying.id} matches: ${why}`).toBe('deny');
            const by = world.snapshot.policy.document.rules.find((rule) => d.by.length === 1 && d.by[0] === `rule:${rule.id}`);
            expect(by?.effect, `the denial names a deny rule (${d.by.join(', ')}): ${why}`).toBe('deny');
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('a principal with no roles, no bindings and no allow rules is never allowed anything', () => {
    fc.assert(
      fc.property(worldArb(['deny', 'require_approval']), fc.array(requestArb, { minLength: 1, maxLength: 8 }), fc.constantFrom(...PRINCIPALS), (world, requests, nobody) => {
        // nobody: no roles in the directory, no bindings (nor its groups'), a credential carrying nothing
        const subject = world.subjects.get(nobody);
        const subjects = new Map(world.subjects).set(nobody, subject ? { ...subject, roles: [] } : null);
        const bindingsBySubject = new Map([...world.snapshot.bindingsBySubject].filter(([id]) => id !== nobody && !(subject?.groups ?? []).includes(id)));
        const bare: World = { snapshot: { ...world.snapshot, bindingsBySubject }, subjects };
        const point = new DecisionPoint(bare.snapshot);
        for (const r of requests) {
          const input = { ...toInput(bare, { ...r, principal: nobody }), permissions: [] };
          const d = point.decide(input);
          expect(d.decision, `${d.reason}: ${describeCase(bare, input)}`).toBe('deny');
        }
      }),
      { numRuns: 300 },
    );
  });
});
