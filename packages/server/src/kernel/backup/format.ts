/**
 * The `.pbak` file: one file per backup, written in one pass and read by random access.
 *
 *   "PALBAK\0\1"                                  8 bytes, magic and format version
 *   part 0 | part 1 | ... | part n-1              each nonce(12) | tag(16) | AES-256-GCM ciphertext of gzip(JSON lines)
 *   manifest                                      UTF-8 JSON (Manifest below), signed
 *   u32 manifest length | SHA-256(manifest) | "PBAKEND\n"   the 44-byte trailer
 *
 * The manifest comes last so that parts stream to disk as they are sealed (no second copy, bounded memory); the
 * trailer finds it. Its hash in the trailer lets `verify` tell a damaged manifest from a damaged part without any
 * key, and the per-part SHA-256 names the damaged part; with the seal, the manifest's HMAC and every part's GCM
 * tag authenticate the whole file.
 */
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AeadError, aeadOpen, aeadSeal, canonicalJson, constantTimeEqual, hkdfSha256, hmacSha256, PalisadeError, randomBytes, sha256 } from '@palisade/core';

export const FORMAT = 'palisade-backup/v1';
const MAGIC = Buffer.from('PALBAK\x00\x01', 'latin1');
const END = Buffer.from('PBAKEND\n', 'latin1');
const TRAILER = 4 + 32 + END.length;
const NONCE = 12;
const TAG = 16;
const MAX_MANIFEST = 64 * 1024 * 1024;
/** Largest decompressed part accepted (a part holds about CHUNK_BYTES, plus one row). */
const MAX_PART_PLAIN = 1024 * 1024 * 1024;

const Hex = (bytes: number) => Type.String({ pattern: `^[0-9a-f]{${bytes * 2}}$` });

export const PartEntry = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  /** `<table>#<chunk>`, as errors name it. */
  name: Type.String({ minLength: 1 }),
  table: Type.String({ minLength: 1 }),
  chunk: Type.Integer({ minimum: 0 }),
  rows: Type.Integer({ minimum: 0 }),
  offset: Type.Integer({ minimum: MAGIC.length }),
  bytes: Type.Integer({ minimum: NONCE + TAG }),
  sha256: Hex(32),
});
export type PartEntry = Static<typeof PartEntry>;

export const SealRecords = Type.Object({
  provider: Type.Union([Type.Literal('file'), Type.Literal('passphrase'), Type.Literal('pkcs11')]),
  /** The `seal.keyring` settings value exactly as stored: the keyring key wrapped by the root. */
  keyring: Type.String(),
  /** The `seal.passphrase` settings value (passphrase seal): the root wrapped by the Argon2id key and by the recovery key. */
  passphrase: Type.Union([Type.String(), Type.Null()]),
  /** Where the root was (pkcs11): a hint for the operator, not a secret. */
  pkcs11: Type.Union([Type.Object({ token: Type.Union([Type.String(), Type.Null()]), slot: Type.Union([Type.Integer(), Type.Null()]), key_label: Type.String() }), Type.Null()]),
});
export type SealRecords = Static<typeof SealRecords>;

export const Manifest = Type.Object({
  format: Type.Literal(FORMAT),
  backup_id: Type.String({ pattern: '^[a-z][a-z0-9_-]*$' }),
  created_at: Type.String(),
  dialect: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')]),
  /** Kysely migrations applied to the source, in order: restore refuses a schema it does not know. */
  migrations: Type.Array(Type.String()),
  seal: SealRecords,
  /** The random backup key, sealed by the barrier under the purpose `backup/<backup_id>`. */
  key: Type.Object({ purpose: Type.String(), wrapped: Type.String() }),
  cipher: Type.Literal('AES-256-GCM'),
  compression: Type.Literal('gzip'),
  /** The audit ledger in the snapshot: its size and root (hex; null when empty). */
  audit: Type.Object({ size: Type.Integer({ minimum: 0 }), root: Type.Union([Hex(32), Type.Null()]) }),
  tables: Type.Array(Type.Object({ name: Type.String(), columns: Type.Array(Type.String()), rows: Type.Integer({ minimum: 0 }) })),
  parts: Type.Array(PartEntry),
  /** HMAC-SHA256 over the canonical JSON (RFC 8785) of every other field, keyed by HKDF(backup key). */
  signature: Type.Object({ alg: Type.Literal('HMAC-SHA256'), value: Hex(32) }),
});
export type Manifest = Static<typeof Manifest>;
export type UnsignedManifest = Omit<Manifest, 'signature'>;

const corrupt = (message: string, extensions: Record<string, unknown> = {}, cause?: unknown) =>
  new PalisadeError('PAL_BACKUP_CORRUPT', message, { extensions, ...(cause === undefined ? {} : { cause }) });

/** How errors and progress name a part: `part 3 (audit_events#1)`. */
export const partLabel = (p: Pick<PartEntry, 'index' | 'name'>): string => `part ${p.index} (${p.name})`;

// ---- crypto of parts and manifest ----------------------------------------------------------------------------

/** AAD of a part: the backup, the part's name and its position, so parts cannot be moved between or within backups. */
function partAad(backupId: string, p: Pick<PartEntry, 'index' | 'name'>): Buffer {
  return Buffer.from(canonicalJson({ backup_id: backupId, index: p.index, part: p.name, format: FORMAT }), 'utf8');
}

export function sealPart(key: Buffer, backupId: string, p: Pick<PartEntry, 'index' | 'name'>, plaintext: Buffer): Buffer {
  const nonce = randomBytes(NONCE);
  const { ciphertext, tag } = aeadSeal('AES-256-GCM', key, nonce, gzipSync(plaintext), partAad(backupId, p));
  return Buffer.concat([nonce, tag, ciphertext]);
}

/** Authenticates and decrypts a part; PAL_BACKUP_CORRUPT naming the part otherwise. */
export function openPart(key: Buffer, backupId: string, p: Pick<PartEntry, 'index' | 'name'>, blob: Buffer): Buffer {
  let compressed: Buffer;
  try {
    compressed = aeadOpen('AES-256-GCM', key, blob.subarray(0, NONCE), blob.subarray(NONCE + TAG), blob.subarray(NONCE, NONCE + TAG), partAad(backupId, p));
  } catch (e) {
    if (e instanceof AeadError) throw corrupt(`${partLabel(p)} fails authentication: the file is damaged or was altered`, { part: p.index, part_name: p.name });
    throw e;
  }
  try {
    return gunzipSync(compressed, { maxOutputLength: MAX_PART_PLAIN });
  } catch (e) {
    throw corrupt(`${partLabel(p)} does not decompress`, { part: p.index, part_name: p.name }, e);
  }
}

const macKey = (backupKey: Buffer) => hkdfSha256(backupKey, Buffer.alloc(0), 'palisade/backup-manifest/v1', 32);

export function signManifest(m: UnsignedManifest, backupKey: Buffer): Manifest {
  return { ...m, signature: { alg: 'HMAC-SHA256', value: hmacSha256(macKey(backupKey), canonicalJson(m)).toString('hex') } };
}

export function checkManifestSignature(m: Manifest, backupKey: Buffer): void {
  const { signature, ...rest } = m;
  const want = hmacSha256(macKey(backupKey), canonicalJson(rest));
  if (!constantTimeEqual(want, Buffer.from(signature.value, 'hex'))) throw corrupt('the manifest signature is invalid: the manifest was altered');
}

// ---- writing ---------------------------------------------------------------------------------------------------

/** `write` may write less than asked: loop until all of `b` is on its way to disk. */
async function writeAll(fh: FileHandle, b: Buffer): Promise<void> {
  for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
}

/** Writes a backup under a hidden temporary name; `finish` fsyncs it and renames it into place. */
export class BackupWriter {
  #offset = MAGIC.length;
  #parts: PartEntry[] = [];
  #renamed = false;

  private constructor(
    private readonly fh: FileHandle,
    private readonly tmp: string,
    private readonly path: string,
  ) {}

  static async create(path: string): Promise<BackupWriter> {
    const tmp = join(dirname(path), `.${basename(path)}.partial`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    const w = new BackupWriter(fh, tmp, path);
    try {
      await writeAll(fh, MAGIC);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w;
  }

  get parts(): PartEntry[] {
    return this.#parts;
  }
  get bytes(): number {
    return this.#offset;
  }

  async addPart(p: Omit<PartEntry, 'offset' | 'bytes' | 'sha256' | 'index'>, blob: Buffer): Promise<PartEntry> {
    const entry: PartEntry = { index: this.#parts.length, ...p, offset: this.#offset, bytes: blob.length, sha256: sha256(blob).toString('hex') };
    await writeAll(this.fh, blob);
    this.#offset += blob.length;
    this.#parts.push(entry);
    return entry;
  }

  /** Appends the manifest and trailer, fsyncs, renames into place, fsyncs the directory. Returns the SHA-256 of the manifest. */
  async finish(manifest: Manifest): Promise<{ path: string; manifestSha256: string; bytes: number }> {
    const body = Buffer.from(JSON.stringify(manifest), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const digest = sha256(body);
    await writeAll(this.fh, Buffer.concat([body, len, digest, END]));
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tmp, this.path);
    this.#renamed = true;
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return { path: this.path, manifestSha256: digest.toString('hex'), bytes: this.#offset + body.length + TRAILER };
  }

  /** Removes whatever was written (the temporary file, or the final one if `finish` failed after the rename). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.#renamed ? this.path : this.tmp).catch(() => undefined);
  }
}

// ---- reading ---------------------------------------------------------------------------------------------------

export interface BackupReader {
  readonly path: string;
  readonly manifest: Manifest;
  readonly manifestSha256: string;
  readonly size: number;
  /** The sealed bytes of a part, as stored. */
  readPart(p: PartEntry): Promise<Buffer>;
  /** Reads a part and checks its SHA-256; PAL_BACKUP_CORRUPT naming it otherwise. */
  readCheckedPart(p: PartEntry): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Opens a backup file and checks its structure without any key: magic, trailer, the manifest's hash and shape,
 * and that the parts exactly tile the space between the magic and the manifest. Part contents are not read here.
 */
export async function openBackupFile(path: string): Promise<BackupReader> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PalisadeError('PAL_VALIDATION_FAILED', `cannot open ${path}: ${code ?? (e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    const at = async (pos: number, n: number) => {
      const b = Buffer.alloc(n);
      const { bytesRead } = await fh.read(b, 0, n, pos);
      if (bytesRead !== n) throw corrupt(`${path} is truncated`);
      return b;
    };
    if (size < MAGIC.length) throw corrupt(`${path} is truncated or not a Palisade backup (${size} bytes)`);
    const magic = await at(0, MAGIC.length);
    if (!magic.equals(MAGIC)) {
      if (magic.subarray(0, 6).toString('latin1') === 'PALBAK') throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `${path} is a Palisade backup of an unknown format version (${magic[7]})`);
      throw corrupt(`${path} is not a Palisade backup`);
    }
    if (size < MAGIC.length + TRAILER) throw corrupt(`${path} is truncated: the manifest and end marker are missing`);
    const trailer = await at(size - TRAILER, TRAILER);
    if (!trailer.subarray(36).equals(END)) throw corrupt(`${path} is truncated: the manifest and end marker are missing`);
    const mlen = trailer.readUInt32BE(0);
    if (mlen === 0 || mlen > MAX_MANIFEST || mlen > size - MAGIC.length - TRAILER) throw corrupt(`${path}: the manifest length in the trailer is invalid`);
    const body = await at(size - TRAILER - mlen, mlen);
    const digest = sha256(body);
    if (!constantTimeEqual(digest, trailer.subarray(4, 36))) throw corrupt(`${path}: the manifest does not match its SHA-256 (the manifest is damaged)`);
    let manifest: unknown;
    try {
      manifest = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw corrupt(`${path}: the manifest is not JSON`, {}, e);
    }
    if (typeof manifest === 'object' && manifest !== null && 'format' in manifest && manifest.format !== FORMAT) {
      throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `${path} has format ${JSON.stringify(manifest.format)}; this Palisade reads ${FORMAT}`);
    }
    if (!Value.Check(Manifest, manifest)) {
      const first = Value.Errors(Manifest, manifest).First();
      throw corrupt(`${path}: the manifest is malformed${first ? ` (${first.path || '/'}: ${first.message})` : ''}`);
    }
    let expected = MAGIC.length;
    manifest.parts.forEach((p, i) => {
      if (p.index !== i || p.offset !== expected) throw corrupt(`${path}: ${partLabel(p)} is not where the manifest says the parts continue`);
      expected += p.bytes;
    });
    if (expected !== size - TRAILER - mlen) throw corrupt(`${path}: the parts do not fill the file (${size - TRAILER - mlen - expected} bytes unaccounted for)`);
    const m = manifest;
    const readPart = (p: PartEntry) => at(p.offset, p.bytes);
    return {
      path,
      manifest: m,
      manifestSha256: digest.toString('hex'),
      size,
      readPart,
      async readCheckedPart(p) {
        const blob = await readPart(p);
        if (sha256(blob).toString('hex') !== p.sha256) throw corrupt(`${partLabel(p)} does not match its SHA-256: the file is damaged`, { part: p.index, part_name: p.name });
        return blob;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
