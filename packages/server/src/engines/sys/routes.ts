import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Approval, InitRequest, PalisadeError, RecoveryShares, RekeyRequest, SealStatus, UnsealRequest } from '@palisade/core';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { SealManager } from '../../kernel/seal/manager.js';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';

const tags = ['sys'];

/**
 * Seal lifecycle (`palisade operator ...`). Init and unseal are unauthenticated, as in Vault: whoever holds the
 * passphrase or enough shares may open the seal, and nothing can authenticate a caller before it is open. They
 * change memory, not the database, so they are audited right after they succeed (while sealed nothing can be
 * audited: failed attempts are logged). Sealing is audited first and takes effect after the commit.
 */
export function sysRoutes(seal: SealManager, ledger: Pick<AuditLedger, 'appendStandalone'>, approvals: ApprovalService): FastifyPluginAsync {
  const audited = (req: FastifyRequest, type: string, details: Record<string, unknown>) =>
    ledger.appendStandalone({ type, actor: { principal_id: null, source_ip: req.ip }, outcome: 'success', request_id: req.id, action: null, resource: { type: 'seal', id: seal.provider }, details });

  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/sys/seal-status', {
      schema: { tags, summary: 'Seal provider and state (public)', response: { 200: SealStatus } },
      config: { permission: null, allowSealed: true },
      handler: async () => seal.status(),
    });

    app.post('/sys/init', {
      schema: { tags, summary: 'Initialise the passphrase seal once: a root key, and recovery shares shown once', body: InitRequest, response: { 200: RecoveryShares } },
      config: { permission: null, allowSealed: true },
      handler: async (req) => {
        const { passphrase, shares, threshold } = req.body;
        if (threshold > shares) throw new PalisadeError('PAL_VALIDATION_FAILED', `threshold (${threshold}) cannot exceed shares (${shares})`);
        const out = await seal.init({ passphrase, shares, threshold });
        await audited(req, 'seal.init', { shares, threshold });
        req.log.warn({ share_count: shares, threshold }, 'seal initialised');
        return { shares: out, threshold };
      },
    });

    app.post('/sys/unseal', {
      schema: { tags, summary: 'Unseal with the passphrase or recovery shares (shares may come over several calls)', body: UnsealRequest, response: { 200: SealStatus } },
      config: { permission: null, allowSealed: true },
      handler: async (req) => {
        const before = seal.state;
        try {
          const status = await seal.unseal(req.body);
          if (before !== 'unsealed' && status.state === 'unsealed') {
            await audited(req, 'seal.unseal', { method: req.body.passphrase !== undefined ? 'passphrase' : req.body.shares ? 'recovery_shares' : 'provider' });
            req.log.warn('unsealed');
          }
          return status;
        } catch (e) {
          req.log.warn({ code: (e as PalisadeError).code }, 'unseal attempt failed');
          throw e;
        }
      },
    });

    app.post('/sys/seal', {
      schema: { tags, security: [{ bearer: [] }], summary: 'Seal: drop the keyring and every unwrapped key from memory', response: { 200: SealStatus } },
      config: { permission: 'sys:seal:seal', audit: 'seal.seal' },
      handler: async (req) => {
        req.auditRecord.resource = { type: 'seal', id: seal.provider };
        req.auditRecord.afterCommit.push(() => seal.seal());
        return { ...(await seal.status(req.tx)), state: 'sealed' as const };
      },
    });

    app.post('/sys/rotate-root', {
      schema: { tags, security: [{ bearer: [] }], summary: 'Request a root key rotation (file, pkcs11); a second principal approves it and it runs then', response: { 202: Approval } },
      config: { permission: 'sys:seal:rotate-root', audit: 'seal.rotate_root.request' },
      handler: async (req, reply) => {
        if (seal.provider === 'passphrase') throw new PalisadeError('PAL_VALIDATION_FAILED', 'the passphrase seal rotates its root during a rekey ceremony: palisade operator rekey --rotate-root');
        const approval =
          (await approvals.pendingFor(req.tx, 'seal.rotate_root', seal.provider)) ??
          (await approvals.request(req.tx, { action: 'seal.rotate_root', permission: 'sys:seal:rotate-root', resource: { type: 'seal', id: seal.provider }, requested_by: req.principal!.principal_id, reason: 'root key rotation' }));
        req.auditRecord.resource = { type: 'approval', id: approval.id };
        void reply.code(202);
        return approval;
      },
    });

    app.post('/sys/rekey', {
      schema: { tags, security: [{ bearer: [] }], summary: 'New recovery shares and passphrase, proven by the current shares or passphrase', body: RekeyRequest, response: { 200: RecoveryShares } },
      config: { permission: 'sys:seal:rekey', audit: 'seal.rekey' },
      handler: async (req) => {
        const { new_shares, new_threshold } = req.body;
        if (new_threshold > new_shares) throw new PalisadeError('PAL_VALIDATION_FAILED', `new_threshold (${new_threshold}) cannot exceed new_shares (${new_shares})`);
        req.auditRecord.resource = { type: 'seal', id: seal.provider };
        req.auditRecord.details = { proof: req.body.shares ? 'recovery_shares' : 'passphrase', new_shares, new_threshold };
        req.auditRecord.details = { ...req.auditRecord.details, rotate_root: req.body.rotate_root ?? false };
        const hooks = { afterCommit: (fn: () => Promise<void>) => req.auditRecord.afterCommit.push(fn), onRollback: (fn: () => void) => req.auditRecord.onRollback.push(fn) };
        return { shares: await seal.rekey(req.body, req.tx, hooks), threshold: new_threshold };
      },
    });
  };
}
