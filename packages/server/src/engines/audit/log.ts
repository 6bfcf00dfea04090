import { AUDIT_EXPORT_FORMAT, PalisadeError, randomId, type AuditCheckpoint } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { CheckpointSigner } from '../../kernel/audit/checkpointer.js';

const LOG_ID = 'audit.log_id';

/**
 * The log as verifiers see it: its name (checkpoint origin), the keys that sign its checkpoints, the signed
 * checkpoints with their anchors, and the export that lets anyone re-check it all offline.
 */
export class AuditLog {
  #origin: string | undefined;

  constructor(
    private readonly deps: { storage: Storage; ledger: AuditLedger; signer: CheckpointSigner; configuredOrigin?: string | undefined; clock: () => Date },
  ) {}

  /** `audit.origin` from the configuration, else palisade/audit/<a log id made once and kept in the database>. */
  async origin(db: Executor = this.deps.storage.db): Promise<string> {
    if (this.#origin) return this.#origin;
    if (this.deps.configuredOrigin) return (this.#origin = this.deps.configuredOrigin);
    await db.insertInto('settings').values({ name: LOG_ID, value: randomId('log') }).onConflict((oc) => oc.column('name').doNothing()).execute();
    const row = await db.selectFrom('settings').select('value').where('name', '=', LOG_ID).executeTakeFirstOrThrow();
    return (this.#origin = `palisade/audit/${row.value}`);
  }

  verifierKeys(): Promise<string[]> {
    return this.deps.signer.verifierKeys();
  }

  /** The checkpoint of `size` (the latest when omitted), with every receipt its anchors returned. */
  async checkpoint(size?: number): Promise<AuditCheckpoint> {
    const db = this.deps.storage.db;
    let q = db.selectFrom('audit_checkpoints').selectAll();
    q = size === undefined ? q.orderBy('size', 'desc').limit(1) : q.where('size', '=', size);
    const cp = await q.executeTakeFirst();
    if (!cp) throw new PalisadeError('PAL_AUDIT_CHECKPOINT_NOT_FOUND', size === undefined ? undefined : `no checkpoint of size ${size}`);
    const anchors = await db.selectFrom('audit_anchors').select(['size', 'anchor', 'kind', 'receipt', 'created_at']).where('size', '=', cp.size).orderBy('anchor').execute();
    return withReceipts(cp, anchors);
  }

  /** Every checkpoint up to `size` with its receipts, in two queries (an export of a year of checkpoints reads them in bulk). */
  async checkpointsUpTo(size: number): Promise<AuditCheckpoint[]> {
    const db = this.deps.storage.db;
    const cps = await db.selectFrom('audit_checkpoints').selectAll().where('size', '<=', size).orderBy('size').execute();
    const receipts = await db.selectFrom('audit_anchors').select(['size', 'anchor', 'kind', 'receipt', 'created_at']).where('size', '<=', size).orderBy('anchor').execute();
    const bySize = new Map<number, typeof receipts>();
    for (const r of receipts) bySize.set(Number(r.size), [...(bySize.get(Number(r.size)) ?? []), r]);
    return cps.map((cp) => withReceipts(cp, bySize.get(Number(cp.size)) ?? []));
  }

  /**
   * NDJSON export up to tree size `to` (the latest checkpoint by default, so the export ends on a signed root): a
   * header, every checkpoint up to `to`, then one line per entry (the event, or only the leaf hash of a purged one).
   */
  async exportLines(to: number | undefined, db: Executor = this.deps.storage.db): Promise<{ to: number; stream: () => AsyncGenerator<string> }> {
    const { ledger, clock } = this.deps;
    const size = await ledger.size(db);
    const latest = await db.selectFrom('audit_checkpoints').select('size').where('size', '<=', size).orderBy('size', 'desc').limit(1).executeTakeFirst();
    const end = to ?? (latest ? Number(latest.size) : size);
    if (end > size || end < 1) throw new PalisadeError('PAL_AUDIT_PROOF_RANGE', `the log holds ${size} entries: export up to 1..${size}`);
    const checkpoints = (n: number) => this.checkpointsUpTo(n);
    const header = async () => ({ format: AUDIT_EXPORT_FORMAT, origin: await this.origin(), verifier_keys: await this.verifierKeys(), size: end, exported_at: clock().toISOString() });
    // The stream reads nothing until it is consumed: the route's audited transaction has committed by then.
    return {
      to: end,
      async *stream() {
        yield JSON.stringify(await header()) + '\n';
        // Checkpoints first: a verifier then knows at which sizes to compare roots while it streams the entries.
        for (const cp of await checkpoints(end)) yield JSON.stringify({ checkpoint: cp }) + '\n';
        for (let i = 0; i < end; ) {
          const batch = await ledger.entries(i, Math.min(2000, end - i));
          if (batch.length === 0) break;
          let chunk = '';
          for (const e of batch) chunk += JSON.stringify({ index: e.index, leaf_hash: e.leaf_hash.toString('base64'), event: e.event, purged_at: e.purged_at }) + '\n';
          yield chunk;
          i = batch[batch.length - 1]!.index + 1;
        }
      },
    };
  }
}

/** A stored checkpoint as served: witness receipts are signature lines, appended so the note is a cosigned checkpoint as C2SP defines it. */
function withReceipts(cp: { size: number; root: Buffer; note: string; created_at: string }, receipts: Array<{ anchor: string; kind: string; receipt: string; created_at: string }>): AuditCheckpoint {
  const anchors = receipts.map(({ anchor, kind, receipt, created_at }) => ({ anchor, kind, receipt, created_at }));
  const cosignatures = anchors.filter((a) => a.kind === 'witness').map((a) => a.receipt);
  return { size: Number(cp.size), root_hash: Buffer.from(cp.root).toString('base64'), created_at: cp.created_at, note: cp.note + cosignatures.join(''), anchors };
}
