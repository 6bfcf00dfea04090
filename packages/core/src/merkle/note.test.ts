import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import {
  MAX_NOTE_SIGNATURES,
  NOTE_COSIGNATURE_V1,
  NOTE_ED25519,
  NoteKeyError,
  cosignCheckpoint,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureTimestamp,
  cosignatureVerifierKey,
  ed25519NoteSigner,
  encodeSignerKey,
  encodeVerifierKey,
  formatCheckpoint,
  formatNote,
  generateSignerKey,
  isValidKeyName,
  noteKeyHash,
  openNote,
  parseCheckpoint,
  parseNote,
  parseSignatureLine,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCosignature,
  type NoteSigner,
} from './note.js';

// ---------------------------------------------------------------------------------------------------------------
// Interoperability vectors from golang.org/x/mod/sumdb/note (note.go package documentation and note_test.go,
// BSD-licensed, https://cs.opensource.google/go/x/mod/+/master:sumdb/note/): keys, text and signed notes.
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

// Verifier keys from transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1NewVerifier): an Ed25519 note key
// and a native Ed25519 cosignature/v1 (type 0x04) witness key, both with key IDs computed by the Go implementation.
const TD_ED25519_VKEY = 'TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6';
const TD_COSIG_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';

// The example of c2sp.org/tlog-cosignature §Format: a checkpoint with the log's signature and one witness cosignature
// whose signed message the spec shows with "time 1679315147". No keys are published for it, so only its framing is
// checked.
const SOFA_TEXT = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SOFA_NOTE =
  SOFA_TEXT +
  '\n' +
  '\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n' +
  '\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const rootOf = (s: string): Buffer => createHash('sha256').update(s).digest();

function expectKeyError(fn: () => unknown): void {
  expect(fn).toThrow(NoteKeyError);
}

describe('key names and key IDs', () => {
  it('accepts URL-like names and rejects empty names, "+" and Unicode white space', () => {
    for (const ok of ['a', 'example.com/log42', 'PeterNeumann', 'quasimodo.example/salvatore', 'oid/1.3.6.1.4.1', 'ünïcödé']) expect(isValidKeyName(ok), ok).toBe(true);
    for (const bad of ['', 'a+b', 'a b', 'a\tb', 'a\nb', 'a\u00a0b', 'a\u2003b', 'a\u0085b', 'a\u3000b', '\ud800']) expect(isValidKeyName(bad), JSON.stringify(bad)).toBe(false);
  });

  it('computes SHA-256(name || 0x0A || type || key)[:4], as an independent computation does', () => {
    const raw = Buffer.from('ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW', 'base64').subarray(1);
    expect(noteKeyHash('PeterNeumann', NOTE_ED25519, raw).toString('hex')).toBe('c74f20a3');
    const independent = createHash('sha256').update(Buffer.concat([Buffer.from('PeterNeumann\n'), Buffer.of(4), raw])).digest().subarray(0, 4);
    expect(noteKeyHash('PeterNeumann', NOTE_COSIGNATURE_V1, raw).equals(independent)).toBe(true);
    expect(independent.toString('hex')).not.toBe('c74f20a3');
  });
});

describe('verifier keys', () => {
  it('parses the Go sumdb/note and transparency-dev vectors and re-encodes them unchanged', () => {
    for (const vkey of [PETER_VKEY, ENOCH_VKEY, TD_ED25519_VKEY, TD_COSIG_VKEY]) {
      const v = parseVerifierKey(vkey);
      expect(v.vkey).toBe(vkey);
      expect(encodeVerifierKey(v.name, v.publicKey, v.type)).toBe(vkey);
      expect(encodeVerifierKey(v.name, v.rawPublicKey, v.type)).toBe(vkey);
    }
    expect(parseVerifierKey(TD_COSIG_VKEY).type).toBe(NOTE_COSIGNATURE_V1);
    expect(parseVerifierKey(PETER_VKEY)).toMatchObject({ name: 'PeterNeumann', type: NOTE_ED25519 });
  });

  it('rejects every substring and every one-byte change of a valid key (as Go TestNewVerifier)', () => {
    const b = Buffer.from(PETER_VKEY);
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        expectKeyError(() => parseVerifierKey(b.subarray(i, j).toString()));
      }
    }
    for (let i = 0; i < b.length; i++) {
      const c = Buffer.from(b);
      c[i]! += 1;
      expectKeyError(() => parseVerifierKey(c.toString()));
    }
  });

  it('rejects a wrong-length key and an unknown algorithm even with a matching key ID (Go vectors)', () => {
    expectKeyError(() => parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=='));
    expectKeyError(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'));
  });

  it('rejects malformed parts (transparency-dev vectors) and non-canonical base64', () => {
    for (const bad of ['bananas.sigstore.dev+12344556', 'rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!', 'rekor.sigstore.dev+12345678+AwEB', 'rekor.sigstore.dev+NOT_A_NUMBER+AQcC', 'x+0000000+AQ==']) {
      expectKeyError(() => parseVerifierKey(bad));
    }
    expectKeyError(() => parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'c7 4f20a')));
    expectKeyError(() => parseVerifierKey(`${PETER_VKEY}\n`));
    expectKeyError(() => parseVerifierKey(PETER_VKEY.replace('+ARpc', '+ ARpc')));
  });

  it('converts an Ed25519 note key to the cosignature/v1 key of the same public key', () => {
    const co = parseVerifierKey(cosignatureVerifierKey(PETER_VKEY));
    expect(co.type).toBe(NOTE_COSIGNATURE_V1);
    expect(co.rawPublicKey.equals(parseVerifierKey(PETER_VKEY).rawPublicKey)).toBe(true);
    expect(co.keyHash.toString('hex')).not.toBe('c74f20a3');
  });
});

describe('signer keys', () => {
  it('parses the Go vector, derives the matching verifier key and signs exactly as Go does', async () => {
    const k = parseSignerKey(PETER_SKEY);
    expect(k.vkey).toBe(PETER_VKEY);
    expect(encodeSignerKey(k.name, k.privateKey)).toBe(PETER_SKEY);
    expect(await signNote(GO_TEXT, [ed25519NoteSigner(PETER_SKEY)])).toBe(`${GO_TEXT}\n${PETER_SIG}`);
  });

  it('rejects every substring and every one-byte change of a valid signer key (as Go TestNewSigner)', () => {
    const b = Buffer.from(PETER_SKEY);
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        expectKeyError(() => parseSignerKey(b.subarray(i, j).toString()));
      }
    }
    for (let i = 0; i < b.length; i++) {
      const c = Buffer.from(b);
      c[i]! += 1;
      expectKeyError(() => parseSignerKey(c.toString()));
    }
  });

  it('generates keys of both types that round-trip and sign verifiably', async () => {
    for (const type of [NOTE_ED25519, NOTE_COSIGNATURE_V1] as const) {
      const { skey, vkey } = generateSignerKey('palisade.test/k', type);
      expect(skey).toMatch(/^PRIVATE\+KEY\+palisade\.test\/k\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
      const k = parseSignerKey(skey);
      expect(k.type).toBe(type);
      expect(k.vkey).toBe(vkey);
      expect(parseVerifierKey(vkey).keyHash.equals(k.keyHash)).toBe(true);
    }
    expectKeyError(() => generateSignerKey('bad name'));
    expectKeyError(() => ed25519NoteSigner(generateSignerKey('w', NOTE_COSIGNATURE_V1).skey));
  });
});

describe('signed notes: the Go sumdb/note Open cases', () => {
  const peter = parseVerifierKey(PETER_VKEY);
  const enoch = parseVerifierKey(ENOCH_VKEY);
  const msg = `${GO_TEXT}\n${PETER_SIG}${ENOCH_SIG}`;

  it('verifies the known signature and ignores the unknown one', () => {
    const r = openNote(msg, [peter]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.note.text).toBe(GO_TEXT);
    expect(r.note.verified.map((s) => [s.name, s.keyHash.toString('hex')])).toEqual([['PeterNeumann', 'c74f20a3']]);
    expect(r.note.unknown.map((s) => [s.name, s.keyHash.toString('hex')])).toEqual([['EnochRoot', 'af0cfe78']]);
  });

  it('verifies both with both keys, and rejects a note with no known signature', () => {
    const both = openNote(msg, [peter, enoch]);
    expect(both.ok && both.note.verified.length).toBe(2);
    expect(openNote(msg, [])).toMatchObject({ ok: false, reason: 'unverified' });
  });

  it('rejects a signature by a known key that does not verify', () => {
    const tampered = `${GO_TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    expect(openNote(tampered, [peter])).toMatchObject({ ok: false, reason: 'invalid-signature', error: 'invalid signature for key PeterNeumann+c74f20a3' });
    expect(openNote(`${GO_TEXT.replace('answer', 'Answer')}\n${PETER_SIG}`, [peter])).toMatchObject({ ok: false, reason: 'invalid-signature' });
  });

  it('ignores a corrupted signature by an unknown key, and drops duplicates', () => {
    const r = openNote(`${GO_TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}${ENOCH_SIG.slice(0, 60)}ABCD${ENOCH_SIG.slice(60)}`, [peter]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.note.verified).toHaveLength(1);
    expect(r.note.unknown).toHaveLength(2);
  });

  it('reports two different known keys with the same name and key ID as ambiguous', () => {
    const fake = { ...enoch, rawPublicKey: Buffer.alloc(32, 7) };
    expect(openNote(`${GO_TEXT}\n${ENOCH_SIG}`, [enoch, fake])).toMatchObject({ ok: false, reason: 'ambiguous-key' });
    expect(openNote(`${GO_TEXT}\n${ENOCH_SIG}`, [enoch, enoch]).ok).toBe(true);
    expect(openNote(`${GO_TEXT}\n${PETER_SIG}`, [enoch, fake, peter]).ok).toBe(true);
  });

  it('rejects more than MAX_NOTE_SIGNATURES signature lines', () => {
    expect(openNote(`${GO_TEXT}\n${PETER_SIG.repeat(MAX_NOTE_SIGNATURES)}`, [peter]).ok).toBe(true);
    expect(openNote(`${GO_TEXT}\n${PETER_SIG.repeat(MAX_NOTE_SIGNATURES + 1)}`, [peter])).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('rejects the malformed messages of the Go test, and others', () => {
    const bad = [
      GO_TEXT,
      `${GO_TEXT}\n`,
      `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${GO_TEXT}\n${PETER_SIG}`,
      `${GO_TEXT}\n\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${GO_TEXT}\n${PETER_SIG}Unexpected line.\n`,
      // and more
      `${GO_TEXT}\n${PETER_SIG.replace('\u2014 ', '- ')}`,
      `${GO_TEXT}\n${PETER_SIG.replace('\u2014 ', '\u2014')}`,
      `${GO_TEXT}\n${PETER_SIG.replace('PeterNeumann', 'Peter+Neumann')}`,
      `${GO_TEXT}\n${PETER_SIG.replace('PeterNeumann', 'Peter\u00a0Neumann')}`,
      `${GO_TEXT}\n${PETER_SIG.replace(' x08go', '  x08go')}`,
      `${GO_TEXT}\n${PETER_SIG.replace('nAM=', 'nAM')}`,
      `${GO_TEXT}\n${PETER_SIG.replace('nAM=', 'nAN=')}`, // non-canonical final bits
      `${GO_TEXT}\n\u2014 PeterNeumann AAAA\n`, // key ID only
      `${GO_TEXT}\n\u2014 PeterNeumann \n`,
      `${GO_TEXT}\n${PETER_SIG}\n`,
      `${GO_TEXT.replace('\n', '\r\n')}\n${PETER_SIG}`,
      `${GO_TEXT.replace('If', 'If\t')}\n${PETER_SIG}`,
      `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}\r\n`,
      `\ud800${GO_TEXT}\n${PETER_SIG}`,
    ];
    for (const m of bad) {
      expect(m).not.toBe(`${GO_TEXT}\n${PETER_SIG}`); // every case really changes the valid note
      expect(openNote(m, [parseVerifierKey(PETER_VKEY)]), JSON.stringify(m)).toMatchObject({ ok: false, reason: 'malformed' });
    }
    expect(parseNote(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${GO_TEXT}\n${PETER_SIG}`)]))).toMatchObject({ ok: false });
    expect(parseNote(Buffer.from(`${GO_TEXT}\n${PETER_SIG}`)).ok).toBe(true);
    expect(parseNote(42 as unknown as string).ok).toBe(false);
  });

  it('separates the text at the LAST blank line, so texts may contain (and end with) empty lines', async () => {
    const k = ed25519NoteSigner(PETER_SKEY);
    for (const text of ['a\n\nb\n', 'a\n\n', '\n', 'line one\n\n\nline two\n']) {
      const note = await signNote(text, [k]);
      const r = openNote(note, [peter]);
      expect(r.ok && r.note.text, JSON.stringify(text)).toBe(text);
    }
  });
});

describe('signNote', () => {
  it('signs through a callback (a key held elsewhere), in order, after existing signatures, replacing its own', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const vkey = encodeVerifierKey('kms.example/log', publicKey);
    const remote: NoteSigner = {
      name: 'kms.example/log',
      keyHash: parseVerifierKey(vkey).keyHash,
      sign: async (msg) => nodeSign(null, msg, privateKey),
    };
    const first = await signNote(GO_TEXT, [remote, ed25519NoteSigner(PETER_SKEY)]);
    const parsed = parseNote(first);
    expect(parsed.ok && parsed.note.signatures.map((s) => s.name)).toEqual(['kms.example/log', 'PeterNeumann']);
    expect(openNote(first, [parseVerifierKey(vkey), parseVerifierKey(PETER_VKEY)])).toMatchObject({ ok: true });

    // Re-signing with Peter replaces Peter's line and keeps the other one first.
    const existing = parsed.ok ? parsed.note.signatures : [];
    const again = await signNote(GO_TEXT, [ed25519NoteSigner(PETER_SKEY)], existing);
    expect(again).toBe(first);
    expect(formatNote(GO_TEXT, existing)).toBe(first);
  });

  it('refuses texts that are not note texts, bad signers and failing callbacks', async () => {
    const k = ed25519NoteSigner(PETER_SKEY);
    await expect(signNote('no newline', [k])).rejects.toThrow(TypeError);
    await expect(signNote('a\u0007b\n', [k])).rejects.toThrow(TypeError);
    await expect(signNote(GO_TEXT, [])).rejects.toThrow(TypeError);
    await expect(signNote(GO_TEXT, [{ ...k, name: 'bad name' }])).rejects.toThrow(NoteKeyError);
    await expect(signNote(GO_TEXT, [{ ...k, keyHash: Buffer.alloc(3) }])).rejects.toThrow(NoteKeyError);
    await expect(signNote(GO_TEXT, [{ ...k, sign: async () => Promise.reject(new Error('hsm offline')) }])).rejects.toThrow('hsm offline');
  });
});

describe('checkpoints', () => {
  it('round-trips through format and parse, with and without extension lines', () => {
    const root = rootOf('x');
    for (const c of [
      { origin: 'example.com/log', size: 0, root, extensions: [] },
      { origin: 'example.com/log', size: 20852163, root, extensions: [] },
      { origin: 'palisade.example/audit', size: Number.MAX_SAFE_INTEGER, root, extensions: ['ext one', 'two'] },
    ]) {
      const text = formatCheckpoint(c);
      const p = parseCheckpoint(text);
      expect(p).toEqual({ ok: true, checkpoint: c });
    }
    expect(formatCheckpoint({ origin: 'o', size: 5, root })).toBe(`o\n5\n${root.toString('base64')}\n`);
  });

  it('parses the c2sp.org/tlog-checkpoint example', () => {
    const p = parseNote(SOFA_NOTE);
    expect(p.ok).toBe(true);
    const c = parseCheckpoint(SOFA_TEXT);
    expect(c.ok && [c.checkpoint.origin, c.checkpoint.size, c.checkpoint.root.toString('base64')]).toEqual([
      'example.com/behind-the-sofa',
      20852163,
      'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=',
    ]);
  });

  it('rejects malformed checkpoint texts', () => {
    const r = rootOf('x').toString('base64');
    const bad = [
      `o\n5\n${r}`, // no final newline
      `o\n5\n`,
      `\n5\n${r}\n`,
      `o\n05\n${r}\n`,
      `o\n+5\n${r}\n`,
      `o\n-1\n${r}\n`,
      `o\n 5\n${r}\n`,
      `o\n5 \n${r}\n`,
      `o\n1e3\n${r}\n`,
      `o\n0x10\n${r}\n`,
      `o\n9007199254740992\n${r}\n`,
      `o\n5\n${rootOf('x').subarray(0, 31).toString('base64')}\n`,
      `o\n5\n${r.replace('=', '')}\n`,
      `o\n5\n${r.slice(0, 42)}${B64[B64.indexOf(r[42]!) | 1]}=\n`, // non-zero unused bits
      `o\n5\n${r}\n\n`,
      `o\n5\n${r}\next\n\n`,
      `o\r\n5\n${r}\n`,
    ];
    for (const t of bad) expect(parseCheckpoint(t).ok, JSON.stringify(t)).toBe(false);
    expect(parseCheckpoint(42 as unknown as string).ok).toBe(false);
  });

  it('refuses to format invalid checkpoints', () => {
    const root = rootOf('x');
    expect(() => formatCheckpoint({ origin: '', size: 1, root })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'a\nb', size: 1, root })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'o', size: -1, root })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'o', size: 1.5, root })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'o', size: 1, root: root.subarray(1) })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'o', size: 1, root, extensions: [''] })).toThrow(TypeError);
    expect(() => formatCheckpoint({ origin: 'o\u0001', size: 1, root })).toThrow(TypeError);
  });
});

describe('cosignatures (cosignature/v1)', () => {
  const text = formatCheckpoint({ origin: 'palisade.example/audit', size: 42, root: rootOf('tree 42') });

  it('builds the spec message: header line, time line, checkpoint text', () => {
    expect(cosignatureMessage(SOFA_TEXT, 1679315147)!.toString()).toBe(
      'cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n',
    );
    expect(cosignatureMessage(SOFA_TEXT, -1)).toBeNull();
    expect(cosignatureMessage(SOFA_TEXT, 1.5)).toBeNull();
    expect(cosignatureMessage('a\nb\n', 1)).toBeNull();
  });

  it('reads the framing of the c2sp.org/tlog-cosignature example: key ID, timestamp 1679315147, 64-byte signature', () => {
    const p = parseNote(SOFA_NOTE);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    const w = p.note.signatures[1]!;
    expect([w.name, w.keyHash.toString('hex'), w.signature.length, cosignatureTimestamp(w.signature)]).toEqual(['witness.example.com/w1', '8d66cf3f', 72, 1679315147]);
    expect(cosignatureTimestamp(p.note.signatures[0]!.signature)).toBeNull();
  });

  it('cosigns and verifies, returning the timestamp; the line is key ID || timestamp(8, BE) || signature(64)', async () => {
    const { skey, vkey } = generateSignerKey('witness.example/w1', NOTE_COSIGNATURE_V1);
    const line = await cosignCheckpoint(text, skey, 1_700_000_000);
    expect(line).toMatch(/^\u2014 witness\.example\/w1 [A-Za-z0-9+/]{102}==\n$/);
    const blob = Buffer.from(line.slice('\u2014 witness.example/w1 '.length, -1), 'base64');
    expect(blob.length).toBe(4 + 8 + 64);
    expect(blob.subarray(0, 4).equals(parseVerifierKey(vkey).keyHash)).toBe(true);
    expect(blob.readBigUInt64BE(4)).toBe(1_700_000_000n);
    expect(verifyCosignature(vkey, text, line)).toEqual({ ok: true, timestamp: 1_700_000_000 });
    expect(verifyCosignature(vkey, text, line.slice(0, -1))).toEqual({ ok: true, timestamp: 1_700_000_000 });
    // The cosigned note opens with the witness key like any signed note.
    const note = `${text}\n${line}`;
    expect(openNote(note, [parseVerifierKey(vkey)]).ok).toBe(true);
  });

  it('a type 0x01 key cosigns under its 0x04 key ID; the two key IDs never match each other', async () => {
    const { skey, vkey } = generateSignerKey('witness.example/w2', NOTE_ED25519);
    const line = await cosignCheckpoint(text, skey, 5);
    expect(verifyCosignature(vkey, text, line)).toEqual({ ok: true, timestamp: 5 });
    expect(verifyCosignature(cosignatureVerifierKey(vkey), text, line)).toEqual({ ok: true, timestamp: 5 });
    // As a plain Ed25519 note signature it is a different key: unknown, so the note is unverified.
    expect(openNote(`${text}\n${line}`, [parseVerifierKey(vkey)])).toMatchObject({ ok: false, reason: 'unverified' });
    // And a plain note signature is not a cosignature.
    const plain = parseNote(await signNote(text, [ed25519NoteSigner(skey)]));
    const plainLine = plain.ok ? `\u2014 witness.example/w2 ${Buffer.concat([plain.note.signatures[0]!.keyHash, plain.note.signatures[0]!.signature]).toString('base64')}\n` : '';
    expect(verifyCosignature(vkey, text, plainLine).ok).toBe(false);
  });

  it('rejects a tampered checkpoint, timestamp or signature, another key, another name and garbage', async () => {
    const { skey, vkey } = generateSignerKey('witness.example/w1', NOTE_COSIGNATURE_V1);
    const other = generateSignerKey('witness.example/w1', NOTE_COSIGNATURE_V1);
    const line = await cosignCheckpoint(text, skey, 1_700_000_000);
    const prefix = '\u2014 witness.example/w1 ';
    const blob = Buffer.from(line.slice(prefix.length, -1), 'base64');
    const mutate = (i: number) => {
      const b = Buffer.from(blob);
      b[i]! ^= 1;
      return `${prefix}${b.toString('base64')}\n`;
    };
    expect(verifyCosignature(vkey, text.replace('\n42\n', '\n43\n'), line).ok).toBe(false);
    expect(verifyCosignature(vkey, `${text}extension\n`, line).ok).toBe(false);
    expect(verifyCosignature(vkey, text, mutate(11)).ok).toBe(false); // timestamp
    expect(verifyCosignature(vkey, text, mutate(40)).ok).toBe(false); // signature
    expect(verifyCosignature(vkey, text, mutate(0)).ok).toBe(false); // key ID
    expect(verifyCosignature(other.vkey, text, line).ok).toBe(false);
    expect(verifyCosignature(vkey, text, line.replace('w1', 'w2')).ok).toBe(false);
    expect(verifyCosignature(vkey, text, `${prefix}${blob.subarray(0, 70).toString('base64')}\n`).ok).toBe(false);
    expect(verifyCosignature('garbage', text, line).ok).toBe(false);
    expect(verifyCosignature(vkey, 'not a checkpoint\n', line).ok).toBe(false);
    expect(verifyCosignature(vkey, text, 'garbage').ok).toBe(false);
    // A timestamp beyond 2^53 is refused rather than rounded.
    const big = Buffer.from(blob);
    big.writeBigUInt64BE(2n ** 63n - 1n, 4);
    expect(cosignatureTimestamp(big.subarray(4))).toBeNull();
    expect(verifyCosignature(vkey, text, `${prefix}${big.toString('base64')}\n`).ok).toBe(false);
  });

  it('a cosignature signer works inside signNote next to the log signature, with the given clock', async () => {
    const log = generateSignerKey('palisade.example/audit');
    const wit = generateSignerKey('witness.example/w1', NOTE_COSIGNATURE_V1);
    const note = await signNote(text, [ed25519NoteSigner(log.skey), cosignatureSigner(wit.skey, () => 77)]);
    const r = openNote(note, [parseVerifierKey(log.vkey), parseVerifierKey(wit.vkey)]);
    expect(r.ok && r.note.verified.map((s) => s.name)).toEqual(['palisade.example/audit', 'witness.example/w1']);
    expect(r.ok && cosignatureTimestamp(r.note.verified[1]!.signature)).toBe(77);
    await expect(cosignCheckpoint('not\na checkpoint\n', wit.skey)).rejects.toThrow(TypeError);
    expect(parseSignatureLine('\u2014 a AAAAAAA=').ok).toBe(true);
  });
});

// An independent implementation of the same bytes: the openssl CLI computes the key IDs and the Ed25519 signatures,
// the expected lines are assembled here by hand, and must equal what note.ts produced (Ed25519 is deterministic).
const openssl = requireService('openssl', 'signed notes cross-checked with openssl');
describe.skipIf(!openssl.available)('cross-check with openssl', () => {
  it('the note signature and the cosignature equal the ones openssl computes over the spec messages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-note-'));
    try {
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      run('genpkey', '-algorithm', 'ed25519', '-out', 'k.pem');
      const seed = run('pkey', '-in', 'k.pem', '-outform', 'DER').subarray(-32);
      const pub = run('pkey', '-in', 'k.pem', '-pubout', '-outform', 'DER').subarray(-32);
      const sha = (file: string, data: Buffer) => {
        writeFileSync(join(dir, file), data);
        return run('dgst', '-sha256', '-binary', file);
      };
      const sig = (file: string, data: Buffer) => {
        writeFileSync(join(dir, file), data);
        run('pkeyutl', '-sign', '-inkey', 'k.pem', '-rawin', '-in', file, '-out', `${file}.sig`);
        return readFileSync(join(dir, `${file}.sig`));
      };
      const name = 'witness.example/openssl';
      const id01 = sha('id01', Buffer.concat([Buffer.from(`${name}\n`), Buffer.of(1), pub])).subarray(0, 4);
      const id04 = sha('id04', Buffer.concat([Buffer.from(`${name}\n`), Buffer.of(4), pub])).subarray(0, 4);
      const skey = `PRIVATE+KEY+${name}+${id01.toString('hex')}+${Buffer.concat([Buffer.of(1), seed]).toString('base64')}`;
      const k = parseSignerKey(skey);
      expect(k.vkey).toBe(`${name}+${id01.toString('hex')}+${Buffer.concat([Buffer.of(1), pub]).toString('base64')}`);

      const body = 'palisade.example/audit\n1234\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
      const noteSig = sig('body', Buffer.from(body));
      expect(await signNote(body, [ed25519NoteSigner(k)])).toBe(`${body}\n\u2014 ${name} ${Buffer.concat([id01, noteSig]).toString('base64')}\n`);

      const t = 1_712_345_678;
      const coSig = sig('cosig', Buffer.from(`cosignature/v1\ntime ${t}\n${body}`));
      const ts = Buffer.alloc(8);
      ts.writeBigUInt64BE(BigInt(t));
      const expected = `\u2014 ${name} ${Buffer.concat([id04, ts, coSig]).toString('base64')}\n`;
      expect(await cosignCheckpoint(body, k, t)).toBe(expected);
      const co = parseSignerKey(`PRIVATE+KEY+${name}+${id04.toString('hex')}+${Buffer.concat([Buffer.of(4), seed]).toString('base64')}`);
      expect(await cosignCheckpoint(body, co, t)).toBe(expected);
      expect(verifyCosignature(`${name}+${id04.toString('hex')}+${Buffer.concat([Buffer.of(4), pub]).toString('base64')}`, body, expected)).toEqual({ ok: true, timestamp: t });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
