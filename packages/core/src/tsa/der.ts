/**
 * A small, strict DER (ITU-T X.690 Distinguished Encoding Rules) reader and writer: enough ASN.1 for RFC 3161
 * time-stamp requests and tokens (CMS SignedData) and the X.509 fields their verification needs.
 *
 * The reader accepts DER only: definite lengths in their shortest form, low tag numbers (< 31), primitive encodings of
 * the universal string/number types, no data after the outermost element, and at most {@link MAX_DEPTH} levels of
 * nesting. It validates each element's length against its parent, so a truncated or over-long length is an error,
 * never a read past the buffer. Content rules (minimal INTEGERs, canonical BOOLEANs, well-formed OIDs and times) are
 * checked by the typed readers (`readInteger`, `readOid`, ...). Every failure is a `PalisadeError`
 * (PAL_VALIDATION_FAILED) whose message starts with the caller's label and gives the byte offset.
 */
import { PalisadeError } from '../errors/index.js';

/** Nesting limit of {@link parseDer} (CMS + certificates stay well under 20). */
export const MAX_DEPTH = 32;

/** Identifier octets (class | constructed | number) of the universal types used here. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

const CLASS_CONTEXT = 0x80;
const CONSTRUCTED = 0x20;

/** Identifier octet of a context-specific tag `[n]` (n < 31). */
export const contextTag = (n: number, constructed: boolean): number => CLASS_CONTEXT | (constructed ? CONSTRUCTED : 0) | n;

/** One decoded element. `der` is the whole TLV and `value` its contents, both views of the input buffer. */
export interface DerNode {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  readonly constructed: boolean;
  /** Offset of the identifier octet in the parsed buffer. */
  readonly offset: number;
  /** The whole element: identifier, length and contents. */
  readonly der: Buffer;
  /** The contents octets. */
  readonly value: Buffer;
  /** Decoded elements of a constructed element (empty for a primitive one). */
  readonly children: readonly DerNode[];
}

/** Universal types that DER always encodes primitive. */
const PRIMITIVE_ONLY = new Set<number>([
  TAG.BOOLEAN,
  TAG.INTEGER,
  TAG.BIT_STRING,
  TAG.OCTET_STRING,
  TAG.NULL,
  TAG.OID,
  TAG.UTF8_STRING,
  TAG.PRINTABLE_STRING,
  TAG.T61_STRING,
  TAG.IA5_STRING,
  TAG.UTC_TIME,
  TAG.GENERALIZED_TIME,
  TAG.UNIVERSAL_STRING,
  TAG.BMP_STRING,
]);

export function derError(label: string, message: string, offset?: number): PalisadeError {
  const where = offset === undefined ? '' : ` (at byte ${offset})`;
  return new PalisadeError('PAL_VALIDATION_FAILED', `${label}: ${message}${where}`, { extensions: offset === undefined ? {} : { offset } });
}

/**
 * Decode exactly one DER element spanning all of `input` (trailing bytes are an error).
 * `label` names the structure in error messages ("time-stamp token", ...).
 */
export function parseDer(input: Uint8Array, label = 'DER', maxDepth = MAX_DEPTH): DerNode {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length === 0) throw derError(label, 'empty input');
  const [node, end] = readElement(buf, 0, buf.length, 0, label, maxDepth);
  if (end !== buf.length) throw derError(label, `${buf.length - end} trailing byte(s) after the DER element`, end);
  return node;
}

function readElement(buf: Buffer, start: number, limit: number, depth: number, label: string, maxDepth: number): [DerNode, number] {
  if (depth > maxDepth) throw derError(label, `nesting deeper than ${maxDepth} levels`, start);
  let pos = start;
  if (pos >= limit) throw derError(label, 'truncated: missing identifier', pos);
  const tag = buf[pos++]!;
  if ((tag & 0x1f) === 0x1f) throw derError(label, 'high tag numbers (>= 31) are not supported', start);
  if (tag === 0x00) throw derError(label, 'tag 0 (end-of-contents) is not allowed in DER', start);
  const constructed = (tag & CONSTRUCTED) !== 0;
  if (constructed && PRIMITIVE_ONLY.has(tag & ~CONSTRUCTED)) throw derError(label, `constructed encoding of universal type ${tag & 0x1f} is not DER`, start);
  if (!constructed && (tag === TAG.SEQUENCE - CONSTRUCTED || tag === TAG.SET - CONSTRUCTED)) {
    throw derError(label, 'SEQUENCE/SET must be constructed', start);
  }

  if (pos >= limit) throw derError(label, 'truncated: missing length', pos);
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else if (first === 0x80) {
    throw derError(label, 'indefinite length is not DER', pos - 1);
  } else if (first === 0xff) {
    throw derError(label, 'reserved length octet 0xff', pos - 1);
  } else {
    const n = first & 0x7f;
    if (n > 4) throw derError(label, `length of ${n} octets is too large`, pos - 1);
    if (pos + n > limit) throw derError(label, 'truncated: length octets', pos);
    if (buf[pos] === 0) throw derError(label, 'length has a leading zero octet (not minimal)', pos);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    if (length < 0x80) throw derError(label, 'long-form length below 128 (not minimal)', pos - n - 1);
  }
  const valueStart = pos;
  if (length > limit - valueStart) throw derError(label, `truncated: length ${length} exceeds the ${limit - valueStart} byte(s) available`, start);
  const end = valueStart + length;

  const children: DerNode[] = [];
  if (constructed) {
    let p = valueStart;
    while (p < end) {
      const [child, next] = readElement(buf, p, end, depth + 1, label, maxDepth);
      children.push(child);
      p = next;
    }
  }
  return [{ tag, constructed, offset: start, der: buf.subarray(start, end), value: buf.subarray(valueStart, end), children }, end];
}

// ---------------------------------------------------------------------------------------------------------------
// Typed readers

const TAG_NAMES: Record<number, string> = {
  [TAG.BOOLEAN]: 'BOOLEAN',
  [TAG.INTEGER]: 'INTEGER',
  [TAG.BIT_STRING]: 'BIT STRING',
  [TAG.OCTET_STRING]: 'OCTET STRING',
  [TAG.NULL]: 'NULL',
  [TAG.OID]: 'OBJECT IDENTIFIER',
  [TAG.UTF8_STRING]: 'UTF8String',
  [TAG.GENERALIZED_TIME]: 'GeneralizedTime',
  [TAG.UTC_TIME]: 'UTCTime',
  [TAG.SEQUENCE]: 'SEQUENCE',
  [TAG.SET]: 'SET',
};

export function tagName(tag: number): string {
  const known = TAG_NAMES[tag];
  if (known) return known;
  if ((tag & 0xc0) === CLASS_CONTEXT) return `[${tag & 0x1f}]${tag & CONSTRUCTED ? ' constructed' : ''}`;
  return `tag 0x${tag.toString(16).padStart(2, '0')}`;
}

/** `node`, after checking its tag. `what` names the field in the error. */
export function expectTag(node: DerNode | undefined, tag: number, label: string, what: string): DerNode {
  if (!node) throw derError(label, `${what}: missing (expected ${tagName(tag)})`);
  if (node.tag !== tag) throw derError(label, `${what}: expected ${tagName(tag)}, found ${tagName(node.tag)}`, node.offset);
  return node;
}

/** The children of a SEQUENCE (or other constructed tag), checking the count range. */
export function expectChildren(node: DerNode, label: string, what: string, min: number, max = min): readonly DerNode[] {
  const n = node.children.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw derError(label, `${what}: expected ${want} element(s), found ${n}`, node.offset);
  }
  return node.children;
}

/** An INTEGER's contents as a bigint (two's complement), rejecting non-minimal encodings. */
export function readInteger(node: DerNode | undefined, label: string, what: string, tag: number = TAG.INTEGER): bigint {
  const v = integerBytes(node, label, what, tag);
  let n = 0n;
  for (const b of v) n = (n << 8n) | BigInt(b);
  if (v[0]! & 0x80) n -= 1n << BigInt(v.length * 8);
  return n;
}

/** An INTEGER's contents octets (two's complement, minimal), e.g. a certificate serial number. */
export function integerBytes(node: DerNode | undefined, label: string, what: string, tag: number = TAG.INTEGER): Buffer {
  const n = expectTag(node, tag, label, what);
  const v = n.value;
  if (v.length === 0) throw derError(label, `${what}: empty INTEGER`, n.offset);
  if (v.length > 1 && ((v[0] === 0x00 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    throw derError(label, `${what}: INTEGER is not minimally encoded`, n.offset);
  }
  return v;
}

/** A small non-negative INTEGER as a number (throws above `max`). */
export function readSmallInt(node: DerNode | undefined, label: string, what: string, max: number, tag: number = TAG.INTEGER): number {
  const v = readInteger(node, label, what, tag);
  if (v < 0n || v > BigInt(max)) throw derError(label, `${what}: ${v} is out of range 0..${max}`, node?.offset);
  return Number(v);
}

export function readBoolean(node: DerNode | undefined, label: string, what: string): boolean {
  const n = expectTag(node, TAG.BOOLEAN, label, what);
  if (n.value.length !== 1 || (n.value[0] !== 0x00 && n.value[0] !== 0xff)) throw derError(label, `${what}: BOOLEAN must be one octet 0x00 or 0xff`, n.offset);
  return n.value[0] === 0xff;
}

export function readNull(node: DerNode | undefined, label: string, what: string): void {
  const n = expectTag(node, TAG.NULL, label, what);
  if (n.value.length !== 0) throw derError(label, `${what}: NULL must be empty`, n.offset);
}

export function readOctetString(node: DerNode | undefined, label: string, what: string, tag: number = TAG.OCTET_STRING): Buffer {
  return expectTag(node, tag, label, what).value;
}

/** A BIT STRING: its bytes and the number of unused bits in the last one. */
export function readBitString(node: DerNode | undefined, label: string, what: string): { bytes: Buffer; unusedBits: number } {
  const n = expectTag(node, TAG.BIT_STRING, label, what);
  const v = n.value;
  if (v.length === 0) throw derError(label, `${what}: BIT STRING without its unused-bits octet`, n.offset);
  const unusedBits = v[0]!;
  if (unusedBits > 7 || (v.length === 1 && unusedBits !== 0)) throw derError(label, `${what}: invalid unused-bits count ${unusedBits}`, n.offset);
  const bytes = v.subarray(1);
  if (unusedBits > 0 && (bytes[bytes.length - 1]! & ((1 << unusedBits) - 1)) !== 0) throw derError(label, `${what}: unused bits must be zero in DER`, n.offset);
  return { bytes, unusedBits };
}

/** The numbers of the bits set in a named-bit BIT STRING (bit 0 is the most significant bit of the first octet). */
export function bitsSet(bits: { bytes: Buffer; unusedBits: number }): number[] {
  const out: number[] = [];
  const total = bits.bytes.length * 8 - bits.unusedBits;
  for (let i = 0; i < total; i++) if (bits.bytes[i >> 3]! & (0x80 >> (i & 7))) out.push(i);
  return out;
}

/** An OBJECT IDENTIFIER in dotted form, rejecting non-minimal sub-identifiers. */
export function readOid(node: DerNode | undefined, label: string, what: string): string {
  const n = expectTag(node, TAG.OID, label, what);
  const v = n.value;
  if (v.length === 0) throw derError(label, `${what}: empty OBJECT IDENTIFIER`, n.offset);
  const arcs: bigint[] = [];
  let acc = 0n;
  let startOfArc = true;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (startOfArc && b === 0x80) throw derError(label, `${what}: OID sub-identifier has a leading 0x80 (not minimal)`, n.offset);
    startOfArc = false;
    acc = (acc << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(acc);
      acc = 0n;
      startOfArc = true;
    }
  }
  if (!startOfArc) throw derError(label, `${what}: OID ends inside a sub-identifier`, n.offset);
  const firstArc = arcs[0]!;
  const head = firstArc < 40n ? [0n, firstArc] : firstArc < 80n ? [1n, firstArc - 40n] : [2n, firstArc - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** Text of a string type (UTF8String, PrintableString, IA5String, BMPString, ...). */
export function readString(node: DerNode | undefined, label: string, what: string): string {
  if (!node) throw derError(label, `${what}: missing string`);
  switch (node.tag) {
    case TAG.UTF8_STRING:
      return utf8Strict(node, label, what);
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
      return node.value.toString('latin1');
    case TAG.BMP_STRING: {
      if (node.value.length % 2 !== 0) throw derError(label, `${what}: BMPString of odd length`, node.offset);
      const swapped = Buffer.from(node.value);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    default:
      throw derError(label, `${what}: expected a string, found ${tagName(node.tag)}`, node.offset);
  }
}

function utf8Strict(node: DerNode, label: string, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(node.value);
  } catch {
    throw derError(label, `${what}: UTF8String is not valid UTF-8`, node.offset);
  }
}

/** A time in DER form: GeneralizedTime YYYYMMDDHHMMSS[.f+]Z, or UTCTime YYMMDDHHMMSSZ (years 1950..2049). */
export interface DerTime {
  /** The instant, truncated to milliseconds. */
  date: Date;
  /** The exact text of the encoding (keeps fractions finer than a millisecond). */
  text: string;
}

const GENERALIZED = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d*[1-9]))?Z$/;
const UTC = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

export function readTime(node: DerNode | undefined, label: string, what: string): DerTime {
  if (!node || (node.tag !== TAG.GENERALIZED_TIME && node.tag !== TAG.UTC_TIME)) {
    throw derError(label, `${what}: expected a GeneralizedTime or UTCTime${node ? `, found ${tagName(node.tag)}` : ''}`, node?.offset);
  }
  const text = node.value.toString('latin1');
  const m = node.tag === TAG.GENERALIZED_TIME ? GENERALIZED.exec(text) : UTC.exec(text);
  if (!m) throw derError(label, `${what}: "${printable(text)}" is not a DER ${tagName(node.tag)} (UTC "Z" form, no trailing zeros in fractions)`, node.offset);
  let year = Number(m[1]);
  if (node.tag === TAG.UTC_TIME) year += year < 50 ? 2000 : 1900;
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const frac = node.tag === TAG.GENERALIZED_TIME ? (m[7] ?? '') : '';
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day); // not Date.UTC: it maps years 0..99 to 1900..1999
  d.setUTCHours(hour, minute, second, ms);
  if (
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== minute ||
    d.getUTCSeconds() !== second
  ) {
    throw derError(label, `${what}: "${text}" is not a valid date and time`, node.offset);
  }
  return { date: d, text };
}

const printable = (s: string): string => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);

// ---------------------------------------------------------------------------------------------------------------
// Writer

function encodeLength(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`DER: invalid length ${n}`);
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One element: identifier `tag`, minimal definite length, `content`. */
export function derTlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const derSequence = (...items: Uint8Array[]): Buffer => derTlv(TAG.SEQUENCE, Buffer.concat(items));

/** A DER SET OF: the encodings sorted as octet strings (X.690 §11.6). */
export const derSetOf = (...items: Uint8Array[]): Buffer => derTlv(TAG.SET, Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b))));

export const derNull = (): Buffer => Buffer.from([TAG.NULL, 0]);

export const derBoolean = (v: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, v ? 0xff : 0x00]);

export const derOctetString = (v: Uint8Array): Buffer => derTlv(TAG.OCTET_STRING, v);

export const derUtf8String = (s: string): Buffer => derTlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));

/** An INTEGER from a bigint (any sign), minimal two's complement. */
export function derInteger(v: bigint | number, tag: number = TAG.INTEGER): Buffer {
  let n = BigInt(v);
  const bytes: number[] = [];
  if (n >= 0n) {
    do {
      bytes.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    if (bytes[0]! & 0x80) bytes.unshift(0);
  } else {
    do {
      bytes.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n < -1n || (bytes[0]! & 0x80) === 0);
  }
  return derTlv(tag, Buffer.from(bytes));
}

/** An OBJECT IDENTIFIER from dotted form ("1.2.840.113549.1.9.16.1.4"). */
export function derOid(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new RangeError(`DER: "${dotted}" is not a dotted OBJECT IDENTIFIER`);
  const arcs = dotted.split('.').map(BigInt);
  const [a, b] = arcs as [bigint, bigint];
  if (a < 2n && b > 39n) throw new RangeError(`DER: OID ${dotted}: second arc must be below 40 under arc ${a}`);
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...arcs.slice(2)]) {
    const group: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) group.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...group);
  }
  return derTlv(TAG.OID, Buffer.from(out));
}
