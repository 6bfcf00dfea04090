/**
 * Vitest globalSetup (see vitest.config.ts): starts ONE throwaway PostgreSQL and
 * ONE Redis for the whole run and provides their URLs to test files:
 *
 *   import { inject } from 'vitest';
 *   const pgUrl = inject('pgUrl');       // string | null
 *   const redisUrl = inject('redisUrl'); // string | null
 *
 * A service whose binaries are missing is provided as null (outside CI, with one
 * loud warning); with CI=true a missing service fails the run. A service that is
 * installed but fails to start always fails the run.
 */
import type { TestProject } from 'vitest/node';
import './provided-context.js';
import { startPostgres, type PostgresHandle } from './postgres.js';
import { startRedis, type RedisHandle } from './redis.js';
import { startSoftHsm, type SoftHsmHandle } from './softhsm.js';
import { requireService } from './services.js';

export default async function setup({ provide }: Pick<TestProject, 'provide'>): Promise<() => Promise<void>> {
  const t0 = performance.now();
  const wantPg = requireService('postgres', 'PostgreSQL-backed tests (inject("pgUrl") will be null)').available;
  const wantRedis = requireService('redis', 'Redis-backed tests (inject("redisUrl") will be null)').available;
  const wantHsm = requireService('softhsm2', 'pkcs11 seal tests (inject("softhsm") will be null)').available;

  const [pgResult, redisResult, hsmResult] = await Promise.allSettled([
    wantPg ? startPostgres() : Promise.resolve(null),
    wantRedis ? startRedis() : Promise.resolve(null),
    wantHsm ? startSoftHsm({ label: 'palisade-ci' }) : Promise.resolve(null),
  ]);
  const pg: PostgresHandle | null = pgResult.status === 'fulfilled' ? pgResult.value : null;
  const redis: RedisHandle | null = redisResult.status === 'fulfilled' ? redisResult.value : null;
  const hsm: SoftHsmHandle | null = hsmResult.status === 'fulfilled' ? hsmResult.value : null;
  const teardown = async (): Promise<void> => {
    await Promise.allSettled([pg?.stop(), redis?.stop(), hsm?.stop()]);
  };

  const failures = [pgResult, redisResult, hsmResult].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    await teardown();
    throw failures.length === 1 ? failures[0]!.reason : new AggregateError(failures.map((f) => f.reason), '[palisade testkit] test services failed to start');
  }

  provide('pgUrl', pg?.url ?? null);
  provide('redisUrl', redis?.url ?? null);
  provide('softhsm', hsm ? { module: hsm.module, conf: hsm.conf, label: hsm.label, pin: hsm.pin } : null);

  const ms = Math.round(performance.now() - t0);
  console.log(
    `[palisade testkit] global setup ${ms} ms — postgres: ${pg ? pg.url : 'unavailable'}, redis: ${redis ? redis.url : 'unavailable'}, softhsm: ${hsm ? hsm.label : 'unavailable'}`,
  );
  return teardown;
}
