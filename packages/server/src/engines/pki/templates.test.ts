import { describe, expect, it } from 'vitest';
import { authorize, DEFAULT_POLICY, DEFAULT_TEMPLATES, renderTemplate, type PolicyRule } from './templates.js';

const naming = { trust_domain: 'corp.internal', organization: 'Acme', country: 'DE' };
const code = (fn: () => unknown): string => {
  try {
    fn();
    return 'allowed';
  } catch (e) {
    return (e as { code: string }).code;
  }
};

describe('issuance templates', () => {
  it("renders the seed's service template", () => {
    const r = renderTemplate(DEFAULT_TEMPLATES.service!, { service: 'search', environment: 'staging', namespace: 'agents', department: 'ml', ip: ['10.1.0.4', '::1'] }, naming);
    expect(r.subject).toEqual({ CN: 'search.staging.corp.internal', O: 'Acme', OU: 'ml', C: 'DE' });
    expect(r.sans).toEqual({ dns: ['search.staging.svc.cluster.local', 'search.agents.svc.cluster.local'], ip: ['10.1.0.4', '::1'], uri: ['spiffe://corp.internal/ns/agents/sa/search'] });
  });

  it('refuses values that are not DNS labels, names or addresses', () => {
    const t = DEFAULT_TEMPLATES.service!;
    expect(code(() => renderTemplate(t, { service: 'a.b', environment: 'p', namespace: 'n' }, naming))).toBe('PAL_VALIDATION_FAILED');
    expect(code(() => renderTemplate(t, { service: 'x', environment: 'P', namespace: 'n' }, naming))).toBe('PAL_VALIDATION_FAILED');
    expect(code(() => renderTemplate(t, { service: 'x', environment: 'p', namespace: 'n', ip: ['10.0.0.300'] }, naming))).toBe('PAL_VALIDATION_FAILED');
    expect(code(() => renderTemplate(t, { service: 'x', environment: 'p', namespace: 'n', extra_dns: ['bad_name.example'] }, naming))).toBe('PAL_VALIDATION_FAILED');
    expect(code(() => renderTemplate(t, { service: 'x', environment: 'p', namespace: 'n', ip: ['fe80::1%eth0'] }, naming))).toBe('PAL_VALIDATION_FAILED');
    expect(code(() => renderTemplate(t, { service: 's'.repeat(40), environment: 'e'.repeat(20), namespace: 'n' }, naming))).toBe('PAL_VALIDATION_FAILED');
  });
});

describe('issuance policy', () => {
  const v = { service: 'payments', environment: 'prod', namespace: 'default' };
  it('by default: the owner anything, others only their own service, with no extra names or IPs', () => {
    expect(code(() => authorize(DEFAULT_POLICY, 'owner', 'service', { ...v, extra_dns: ['api.example.com'], ip: ['192.0.2.1'] }))).toBe('allowed');
    expect(code(() => authorize(DEFAULT_POLICY, 'payments', 'service', v))).toBe('allowed');
    expect(code(() => authorize(DEFAULT_POLICY, 'spiffe://corp.internal/ns/default/sa/payments', 'service', v))).toBe('allowed');
    expect(code(() => authorize(DEFAULT_POLICY, 'spiffe://corp.internal/ns/default/sa/billing', 'service', v))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    // the namespace is part of the identity (SPIFFE id, cluster DNS name): a workload stays in its own
    expect(code(() => authorize(DEFAULT_POLICY, 'spiffe://corp.internal/ns/dev/sa/payments', 'service', { ...v, namespace: 'dev' }))).toBe('allowed');
    expect(code(() => authorize(DEFAULT_POLICY, 'spiffe://corp.internal/ns/dev/sa/payments', 'service', { ...v, namespace: 'prod' }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(DEFAULT_POLICY, 'payments', 'service', { ...v, namespace: 'prod' }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(DEFAULT_POLICY, 'spiffe://corp.internal/x/payments', 'service', v))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(DEFAULT_POLICY, 'payments', 'service', { ...v, extra_dns: ['payments.example.com'] }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(DEFAULT_POLICY, 'payments', 'service', { ...v, ip: ['10.0.0.1'] }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
  });

  it('matches globs by label and IPs by range', () => {
    const rules: PolicyRule[] = [{ principals: ['ci-*'], templates: ['service'], services: ['agent-*'], namespaces: ['default'], environments: ['dev', 'staging'], extra_dns: ['*.agents.corp.internal'], ip_ranges: ['10.8.0.0/16', 'fd00::/8'] }];
    const ok = { service: 'agent-7', environment: 'dev', namespace: 'default' };
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, extra_dns: ['a.agents.corp.internal'], ip: ['10.8.3.4', 'fd00::1'] }))).toBe('allowed');
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, extra_dns: ['a.b.agents.corp.internal'] }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, ip: ['10.9.0.1'] }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, environment: 'prod' }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'ci-runner', 'other', ok))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'deployer', 'service', ok))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, service: 'agentx' }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
    expect(code(() => authorize(rules, 'ci-runner', 'service', { ...ok, namespace: 'prod' }))).toBe('PAL_PKI_NAME_NOT_ALLOWED');
  });
});
