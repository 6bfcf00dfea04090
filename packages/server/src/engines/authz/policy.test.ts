import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePolicy } from './policy.js';

describe('policy documents', () => {
  it('the example policy of the seed\'s data classes (deploy/authz/seed-policy.yaml) is valid', () => {
    const p = parsePolicy(readFileSync(new URL('../../../../../deploy/authz/seed-policy.yaml', import.meta.url), 'utf8'));
    expect(p.document.rules.map((r) => r.id)).toEqual(['confidential-needs-fresh-mfa', 'restricted-is-privileged', 'restricted-needs-approval', 'administration-from-the-corporate-network', 'high-risk-sessions-stop']);
  });

  it('JSON is accepted too, and its errors name lines as well', () => {
    expect(parsePolicy('{"version": 1, "rules": []}').document.rules).toEqual([]);
    expect(() => parsePolicy('{\n  "version": 1,\n  "rules": [\n    {"id": "x", "effect": "allow", "actions": ["kms:encrypt"], "when": {"source_ip": ["10.0.0.0/33"]}}\n  ]\n}')).toThrow(/^line 4, column \d+ \(\/rules\/0\/when\/source_ip\/0\): 10\.0\.0\.0\/33 is not an IP address or CIDR block$/);
  });

  it('refuses what would be silently wrong: unknown keys, a from without a to, risk bounds crossed, duplicate keys', () => {
    const bad = (src: string) => {
      try {
        parsePolicy(src);
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad('version: 1\nrules:\n  - id: a\n    effect: deny\n    actions: ["*"]\n    unles: { risk: { min: 5 } }\n')).toMatch(/^line 6, column \d+ \(\/rules\/0\/unles\)/);
    expect(bad('version: 1\nrules:\n  - id: a\n    effect: deny\n    actions: ["*"]\n    when: { time: { from: "08:00" } }\n')).toMatch(/^line 6.*give both from and to/);
    expect(bad('version: 1\nrules:\n  - id: a\n    effect: deny\n    actions: ["*"]\n    when: { risk: { min: 9, max: 5 } }\n')).toMatch(/^line 6.*risk\.min is above risk\.max/);
    expect(bad('version: 1\nversion: 1\nrules: []\n')).toMatch(/^line 2/);
  });
});
