// The canonical form of an HTTP request for HMAC request signing (`Palisade-Signature`, version v1).
import { PalisadeError } from '../errors/index.js';

/** The first line of every v1 canonical request (domain separation: the bytes cannot be mistaken for another format). */
export const SIGNATURE_V1_ALGORITHM = 'PALISADE-HMAC-SHA256-V1';

/** Header values as Node gives them (`IncomingHttpHeaders`) or as a client builds them; names in any case. */
export type HeaderBag = Readonly<Record<string, string | readonly string[] | number | undefined>>;

export interface CanonicalRequestInput {
  /** The signing key's id (bound into the signature, so one secret shared by two ids cannot replay across them). */
  keyId: string;
  method: string;
  /** The path as sent on the request line, without the query (`/v1/kms/keys/a%20b`). */
  path: string;
  /** The query as sent, without the leading `?` (`''` when none). */
  query: string;
  headers: HeaderBag;
  /** Names of the headers covered by the signature (any case; duplicates refused). */
  signedHeaders: readonly string[];
  /** Lower-case hex SHA-256 of the body bytes exactly as sent (of the empty string when there is no body). */
  bodySha256: string;
  /** Unix time in whole seconds. */
  timestamp: number;
  /** At least 128 random bits, base64url without padding (22..128 characters). */
  nonce: string;
}

/** SHA-256 of the empty string: the body hash of a request without a body. */
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export const KEY_ID = /^[A-Za-z0-9._~-]{1,128}$/;
export const NONCE = /^[A-Za-z0-9_-]{22,128}$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 §5.6.2 token: header names and methods
const HEX64 = /^[0-9a-f]{64}$/;
const UNRESERVED = /[A-Za-z0-9\-._~]/; // RFC 3986 §2.3

function malformed(detail: string): PalisadeError {
  return new PalisadeError('PAL_SIGNATURE_MALFORMED', detail);
}

const pct = (byte: number) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;

/** RFC 3986 encoding of bytes: unreserved characters as themselves, every other byte %XX with upper-case hex. */
function encodeBytes(bytes: Uint8Array, keep = ''): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && (UNRESERVED.test(c) || keep.includes(c)) ? c : pct(b);
  }
  return out;
}

/**
 * The bytes a URI component stands for: `%XX` is the byte XX, any other character its UTF-8 bytes; with `plusIsSpace`
 * (queries, as WHATWG form decoding and Fastify's query parser read them) `+` is a space. A `%` not followed by two
 * hex digits is refused: servers disagree about what it means.
 */
function decodeComponent(s: string, what: string, plusIsSpace: boolean): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw malformed(`${what} has malformed percent-encoding at offset ${i}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (plusIsSpace && ch === '+') {
      out.push(0x20);
    } else {
      const cp = s.codePointAt(i)!;
      if (cp > 0xffff) i++; // the low surrogate was consumed with the code point
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) out.push(b);
    }
  }
  return Buffer.from(out);
}

/**
 * The path with its percent-encoding normalised: each segment (between literal `/`) is decoded to bytes and
 * re-encoded per RFC 3986 (unreserved characters literal, every other byte `%XX`, upper-case hex). A literal `/`
 * stays a separator and an encoded `%2F` stays encoded, so `/a%2Fb` and `/a/b` differ. Dot segments are not
 * removed: the path is signed as the server's router will see it. An empty path is `/`.
 */
export function canonicalPath(path: string): string {
  if (path === '') return '/';
  if (!path.startsWith('/')) throw malformed('the path must start with "/"');
  return path
    .split('/')
    .map((seg) => encodeBytes(decodeComponent(seg, 'the path', false)))
    .join('/');
}

/**
 * The query as `name=value` pairs joined by `&`: pairs split on `&` (empty pieces dropped), each at its first `=` (a
 * name without `=` has the empty value), names and values decoded (`+` is a space) and re-encoded per RFC 3986, then
 * sorted by encoded name, then by encoded value (code-unit order). `?b=2&a=1` and `?a=1&b=2` are the same query.
 */
export function canonicalQuery(query: string): string {
  const q = query.startsWith('?') ? query.slice(1) : query;
  if (q === '') return '';
  const pairs = q
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const [name, value] = eq === -1 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
      return [encodeBytes(decodeComponent(name, 'the query', true)), encodeBytes(decodeComponent(value, 'the query', true))] as const;
    });
  pairs.sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/**
 * A header value as signed: runs of HTTP whitespace (SP, HTAB, CR, LF) become one space, then leading and trailing
 * spaces go; repeated values are joined by `, `, as a Node server joins repeated header lines.
 */
function headerValue(v: string | readonly string[] | number): string {
  const values = Array.isArray(v) ? (v as readonly string[]) : [String(v)];
  return values.map((x) => x.replace(/[ \t\r\n]+/g, ' ').replace(/^ | $/g, '')).join(', ');
}

/** Signed header names, lower-cased and sorted; refuses an empty list, a non-token name and duplicates. */
export function normaliseSignedHeaders(names: readonly string[]): string[] {
  if (names.length === 0) throw malformed('no headers are signed (at least `host` must be)');
  const lower = names.map((n) => n.toLowerCase());
  for (const n of lower) if (!TOKEN.test(n)) throw malformed(`"${n}" is not a header name`);
  const sorted = [...lower].sort();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) throw malformed(`header "${sorted[i]}" is listed twice`);
  return sorted;
}

/**
 * The canonical request of signature version v1: the exact text that is HMAC-SHA256'd. Lines joined by `\n` (LF), no
 * trailing newline:
 *
 * ```
 * PALISADE-HMAC-SHA256-V1              algorithm and version
 * <key id>                             [A-Za-z0-9._~-]{1,128}
 * <METHOD>                             upper-cased; an RFC 9110 token
 * <path>                               canonicalPath(): as sent, percent-encoding normalised, `/` never decoded
 * <query>                              canonicalQuery(): pairs RFC 3986-encoded, sorted by name then value ('' if none)
 * <name>:<value>                       one line per signed header, sorted by name: name lower-cased, value trimmed,
 * ...                                    inner whitespace collapsed to one space, repeated values joined by `, `
 * <name>;<name>;...                    the signed header names, lower-cased, sorted, joined by `;`
 * <hex sha-256 of the body>            of the bytes as sent; e3b0c442…b855 (SHA-256 of '') without a body
 * <timestamp>                          unix seconds, decimal integer
 * <nonce>                              base64url, no padding, 22..128 characters (≥ 128 random bits)
 * ```
 *
 * The text is unambiguous: no field can hold a line feed (paths and queries are percent-encoded, header values have
 * whitespace collapsed), and the number of header lines is the number of names on the line after them. Every signed
 * header must be present in `headers` (an absent one is PAL_SIGNATURE_MALFORMED, never an empty value).
 *
 * Like AWS SigV4's canonical request, without its credential scope and derived keys: one HMAC key per key id.
 * Versioning: a future version (v2) gets its own first line and its own function next to this one, and the
 * `Palisade-Signature` header's first element (`v1`) selects which; v1 stays as it is for as long as it is accepted.
 */
export function canonicalRequest(input: CanonicalRequestInput): string {
  const { keyId, method, path, query, headers, signedHeaders, bodySha256, timestamp, nonce } = input;
  if (!KEY_ID.test(keyId)) throw malformed('the key id must be 1..128 characters of [A-Za-z0-9._~-]');
  const m = method.toUpperCase();
  if (!TOKEN.test(m)) throw malformed('the method is not an HTTP token');
  if (!HEX64.test(bodySha256)) throw malformed('the body hash must be 64 lower-case hex digits');
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw malformed('the timestamp must be a non-negative integer (unix seconds)');
  if (!NONCE.test(nonce)) throw malformed('the nonce must be 22..128 base64url characters (at least 128 bits)');
  const names = normaliseSignedHeaders(signedHeaders);
  const byName = new Map<string, string | readonly string[] | number>();
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) byName.set(k.toLowerCase(), v);
  const headerLines = names.map((n) => {
    const v = byName.get(n);
    if (v === undefined) throw malformed(`the signed header "${n}" is absent from the request`);
    return `${n}:${headerValue(v)}`;
  });
  return [SIGNATURE_V1_ALGORITHM, keyId, m, canonicalPath(path), canonicalQuery(query), ...headerLines, names.join(';'), bodySha256, String(timestamp), nonce].join('\n');
}

/** A request target (`/path?query`, or an absolute URL) split into its path and query as sent (nothing decoded). */
export function splitTarget(target: string): { path: string; query: string } {
  let t = target;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
  if (abs) t = t.slice(abs[0].length);
  const hash = t.indexOf('#');
  if (hash !== -1) t = t.slice(0, hash);
  const q = t.indexOf('?');
  const path = q === -1 ? t : t.slice(0, q);
  return { path: path === '' ? '/' : path, query: q === -1 ? '' : t.slice(q + 1) };
}
