/**
 * Issuance templates and the policy that says who may ask for what. The default template is the seed's
 * `service_certificate_template`; templates and rules are configuration (`pki.templates`, `pki.policy`).
 */
import { BlockList, isIP } from 'node:net';
import { PalisadeError } from '@palisade/core';
import type { SubjectAltNames, SubjectName } from './x509.js';

export interface Template {
  subject: { cn: string; o?: string; ou?: string; c?: string };
  dns: string[];
  ip: string[];
  uri: string[];
  key_usage: Array<'digitalSignature' | 'keyEncipherment' | 'keyAgreement'>;
  ext_key_usage: Array<'serverAuth' | 'clientAuth'>;
  ttl_days: number;
  max_ttl_days: number;
}

export interface PolicyRule {
  /** Principal ids (globs). */
  principals: string[];
  templates: string[];
  /** Service names (globs); `{principal}` stands for the caller's own service identity. */
  services: string[];
  /** Namespaces (globs); `{principal}` stands for the caller's own (its SPIFFE id's `/ns/<ns>/`, else `default`). */
  namespaces: string[];
  environments: string[];
  /** Further DNS names the caller may add (globs; `*` matches one label). */
  extra_dns: string[];
  /** CIDR ranges the caller's IP SANs must fall in. */
  ip_ranges: string[];
}

export interface PkiNaming {
  trust_domain: string;
  organization: string;
  country: string;
}

/** The seed's service identity certificate, with a SPIFFE id naming the workload. */
export const DEFAULT_TEMPLATES: Record<string, Template> = {
  service: {
    subject: { cn: '{service}.{environment}.{trust_domain}', o: '{organization}', ou: '{department}', c: '{country}' },
    dns: ['{service}.{environment}.svc.cluster.local', '{service}.{namespace}.svc.cluster.local'],
    ip: ['{service_ip}'],
    uri: ['spiffe://{trust_domain}/ns/{namespace}/sa/{service}'],
    key_usage: ['digitalSignature', 'keyEncipherment', 'keyAgreement'],
    ext_key_usage: ['serverAuth', 'clientAuth'],
    ttl_days: 90,
    max_ttl_days: 90,
  },
};

/**
 * Least privilege by default: the owner may ask for anything; every other principal only for the service that is
 * its own identity, without extra names or IPs. Operators widen this on purpose in `pki.policy`.
 */
export const DEFAULT_POLICY: PolicyRule[] = [
  { principals: ['owner'], templates: ['*'], services: ['*'], namespaces: ['*'], environments: ['*'], extra_dns: ['**'], ip_ranges: ['0.0.0.0/0', '::/0'] },
  { principals: ['*'], templates: ['*'], services: ['{principal}'], namespaces: ['{principal}'], environments: ['*'], extra_dns: [], ip_ranges: [] },
];

export interface IssueVariables {
  service: string;
  environment: string;
  namespace: string;
  department?: string | undefined;
  ip?: string[] | undefined;
  extra_dns?: string[] | undefined;
}

export interface RenderedRequest {
  subject: SubjectName;
  sans: Required<SubjectAltNames>;
  service: string;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function hostnameOk(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => LABEL.test(l));
}

/** `*` matches within one DNS label (or one path segment), `**` matches anything; everything else literally. */
function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*' || pattern === '**') return true;
  const re = pattern
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('[^./]*'))
    .join('.*');
  return new RegExp(`^${re}$`).test(value);
}

function fill(text: string, vars: Record<string, string>): string {
  return text.replace(/\{([a-z_]+)\}/g, (_, k: string) => vars[k] ?? '');
}

/** Render a template for a request; names are checked as host names, IPs as addresses. */
export function renderTemplate(t: Template, v: IssueVariables, naming: PkiNaming): RenderedRequest {
  for (const [k, val] of [['service', v.service], ['environment', v.environment], ['namespace', v.namespace]] as const) {
    if (!LABEL.test(val)) throw new PalisadeError('PAL_VALIDATION_FAILED', `${k} must be a DNS label (a-z, 0-9, '-', at most 63): ${JSON.stringify(val)}`);
  }
  const base = { service: v.service, environment: v.environment, namespace: v.namespace, department: v.department ?? '', trust_domain: naming.trust_domain, organization: naming.organization, country: naming.country };
  const subject: SubjectName = { CN: fill(t.subject.cn, base) };
  if (t.subject.o) subject.O = fill(t.subject.o, base);
  if (t.subject.ou) subject.OU = fill(t.subject.ou, base);
  if (t.subject.c) subject.C = fill(t.subject.c, base);
  const ips = v.ip ?? [];
  for (const ip of ips) if (isIP(ip) === 0 || ip.includes('%')) throw new PalisadeError('PAL_VALIDATION_FAILED', `not an IP address: ${JSON.stringify(ip)}`);
  if (subject.CN!.length > 64) throw new PalisadeError('PAL_VALIDATION_FAILED', `the common name ${subject.CN} is longer than X.509's 64 characters: use shorter service or environment names`);
  const dns = [...t.dns.map((d) => fill(d, base)), ...(v.extra_dns ?? []).map((d) => d.toLowerCase())];
  for (const d of dns) if (!hostnameOk(d)) throw new PalisadeError('PAL_VALIDATION_FAILED', `not a valid DNS name: ${JSON.stringify(d)}`);
  const ipSans = t.ip.flatMap((p) => (p === '{service_ip}' ? ips : [fill(p, base)]));
  return { subject, sans: { dns: [...new Set(dns)], ip: [...new Set(ipSans)], uri: t.uri.map((u) => fill(u, base)) }, service: v.service };
}

/**
 * The workload a principal is: from a SPIFFE id exactly of the form `spiffe://<td>/ns/<namespace>/sa/<service>`, else
 * the principal id as the service in the `default` namespace (an API key's principal).
 */
function ownIdentity(principalId: string): { service: string; namespace: string } {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principalId);
  if (m) return { namespace: m[1]!, service: m[2]! };
  return principalId.startsWith('spiffe://') ? { namespace: '', service: '' } : { namespace: 'default', service: principalId };
}

function inRanges(ip: string, ranges: string[]): boolean {
  const list = new BlockList();
  for (const r of ranges) {
    const [addr, bits] = r.split('/');
    const family = isIP(addr ?? '') === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(addr!, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
  }
  return list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
}

/** Throw PAL_PKI_NAME_NOT_ALLOWED unless some rule lets `principal` ask for this. */
export function authorize(policy: PolicyRule[], principal: string, template: string, v: IssueVariables): void {
  const extra = (v.extra_dns ?? []).map((d) => d.toLowerCase());
  const ips = v.ip ?? [];
  const own = ownIdentity(principal);
  const fits = (r: PolicyRule) =>
    r.principals.some((p) => globMatch(p, principal)) &&
    r.templates.some((p) => globMatch(p, template)) &&
    r.services.some((p) => (p === '{principal}' ? own.service !== '' && v.service === own.service : globMatch(p, v.service))) &&
    r.namespaces.some((p) => (p === '{principal}' ? own.namespace !== '' && v.namespace === own.namespace : globMatch(p, v.namespace))) &&
    r.environments.some((p) => globMatch(p, v.environment)) &&
    extra.every((d) => r.extra_dns.some((p) => globMatch(p, d))) &&
    ips.every((ip) => inRanges(ip, r.ip_ranges));
  if (policy.some(fits)) return;
  const what = `service ${v.service} in namespace ${v.namespace} (${template}, ${v.environment})${extra.length ? ` with ${extra.join(', ')}` : ''}${ips.length ? ` and IPs ${ips.join(', ')}` : ''}`;
  throw new PalisadeError('PAL_PKI_NAME_NOT_ALLOWED', `the issuance policy does not let ${principal} ask for ${what}`, { extensions: { name: v.service } });
}
