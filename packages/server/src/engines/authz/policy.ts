/**
 * Policies as code: a YAML or JSON document of rules, validated on load with errors that name the line. The
 * document's shape:
 *
 * ```yaml
 * version: 1
 * locations:                       # named networks that rules can refer to
 *   office: [10.20.0.0/16, 2001:db8::/48]
 * rules:
 *   - id: restricted-needs-approval
 *     effect: require_approval     # allow | deny | require_approval; deny overrides everything
 *     principals: ["role:developer", "group:grp_x", "user:usr_x", "service:svc_x", "*"]   # default "*"
 *     actions: ["kms:decrypt"]     # permission patterns
 *     resources: { types: [kms_key], classifications: [restricted], names: ["payments/*"] }
 *     when:   { ... }              # the rule applies only when every condition holds
 *     unless: { ... }              # ... and not when every condition here holds
 * ```
 *
 * Conditions: `time` {tz, days, from, to}, `source_ip` [CIDR], `location` [name], `mfa` {max_age_seconds, methods},
 * `authentication` [api_key|session|access_token|client_certificate], `certificate` [SPIFFE id glob],
 * `risk` {min, max} (0–100, from the threat-detection hook).
 */
import { BlockList, isIP } from 'node:net';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { PalisadeError, AUTHN_METHODS, type PolicyProblem } from '@palisade/core';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const lit = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));
const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM, 24-hour' });
const list = <T extends TSchema>(t: T, max = 256) => Type.Array(t, { minItems: 1, maxItems: max });
const Name = Type.String({ minLength: 1, maxLength: 128 });

const Conditions = Type.Object(
  {
    time: Type.Optional(Type.Object({ tz: Type.Optional(Name), days: Type.Optional(list(lit(DAYS), 7)), from: Type.Optional(HHMM), to: Type.Optional(HHMM) }, { additionalProperties: false, minProperties: 1 })),
    source_ip: Type.Optional(list(Name)),
    location: Type.Optional(list(Name)),
    mfa: Type.Optional(Type.Object({ max_age_seconds: Type.Optional(Type.Integer({ minimum: 0 })), methods: Type.Optional(list(lit(['totp', 'webauthn'] as const), 2)) }, { additionalProperties: false })),
    authentication: Type.Optional(list(lit(AUTHN_METHODS), 4)),
    certificate: Type.Optional(list(Name)),
    risk: Type.Optional(Type.Object({ min: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })), max: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })) }, { additionalProperties: false, minProperties: 1 })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type Conditions = Static<typeof Conditions>;

const Rule = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    effect: lit(['allow', 'deny', 'require_approval'] as const),
    principals: Type.Optional(list(Type.String({ pattern: '^(\\*|(role|group|user|service):[A-Za-z0-9_.-]+)$' }), 1000)),
    actions: list(Type.String({ pattern: '^(\\*|[a-z0-9-]+)(:(\\*|[a-z0-9-]+))*$' }), 256),
    resources: Type.Optional(
      Type.Object(
        {
          types: Type.Optional(list(Name)),
          ids: Type.Optional(list(Name, 1000)),
          names: Type.Optional(list(Name, 1000)),
          classifications: Type.Optional(list(lit(['public', 'internal', 'confidential', 'restricted'] as const), 4)),
          orgs: Type.Optional(list(Name)),
          projects: Type.Optional(list(Name)),
        },
        { additionalProperties: false, minProperties: 1 },
      ),
    ),
    when: Type.Optional(Conditions),
    unless: Type.Optional(Conditions),
    approval: Type.Optional(Type.Object({ approver_permission: Type.Optional(Name), ttl_minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_080 })) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type Rule = Static<typeof Rule>;

const PolicyDocument = Type.Object(
  {
    version: Type.Literal(1),
    locations: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]*$' }), list(Name, 1000))),
    rules: Type.Array(Rule, { maxItems: 10_000 }),
  },
  { additionalProperties: false },
);
export type PolicyDocument = Static<typeof PolicyDocument>;

/** A parsed policy, its networks compiled. */
export interface Policy {
  document: PolicyDocument;
  locations: ReadonlyMap<string, BlockList>;
}

export const EMPTY_POLICY: Policy = { document: { version: 1, rules: [] }, locations: new Map() };

/** A CIDR or a single address as a BlockList entry; null when it is neither. */
export function addNetwork(list: BlockList, cidr: string): boolean {
  const [addr, bits, extra] = cidr.split('/');
  const family = isIP(addr ?? '');
  if (!family || extra !== undefined) return false;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (bits === undefined) {
    list.addAddress(addr!, type);
    return true;
  }
  const n = /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
  if (n < 0 || n > (family === 6 ? 128 : 32)) return false;
  list.addSubnet(addr!, n, type);
  return true;
}

export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * Parse and validate a policy document (YAML, or JSON, which is YAML); every problem names its line and column.
 * Throws PAL_AUTHZ_POLICY_INVALID with `errors`.
 */
export function parsePolicy(source: string): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const problems: PolicyProblem[] = [];
  const at = (offset: number, path: string, message: string) => {
    const { line, col } = lines.linePos(offset);
    problems.push({ line, column: col, path, message });
  };
  for (const e of doc.errors) at(e.pos[0], '', e.message.split('\n')[0] ?? e.message);
  if (problems.length > 0) throw invalid(problems);
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  const locate = (path: Array<string | number>): number => {
    // the deepest node on the path that exists
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return node.range[0];
    }
    return 0;
  };
  const pointer = (p: Array<string | number>) => '/' + p.join('/');
  if (!Value.Check(PolicyDocument, value)) {
    const seen = new Set<string>();
    for (const e of Value.Errors(PolicyDocument, value)) {
      const path = e.path.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
      const key = `${e.path}`;
      if (seen.has(key)) continue; // one message per place: the first is the most specific
      seen.add(key);
      const alts = (e.schema as { anyOf?: Array<{ const?: unknown }> }).anyOf;
      const message = alts?.length && alts.every((a) => a.const !== undefined) ? `expected one of ${alts.map((a) => JSON.stringify(a.const)).join(', ')}` : e.message;
      at(locate(path), e.path || '/', message);
    }
    throw invalid(problems);
  }
  const document = value;
  const locations = new Map<string, BlockList>();
  for (const [name, cidrs] of Object.entries(document.locations ?? {})) {
    const bl = new BlockList();
    cidrs.forEach((c, i) => {
      if (!addNetwork(bl, c)) at(locate(['locations', name, i]), pointer(['locations', name, i]), `${c} is not an IP address or CIDR block`);
    });
    locations.set(name, bl);
  }
  const ids = new Map<string, number>();
  document.rules.forEach((rule, i) => {
    const here = (...p: Array<string | number>) => ['rules', i, ...p];
    if (ids.has(rule.id)) at(locate(here('id')), pointer(here('id')), `rule id ${rule.id} is used twice (first by rules[${ids.get(rule.id)}])`);
    else ids.set(rule.id, i);
    if (rule.approval && rule.effect !== 'require_approval') at(locate(here('approval')), pointer(here('approval')), 'approval settings need effect: require_approval');
    for (const part of ['when', 'unless'] as const) {
      const c = rule[part];
      if (!c) continue;
      if (c.time?.tz && !validTimeZone(c.time.tz)) at(locate(here(part, 'time', 'tz')), pointer(here(part, 'time', 'tz')), `unknown time zone ${c.time.tz} (an IANA name such as Europe/Berlin)`);
      if (c.time && (c.time.from === undefined) !== (c.time.to === undefined)) at(locate(here(part, 'time')), pointer(here(part, 'time')), 'give both from and to, or neither');
      c.source_ip?.forEach((cidr, j) => {
        if (!addNetwork(new BlockList(), cidr)) at(locate(here(part, 'source_ip', j)), pointer(here(part, 'source_ip', j)), `${cidr} is not an IP address or CIDR block`);
      });
      c.location?.forEach((name, j) => {
        if (!locations.has(name)) at(locate(here(part, 'location', j)), pointer(here(part, 'location', j)), `unknown location ${name}: define it under locations`);
      });
      if (c.risk?.min !== undefined && c.risk.max !== undefined && c.risk.min > c.risk.max) at(locate(here(part, 'risk')), pointer(here(part, 'risk')), 'risk.min is above risk.max');
    }
  });
  if (problems.length > 0) throw invalid(problems);
  return { document, locations };
}

function invalid(problems: PolicyProblem[]): PalisadeError {
  const errors = [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return new PalisadeError('PAL_AUTHZ_POLICY_INVALID', `line ${first.line}, column ${first.column}${first.path ? ` (${first.path})` : ''}: ${first.message}${more}`, { extensions: { errors } });
}
