/**
 * The server on the pkcs11 seal, end to end against its own SoftHSM2 tokens: restart, wrong PIN, unknown token, a
 * token removed while running, and no key material in clear in the database or the logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService, startSoftHsm, useSoftHsmEnv, type SoftHsmHandle } from '@palisade/testkit';
import { codeOf, startServer, type TestServer } from '../../testing/harness.js';
import { allTables, kmsMaterials } from '../../testing/db-dump.js';

const hsmAvailable = requireService('softhsm2', 'pkcs11 seal (server)').available;

describe.skipIf(!hsmAvailable)('pkcs11 seal, end to end', () => {
  let hsm: SoftHsmHandle;
  let restore: () => void;
  const servers: TestServer[] = [];
  const env = (token: string, pin?: string) => ({ PALISADE_SEAL: 'pkcs11', PALISADE_PKCS11_MODULE: hsm.module, PALISADE_PKCS11_TOKEN: token, PALISADE_PKCS11_PIN: pin ?? hsm.pin });
  const start = async (token: string, logs?: string[]) => {
    const s = await startServer('sqlite', { env: env(token), mutate: (c) => (c.seal.pkcs11.key_label = 'palisade-root'), ...(logs ? { logs } : {}) });
    servers.push(s);
    return s;
  };

  beforeAll(async () => {
    hsm = await startSoftHsm({ label: 'main', pin: '246810' });
    hsm.initToken('removable'); // every token must exist before the module is first loaded in this process
    hsm.initToken('unopened'); // login state is per process and token: a wrong PIN is only seen on a token not yet logged in
    restore = useSoftHsmEnv(hsm);
  });
  afterAll(async () => {
    for (const s of servers) await s.close().catch(() => undefined);
    restore?.();
    await hsm?.stop();
  });

  it('generates the root key in the token, and after a restart what was encrypted before decrypts', async () => {
    const logs: string[] = [];
    const s = await start('main', logs);
    expect(logs.join('\n')).toMatch(/generated the root key inside the PKCS#11 token/);
    const keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
    const ct = await s.client.kms.encrypt(keyId, 'kept across restarts');
    await s.restart();
    expect((await s.client.sys.sealStatus()).state).toBe('unsealed');
    expect((await s.client.kms.decrypt(keyId, ct)).toString()).toBe('kept across restarts');

    const dump = await allTables(s.rt.storage);
    const materials = await kmsMaterials(s.rt.storage, s.rt.seal);
    expect(materials.length).toBeGreaterThan(0);
    for (const m of materials) {
      for (const needle of [m.toString('hex'), m.toString('base64'), m.toString('latin1')]) {
        expect(dump.includes(needle)).toBe(false);
        expect(logs.join('\n').includes(needle)).toBe(false);
      }
    }
    expect(logs.join('\n')).not.toContain('246810');
  });

  it('root rotation: a new root key is generated in the token, the database names it, and a restart opens it', async () => {
    const s = servers[0]!; // on token "main", restarted once already
    const keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
    const ct = await s.client.kms.encrypt(keyId, 'across the ceremony');
    const request = await s.client.sys.rotateRoot();
    const custodian = s.clientWith((await s.client.createApiKey({ name: 'custodian', permissions: ['approvals:requests:decide', 'sys:seal:rotate-root'] })).token);
    const done = (await custodian.approvals.approve(request.id)).result as { from: string; to: string; rewrapped: number };
    expect(done).toMatchObject({ from: 'palisade-root', rewrapped: 3 });
    expect(done.to).toMatch(/^palisade-root\.\d{8}T\d{6}$/);
    await s.restart();
    expect(s.rt.seal.root?.id).toBe(done.to);
    expect((await s.client.kms.decrypt(keyId, ct)).toString()).toBe('across the ceremony');
  });

  it('a wrong PIN stops start-up with a clear error that does not contain the PIN', async () => {
    const err = await startServer('sqlite', { env: env('unopened', '999999') }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('PAL_SEAL_UNAVAILABLE');
    expect(err?.message).toMatch(/PIN incorrect \(CKR_PIN_INCORRECT\)/);
    expect(`${err?.message}${err?.stack}${JSON.stringify(err)}`).not.toContain('999999');
  });

  it('an unknown token label stops start-up naming the tokens present', async () => {
    const err = await startServer('sqlite', { env: env('nope') }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('PAL_SEAL_UNAVAILABLE');
    expect(err?.message).toMatch(/"main"/);
  });

  it('a token removed while running: data routes answer 503, /readyz names it, hsm_operations_total counts failures', async () => {
    const s = await start('removable');
    const keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
    const before = await s.client.kms.listKeys();
    expect(before.keys.filter((k) => !k.name?.startsWith('system/'))).toHaveLength(1);
    hsm.deleteToken('removable');
    await expect(s.rt.seal.checkRoot()).rejects.toMatchObject({ code: 'PAL_SEAL_UNAVAILABLE' });
    expect(await codeOf(s.client.kms.encrypt(keyId, 'x'))).toEqual({ status: 503, code: 'PAL_SEAL_UNAVAILABLE' });
    const ready = await s.client.transport.raw('GET', '/readyz', undefined, {});
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body.toString()).checks.seal).toMatch(/^failed: .*CKR_/);
    const metrics = (await s.client.transport.raw('GET', '/metrics', undefined, {})).body.toString();
    const failed = /^hsm_operations_total\{operation="check",status="failed"\} (\d+)$/m.exec(metrics);
    expect(Number(failed?.[1])).toBeGreaterThanOrEqual(1);
  });
});
