import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompactRange, formatCheckpoint, formatNote, NOTE_ED25519, noteKeyHash, parseVerifierKey, randomBytes } from '@palisade/core';
import { verifyAuditExport } from '@palisade/sdk';
import { getFreePort } from '@palisade/testkit';
import { startServer, type TestServer } from '../../testing/harness.js';
import { ensureWitnessKey, Witness } from '../../witness/witness.js';
import { listenWitness, type RunningWitnessServer } from '../../witness/server.js';
import { addCheckpoint, WitnessError } from '../../witness/client.js';
import { AUDIT_CHECKPOINT_KEY } from '../kms/service.js';

const ORIGIN = 'palisade.test/audit';

describe('audit checkpoints cosigned by a witness (palisade witness, C2SP tlog-witness)', () => {
  let s: TestServer;
  let w: RunningWitnessServer;
  let witnessVkey = '';
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-witness-'));
  let url = '';

  beforeAll(async () => {
    const port = await getFreePort();
    url = `http://127.0.0.1:${port}`;
    witnessVkey = (await ensureWitnessKey(stateDir, 'witness.test/w1')).vkey;
    s = await startServer('sqlite', {
      mutate: (c) => {
        c.audit.origin = ORIGIN;
        c.audit.anchors = [{ name: 'w1', kind: 'witness', url, key: witnessVkey }];
      },
    });
    const logKeys = (await s.client.audit.log()).verifier_keys;
    w = await listenWitness({ witness: await Witness.open({ stateDir, name: 'witness.test/w1', logs: [{ origin: ORIGIN, keys: logKeys }] }), host: '127.0.0.1', port });
    await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
  });
  afterAll(async () => {
    await s?.close();
    await w?.close();
  });

  it('cosigns each checkpoint consistent with the last; the cosigned note and the export verify with the witness key', async () => {
    await s.rt.checkpointer.tick(true);
    for (let i = 0; i < 3; i++) await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
    await s.rt.checkpointer.tick(true);
    const cp = await s.client.audit.checkpoint();
    expect(cp.anchors).toEqual([expect.objectContaining({ anchor: 'w1', kind: 'witness' })]);
    expect(cp.note.endsWith(cp.anchors[0]!.receipt)).toBe(true);
    const lines: string[] = [];
    for await (const l of s.client.audit.exportLines()) lines.push(l);
    const logKeys = (await s.client.audit.log()).verifier_keys;
    expect(await verifyAuditExport(lines, { logKeys, witnessKeys: [witnessVkey], minWitnesses: 1 })).toMatchObject({ ok: true, cosignatures: 2 });
    const stranger = (await ensureWitnessKey(mkdtempSync(join(tmpdir(), 'palisade-witness-')), 'witness.test/w2')).vkey;
    expect(await verifyAuditExport(lines, { logKeys, witnessKeys: [stranger], minWitnesses: 1 })).toMatchObject({ ok: false, reason: expect.stringMatching(/cosigned by 0/) });
  });

  it('refuses a fork signed with the log key itself: the same size with another root, or a larger tree not consistent with it', async () => {
    const cp = await s.client.audit.checkpoint();
    const sign = async (size: number, root: Buffer) => {
      const body = formatCheckpoint({ origin: ORIGIN, size, root });
      const sig = await s.rt.kms.systemSign(s.rt.storage.db, AUDIT_CHECKPOINT_KEY, Buffer.from(body));
      const key = parseVerifierKey((await s.client.audit.log()).verifier_keys[0]!);
      return formatNote(body, [{ name: ORIGIN, keyHash: noteKeyHash(ORIGIN, NOTE_ED25519, key.rawPublicKey), signature: sig.signature }]);
    };
    const same = await addCheckpoint(url, { oldSize: cp.size, proof: [], note: await sign(cp.size, randomBytes(32)) }).catch((e: unknown) => e);
    expect(same).toBeInstanceOf(WitnessError);
    expect((same as WitnessError).status).toBe(409);
    const bigger = await addCheckpoint(url, { oldSize: cp.size, proof: [randomBytes(32)], note: await sign(cp.size + 5, randomBytes(32)) }).catch((e: unknown) => e);
    expect((bigger as WitnessError).status).toBe(422);
  });

  it('a log rolled back below what the witness cosigned is refused by the anchor, loudly', async () => {
    const before = await s.client.audit.checkpoint();
    // The witness remembers `before.size`; forget the receipts here, as a restore from an older backup would.
    await s.rt.storage.db.deleteFrom('audit_anchors').execute();
    await s.rt.storage.db.deleteFrom('audit_checkpoints').where('size', '>=', before.size).execute();
    await s.rt.storage.db.deleteFrom('audit_events').where('idx', '>=', before.size - 2).execute();
    // The head of the shorter log: the tree of its `before.size - 2` leaves.
    const r = new CompactRange();
    for (const e of await s.rt.storage.db.selectFrom('audit_events').select('leaf_hash').orderBy('idx').execute()) r.append(e.leaf_hash);
    await s.rt.storage.db.updateTable('audit_head').set({ size: r.size, range: JSON.stringify(r.toJSON()) }).execute();
    await s.rt.storage.db.deleteFrom('audit_nodes').execute();
    const failures = async () => Number(/audit_anchor_failures_total\{anchor="w1"\} (\d+)/.exec(await s.rt.registry.getSingleMetricAsString('audit_anchor_failures_total'))![1]);
    const n = await failures();
    await s.rt.checkpointer.tick(true);
    expect(await failures()).toBe(n + 1);
    expect((await s.client.audit.checkpoint()).anchors).toEqual([]);
  });
});
