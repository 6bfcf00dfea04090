import { createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, leafHash, verifyConsistency, verifyExportLines, verifyInclusion } from '@palisade/core';
import { verifyAuditExport } from '@palisade/sdk';
import { codeOf, dialects, startServer, type TestServer } from '../../testing/harness.js';

const b = (s: string) => Buffer.from(s, 'base64');

/** An independent check of a C2SP signed note by an Ed25519 verifier key (name+hash+base64(0x01 || key)). */
function noteSignedBy(note: string, vkey: string): boolean {
  const [name, hash] = vkey.split('+') as [string, string];
  const key = vkey.slice(name.length + 1 + hash.length + 1); // base64 may itself contain '+'
  const body = note.slice(0, note.indexOf('\n\n') + 1);
  const raw = b(key).subarray(1);
  const pub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
  return note
    .slice(body.length + 1)
    .split('\n')
    .filter((l) => l.startsWith(`\u2014 ${name} `))
    .some((l) => {
      const sig = b(l.split(' ')[2]!);
      return sig.subarray(0, 4).toString('hex') === hash && verify(null, Buffer.from(body), pub, sig.subarray(4));
    });
}

describe.each(dialects())('audit ledger API ($name)', ({ name, available }) => {
  let s: TestServer;
  let keyId = '';
  beforeAll(async () => {
    if (!available) return;
    s = await startServer(name, { mutate: (c) => void (c.audit.retention.default_days = 30) });
    keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
    for (let i = 0; i < 20; i++) await s.client.kms.encrypt(keyId, `m${i}`);
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('signs checkpoints with the log key; inclusion and consistency proofs verify against them', async () => {
      const first = await s.rt.checkpointer.tick(true);
      expect(first).not.toBeNull();
      for (let i = 0; i < 5; i++) await s.client.kms.encrypt(keyId, `n${i}`);
      await s.rt.checkpointer.tick(true);
      const log = await s.client.audit.log();
      expect(log.origin).toMatch(/^palisade\/audit\/log_/);
      const cp = await s.client.audit.checkpoint();
      expect(cp.note.startsWith(`${log.origin}\n${cp.size}\n${cp.root_hash}\n\n`)).toBe(true);
      expect(noteSignedBy(cp.note, log.verifier_keys[0]!)).toBe(true);
      expect(noteSignedBy(cp.note.replace(`\n${cp.size}\n`, `\n${cp.size + 1}\n`), log.verifier_keys[0]!)).toBe(false);

      for (const index of [0, 7, cp.size - 1]) {
        const event = await s.client.audit.get(index);
        const p = await s.client.audit.inclusionProof(index, cp.size);
        expect(b(p.leaf_hash)).toEqual(leafHash(Buffer.from(canonicalJson(event))));
        expect(verifyInclusion(index, cp.size, b(p.leaf_hash), p.hashes.map(b), b(cp.root_hash))).toBe(true);
      }
      const old = await s.client.audit.checkpoint(first!.size);
      const c = await s.client.audit.consistencyProof(old.size, cp.size);
      expect(verifyConsistency(old.size, cp.size, b(old.root_hash), b(cp.root_hash), c.hashes.map(b))).toBe(true);
      expect(await codeOf(s.client.audit.inclusionProof(cp.size + 100, cp.size + 101))).toEqual({ status: 400, code: 'PAL_AUDIT_PROOF_RANGE' });
      expect(await codeOf(s.client.audit.consistencyProof(0, 3))).toMatchObject({ status: 400 });
      expect(await codeOf(s.client.audit.checkpoint(2))).toEqual({ status: 404, code: 'PAL_AUDIT_CHECKPOINT_NOT_FOUND' });
    });

    it('refuses to sign a checkpoint over an entry forged in the database since the last one, even with a recomputed head', async () => {
    await s.rt.checkpointer.tick(true);
    const before = await s.client.audit.checkpoint();
    await s.client.kms.encrypt(keyId, 'to be forged');
    const idx = (await s.rt.ledger.size()) - 1;
    const row = await s.rt.storage.db.selectFrom('audit_events').select('data').where('idx', '=', idx).executeTakeFirstOrThrow();
    const forged = row.data.replace('"success"', '"failure"');
    await s.rt.storage.db.updateTable('audit_events').set({ data: forged, leaf_hash: leafHash(Buffer.from(forged)) }).where('idx', '=', idx).execute();
    const range = await s.rt.ledger.tree.frontier(idx);
    range.append(leafHash(Buffer.from(forged)));
    const { range: saved } = await s.rt.storage.db.selectFrom('audit_head').select('range').executeTakeFirstOrThrow();
    await s.rt.storage.db.updateTable('audit_head').set({ range: JSON.stringify(range.toJSON()) }).execute();
    await expect(s.rt.checkpointer.tick(true)).rejects.toThrow(new RegExp(`refusing to sign an audit checkpoint: audit entry ${idx}: entry MAC is invalid`));
    expect((await s.client.audit.checkpoint()).size).toBe(before.size);
    await s.rt.storage.db.updateTable('audit_events').set({ data: row.data, leaf_hash: leafHash(Buffer.from(row.data)) }).where('idx', '=', idx).execute();
    await s.rt.storage.db.updateTable('audit_head').set({ range: saved }).execute();
    expect((await s.rt.checkpointer.tick(true))!.size).toBe(idx + 1);
  });

  it('an export verifies offline, and a row changed in the database is named', async () => {
      const lines: string[] = [];
      for await (const l of s.client.audit.exportLines()) lines.push(l);
      const cp = await s.client.audit.checkpoint();
      const r = await verifyExportLines(lines);
      expect(r).toMatchObject({ ok: true, size: cp.size, root: cp.root_hash, checkpoints: 3 });
      expect((await s.client.audit.query({ type: 'audit.export' })).events).toHaveLength(1);

      const keys = (await s.client.audit.log()).verifier_keys;
      expect(await verifyAuditExport(lines, { logKeys: keys })).toMatchObject({ ok: true, trusted: 'pinned', checkpoints: 3 });
      expect(await verifyAuditExport(lines)).toMatchObject({ ok: true, trusted: 'export' });
      const other = keys[0]!.replace(/^palisade\/audit\/log_[a-z0-9]+/, 'palisade/audit/log_other');
      expect(await verifyAuditExport(lines, { logKeys: [other] })).toMatchObject({ ok: false });
      const forgedNote = lines.map((l) => (l.startsWith('{"checkpoint"') ? l.replace(/\\n\d+\\n/, '\\n999\\n') : l));
      expect(await verifyAuditExport(forgedNote, { logKeys: keys })).toMatchObject({ ok: false, reason: expect.stringMatching(/invalid signature|another root/) });
      const tampered = lines.map((l) => (l.includes('"index":5,') && l.includes('"leaf_hash"') ? l.replace('"success"', '"failure"') : l));
      expect(await verifyExportLines(tampered)).toMatchObject({ ok: false, first_bad_index: 5 });
      const dropped = lines.filter((l) => !(l.startsWith('{"index":9,')));
      expect(await verifyExportLines(dropped)).toMatchObject({ ok: false, first_bad_index: 9 });

      // A malicious export: a second root for a signed size, junk lines, unsigned entries, an unexplained purge.
      const cpLine = lines.find((l) => l.startsWith('{"checkpoint"'))!;
      const fork = [lines[0]!, cpLine.replace(/"root_hash":"[^"]+"/, `"root_hash":"${Buffer.alloc(32, 9).toString('base64')}"`), ...lines.slice(1)];
      expect(await verifyExportLines(fork)).toMatchObject({ ok: false, reason: expect.stringMatching(/forked/) });
      expect(await verifyExportLines([...lines.slice(0, 2), 'null', ...lines.slice(2)])).toMatchObject({ ok: false, reason: expect.stringMatching(/not a JSON object/) });
      const header = JSON.parse(lines[0]!) as { size: number };
      const last = JSON.parse(lines.at(-1)!) as { event: Record<string, unknown> };
      const extra = { ...last, index: header.size, event: { ...last.event, index: header.size } };
      const extraLine = JSON.stringify({ ...extra, leaf_hash: leafHash(Buffer.from(canonicalJson(extra.event))).toString('base64') });
      const longer = [JSON.stringify({ ...header, size: header.size + 1 }), ...lines.slice(1), extraLine];
      expect(await verifyExportLines(longer)).toMatchObject({ ok: false, reason: expect.stringMatching(/after its last signed checkpoint/) });
      expect(await verifyExportLines(longer, { allowUnsignedTail: true })).toMatchObject({ ok: true });
      const hidden = lines.map((l) => (l.startsWith('{"index":6,') ? JSON.stringify({ ...JSON.parse(l), event: null, purged_at: '2026-01-01T00:00:00.000Z' }) : l));
      expect(await verifyExportLines(hidden)).toMatchObject({ ok: false, first_bad_index: 6, reason: expect.stringMatching(/no audit.purge event covers it/) });
    });

    it('legal holds keep what they cover through retention; releasing one takes a second principal', async () => {
      const hold = await s.client.audit.createHold({ name: 'case-42', reason: 'litigation', filter: { type: 'kms.encrypt' } });
      expect(hold).toMatchObject({ name: 'case-42', released_at: null, created_by: 'owner' });
      const before = await s.client.audit.checkpoint();
      s.clock.advanceDays(31);
      const r = await s.rt.retention.purgeDue();
      expect(r.held).toBeGreaterThanOrEqual(25);
      expect(r.purged).toBeGreaterThan(0);
      // Purged entries answer 410, their leaves stay: proofs and verification still hold.
      const purgedIndex = r.first!;
      expect(await codeOf(s.client.audit.get(purgedIndex))).toEqual({ status: 410, code: 'PAL_AUDIT_EVENT_PURGED' });
      const p = await s.client.audit.inclusionProof(purgedIndex, before.size);
      expect(verifyInclusion(purgedIndex, before.size, b(p.leaf_hash), p.hashes.map(b), b(before.root_hash))).toBe(true);
      expect(await s.rt.ledger.verify(undefined, undefined, s.rt.config.audit.retention)).toMatchObject({ ok: true });
      expect((await s.client.audit.query({ type: 'kms.encrypt', limit: 500 })).events.length).toBeGreaterThanOrEqual(25);
      // Someone with database access "purging" an entry to hide it is caught: a purge is MACed when retention does it.
      await s.client.kms.encrypt(keyId, 'young');
      const young = (await s.client.audit.query({ type: 'kms.encrypt', limit: 1 })).events[0]!.index;
      const { data } = await s.rt.storage.db.selectFrom('audit_events').select('data').where('idx', '=', young).executeTakeFirstOrThrow();
      await s.rt.storage.db.updateTable('audit_events').set({ data: '', purged_at: s.clock.now().toISOString() }).where('idx', '=', young).execute();
      expect(await s.rt.ledger.verify(undefined, undefined, s.rt.config.audit.retention)).toMatchObject({ ok: false, first_bad_index: young, reason: 'the payload was removed without a valid purge record' });
      await s.rt.storage.db.updateTable('audit_events').set({ data, purged_at: null }).where('idx', '=', young).execute();

      const approval = await s.client.audit.releaseHold(hold.id, 'case closed');
      expect(approval).toMatchObject({ action: 'audit.hold.release', status: 'pending' });
      expect(await codeOf(s.client.approvals.approve(approval.id))).toEqual({ status: 403, code: 'PAL_APPROVAL_SELF' });
      const counsel = s.clientWith((await s.client.createApiKey({ name: 'counsel', permissions: ['approvals:requests:decide', 'audit:holds:release'] })).token);
      await counsel.approvals.approve(approval.id, 'confirmed');
      expect((await s.client.audit.getHold(hold.id)).released_by).not.toBeNull();
      expect(await codeOf(s.client.audit.releaseHold(hold.id))).toEqual({ status: 409, code: 'PAL_AUDIT_HOLD_RELEASED' });
      expect((await s.rt.retention.purgeDue()).purged).toBeGreaterThanOrEqual(25);
      expect(await s.rt.ledger.verify()).toMatchObject({ ok: true });
      const lines: string[] = [];
      await s.rt.checkpointer.tick(true);
      for await (const l of s.client.audit.exportLines()) lines.push(l);
      expect(await verifyExportLines(lines)).toMatchObject({ ok: true });
    });

    it('sensitive values are searchable by HMAC; erasing a subject is audited by reference only', async () => {
      const h = await s.client.audit.hash('pal_secret_value');
      expect(h.hash).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
      expect((await s.client.audit.hash('pal_secret_value')).hash).toBe(h.hash);
      const out = await s.client.audit.eraseSubject('user:bob');
      expect(out).toMatchObject({ had_data: false });
      const e = (await s.client.audit.query({ type: 'audit.subject.erase' })).events[0]!;
      expect(JSON.stringify(e)).not.toContain('user:bob');
      expect(e.resource).toEqual({ type: 'audit_subject', id: out.subject_ref });
      expect(await codeOf(s.client.audit.eraseSubject('user:bob'))).toEqual({ status: 409, code: 'PAL_AUDIT_SUBJECT_ERASED' });
      expect(await codeOf(s.client.audit.createHold({ name: '', reason: 'x' }))).toMatchObject({ status: 400 });
      expect(await codeOf(s.client.audit.getHold('hold_nope'))).toEqual({ status: 404, code: 'PAL_AUDIT_HOLD_NOT_FOUND' });
      // What the formats allow but a Date cannot hold, and integers past 2^53: 400, never a 500.
      const leap = '2016-12-31T23:59:60Z';
      expect(await codeOf(s.client.audit.query({ since: leap }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      expect(await codeOf(s.client.audit.createHold({ name: 'leap', reason: 'x', filter: { until: leap } }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      for (const path of ['/v1/audit/events/100000000000000000000', '/v1/audit/checkpoint?size=100000000000000000000', '/v1/audit/proof/inclusion?index=0&tree_size=9007199254740993']) {
        expect((await s.client.transport.raw('GET', path, undefined, {})).status, path).toBe(400);
      }
    });
  });
});
