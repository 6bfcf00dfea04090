import { execFileSync } from 'node:child_process';
import { accessSync, existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { findSoftHsmModule, requireService, startSoftHsm, useSoftHsmEnv, type SoftHsmHandle } from './index.js';

const softhsm = requireService('softhsm2', 'testkit: SoftHSM2');
describe.skipIf(!softhsm.available)('testkit: SoftHSM2', () => {
  let hsm: SoftHsmHandle | undefined;
  afterEach(async () => {
    await hsm?.stop();
    hsm = undefined;
  });

  const labels = (h: SoftHsmHandle): string[] =>
    [...execFileSync('softhsm2-util', ['--show-slots'], { env: { ...process.env, ...h.env }, encoding: 'utf8' }).matchAll(/^\s*Label:\s+(\S.*?)\s*$/gm)].map((m) => m[1]!);

  it('finds the PKCS#11 module', () => {
    const module = findSoftHsmModule();
    expect(module).toMatch(/libsofthsm2\.so$/);
    expect(() => accessSync(module!)).not.toThrow();
    expect(findSoftHsmModule({ PALISADE_SOFTHSM_MODULE: '/nonexistent/libsofthsm2.so' })).toBeNull();
  });

  it('initialises a token in a private token dir, adds and deletes tokens, and cleans up', async () => {
    hsm = await startSoftHsm({ label: 'kit-a', pin: '246810', soPin: '13579' });
    expect(hsm).toMatchObject({ label: 'kit-a', pin: '246810', soPin: '13579', env: { SOFTHSM2_CONF: hsm.conf } });
    expect(readFileSync(hsm.conf, 'utf8')).toContain(`directories.tokendir = ${hsm.dir}/tokens`);
    expect(labels(hsm)).toEqual(['kit-a']);

    hsm.initToken('kit-b');
    expect(labels(hsm).sort()).toEqual(['kit-a', 'kit-b']);
    hsm.deleteToken('kit-b');
    expect(labels(hsm)).toEqual(['kit-a']);
    hsm.deleteToken();
    expect(labels(hsm)).toEqual([]);
    expect(() => hsm!.deleteToken('kit-a')).toThrow(/--delete-token failed/);

    const dir = hsm.dir;
    await hsm.stop();
    await hsm.stop();
    expect(existsSync(dir)).toBe(false);
  });

  it('useSoftHsmEnv points this process at the handle and restores the previous value', async () => {
    hsm = await startSoftHsm();
    const before = process.env.SOFTHSM2_CONF;
    const restore = useSoftHsmEnv(hsm);
    expect(process.env.SOFTHSM2_CONF).toBe(hsm.conf);
    restore();
    expect(process.env.SOFTHSM2_CONF).toBe(before);
  });
});
