import { randomBytes, sha256 } from '@palisade/core';
import type { Executor } from '../../storage/database.js';

/**
 * Short-lived, single-use state between two steps of a sign-in: the password step's `mfa_token`, a WebAuthn
 * challenge, an OIDC or SAML request awaiting its callback. Held in the database (every node sees it), stored under
 * the SHA-256 of its random id, and consumed with a conditional delete so that two concurrent uses cannot both win.
 */
export type ChallengeKind = 'mfa' | 'webauthn_login' | 'webauthn_register' | 'oidc' | 'saml';

export class Challenges {
  constructor(private readonly clock: () => Date) {}

  async create(db: Executor, kind: ChallengeKind, userId: string | null, data: unknown, ttlSeconds: number, id = randomBytes(32).toString('base64url')): Promise<string> {
    const now = this.clock();
    await db.deleteFrom('auth_challenges').where('expires_at', '<', now.toISOString()).execute();
    await db
      .insertInto('auth_challenges')
      .values({ id_hash: sha256(Buffer.from(`${kind}:${id}`)), kind, user_id: userId, data: JSON.stringify(data), expires_at: new Date(now.getTime() + ttlSeconds * 1000).toISOString() })
      .execute();
    return id;
  }

  /** The live challenge of this kind, or null (unknown, expired, or another kind). */
  async get<T>(db: Executor, kind: ChallengeKind, id: string): Promise<{ user_id: string | null; data: T } | null> {
    if (typeof id !== 'string' || id.length > 200) return null;
    const row = await db.selectFrom('auth_challenges').selectAll().where('id_hash', '=', sha256(Buffer.from(`${kind}:${id}`))).executeTakeFirst();
    if (!row || row.kind !== kind || row.expires_at <= this.clock().toISOString()) return null;
    return { user_id: row.user_id, data: JSON.parse(row.data) as T };
  }

  /** Use it up: true for exactly one caller. */
  async consume(db: Executor, kind: ChallengeKind, id: string): Promise<boolean> {
    const r = await db.deleteFrom('auth_challenges').where('id_hash', '=', sha256(Buffer.from(`${kind}:${id}`))).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** get + consume. */
  async take<T>(db: Executor, kind: ChallengeKind, id: string): Promise<{ user_id: string | null; data: T } | null> {
    const found = await this.get<T>(db, kind, id);
    if (!found || !(await this.consume(db, kind, id))) return null;
    return found;
  }
}
