import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireService } from '@palisade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('..', import.meta.url));
const RULES = 'deploy/prometheus/alerts.yml';
const RULE_TESTS = 'deploy/prometheus/alerts.test.yml';

interface Result {
  code: number;
  output: string;
}

function promtool(args: string[], cwd = repo): Promise<Result> {
  return new Promise((resolve, reject) => {
    execFile('promtool', args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (!err) return resolve({ code: 0, output });
      const code = (err as NodeJS.ErrnoException & { code?: unknown }).code;
      if (typeof code === 'number') return resolve({ code, output });
      reject(err);
    });
  });
}

const promtoolSvc = requireService('promtool', 'Prometheus alert rules (promtool)');

describe.skipIf(!promtoolSvc.available)('Prometheus alert rules (promtool)', () => {
  let scratch = '';
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'palisade-promtool-'));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it(`promtool check rules ${RULES}`, async () => {
    const r = await promtool(['check', 'rules', RULES]);
    expect(r.output).toContain('SUCCESS: 12 rules found');
    expect(r.code, r.output).toBe(0);
  });

  it(`promtool test rules ${RULE_TESTS}`, async () => {
    const r = await promtool(['test', 'rules', RULE_TESTS]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
  });

  it('defines exactly the seed alerts (group palisade-encryption), the audit alerts (palisade-audit) and the gateway alerts (palisade-gateway), each with a runbook that exists', () => {
    const text = readFileSync(join(repo, RULES), 'utf8');
    expect(text).toMatch(/- name: palisade-encryption\n/);
    expect(text).toMatch(/- name: palisade-audit\n/);
    expect(text).toMatch(/- name: palisade-gateway\n/);
    const alerts = [...text.matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    expect(alerts).toEqual(['EncryptionFailureRate', 'KeyExpiryWarning', 'CertificateExpiryWarning', 'UnauthorizedDecryption', 'HSMConnectivityFailure', 'AuditWriteFailure', 'AuditCheckpointStale', 'AuditAnchorFailing', 'GatewayCircuitOpen', 'GatewayUpstreamErrorRate']);
    for (const a of alerts) {
      expect(text).toContain(`runbook_url: docs/runbooks/${a}.md`);
      expect(() => readFileSync(join(repo, 'docs/runbooks', `${a}.md`))).not.toThrow();
    }
  });

  // The unit tests must be able to fail: weaken each alert and expect promtool to catch it.
  it.each([
    ['EncryptionFailureRate threshold', 'rate(encryption_failures_total[5m]) > 0.01', 'rate(encryption_failures_total[5m]) > 1'],
    ['KeyExpiryWarning boundary', 'key_age_days > 25', 'key_age_days >= 25'],
    ['CertificateExpiryWarning boundary', 'certificate_expiry_days < 30', 'certificate_expiry_days <= 30'],
    ['certificate_expiry_days unit', 'certificate_expiry_seconds / 86400', 'certificate_expiry_seconds / 3600'],
    ['UnauthorizedDecryption status filter', 'decryption_operations_total{status="unauthorized"}', 'decryption_operations_total'],
    ['AuditCheckpointStale quiet-log guard', 'delta(audit_log_size[5m]) > 0', 'vector(1)'],
    ['AuditCheckpointStale growth window', 'delta(audit_log_size[5m])', 'delta(audit_log_size[15m])'],
    ['AuditAnchorFailing duration', 'for: 15m', 'for: 0m'],
    ['GatewayCircuitOpen half-open counts', '(gateway_circuit_open) >= 0.5', '(gateway_circuit_open) >= 1'],
    ['GatewayUpstreamErrorRate statuses', 'status=~"502|503|504"', 'status=~"502|504"'],
    ['GatewayUpstreamErrorRate traffic floor', '[5m])) > 0.1', '[5m])) > 0'],
  ])('the rule tests catch a broken %s', async (_name, from, to) => {
    const original = readFileSync(join(repo, RULES), 'utf8');
    expect(original).toContain(from);
    const dir = mkdtempSync(join(scratch, 'mutant-'));
    writeFileSync(join(dir, 'alerts.yml'), original.replace(from, to));
    copyFileSync(join(repo, RULE_TESTS), join(dir, 'alerts.test.yml'));
    const r = await promtool(['test', 'rules', 'alerts.test.yml'], dir);
    expect(r.code, r.output).not.toBe(0);
  });
});
