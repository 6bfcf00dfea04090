import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'palisade-config-'));
const yaml = (text: string) => {
  const f = join(dir, `c${Math.random()}.yaml`);
  writeFileSync(f, text);
  return { PALISADE_CONFIG: f };
};
const message = (env: Record<string, string>) => {
  try {
    loadConfig(env as NodeJS.ProcessEnv, dir);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an invalid configuration');
};

describe('configuration', () => {
  it('has safe embedded defaults', () => {
    const c = loadConfig({} as NodeJS.ProcessEnv, dir);
    expect(c).toMatchObject({ addr: '127.0.0.1:8443', data_dir: join(dir, '.palisade'), seal: { provider: 'file' }, tls: { min_version: 'TLSv1.3' }, limits: { body_bytes: 10 * 1024 * 1024 }, metrics: { public: false } });
    expect(c.kms).toEqual({ rotation_days: { internal: 90, confidential: 30, restricted: 7 }, max_encryptions_per_version: 2 ** 32, nonce_block: 1024, scheduler_interval_seconds: 60,
      rotation_policies: {
        DEK: { frequency_days: 30, overlap_days: 7, approval: false },
        KEK: { frequency_days: 90, overlap_days: 30, approval: true },
        signing: { frequency_days: 180, overlap_days: 90, approval: true },
        TLS: { frequency_days: 90, overlap_days: 30, approval: false },
        hmac: { frequency_days: 30, overlap_days: 7, approval: false },
      },
    });
  });

  it('reads palisade.yaml and lets the environment override it', () => {
    const c = loadConfig({ ...yaml('addr: 0.0.0.0:9000\nkms:\n  rotation_days: { restricted: 3 }\n'), PALISADE_ADDR: '127.0.0.1:9443' } as NodeJS.ProcessEnv, dir);
    expect(c.addr).toBe('127.0.0.1:9443');
    expect(c.kms.rotation_days).toEqual({ internal: 90, confidential: 30, restricted: 3 });
  });

  it('names the setting and the reason when something is invalid', () => {
    expect(message({ PALISADE_ADDR: 'nonsense' })).toMatch(/invalid setting addr \(PALISADE_ADDR\)/);
    expect(message({ PALISADE_ADDR: '127.0.0.1:70000' })).toMatch(/addr.*out of range/);
    expect(message(yaml('kms:\n  max_encryptions_per_version: 0\n'))).toMatch(/invalid setting kms\.max_encryptions_per_version.*greater or equal to 1/);
    expect(message(yaml('colour: blue\n'))).toMatch(/colour|Unexpected property/);
    expect(message(yaml('addr: [unclosed\n'))).toMatch(/not valid YAML/);
    expect(message({ PALISADE_SEAL: 'hsm' })).toMatch(/seal\.provider \(PALISADE_SEAL\)/);
    expect(message({ PALISADE_KMS_MAX_ENCRYPTIONS_PER_VERSION: 'lots' })).toMatch(/PALISADE_KMS_MAX_ENCRYPTIONS_PER_VERSION: must be a whole number/);
    expect(message({ PALISADE_DATABASE_URL: 'mysql://x' })).toMatch(/database_url \(PALISADE_DATABASE_URL\)/);
    expect(message({ PALISADE_BOOTSTRAP_TOKEN: 'short' })).toMatch(/bootstrap_token/);
    expect(message({ PALISADE_CONFIG: join(dir, 'missing.yaml') })).toMatch(/cannot read/);
    // A typo in an identity provider's role mapping fails at start-up instead of granting nothing.
    const okta = (roles: string) => yaml(`identity:\n  oidc:\n    okta:\n      issuer: https://example.okta.com\n      client_id: palisade\n      role_mapping: { admins: [${roles}] }\n`);
    expect(message(okta('securityadmin'))).toMatch(/invalid setting identity\.oidc\.okta\.role_mapping\.admins\.0/);
    // Defaults are filled inside each provider (TypeBox does not descend into records by itself).
    expect(loadConfig(okta('security-admin') as NodeJS.ProcessEnv, dir).identity.oidc.okta).toMatchObject({
      role_mapping: { admins: ['security-admin'] },
      scopes: ['openid', 'email', 'profile'],
      groups_claim: 'groups',
      jit_provisioning: true,
      allow_insecure_http: false,
    });
  });
});
