/**
 * The policy decision point: may this principal do this action on this resource in this context? Role permissions
 * (the six tiers and custom roles, held directly, through groups, or through scoped and time-boxed bindings) and
 * `allow` rules grant; `deny` rules override everything; `require_approval` rules turn an allow into "approval
 * required" unless the request carries an approval a different principal gave. Every answer carries its reason.
 *
 * Evaluation is in two parts: what depends only on who, what and which resource (the in-scope bindings that grant
 * the action, and the rules that target it) is prepared once and cached until authorization state changes; what
 * depends on the request (time, network, MFA, risk, expiry of grants) is evaluated on every call.
 */
import type { DecisionEffect, DecisionStep } from '@palisade/core';
import type { Decision, ResourceAttrs } from '../../kernel/auth/decision.js';
export type { Decision, ResourceAttrs } from '../../kernel/auth/decision.js';
import { grants, hasPermission } from '../../kernel/auth/permissions.js';
import { evaluate, globMatch, type DecisionContext } from './conditions.js';
import type { Policy, Rule } from './policy.js';

/** Who the principal is in the directory (absent for principals that are not in it: the bootstrap key, configured certificates). */
export interface SubjectInfo {
  org_id: string;
  /** Roles held directly or through groups, each with where it comes from (`user`, `service`, `group:<id>`). */
  roles: ReadonlyArray<{ role: string; via: string }>;
  groups: readonly string[];
}

export interface BindingRow {
  id: string;
  subject: string;
  role: string;
  scope: string;
  expires_at: number | null;
  reason: string | null;
}

/** Authorization state as loaded from the database; replaced as a whole when it changes. */
export interface Snapshot {
  policy: Policy;
  policyVersion: number;
  /** Role name → permissions, built-in tiers and custom roles alike. */
  roles: ReadonlyMap<string, readonly string[]>;
  bindingsBySubject: ReadonlyMap<string, readonly BindingRow[]>;
}

export interface DecisionInput {
  principal_id: string;
  /** The permissions the credential carries (a session's or certificate's roles, an API key's list, a token's scope). */
  permissions: readonly string[];
  /** How `permissions` came about, for the reason: `role`, `api_key:<id>`, `token:<client>`, `certificate`. */
  credential: string;
  /** A credential with its own list (API key, access token's scope, a session restricted to MFA enrolment): bindings and rules grant nothing beyond it. */
  ceiling: readonly string[] | null;
  subject: SubjectInfo | null;
  action: string;
  resource: ResourceAttrs;
  context: DecisionContext;
  /** An approval for exactly this request, already checked (issued to this principal for this action and resource, unused). */
  approval: string | null;
}

interface Prepared {
  /** In-scope bindings of the principal or its groups whose role grants the action. */
  granting: Array<{ binding: BindingRow; permission: string }>;
  /** Role → the latest expiry among in-scope bindings of it (null: permanent), for `role:` principals of rules. */
  boundRoles: Map<string, number | null>;
  rules: Rule[];
}

export function resourceKey(r: ResourceAttrs): string {
  return `${r.type}\u0001${r.id ?? ''}\u0001${r.name ?? ''}\u0001${r.classification ?? ''}\u0001${r.org ?? ''}\u0001${r.project ?? ''}`;
}

export function scopeCovers(scope: string, resource: ResourceAttrs, subjectOrg: string | null): boolean {
  if (scope === '*') return true;
  const m = /^org:([^/]+)(?:\/project:(.+))?$/.exec(scope);
  if (!m) return false;
  if ((resource.org ?? subjectOrg ?? 'default') !== m[1]) return false;
  return m[2] === undefined || resource.project === m[2];
}

function resourceMatches(rule: Rule, r: ResourceAttrs, subjectOrg: string | null): boolean {
  const m = rule.resources;
  if (!m) return true;
  if (m.types && !m.types.includes(r.type)) return false;
  if (m.ids && !(r.id && m.ids.some((g) => globMatch(g, r.id!)))) return false;
  if (m.names && !(r.name && m.names.some((g) => globMatch(g, r.name!)))) return false;
  if (m.classifications && !(r.classification && m.classifications.includes(r.classification as never))) return false;
  if (m.orgs && !m.orgs.includes(r.org ?? subjectOrg ?? 'default')) return false;
  if (m.projects && !(r.project && m.projects.includes(r.project))) return false;
  return true;
}

/** Add to a bounded cache, dropping the oldest entry when full. */
function remember<V>(cache: Map<string, V>, key: string, value: V, max: number): void {
  if (cache.size >= max) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
}

export class DecisionPoint {
  readonly #prepared = new Map<string, Prepared>();
  /** Rules targeting an action (whoever asks, on whatever), and the permission of a role granting an action. */
  readonly #rulesFor = new Map<string, Rule[]>();
  readonly #roleGrants = new Map<string, string | null>();
  /** Rules by the first segment of their actions (`kms`), and those whose actions start with `*`. */
  readonly #rulesByEngine = new Map<string, Rule[]>();
  readonly #anyEngineRules: Rule[] = [];

  constructor(readonly snapshot: Snapshot, private readonly maxPrepared = 100_000) {
    for (const rule of snapshot.policy.document.rules) {
      const engines = new Set(rule.actions.map((a) => a.split(':')[0]!));
      if (engines.has('*')) this.#anyEngineRules.push(rule);
      else
        for (const e of engines) {
          const list = this.#rulesByEngine.get(e) ?? [];
          list.push(rule);
          this.#rulesByEngine.set(e, list);
        }
    }
  }

  /** Cached entries (for metrics and tests). */
  get preparedSize(): number {
    return this.#prepared.size;
  }

  #prepare(input: DecisionInput): Prepared {
    const key = `${input.principal_id}\u0000${input.action}\u0000${resourceKey(input.resource)}`;
    let p = this.#prepared.get(key);
    if (p) return p;
    const subjectOrg = input.subject?.org_id ?? null;
    const granting: Prepared['granting'] = [];
    const boundRoles = new Map<string, number | null>();
    for (const id of [input.principal_id, ...(input.subject?.groups ?? [])]) {
      for (const b of this.snapshot.bindingsBySubject.get(id) ?? []) {
        if (!scopeCovers(b.scope, input.resource, subjectOrg)) continue;
        const prev = boundRoles.get(b.role);
        boundRoles.set(b.role, prev === null || b.expires_at === null ? null : Math.max(prev ?? 0, b.expires_at));
        const permission = this.#roleGrant(b.role, input.action);
        if (permission) granting.push({ binding: b, permission });
      }
    }
    const rules = this.#rulesTargeting(input.action, input.resource, subjectOrg).filter((r) =>
      (r.principals ?? ['*']).some((p) => p === '*' || p.startsWith('role:') || p === `user:${input.principal_id}` || p === `service:${input.principal_id}` || (p.startsWith('group:') && (input.subject?.groups ?? []).includes(p.slice(6)))),
    );
    p = { granting, boundRoles, rules };
    remember(this.#prepared, key, p, this.maxPrepared);
    return p;
  }

  /** The permission of `role` that grants `action`, if any. */
  #roleGrant(role: string, action: string): string | null {
    const key = `${role}\u0000${action}`;
    let g = this.#roleGrants.get(key);
    if (g === undefined) {
      g = (this.snapshot.roles.get(role) ?? []).find((x) => grants(x, action)) ?? null;
      remember(this.#roleGrants, key, g, this.maxPrepared);
    }
    return g;
  }

  /** Rules whose actions cover `action` (kept per action) and whose resource conditions match. */
  #rulesTargeting(action: string, resource: ResourceAttrs, subjectOrg: string | null): Rule[] {
    let rules = this.#rulesFor.get(action);
    if (!rules) {
      const engine = action.split(':')[0]!;
      rules = [...(this.#rulesByEngine.get(engine) ?? []), ...this.#anyEngineRules].filter((r) => r.actions.some((a) => grants(a, action)));
      remember(this.#rulesFor, action, rules, this.maxPrepared);
    }
    return rules.filter((r) => resourceMatches(r, resource, subjectOrg));
  }

  decide(input: DecisionInput, explain = false): Decision {
    const p = this.#prepare(input);
    const now = input.context.time.getTime();
    const steps: DecisionStep[] | undefined = explain ? [] : undefined;
    const ceilingOk = !input.ceiling || hasPermission(input.ceiling, input.action);

    // Role permissions the credential carries.
    let allowBy: string | null = null;
    const held = input.permissions.find((g) => grants(g, input.action));
    if (held) {
      allowBy = input.credential === 'role' ? this.#roleGranting(input, held) : input.credential;
      steps?.push({ source: allowBy, effect: 'allow', matched: true, why: `carries ${held}` });
    } else steps?.push({ source: input.credential === 'role' ? 'roles' : input.credential, effect: 'allow', matched: false, why: `does not carry ${input.action}` });

    // Bindings (scoped, and time-boxed grants).
    let expired: BindingRow | null = null;
    for (const { binding, permission } of p.granting) {
      const source = `binding:${binding.id}`;
      if (binding.expires_at !== null && binding.expires_at <= now) {
        expired ??= binding;
        steps?.push({ source, effect: 'allow', matched: false, why: `grant of ${binding.role} (${binding.scope}) expired at ${new Date(binding.expires_at).toISOString()}` });
        continue;
      }
      if (!ceilingOk) {
        steps?.push({ source, effect: 'allow', matched: false, why: `role ${binding.role} grants ${permission}, beyond what the credential may carry` });
        continue;
      }
      allowBy ??= source;
      steps?.push({ source, effect: 'allow', matched: true, why: `role ${binding.role} (${binding.scope}${binding.expires_at ? `, until ${new Date(binding.expires_at).toISOString()}` : ''}) grants ${permission}` });
      if (!explain) break;
    }

    // Rules.
    let deny: { rule: Rule; why: string } | null = null;
    let needsApproval: Rule | null = null;
    for (const rule of p.rules) {
      const source = `rule:${rule.id}`;
      const principalWhy = this.#principalMatches(rule, input, p, now);
      if (principalWhy === null) {
        steps?.push({ source, effect: rule.effect, matched: false, why: 'the principal is not one it names' });
        continue;
      }
      const when = rule.when ? evaluate(rule.when, input.context, this.snapshot.policy) : null;
      if (when && !when.holds) {
        steps?.push({ source, effect: rule.effect, matched: false, why: `not applicable: ${when.why}` });
        continue;
      }
      const unless = rule.unless ? evaluate(rule.unless, input.context, this.snapshot.policy) : null;
      if (unless?.holds) {
        steps?.push({ source, effect: rule.effect, matched: false, why: `exempt: ${unless.why}` });
        continue;
      }
      const why = [when?.why, unless ? unless.why : null, principalWhy].filter((s) => s).join('; ') || 'applies to every request it targets';
      if (rule.effect === 'deny') {
        deny ??= { rule, why };
        steps?.push({ source, effect: 'deny', matched: true, why });
        if (!explain) break;
      } else if (rule.effect === 'require_approval') {
        needsApproval ??= rule;
        steps?.push({ source, effect: 'require_approval', matched: true, why: input.approval ? `satisfied by approval ${input.approval}` : why });
      } else if (!ceilingOk) {
        steps?.push({ source, effect: 'allow', matched: false, why: `grants ${input.action}, beyond what the credential may carry` });
      } else {
        allowBy ??= source;
        steps?.push({ source, effect: 'allow', matched: true, why });
      }
    }

    // Object.assign, not a spread of `extra`: V8 keeps objects spread from a fresh object alive through young GCs.
    const out = (decision: DecisionEffect, reason: string, by: string[], extra?: Partial<Decision>): Decision => {
      const d: Decision = Object.assign({ decision, reason, by }, extra);
      if (steps) d.steps = steps;
      return d;
    };
    if (deny) return out('deny', `rule ${deny.rule.id} denies ${input.action}: ${deny.why}`, [`rule:${deny.rule.id}`]);
    if (!allowBy) {
      const tail = expired ? `; grant ${expired.id} of ${expired.role} expired at ${new Date(expired.expires_at!).toISOString()}` : '';
      return out('deny', `no role, binding or rule grants ${input.action}${tail}`, []);
    }
    if (needsApproval && !input.approval) {
      const approval = { rule: needsApproval.id, approver_permission: needsApproval.approval?.approver_permission ?? input.action, ttl_minutes: needsApproval.approval?.ttl_minutes ?? 60 };
      return out('approval_required', `rule ${needsApproval.id} requires the approval of another principal holding ${approval.approver_permission}`, [allowBy, `rule:${needsApproval.id}`], { approval });
    }
    const by = needsApproval ? [allowBy, `rule:${needsApproval.id}`, `approval:${input.approval}`] : [allowBy];
    return out('allow', `${allowBy} grants ${input.action}${needsApproval ? `, approved in ${input.approval}` : ''}`, by, needsApproval && input.approval ? { permit: input.approval } : {});
  }

  /** `role:<name>` naming the role that carries `permission` (for the reason), or `roles` when none is known. */
  #roleGranting(input: DecisionInput, permission: string): string {
    for (const { role, via } of input.subject?.roles ?? []) {
      if ((this.snapshot.roles.get(role) ?? []).includes(permission)) return via === 'user' || via === 'service' ? `role:${role}` : `role:${role} (${via})`;
    }
    return 'roles';
  }

  /** Why the rule names this principal, or null when it does not. */
  #principalMatches(rule: Rule, input: DecisionInput, p: Prepared, now: number): string | null {
    for (const who of rule.principals ?? ['*']) {
      if (who === '*') return '';
      if (who.startsWith('role:')) {
        const role = who.slice(5);
        if (input.subject?.roles.some((r) => r.role === role)) return `holds ${role}`;
        const until = p.boundRoles.get(role);
        if (until === null || (until !== undefined && until > now)) return `bound to ${role}`;
        continue;
      }
      if (who === `user:${input.principal_id}` || who === `service:${input.principal_id}`) return `is ${who.slice(who.indexOf(':') + 1)}`;
      if (who.startsWith('group:') && input.subject?.groups.includes(who.slice(6))) return `member of ${who.slice(6)}`;
    }
    return null;
  }
}
