import { auditEventProblem, canonicalJson, CompactRange, constantTimeEqual, leafHash, PalisadeError, type AuditEventPage, type AuditQuery } from '@palisade/core';
import type { Executor, Storage, Tx } from '../../storage/database.js';
import type { Barrier } from '../seal/barrier.js';
import { isoTime, separatePersonal, type AuditEvent, type AuditEventInput } from './events.js';
import { SubjectKeys } from './subjects.js';
import type { RetentionConfig } from './retention.js';
import { STORED_LEVEL, TreeStore } from './tree-store.js';
import { entryMacBytes, NO_ROOT, ROOT_EVERY, verifyEntries, verifyLedger, type VerifyProgress, type VerifyResult } from './verify.js';

export type { VerifyProgress, VerifyResult } from './verify.js';

/** One stored entry as exported: the event, or only its leaf hash once retention purged the payload. */
export interface LedgerEntry {
  index: number;
  leaf_hash: Buffer;
  event: AuditEvent | null;
  purged_at: string | null;
}

export interface LedgerOptions {
  clock?: () => Date;
  /**
   * Rejects an event that does not match its catalogue entry (returns a reason), so malformed events never enter the
   * log: `auditEventProblem` from the catalogue by default; tests of the ledger alone may pass their own.
   */
  check?: (e: AuditEventInput) => string | null;
}

/**
 * The append-only audit log: each event is a leaf of an RFC 9162 Merkle tree, appended in the caller's transaction,
 * so a state change and its audit event commit together or not at all. Each row carries a MAC keyed from the seal over
 * its index and leaf (and, every 256th row, the tree root after it); perfect subtrees of 256 leaves and up are kept
 * for O(log n) proofs.
 */
export class AuditLedger {
  readonly tree: TreeStore;
  readonly subjects: SubjectKeys;
  readonly #clock: () => Date;
  readonly #check: (e: AuditEventInput) => string | null;
  /** Metrics hook: each failed append. */
  onWriteFailure: (() => void) | null = null;
  /** Set when an append failed, cleared by the next one that succeeds (or a successful probe): /readyz reports it. */
  #blocked: { since: string; reason: string } | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly barrier: () => Barrier,
    opts: LedgerOptions = {},
  ) {
    this.#clock = opts.clock ?? (() => new Date());
    this.#check = opts.check ?? auditEventProblem;
    this.tree = new TreeStore(() => this.storage.db);
    this.subjects = new SubjectKeys(barrier);
  }

  /** Append inside an open transaction. Any failure throws PAL_AUDIT_WRITE_FAILED, which must roll the transaction back. */
  async append(tx: Tx, input: AuditEventInput): Promise<AuditEvent> {
    return (await this.appendMany(tx, [input]))[0]!;
  }

  /** Append several events in one statement per table (the batch path: one head read and write for all of them). */
  async appendMany(tx: Tx, inputs: readonly AuditEventInput[]): Promise<AuditEvent[]> {
    try {
      let q = tx.selectFrom('audit_head').selectAll().where('id', '=', 1);
      if (this.storage.rowLocks) q = q.forUpdate();
      const head = await q.executeTakeFirst();
      const range = head ? CompactRange.fromJSON(JSON.parse(head.range)) : new CompactRange();
      const start = head ? Number(head.size) : 0;
      const barrier = this.barrier();
      const now = this.#clock();
      const time = now.toISOString();
      const events: AuditEvent[] = [];
      const rows: Array<{ idx: number; ts: string; type: string; data: string; leaf_hash: Buffer; tree_root: Buffer; mac: Buffer; purged_at: null; purge_mac: null }> = [];
      const nodes: Array<{ level: number; idx: number; hash: Buffer }> = [];
      for (const [i, given] of inputs.entries()) {
        const raw = separatePersonal(given);
        const problem = this.#check(raw);
        if (problem) throw new PalisadeError('PAL_AUDIT_WRITE_FAILED', `audit event rejected: ${problem}`);
        const index = start + i;
        const { subject, personal_fields, ...input } = raw;
        const event: AuditEvent = { index, time, ...input };
        if (subject !== undefined && personal_fields && Object.keys(personal_fields).length > 0) event.personal = await this.subjects.seal(tx, subject, index, personal_fields, now);
        const data = canonicalJson(event);
        const leaf = leafHash(Buffer.from(data, 'utf8'));
        range.append(leaf, (level, idx, hash) => level >= STORED_LEVEL && nodes.push({ level, idx, hash }));
        // The root (O(log n) hashes) only every ROOT_EVERY entries; every entry's MAC binds its index and leaf.
        const root = range.size % ROOT_EVERY === 0 ? range.root() : NO_ROOT;
        rows.push({ idx: index, ts: time, type: event.type, data, leaf_hash: leaf, tree_root: root, mac: barrier.auditMac(entryMacBytes(index, leaf, root)), purged_at: null, purge_mac: null });
        events.push(event);
      }
      for (let i = 0; i < rows.length; i += 500) await tx.insertInto('audit_events').values(rows.slice(i, i + 500)).execute();
      if (nodes.length > 0) await tx.insertInto('audit_nodes').values(nodes).execute();
      const rangeJson = JSON.stringify(range.toJSON());
      if (head) await tx.updateTable('audit_head').set({ size: range.size, range: rangeJson }).where('id', '=', 1).execute();
      else await tx.insertInto('audit_head').values({ id: 1, size: range.size, range: rangeJson }).execute();
      this.#blocked = null;
      return events;
    } catch (e) {
      // Refusing personal data of an erased subject is a rule, not a failing ledger: it does not block /readyz.
      if (e instanceof PalisadeError && e.code === 'PAL_AUDIT_SUBJECT_ERASED') throw e;
      this.onWriteFailure?.();
      this.#blocked ??= { since: this.#clock().toISOString(), reason: e instanceof Error ? e.message : String(e) };
      if (e instanceof PalisadeError && e.code === 'PAL_AUDIT_WRITE_FAILED') throw e;
      throw new PalisadeError('PAL_AUDIT_WRITE_FAILED', undefined, { cause: e });
    }
  }

  /** Append in a transaction of its own (for outcomes recorded after the main transaction rolled back). */
  async appendStandalone(input: AuditEventInput): Promise<AuditEvent> {
    return this.storage.transact((tx) => this.append(tx, input));
  }

  async size(db: Executor = this.storage.db): Promise<number> {
    const head = await db.selectFrom('audit_head').select('size').where('id', '=', 1).executeTakeFirst();
    return head ? Number(head.size) : 0;
  }

  /** The current tree head (size and root), from the stored frontier. */
  async head(db: Executor = this.storage.db): Promise<{ size: number; root: Buffer }> {
    const head = await db.selectFrom('audit_head').select('range').where('id', '=', 1).executeTakeFirst();
    const range = head ? CompactRange.fromJSON(JSON.parse(head.range)) : new CompactRange();
    return { size: range.size, root: range.root() };
  }

  /**
   * The head, after checking every entry since the given checkpoint (its size and signed root) entry by entry: leaf,
   * MAC, stored roots. What the checkpointer signs; throws naming the first entry that does not check out.
   */
  async checkedHead(since: { size: number; root: Buffer } | null): Promise<{ size: number; root: Buffer }> {
    const head = await this.head();
    const frontier = since ? await this.tree.frontier(since.size) : new CompactRange();
    if (since && !constantTimeEqual(frontier.root(), since.root)) throw new Error(`the stored tree disagrees with the signed checkpoint of size ${since.size}`);
    const r = await verifyEntries(this.storage.db, this.barrier(), frontier, head.size);
    if (!r.ok) throw new Error(`audit entry ${r.index}: ${r.reason}`);
    if (!constantTimeEqual(frontier.root(), head.root)) throw new Error('the stored head disagrees with the entries');
    return head;
  }

  /** One event; PAL_AUDIT_EVENT_PURGED once retention removed its payload. */
  async get(index: number): Promise<AuditEvent | undefined> {
    const row = await this.storage.db.selectFrom('audit_events').select(['data', 'purged_at']).where('idx', '=', index).executeTakeFirst();
    if (row?.purged_at) throw new PalisadeError('PAL_AUDIT_EVENT_PURGED', `entry ${index} was purged on ${row.purged_at}; its leaf hash stays in the tree`);
    return row ? (JSON.parse(row.data) as AuditEvent) : undefined;
  }

  /** Stored entries [from, from + limit) in index order, purged ones as their leaf hash only (exports, verifiers). */
  async entries(from: number, limit: number, db: Executor = this.storage.db): Promise<LedgerEntry[]> {
    const rows = await db.selectFrom('audit_events').select(['idx', 'data', 'leaf_hash', 'purged_at']).where('idx', '>=', from).orderBy('idx').limit(limit).execute();
    return rows.map((r) => ({ index: Number(r.idx), leaf_hash: Buffer.from(r.leaf_hash), event: r.purged_at ? null : (JSON.parse(r.data) as AuditEvent), purged_at: r.purged_at }));
  }

  /** The personal fields of an event, decrypted; null when the subject was erased, undefined when it has none. */
  async personal(index: number): Promise<Record<string, unknown> | null | undefined> {
    const e = await this.get(index);
    if (!e) throw new PalisadeError('PAL_AUDIT_EVENT_NOT_FOUND', `the log has no entry ${index}`);
    return e.personal ? this.subjects.open(this.storage.db, index, e.personal) : undefined;
  }

  async inclusionProof(index: number, treeSize: number): Promise<{ leaf_index: number; tree_size: number; leaf_hash: Buffer; hashes: Buffer[] }> {
    const size = await this.size();
    if (!(treeSize <= size && index < treeSize)) throw new PalisadeError('PAL_AUDIT_PROOF_RANGE', `need index < tree_size <= ${size}`);
    const leaf = await this.storage.db.selectFrom('audit_events').select('leaf_hash').where('idx', '=', index).executeTakeFirstOrThrow();
    return { leaf_index: index, tree_size: treeSize, leaf_hash: Buffer.from(leaf.leaf_hash), hashes: await this.tree.inclusionProof(index, treeSize) };
  }

  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    const size = await this.size();
    if (!(from > 0 && from <= to && to <= size)) throw new PalisadeError('PAL_AUDIT_PROOF_RANGE', `need 0 < from <= to <= ${size}`);
    return this.tree.consistencyProof(from, to);
  }

  /**
   * Events matching `q`, newest first by default. Type, time and cursor narrow the SQL scan; the other fields are
   * matched on the decoded events. One page reads at most `scanBudget` rows, so a rare match costs bounded work per
   * request: the answer then carries a cursor to continue from, possibly with fewer events than asked for. Purged
   * entries have no payload and never match.
   */
  async query(q: AuditQuery, scanBudget = 10_000, db: Executor = this.storage.db): Promise<AuditEventPage> {
    const limit = q.limit ?? 100;
    const since = q.since ? isoTime(q.since, 'since') : null;
    const until = q.until ? isoTime(q.until, 'until') : null;
    const desc = (q.order ?? 'desc') === 'desc';
    const prefix = q.type?.endsWith('*') ? q.type.slice(0, -1) : null;
    const want = (e: AuditEvent) =>
      (prefix === null || e.type.startsWith(prefix)) &&
      (!q.outcome || e.outcome === q.outcome) &&
      (!q.principal || e.actor.principal_id === q.principal) &&
      (!q.action || e.action === q.action) &&
      (!q.resource || e.resource?.id === q.resource) &&
      (!q.request_id || e.request_id === q.request_id);
    const events: AuditEvent[] = [];
    let cursor = q.cursor === undefined ? null : Number(q.cursor);
    let scanned = 0;
    for (;;) {
      const batch = Math.min(500, scanBudget - scanned);
      let sel = db.selectFrom('audit_events').select(['idx', 'data', 'purged_at']);
      if (prefix !== null) sel = sel.where('type', 'like', `${prefix}%`); // '_' may match any character here: want() checks the prefix
      else if (q.type) sel = sel.where('type', '=', q.type);
      if (since) sel = sel.where('ts', '>=', since);
      if (until) sel = sel.where('ts', '<', until);
      if (cursor !== null) sel = sel.where('idx', desc ? '<' : '>', cursor);
      const rows = await sel.orderBy('idx', desc ? 'desc' : 'asc').limit(batch).execute();
      for (const row of rows) {
        scanned++;
        cursor = Number(row.idx);
        if (row.purged_at) continue;
        const e = JSON.parse(row.data) as AuditEvent;
        if (want(e)) events.push(e);
        if (events.length === limit) return { events, next_cursor: String(cursor) };
      }
      if (rows.length < batch) return { events, next_cursor: null };
      if (scanned >= scanBudget) return { events, next_cursor: String(cursor) };
    }
  }

  /**
   * Writable = a transaction can lock the head and, after a failed append, write a probe row (rolled back), so
   * /readyz reports a blocked ledger instead of "ready" while every state change is refused (hashicorp/vault#11949).
   */
  async checkWritable(): Promise<void> {
    this.barrier();
    const blocked = this.#blocked;
    const probe = new Error('probe');
    try {
      await this.storage.transact(async (tx) => {
        let q = tx.selectFrom('audit_head').select('size').where('id', '=', 1);
        if (this.storage.rowLocks) q = q.forUpdate();
        await q.executeTakeFirst();
        if (!blocked) return;
        const h = Buffer.alloc(32);
        await tx.insertInto('audit_events').values({ idx: -1, ts: '', type: 'probe', data: '', leaf_hash: h, tree_root: h, mac: h, purged_at: null, purge_mac: null }).execute();
        throw probe;
      });
    } catch (e) {
      if (e !== probe) throw new Error(blocked ? `audit writes failing since ${blocked.since}: ${blocked.reason}` : (e as Error).message, { cause: e });
      if (this.#blocked === blocked) this.#blocked = null;
    }
  }

  /** Recompute the whole log from storage and name the first index where anything disagrees (see verify.ts). */
  async verify(onProgress?: (p: VerifyProgress) => void, batch?: number, retention?: RetentionConfig): Promise<VerifyResult> {
    return verifyLedger(this.storage.db, this.barrier(), { ...(onProgress ? { onProgress } : {}), ...(batch ? { batch } : {}), ...(retention ? { retention } : {}) });
  }
}
