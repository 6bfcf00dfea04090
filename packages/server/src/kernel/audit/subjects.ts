import { aeadOpen, aeadSeal, canonicalJson, PalisadeError, randomBytes } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { Barrier } from '../seal/barrier.js';

const FORMAT = 0x01;
const NONCE = 12;
const TAG = 16;

/**
 * Crypto-shredding for the personal data in audit events. Each data subject (a user, an agent's operator, ...) has
 * a 256-bit key, wrapped by the barrier and stored under the HMAC of the subject's identifier. An event's personal
 * fields are encrypted under it, bound to the event index; the ciphertext is part of the Merkle leaf. Erasing the
 * subject destroys the key: the fields become unreadable for good while every leaf, root and proof stays valid
 * (immudb cannot erase, codenotary/immudb#1890).
 */
export class SubjectKeys {
  readonly #cache = new Map<string, Buffer>();

  constructor(private readonly barrier: () => Barrier) {}

  ref(subject: string): string {
    return this.barrier().auditHmac(`subject:${subject}`);
  }

  /** Encrypt `fields` for `subject` as part of event `index`, creating the subject's key on first use (inside `db`'s transaction). */
  async seal(db: Executor, subject: string, index: number, fields: Record<string, unknown>, now: Date): Promise<{ subject_ref: string; ciphertext: string }> {
    const subject_ref = this.ref(subject);
    let key = await this.#key(db, subject_ref);
    if (key === null) throw new PalisadeError('PAL_AUDIT_SUBJECT_ERASED', 'this data subject was erased: its personal data cannot be recorded again under the old key');
    if (key === undefined) {
      key = randomBytes(32);
      await db.insertInto('audit_subject_keys').values({ subject_ref, wrapped_key: this.barrier().seal(purpose(subject_ref), key), created_at: now.toISOString(), erased_at: null }).execute();
    }
    const nonce = randomBytes(NONCE);
    const { ciphertext, tag } = aeadSeal('AES-256-GCM', key, nonce, Buffer.from(canonicalJson(fields), 'utf8'), aad(subject_ref, index));
    return { subject_ref, ciphertext: Buffer.concat([Buffer.of(FORMAT), nonce, tag, ciphertext]).toString('base64') };
  }

  /** The personal fields of an event, or null when the subject was erased. */
  async open(db: Executor, index: number, personal: { subject_ref: string; ciphertext: string }): Promise<Record<string, unknown> | null> {
    const key = await this.#key(db, personal.subject_ref);
    if (!key) return null;
    const b = Buffer.from(personal.ciphertext, 'base64');
    if (b.length < 1 + NONCE + TAG || b[0] !== FORMAT) throw new PalisadeError('PAL_INTERNAL', `personal data of audit entry ${index} is malformed`);
    const plain = aeadOpen('AES-256-GCM', key, b.subarray(1, 1 + NONCE), b.subarray(1 + NONCE + TAG), b.subarray(1 + NONCE, 1 + NONCE + TAG), aad(personal.subject_ref, index));
    return JSON.parse(plain.toString('utf8')) as Record<string, unknown>;
  }

  /** Destroy the subject's key. Returns its reference, and whether it had any personal data recorded. */
  async erase(db: Executor, subject: string, now: Date): Promise<{ subject_ref: string; existed: boolean }> {
    const subject_ref = this.ref(subject);
    const row = await db.selectFrom('audit_subject_keys').select(['wrapped_key', 'erased_at']).where('subject_ref', '=', subject_ref).executeTakeFirst();
    if (row?.erased_at) throw new PalisadeError('PAL_AUDIT_SUBJECT_ERASED');
    if (row) await db.updateTable('audit_subject_keys').set({ wrapped_key: null, erased_at: now.toISOString() }).where('subject_ref', '=', subject_ref).execute();
    // An erased subject with no data yet still gets a tombstone, so its data is never recorded later under a new key.
    else await db.insertInto('audit_subject_keys').values({ subject_ref, wrapped_key: null, created_at: now.toISOString(), erased_at: now.toISOString() }).execute();
    return { subject_ref, existed: row !== undefined };
  }

  forgetAll(): void {
    for (const k of this.#cache.values()) k.fill(0);
    this.#cache.clear();
  }

  // undefined: no key yet; null: erased. The row is read every time (an erase on another node counts at once); only
  // the unwrapping is cached, keyed by the wrapped bytes.
  async #key(db: Executor, subject_ref: string): Promise<Buffer | null | undefined> {
    const row = await db.selectFrom('audit_subject_keys').select(['wrapped_key', 'erased_at']).where('subject_ref', '=', subject_ref).executeTakeFirst();
    if (!row) return undefined;
    if (row.erased_at || !row.wrapped_key) return null;
    const id = Buffer.from(row.wrapped_key).toString('base64');
    const cached = this.#cache.get(id);
    if (cached) return cached;
    const key = this.barrier().open(purpose(subject_ref), row.wrapped_key);
    if (this.#cache.size >= 1024) this.forgetAll();
    this.#cache.set(id, key);
    return key;
  }
}

const purpose = (ref: string) => `audit/subject/${ref}`;
const aad = (ref: string, index: number) => Buffer.from(`palisade/audit/personal/v1|${ref}|${index}`);
