import type { Executor } from '../../storage/database.js';
import type { IdentityConfig } from './config.js';

export type ThrottleRule = keyof Omit<IdentityConfig['lockout'], 'max_backoff_minutes'>;

/** One counter: a factor, a rule, and what it counts (an account key, a source address, or both). */
export interface ThrottleKey {
  rule: ThrottleRule;
  /** The factor counted (password, totp, recovery_code, webauthn): factors never share a counter. */
  factor: string;
  subject: string;
}

const keyOf = (k: ThrottleKey) => `${k.factor}:${k.rule}:${k.subject}`;
const BASE_BACKOFF_MS = 30_000;

/**
 * Failed-attempt counters with exponential back-off, in the database so every node sees the same counts. Counters
 * are separate per factor and per rule (account+source, source, account): an attacker who trips the password
 * counters of an account does not block that account's TOTP or passkeys (keycloak#46164), and a real user signing
 * in from their own address is not blocked by failures from others until the account-wide threshold, which is high.
 */
export class AuthThrottle {
  constructor(
    private readonly config: IdentityConfig['lockout'],
    private readonly clock: () => Date,
  ) {}

  /** Milliseconds until the first blocked key frees up, or 0 when none blocks. */
  async blockedFor(db: Executor, keys: ThrottleKey[]): Promise<number> {
    const rows = await db.selectFrom('auth_throttle').select(['key', 'blocked_until']).where('key', 'in', keys.map(keyOf)).execute();
    const now = this.clock().getTime();
    return Math.max(0, ...rows.map((r) => (r.blocked_until ? Date.parse(r.blocked_until) - now : 0)));
  }

  /**
   * Count a failure on each key; returns the keys that became blocked by this failure (for an auth.lockout event)
   * and the longest block.
   */
  async fail(db: Executor, keys: ThrottleKey[]): Promise<{ locked: Array<{ key: ThrottleKey; failures: number; until: string }>; blockedMs: number }> {
    const now = this.clock();
    const locked: Array<{ key: ThrottleKey; failures: number; until: string }> = [];
    let blockedMs = 0;
    for (const key of keys) {
      const rule = this.config[key.rule];
      const id = keyOf(key);
      const row = await db.selectFrom('auth_throttle').selectAll().where('key', '=', id).executeTakeFirst();
      const fresh = !row || now.getTime() - Date.parse(row.window_start) > rule.window_minutes * 60_000;
      const failures = fresh ? 1 : row.failures + 1;
      let blocked_until: string | null = fresh ? null : row.blocked_until;
      if (failures >= rule.threshold) {
        const ms = Math.min(BASE_BACKOFF_MS * 2 ** Math.min(failures - rule.threshold, 20), this.config.max_backoff_minutes * 60_000);
        blocked_until = new Date(now.getTime() + ms).toISOString();
        blockedMs = Math.max(blockedMs, ms);
        if (failures === rule.threshold) locked.push({ key, failures, until: blocked_until });
      }
      const values = { failures, window_start: fresh ? now.toISOString() : row.window_start, blocked_until };
      if (row) await db.updateTable('auth_throttle').set(values).where('key', '=', id).execute();
      else await db.insertInto('auth_throttle').values({ key: id, ...values }).onConflict((oc) => oc.column('key').doUpdateSet(values)).execute();
    }
    return { locked, blockedMs };
  }

  /** A success clears the counters that involve this account and source (never the source-wide one). */
  async succeed(db: Executor, keys: ThrottleKey[]): Promise<void> {
    const ids = keys.filter((k) => k.rule !== 'password_per_source').map(keyOf);
    if (ids.length > 0) await db.deleteFrom('auth_throttle').where('key', 'in', ids).execute();
  }
}

/** The counters a password attempt touches. `account` is the normalised username, so unknown names count the same way. */
export function passwordKeys(account: string, source: string): ThrottleKey[] {
  return [
    { rule: 'password_per_account_source', factor: 'password', subject: `${account}|${source}` },
    { rule: 'password_per_source', factor: 'password', subject: source },
    { rule: 'password_per_account', factor: 'password', subject: account },
  ];
}

/** The counter of a second factor for one user. */
export function secondFactorKeys(factor: 'totp' | 'recovery_code' | 'webauthn', userId: string): ThrottleKey[] {
  return [{ rule: 'second_factor_per_account', factor, subject: userId }];
}
