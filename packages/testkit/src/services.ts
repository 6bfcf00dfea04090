/**
 * Which native services are installed, and the "CI-or-skip-loudly" rule:
 *  - CI=true  → a missing service is an error (the CI image must run scripts/install-services.sh);
 *  - otherwise → the suite is skipped with ONE loud console.warn line.
 */
import { join } from 'node:path';
import { findPostgresBinDir } from './postgres.js';
import { findRedisServer } from './redis.js';
import { findExecutable } from './proc.js';

export type ServiceName = 'postgres' | 'redis' | 'softhsm2' | 'promtool' | 'openssl' | 'testssl';

export const SERVICE_NAMES: readonly ServiceName[] = ['postgres', 'redis', 'softhsm2', 'promtool', 'openssl', 'testssl'];

export interface ServiceStatus {
  available: boolean;
  /** The binary that was found (for postgres: the `postgres` executable). */
  binary: string | null;
  /** Why it is unavailable. */
  reason?: string;
}

export interface ServiceRequirement {
  available: boolean;
  reason?: string;
}

export const INSTALL_HINT = 'sudo scripts/install-services.sh';

function executable(bin: string, service: ServiceName): ServiceStatus {
  const path = findExecutable(bin);
  return path ? { available: true, binary: path } : { available: false, binary: null, reason: `${service} not found (no ${bin} on PATH)` };
}

function status(name: ServiceName): ServiceStatus {
  switch (name) {
    case 'postgres': {
      const dir = findPostgresBinDir();
      return dir
        ? { available: true, binary: join(dir, 'postgres') }
        : {
            available: false,
            binary: null,
            reason: process.env.PALISADE_PG_BIN
              ? `postgres not found (no initdb/postgres in PALISADE_PG_BIN=${process.env.PALISADE_PG_BIN})`
              : 'postgres not found (no initdb/postgres in /usr/lib/postgresql/*/bin or PATH)',
          };
    }
    case 'redis': {
      const bin = findRedisServer();
      return bin ? { available: true, binary: bin } : { available: false, binary: null, reason: 'redis not found (no redis-server on PATH)' };
    }
    case 'softhsm2':
      return executable('softhsm2-util', name);
    case 'promtool':
    case 'openssl':
    case 'testssl': // Debian's testssl.sh package installs it as `testssl`
      return executable(name, name);
  }
}

/** Which of the native services' binaries exist on this machine. */
export function serviceAvailability(): Record<ServiceName, ServiceStatus> {
  return Object.fromEntries(SERVICE_NAMES.map((n) => [n, status(n)])) as Record<ServiceName, ServiceStatus>;
}

export const isCI = (): boolean => process.env.CI === 'true';

const warned = new Set<string>();

/**
 * The CI-or-skip-loudly rule. With CI=true a missing service throws (naming
 * scripts/install-services.sh); otherwise returns `{ available: false, reason }`
 * after printing one console.warn line (once per suite+service per process).
 *
 *   const pg = requireService('postgres', 'audit ledger (postgres)');
 *   describe.skipIf(!pg.available)('audit ledger (postgres)', () => { ... });
 */
export function requireService(name: ServiceName, suite: string = `${name} tests`): ServiceRequirement {
  const s = status(name);
  if (s.available) return { available: true };
  const reason = s.reason ?? `${name} not found`;
  if (isCI()) {
    throw new Error(`[palisade testkit] ${reason}, and CI=true forbids skipping "${suite}" — the CI image must run: ${INSTALL_HINT}`);
  }
  const key = `${suite}\0${name}`;
  if (!warned.has(key)) {
    warned.add(key);
    console.warn(`[palisade testkit] SKIPPING ${suite}: ${reason} — run: ${INSTALL_HINT}`);
  }
  return { available: false, reason };
}
