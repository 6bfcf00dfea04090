/**
 * Runs challenge validation after the client's POST, in the background with a deadline, and records the outcome
 * (challenge, authorization, order and the acme.challenge.validate audit event) in one transaction.
 */
import type { Logger } from 'pino';
import type { AuditLedger } from '../../../kernel/audit/ledger.js';
import type { Storage } from '../../../storage/database.js';
import type { AcmeChallengeTable } from '../../../storage/schema.js';
import type { ChallengeType } from '../orders.js';
import type { AcmeIdentifier } from '../ports.js';
import { problem, type AcmeProblem } from '../problem.js';
import type { AddressPolicy } from './addresses.js';
import { validateDns01 } from './dns-01.js';
import { validateHttp01 } from './http-01.js';
import { validateTlsAlpn01 } from './tls-alpn-01.js';

export interface ValidatorDeps {
  storage: Storage;
  ledger: AuditLedger;
  clock: () => Date;
  log: Logger;
  httpPort: number;
  tlsPort: number;
  timeoutSeconds: number;
  policy: AddressPolicy;
}

export class Validator {
  readonly #running = new Set<Promise<void>>();

  constructor(private readonly deps: ValidatorDeps) {}

  /** Validate a challenge that was just set to processing (after its transaction committed). */
  start(challengeId: string): void {
    const run: Promise<void> = this.#run(challengeId)
      .catch((e: unknown) => this.deps.log.error({ err: e, challenge: challengeId }, 'ACME challenge validation could not be recorded'))
      .finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  /**
   * Validations a node started and never recorded (it died, or was sealed, mid-way) would leave their challenge
   * `processing` for good. A challenge still processing after twice the deadline is claimed (its started_at moved,
   * so only one node claims it) and validated again here. Returns how many were resumed.
   */
  async resume(): Promise<number> {
    const db = this.deps.storage.db;
    const cutoff = new Date(this.deps.clock().getTime() - 2 * this.deps.timeoutSeconds * 1000).toISOString();
    const stale = await db.selectFrom('acme_challenges').select(['id', 'started_at']).where('status', '=', 'processing').where('started_at', '<', cutoff).limit(100).execute();
    let resumed = 0;
    for (const c of stale) {
      const claim = await db.updateTable('acme_challenges').set({ started_at: this.deps.clock().toISOString() }).where('id', '=', c.id).where('status', '=', 'processing').where('started_at', '=', c.started_at).executeTakeFirst();
      if (claim.numUpdatedRows !== 1n) continue;
      this.start(c.id);
      resumed++;
    }
    return resumed;
  }

  /** Wait for validations under way (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  async #run(id: string): Promise<void> {
    const db = this.deps.storage.db;
    const challenge = await db.selectFrom('acme_challenges').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const authz = await db.selectFrom('acme_authorizations').selectAll().where('id', '=', challenge.authz_id).executeTakeFirstOrThrow();
    const account = await db.selectFrom('acme_accounts').select(['id', 'thumbprint']).where('id', '=', authz.account_id).executeTakeFirstOrThrow();
    const identifier: AcmeIdentifier = { type: authz.identifier_type as AcmeIdentifier['type'], value: authz.identifier_value };
    const keyAuthorization = `${challenge.token}.${account.thumbprint}`;
    let error: AcmeProblem | null;
    try {
      error = await this.#check(challenge, identifier, keyAuthorization);
    } catch (e) {
      error = problem('serverInternal', `validation failed: ${(e as Error).message}`, 500);
    }
    if (error) error = { ...error, identifier };
    await this.#record(challenge, authz.id, authz.order_id, account.id, identifier, error);
  }

  async #check(challenge: AcmeChallengeTable, id: AcmeIdentifier, keyAuthorization: string): Promise<AcmeProblem | null> {
    const signal = AbortSignal.timeout(this.deps.timeoutSeconds * 1000);
    const { policy } = this.deps;
    const work = (() => {
      switch (challenge.type as ChallengeType) {
        case 'http-01':
          return validateHttp01({ host: id.value, token: challenge.token, keyAuthorization, port: this.deps.httpPort, policy, signal });
        case 'dns-01':
          return validateDns01({ name: id.value, keyAuthorization, policy });
        case 'tls-alpn-01':
          return validateTlsAlpn01({ id, keyAuthorization, port: this.deps.tlsPort, policy, signal });
      }
    })();
    const deadline = new Promise<AcmeProblem>((resolve) => signal.addEventListener('abort', () => resolve(problem('connection', `validation did not finish within ${this.deps.timeoutSeconds} s`)), { once: true }));
    return Promise.race([work, deadline]);
  }

  async #record(challenge: AcmeChallengeTable, authzId: string, orderId: string, accountId: string, identifier: AcmeIdentifier, error: AcmeProblem | null): Promise<void> {
    const now = this.deps.clock().toISOString();
    await this.deps.storage.transact(async (tx) => {
      const recorded = await tx
        .updateTable('acme_challenges')
        .set({ status: error ? 'invalid' : 'valid', error: error ? JSON.stringify(error) : null, validated_at: error ? null : now })
        .where('id', '=', challenge.id)
        .where('status', '=', 'processing')
        .executeTakeFirst();
      if (recorded.numUpdatedRows !== 1n) return; // another node recorded this validation first
      const authz = await tx.updateTable('acme_authorizations').set({ status: error ? 'invalid' : 'valid' }).where('id', '=', authzId).where('status', '=', 'pending').executeTakeFirst();
      // another challenge of this authorization already decided it (two challenges answered at once): keep its verdict
      if (error && authz.numUpdatedRows === 1n) {
        await tx.updateTable('acme_orders').set({ status: 'invalid', error: JSON.stringify(error) }).where('id', '=', orderId).where('status', 'in', ['pending', 'ready']).execute();
      } else {
        const open = await tx.selectFrom('acme_authorizations').select('id').where('order_id', '=', orderId).where('status', '!=', 'valid').executeTakeFirst();
        if (!open) await tx.updateTable('acme_orders').set({ status: 'ready' }).where('id', '=', orderId).where('status', '=', 'pending').execute();
      }
      await this.deps.ledger.append(tx, {
        type: 'acme.challenge.validate',
        actor: { principal_id: `acme:${accountId}` },
        outcome: error ? 'failure' : 'success',
        resource: { type: 'acme_challenge', id: challenge.id },
        error_code: error ? 'PAL_ACME_CHALLENGE_FAILED' : null,
        details: { order_id: orderId, identifier: identifier.value, challenge_type: challenge.type, ...(error ? { error: error.type } : {}) },
      });
    });
  }
}
