// Authorization (issue: "decision latency p50/p99 in-process with 10,000 bindings and 1,000 policies, goal p99 < 50 µs,
// against node-casbin on an equivalent RBAC model in the same run"). The decision point (engines/authz/decide.ts) is
// built directly from a Snapshot (no HTTP, no database): the six tiers + 50 custom roles, 10,000 bindings over 2,000
// users and 500 groups (scoped to org:<o> or org:<o>/project:<p>, some time-boxed, some expired), a policy of 1,000
// rules parsed with parsePolicy. Every call is timed with process.hrtime.bigint. Two passes: "warm" cycles 5,000
// principal+action+resource combos (the decision point caches the prepared part per combo); "cold" is a fresh
// DecisionPoint on mostly distinct combos (every call prepares). Peer: node-casbin (Enforcer.enforceSync, no cache),
// the same roles, bindings and rules as p/g lines, RBAC with domains, deny overrides, on the same requests.
// Dropped on the casbin side (it has no native form for them): time-window conditions (those deny rules always apply),
// binding expiry (only the grants active at the benchmark's time are loaded), MFA/risk context (unused by these rules);
// require_approval rules become deny (casbin answers yes/no). Network conditions are kept (ipMatch).
//
//   node --import tsx bench/authz.ts        (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_AUTHZ_DECISIONS (200000, warm pass), BENCH_AUTHZ_COLD (50000, cold pass), BENCH_AUTHZ_CASBIN_MS
// (6000 per casbin pass: casbin is far slower, so its passes are cut by time and cover the first requests of each).
import { newEnforcer, newModelFromString, StringAdapter } from 'casbin';
import { DecisionPoint, type BindingRow, type DecisionInput, type ResourceAttrs, type Snapshot } from '../packages/server/src/engines/authz/decide.js';
import { parsePolicy, type Rule } from '../packages/server/src/engines/authz/policy.js';
import type { DecisionContext } from '../packages/server/src/engines/authz/conditions.js';
import { permissionsOf, ROLES } from '../packages/server/src/kernel/auth/roles.js';
import { grants } from '../packages/server/src/kernel/auth/permissions.js';
import { heading, isEntry, num, percentile, table, type Cell } from './lib/report.js';

export const GOAL_P99_US = 50;
const env = (name: string, def: number) => (Number(process.env[name]) > 0 ? Math.round(Number(process.env[name])) : def);

let seed = 0x5eed;
const rnd = () => ((seed = (seed + 0x6d2b79f5) | 0), (((seed ^ (seed >>> 15)) * (seed | 1)) >>> 0) / 4294967296); // deterministic
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const weighted = <T>(xs: ReadonlyArray<[T, number]>): T => {
  let r = rnd() * xs.reduce((a, [, w]) => a + w, 0);
  for (const [x, w] of xs) if ((r -= w) < 0) return x;
  return xs[0]![0];
};

const ENGINES = [
  { type: 'kms_key', w: 50, acts: ['kms:encrypt', 'kms:decrypt', 'kms:data-key', 'kms:sign', 'kms:verify', 'kms:hmac', 'kms:keys:read', 'kms:keys:list', 'kms:keys:create', 'kms:keys:rotate', 'kms:keys:update', 'kms:keys:destroy', 'kms:rewrap'] },
  { type: 'pki_certificate', w: 20, acts: ['pki:certificates:issue', 'pki:certificates:read', 'pki:certificates:revoke', 'pki:ca:read'] },
  { type: 'identity_user', w: 10, acts: ['identity:users:read', 'identity:users:create', 'identity:services:read', 'identity:groups:update'] },
  { type: 'audit_event', w: 8, acts: ['audit:events:read', 'audit:events:export'] },
  { type: 'authz_binding', w: 4, acts: ['authz:bindings:read', 'authz:policies:read'] },
  { type: 'approval', w: 4, acts: ['approvals:requests:list', 'approvals:requests:decide'] },
  { type: 'acme_account', w: 2, acts: ['acme:eab:create'] },
  { type: 'oauth_client', w: 2, acts: ['oauth:clients:create'] },
] as const;
const engine = () => weighted(ENGINES.map((e) => [e, e.w] as [(typeof ENGINES)[number], number]));
const CUSTOM_PERMS = ['kms:encrypt', 'kms:decrypt', 'kms:data-key', 'kms:sign', 'kms:verify', 'kms:keys:*', 'kms:keys:read', 'kms:keys:rotate', 'kms:*', 'pki:certificates:*', 'pki:certificates:issue', 'pki:ca:read', 'identity:users:*', 'identity:groups:read', 'audit:events:read', 'audit:*', 'authz:bindings:read', 'approvals:requests:*', 'acme:eab:*', 'oauth:clients:*'];
const CLASSES = [['public', 10], ['internal', 50], ['confidential', 30], ['restricted', 10]] as Array<[string, number]>;
const NETWORKS = ['10.20.0.0/16', '10.8.0.0/16', '10.100.0.0/16', ...Array.from({ length: 8 }, (_, i) => `10.20.${i * 16}.0/20`)];
const WEEKDAYS: Array<'mon' | 'tue' | 'wed' | 'thu' | 'fri'> = ['mon', 'tue', 'wed', 'thu', 'fri'];
const [ORGS, PROJECTS, DAY] = [20, 8, 86_400_000];
const T0 = Date.UTC(2025, 2, 10); // a Monday: request times spread over the week that follows

interface User { id: string; org: string; role: string; groups: string[]; /** What it may do, for the request mix: action, org, project. */ can: Array<[string, string, string | null]> }
interface World { snapshot: Snapshot; users: User[]; rules: Rule[]; bindings: BindingRow[] }

function world(): World {
  const users: User[] = Array.from({ length: 2000 }, (_, i) => ({ id: `usr_${i}`, org: `org-${i % ORGS}`, role: weighted([['viewer', 50], ['agent', 30], ['developer', 15], ['operator', 5]]), groups: [], can: [] }));
  const groups = Array.from({ length: 500 }, (_, i) => ({ id: `grp_${i}`, org: `org-${i % ORGS}` }));
  for (const u of users) while (u.groups.length < 2) { const g = `grp_${(int(25) * ORGS) + Number(u.org.slice(4))}`; if (!u.groups.includes(g)) u.groups.push(g); }
  const roles = new Map<string, readonly string[]>(ROLES.map((r) => [r, permissionsOf([r])]));
  for (let i = 0; i < 50; i++) roles.set(`role-${i}`, [...new Set(Array.from({ length: 2 + int(5) }, () => pick(CUSTOM_PERMS)))]);
  const custom = [...roles.keys()].slice(ROLES.length);
  const bindings: BindingRow[] = Array.from({ length: 10_000 }, (_, i) => {
    const s = rnd() < 0.55 ? pick(users) : pick(groups);
    const org = rnd() < 0.9 ? s.org : `org-${int(ORGS)}`;
    const scope = weighted([['*', 20], [`org:${org}`, 40], [`org:${org}/project:p${int(PROJECTS)}`, 40]]);
    const expires = weighted<number | null>([[null, 85], [T0 + (8 + int(22)) * DAY, 8], [T0 - (1 + int(6)) * DAY, 7]]);
    return { id: `bnd_${i}`, subject: s.id, role: rnd() < 0.7 ? pick(custom) : weighted([['agent', 45], ['developer', 35], ['operator', 15], ['security-admin', 5]]), scope, expires_at: expires, reason: null };
  });
  const bindingsBySubject = new Map<string, BindingRow[]>();
  for (const b of bindings) bindingsBySubject.set(b.subject, [...(bindingsBySubject.get(b.subject) ?? []), b]);
  const allActs = ENGINES.flatMap((e) => e.acts);
  const scoped = (scope: string, org: string): [string, string | null] => { const m = /^org:([^/]+)(?:\/project:(.+))?$/.exec(scope); return m ? [m[1]!, m[2] ?? null] : [org, null]; };
  for (const u of users) {
    for (const b of [{ role: u.role, scope: '*' }, ...[u.id, ...u.groups].flatMap((s) => bindingsBySubject.get(s) ?? [])]) {
      const [org, project] = scoped(b.scope, u.org);
      for (const a of allActs) if (roles.get(b.role)!.some((g) => grants(g, a))) u.can.push([a, org, project]);
    }
  }
  const action = (acts: readonly string[]) => { const a = pick(acts); return rnd() < 0.25 ? `${a.split(':').slice(0, -1).join(':')}:*` : a; };
  const rules: Rule[] = Array.from({ length: 1000 }, (_, i): Rule => {
    const e = engine();
    const id = `r-${String(i).padStart(4, '0')}`;
    const r = rnd();
    if (r < 0.55) return { id, effect: 'allow', principals: [`group:${pick(groups).id}`], actions: [...new Set([action(e.acts), action(e.acts)])], resources: { types: [e.type] } };
    const who = weighted([[`group:${pick(groups).id}`, 60], [`role:${pick(custom)}`, 25], [`role:${pick(['agent', 'developer'])}`, 10], ['*', 5]]);
    if (r < 0.85) {
      // Broad principals: only from outside the corporate network; narrow ones: a subnet, or office hours.
      const broad = !who.startsWith('group:') && !who.startsWith('role:role-');
      const unless = broad ? { source_ip: ['10.0.0.0/8'] } : rnd() < 2 / 3 ? { source_ip: [pick(NETWORKS)] } : { time: { tz: 'Europe/Berlin', days: WEEKDAYS, from: '07:00', to: '20:00' } };
      return { id, effect: 'deny', principals: [who], actions: [action(e.acts)], resources: rnd() < 0.5 ? { types: [e.type], classifications: [pick(['confidential', 'restricted'] as const)] } : { types: [e.type] }, unless };
    }
    return { id, effect: 'require_approval', principals: [who], actions: [action(e.acts)], resources: { types: [e.type], classifications: ['restricted'] }, approval: { approver_permission: 'approvals:requests:decide', ttl_minutes: 60 } };
  });
  const policy = parsePolicy(JSON.stringify({ version: 1, rules })); // JSON is YAML: the engine's own parser and validation
  return { snapshot: { policy, policyVersion: 1, roles, bindingsBySubject }, users, rules, bindings };
}

/** 80%: something one of the principal's roles or bindings grants, in its scope; 20%: any action on any resource. */
function request(users: User[]): DecisionInput {
  const u = pick(users);
  const e = engine();
  const [action, org, project] = rnd() < 0.8 && u.can.length ? pick(u.can) : [pick(e.acts), rnd() < 0.85 ? u.org : `org-${int(ORGS)}`, null];
  const type = ENGINES.find((x) => x.acts.some((a) => a === action))!.type;
  const n = int(100_000);
  const resource: ResourceAttrs = { type, id: `${type}_${n}`, name: `team-${n % 50}/${type}-${n}`, classification: weighted(CLASSES), org, project: project ?? (rnd() < 0.8 ? `p${int(PROJECTS)}` : null) };
  const time = new Date(T0 + int(7 * DAY));
  const ip = weighted([[`10.20.${int(256)}.${1 + int(250)}`, 60], [`10.8.${int(256)}.${1 + int(250)}`, 25], [`10.100.${int(256)}.${1 + int(250)}`, 10], [`203.0.113.${1 + int(250)}`, 5]]);
  const context: DecisionContext = { time, source_ip: ip, authentication: 'session', mfa_at: rnd() < 0.7 ? time.getTime() - int(3_600_000) : null, mfa_method: 'totp', certificate: null, risk: int(20) };
  return { principal_id: u.id, permissions: permissionsOf([u.role]), credential: 'role', ceiling: null, subject: { org_id: u.org, roles: [{ role: u.role, via: 'user' }], groups: u.groups }, action, resource, context, approval: null };
}

// ------------------------------------------------------------------------------------------------ node-casbin

const CASBIN_MODEL = `
[request_definition]
r = sub, dom, org, obj, act, ip
[policy_definition]
p = sub, obj, act, cond, eft
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
[matchers]
m = keyMatch(r.act, p.act) && keyMatch(r.obj, p.obj) && (p.sub == "*" || g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, r.org) || g(r.sub, p.sub, "*")) && (p.cond == "-" || !ipMatch(r.ip, p.cond))`;

/** The same state as casbin policy lines: role permissions and rules as p, direct roles, bindings and group membership as g (with domain). */
function casbinLines(w: World): { p: string[]; g: string[] } {
  const p: string[] = [];
  for (const [role, perms] of w.snapshot.roles) for (const perm of perms) p.push(`p, ${role}, *, ${perm}, -, allow`);
  for (const r of w.rules) {
    const objs = (r.resources?.types ?? ['*']).flatMap((t) => (t === '*' ? ['*'] : r.resources?.classifications ? r.resources.classifications.map((c) => `${t}/${c}/*`) : [`${t}/*`]));
    for (const who of r.principals ?? ['*']) for (const obj of objs) for (const act of r.actions) p.push(`p, ${who === '*' ? '*' : who.slice(who.indexOf(':') + 1)}, ${obj}, ${act}, ${r.unless?.source_ip?.[0] ?? '-'}, ${r.effect === 'allow' ? 'allow' : 'deny'}`);
  }
  const g = w.users.map((u) => `g, ${u.id}, ${u.role}, *`);
  const groupDomains = new Map<string, Set<string>>();
  for (const b of w.bindings) {
    if (b.expires_at !== null && b.expires_at <= T0) continue; // casbin has no expiry: load what is active
    g.push(`g, ${b.subject}, ${b.role}, ${b.scope}`);
    if (b.subject.startsWith('grp_')) groupDomains.set(b.subject, (groupDomains.get(b.subject) ?? new Set(['*'])).add(b.scope));
  }
  // casbin resolves user → group → role within one domain: membership is repeated in every domain the group is bound in.
  for (const u of w.users) for (const grp of u.groups) for (const d of groupDomains.get(grp) ?? ['*']) g.push(`g, ${u.id}, ${grp}, ${d}`);
  return { p, g };
}

const casbinArgs = (x: DecisionInput) => [x.principal_id, `org:${x.resource.org}${x.resource.project ? `/project:${x.resource.project}` : ''}`, `org:${x.resource.org}`, `${x.resource.type}/${x.resource.classification}/${x.resource.name}`, x.action, x.context.source_ip!];

// ------------------------------------------------------------------------------------------------ timing

export interface Latency { n: number; p50: number; p99: number; p999: number; rate: number }

/** Per-call latency in µs (hrtime.bigint around each call) for up to n calls or budgetMs; rate = calls ÷ wall time. */
function time(n: number, budgetMs: number, fn: (i: number) => void): Latency {
  const lat = new Float64Array(n);
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(budgetMs) * 1_000_000n;
  let i = 0;
  while (i < n) {
    const a = process.hrtime.bigint();
    fn(i);
    const b = process.hrtime.bigint();
    lat[i++] = Number(b - a) / 1000;
    if (b > deadline) break;
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = lat.subarray(0, i).sort();
  return { n: i, p50: percentile(s, 50), p99: percentile(s, 99), p999: percentile(s, 99.9), rate: i / wall };
}

export interface AuthzResult {
  setup: [string, string];
  palisade: { warm: Latency; cold: Latency };
  casbin: { warm: Latency; cold: Latency };
  /** Palisade's decisions on the cold pass: allow / deny / approval_required, in %. */
  mix: Record<string, number>;
  /** Cold requests both sides answered, how many got the same yes/no (approval_required = no), and how many of the rest a time window exempted. */
  agree: { n: number; same: number; timed: number };
}

export async function runAuthz(opts: { quiet?: boolean } = {}): Promise<AuthzResult> {
  const log = (s: string) => opts.quiet || console.log(s);
  const N = env('BENCH_AUTHZ_DECISIONS', 200_000);
  const NC = env('BENCH_AUTHZ_COLD', 50_000);
  const casbinMs = env('BENCH_AUTHZ_CASBIN_MS', 6000);
  let t = performance.now();
  const w = world();
  const kinds = (e: string) => w.rules.filter((r) => r.effect === e).length;
  const setup = `${num(w.bindings.length)} bindings (${w.bindings.filter((b) => b.expires_at !== null).length} time-boxed, ${w.bindings.filter((b) => b.expires_at !== null && b.expires_at <= T0).length} expired) over ${num(w.users.length)} users and 500 groups, ${w.snapshot.roles.size} roles; ${num(w.rules.length)} rules (${kinds('allow')} allow, ${kinds('deny')} deny with unless network/time, ${kinds('require_approval')} require_approval on restricted); built and parsed in ${num((performance.now() - t) / 1000, 2)} s`;
  log(`  ${setup}`);
  t = performance.now();
  const lines = casbinLines(w);
  const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL), new StringAdapter([...lines.p, ...lines.g].join('\n')));
  const casbinSetup = `node-casbin ${num(lines.p.length)} p lines, ${num(lines.g.length)} g lines, loaded in ${num((performance.now() - t) / 1000, 2)} s`;
  log(`  ${casbinSetup}`);
  // Warm: 5,000 combos cycled with varying contexts (the per-request part is evaluated on every call).
  const pool = Array.from({ length: 5000 }, () => request(w.users));
  const ctxs = Array.from({ length: 997 }, () => request(w.users).context);
  const warm = Array.from({ length: N }, (_, i) => ({ ...pool[i % pool.length]!, context: ctxs[i % ctxs.length]! }));
  const cold = Array.from({ length: NC }, () => request(w.users));
  const warmCasbin = warm.map(casbinArgs);
  const coldCasbin = cold.map(casbinArgs);

  log(`  palisade, warm cache: ${num(N)} decisions over ${num(pool.length)} combos ...`);
  const point = new DecisionPoint(w.snapshot);
  for (let i = 0; i < 50_000; i++) point.decide(warm[i % N]!);
  const pWarm = time(N, 600_000, (i) => void point.decide(warm[i]!));

  log(`  palisade, cold: a fresh DecisionPoint, ${num(NC)} mostly distinct combos ...`);
  const jit = new DecisionPoint(w.snapshot);
  for (let i = 0; i < 5000; i++) jit.decide(request(w.users)); // JIT warm-up on other requests
  const fresh = new DecisionPoint(w.snapshot);
  const answers = new Uint8Array(NC);
  const code = { allow: 1, deny: 2, approval_required: 3 } as const;
  const pCold = time(NC, 600_000, (i) => void (answers[i] = code[fresh.decide(cold[i]!).decision]));

  log(`  node-casbin enforceSync: up to ${casbinMs / 1000} s per pass on the same requests ...`);
  for (let i = 0; i < 200; i++) enforcer.enforceSync(...coldCasbin[NC - 1 - i]!);
  const cWarm = time(N, casbinMs, (i) => void enforcer.enforceSync(...warmCasbin[i]!));
  const yes = new Uint8Array(NC);
  const cCold = time(NC, casbinMs, (i) => void (yes[i] = enforcer.enforceSync(...coldCasbin[i]!) ? 1 : 2));

  // Where the two disagree, ask Palisade why: an exemption by a time window is the condition casbin does without.
  let [same, timed] = [0, 0];
  for (let i = 0; i < cCold.n; i++) {
    if ((answers[i] === 1) === (yes[i] === 1)) same++;
    else if (fresh.decide(cold[i]!, true).steps!.some((s) => s.why.startsWith('exempt: time '))) timed++;
  }
  const mix: Record<string, number> = {};
  for (const [k, v] of Object.entries(code)) mix[k] = (100 * answers.filter((a) => a === v).length) / NC;
  return { setup: [setup, casbinSetup], palisade: { warm: pWarm, cold: pCold }, casbin: { warm: cWarm, cold: cCold }, mix, agree: { n: cCold.n, same, timed } };
}

// ------------------------------------------------------------------------------------------------ report

const us = (x: number) => num(x, x < 10 ? 2 : x < 100 ? 1 : 0);
export const authzVerdict = (r: AuthzResult, pass: 'warm' | 'cold') => (r.palisade[pass].p99 < GOAL_P99_US ? 'MET' : 'NOT MET');
const PASS_LABEL = { warm: 'warm: 5,000 combos repeated', cold: 'cold: distinct combos, fresh DecisionPoint' } as const;

/** Rows for the summary of bench/run.ts: capability, palisade, peer / limit, ratio, ratio per CPU-s, goal. */
export function authzSummaryRows(r: AuthzResult): Cell[][] {
  return (['warm', 'cold'] as const).map((p) => {
    const [a, b] = [r.palisade[p], r.casbin[p]];
    return [`authz decide, ${p === 'warm' ? 'warm cache' : 'cold (no cache)'}`, `p50 ${us(a.p50)} / p99 ${us(a.p99)} µs`, `node-casbin p99 ${us(b.p99)} µs (${(b.p99 / a.p99).toFixed(1)}× ours)`, (a.rate / b.rate).toFixed(1), '-', `p99 < ${GOAL_P99_US} µs: ${authzVerdict(r, p)}`];
  });
}

export function printAuthz(r: AuthzResult): void {
  heading('authorization decisions, in process');
  console.log(`${r.setup.join('\n')}\n`);
  const row = (who: string, pass: 'warm' | 'cold', l: Latency) => [who, PASS_LABEL[pass], num(l.n), us(l.p50), us(l.p99), us(l.p999), num(l.rate)];
  const rows = (['warm', 'cold'] as const).flatMap((p) => [row('palisade decide()', p, r.palisade[p]), row('node-casbin enforceSync()', p, r.casbin[p])]);
  console.log(`${table(['side', 'pass', 'n', 'p50 µs', 'p99 µs', 'p99.9 µs', 'decisions/s'], rows)}\n`);
  for (const p of ['warm', 'cold'] as const) {
    const [a, b] = [r.palisade[p], r.casbin[p]];
    console.log(`${p}: casbin p99 ÷ palisade p99 = ${(b.p99 / a.p99).toFixed(1)}×, p50 ${(b.p50 / a.p50).toFixed(1)}×; throughput palisade ÷ casbin = ${(a.rate / b.rate).toFixed(1)}×; goal p99 < ${GOAL_P99_US} µs: ${authzVerdict(r, p)} (${us(a.p99)} µs)`);
  }
  console.log(`palisade decisions (cold pass): ${Object.entries(r.mix).map(([k, v]) => `${k} ${v.toFixed(1)}%`).join(', ')}`);
  const a = r.agree;
  console.log(`same yes/no as casbin on ${num(a.n)} cold requests: ${((100 * a.same) / a.n).toFixed(1)}%; of the ${a.n - a.same} differences, ${a.timed} are a deny rule's time-window exemption (dropped on the casbin side)`);
  console.log('casbin side: no per-combo cache (plain Enforcer); time conditions, binding expiry (only active grants loaded), MFA and risk dropped; require_approval = deny; networks via ipMatch.');
}

if (isEntry(import.meta.url)) {
  printAuthz(await runAuthz());
  process.exit(0);
}
