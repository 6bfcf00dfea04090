/**
 * What the gateway checks on a request before it routes it, so that the route matched is exactly the resource the
 * upstream will serve.
 *
 * Path confusion is the classic way through a proxy: the proxy matches one path, the upstream resolves another
 * (`/framework/%2e%2e/admin`, `/framework/..;/admin` against Tomcat or Spring, `//admin`, `/admin%2fsecret`,
 * double encoding `%252e`, backslashes on Windows-minded servers, overlong UTF-8 `%c0%ae`). Envoy answers this with
 * `normalize_path` (RFC 3986 dot-segment removal), `merge_slashes` and `path_with_escaped_slashes_action` (which can
 * reject, redirect or unescape `%2F` / `%5C`): it rewrites the path into one canonical form and routes on that.
 * Palisade REFUSES instead of rewriting. A rewrite has to agree with every upstream's idea of the canonical form
 * (whether `;` starts parameters, whether `%2F` is a separator, whether `\` is one, whether NFKC is applied), and a
 * request that needs rewriting is, from an agent framework's clients, a broken client or an attack. Refusing keeps
 * one invariant that needs no knowledge of the upstream: the decoded path the router sees has no dot segment, no
 * empty segment, no backslash and no encoded separator, and the raw path forwarded decodes to exactly it.
 *
 * Header checks are here for the same reason: framing that two parsers could read differently (request smuggling),
 * and `Connection` naming an end-to-end header (which makes a proxy strip a header the upstream relies on), are
 * refused before anything is forwarded. Node's strict parser (llhttp) already refuses most malformed framing; these
 * checks do not assume it.
 */
import { PalisadeError } from '@palisade/core';

export interface RequestTarget {
  /** the path exactly as sent (percent-encoding kept), to forward */
  rawPath: string;
  /** decoded path used for routing */
  path: string;
  /** the query string without '?', as sent ('' when none) */
  query: string;
}

/** Why a request-target was refused (the `reason` extension of PAL_GATEWAY_PATH_REJECTED). */
export type PathRejection =
  | 'too-long'
  | 'not-origin-form'
  | 'fragment'
  | 'control-character'
  | 'invalid-character'
  | 'backslash'
  | 'bad-percent-encoding'
  | 'double-encoding'
  | 'encoded-slash'
  | 'encoded-backslash'
  | 'invalid-utf8'
  | 'unicode-confusable'
  | 'empty-segment'
  | 'dot-segment'
  | 'path-parameter';

/** Longest request-target accepted, in characters. */
export const MAX_TARGET_LENGTH = 8192;

function rejectPath(reason: PathRejection, message: string): never {
  throw new PalisadeError('PAL_GATEWAY_PATH_REJECTED', `Request target rejected: ${message}`, { extensions: { reason } });
}

const isControl = (c: number) => c <= 0x1f || c === 0x7f;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A segment that some server resolves as `.` or `..`: exactly that, or that before a `;` (matrix parameters). */
function isDotSegment(segment: string): boolean {
  const semi = segment.indexOf(';');
  const name = semi === -1 ? segment : segment.slice(0, semi);
  return name === '.' || name === '..';
}

/** The first problem with the segments of a decoded path (which starts with '/'), or null. */
function segmentProblem(path: string): { reason: 'empty-segment' | 'dot-segment'; message: string } | null {
  const segments = path.split('/');
  // segments[0] is the '' before the leading '/'; an empty last segment is a single trailing slash (or the root).
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    if (s === '' && i !== segments.length - 1) return { reason: 'empty-segment', message: 'an empty path segment (`//`)' };
    if (isDotSegment(s)) return { reason: 'dot-segment', message: 'a `.` or `..` path segment' };
  }
  return null;
}

/** Characters whose appearance through Unicode normalization (NFKC) would change how the path is split or decoded. */
const STRUCTURAL = ['/', '\\', '%', ';', '?', '#'];
const count = (s: string, c: string) => s.split(c).length - 1;

/**
 * Validates the request-target (req.url as received) and returns it split; throws PAL_GATEWAY_PATH_REJECTED with
 * extensions { reason } otherwise.
 *
 * Refused: anything longer than {@link MAX_TARGET_LENGTH}; anything but origin-form (`/…`; absolute-form and `*`
 * are refused); a `#`; a raw control character, space or non-ASCII character anywhere; in the path, a raw `\`,
 * `%` not followed by two hex digits, `%25` (double encoding), `%2F` or `%5C` (any case), percent-decoded bytes that
 * are not UTF-8 (overlong forms included), decoded control characters, a segment that is `.` or `..` (raw or
 * encoded, or before a `;`), an empty segment (a single trailing `/` is fine), a `;` (raw or encoded: matrix
 * parameters), and a non-ASCII character that NFKC
 * turns into a separator or a dot segment (`／`, `‥`, `．`). The query is passed through as sent.
 */
export function parseRequestTarget(rawUrl: string): RequestTarget {
  if (rawUrl.length > MAX_TARGET_LENGTH) rejectPath('too-long', `longer than ${MAX_TARGET_LENGTH} characters`);
  if (!rawUrl.startsWith('/')) rejectPath('not-origin-form', 'only origin-form targets (`/path?query`) are accepted');

  for (let i = 0; i < rawUrl.length; i++) {
    const c = rawUrl.charCodeAt(i);
    if (isControl(c)) rejectPath('control-character', 'a control character');
    if (c === 0x23) rejectPath('fragment', 'a fragment (`#`) is never sent to a server');
    if (c === 0x20 || c > 0x7e) rejectPath('invalid-character', 'a raw space or non-ASCII character (percent-encode it)');
  }

  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? '' : rawUrl.slice(q + 1);

  // Percent-decode the path once, to bytes; every non-'%' character is printable ASCII by now.
  const bytes = new Uint8Array(rawPath.length);
  let n = 0;
  let encoded = false;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === 0x5c) rejectPath('backslash', 'a backslash');
    if (c !== 0x25) {
      bytes[n++] = c;
      continue;
    }
    const hi = hexValue(rawPath.charCodeAt(i + 1));
    const lo = hexValue(rawPath.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) rejectPath('bad-percent-encoding', '`%` not followed by two hex digits');
    const b = hi * 16 + lo;
    if (b === 0x25) rejectPath('double-encoding', 'an encoded `%` (`%25`, double encoding)');
    if (b === 0x2f) rejectPath('encoded-slash', 'an encoded slash (`%2F`)');
    if (b === 0x5c) rejectPath('encoded-backslash', 'an encoded backslash (`%5C`)');
    bytes[n++] = b;
    encoded = true;
    i += 2;
  }

  let path = rawPath;
  if (encoded) {
    try {
      path = utf8.decode(bytes.subarray(0, n));
    } catch {
      rejectPath('invalid-utf8', 'percent-encoded bytes that are not valid UTF-8');
    }
    for (let i = 0; i < path.length; i++) {
      if (isControl(path.charCodeAt(i))) rejectPath('control-character', 'an encoded control character');
    }
  }

  const problem = segmentProblem(path);
  if (problem) rejectPath(problem.reason, problem.message);
  // `/admin;x/secret` routes as a segment `admin;x` here, and as `/admin/secret` on Tomcat or Spring (which strip
  // matrix parameters): a route for `/*` would let it past the rules of `/admin/*`.
  if (path.includes(';')) rejectPath('path-parameter', 'a `;` in the path (upstreams that strip matrix parameters would serve another resource than the one routed)');

  // Some upstreams apply NFKC (or a "best fit" mapping) to paths: `／` becomes `/`, `‥` becomes `..`.
  if (encoded && /[\u0080-\uffff]/.test(path)) {
    const nfkc = path.normalize('NFKC');
    if (nfkc !== path && (STRUCTURAL.some((s) => count(nfkc, s) !== count(path, s)) || segmentProblem(nfkc) !== null)) {
      rejectPath('unicode-confusable', 'a character that Unicode normalization turns into a separator or a dot segment');
    }
  }
  return { rawPath, path, query };
}

// ------------------------------------------------------------------------------------------------------- headers

/**
 * End-to-end headers the gateway or its upstreams rely on: a `Connection` header naming one would have a
 * hop-by-hop-stripping proxy remove it (from the client, or after the gateway set it), so it is refused.
 */
export const PROTECTED_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'host',
  'content-length',
  'content-type',
  'cookie',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'palisade-signature',
  'palisade-approval',
]);

/** RFC 9110 §5.6.2 token characters. */
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** HTTP/2 pseudo-headers, as Node's http2 compatibility layer puts them in rawHeaders. */
const PSEUDO_HEADERS = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
/** Any CTL but HTAB (RFC 9110 §5.5: CR, LF and NUL are dangerous, other CTLs invalid). */
// eslint-disable-next-line no-control-regex
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

function smuggling(header: string, reason: string, message: string): never {
  throw new PalisadeError('PAL_GATEWAY_REQUEST_SMUGGLING', `Ambiguous message framing: ${message}`, { extensions: { header, reason } });
}

function rejectHeader(header: string, reason: string, message: string): never {
  throw new PalisadeError('PAL_GATEWAY_HEADER_REJECTED', `Request header rejected: ${message}`, { extensions: { header, reason } });
}

/**
 * Validates headers for ambiguity before proxying (req.rawHeaders as Node gives them, a flat [name, value, ...]
 * array); throws PAL_GATEWAY_REQUEST_SMUGGLING or PAL_GATEWAY_HEADER_REJECTED (extensions { header, reason }).
 *
 * Smuggling: `Content-Length` with `Transfer-Encoding`; a `Content-Length` that is not 1*DIGIT, or several that
 * differ; more than one `Transfer-Encoding`, or one whose value is not exactly `chunked` (case-insensitive).
 * Rejected: a name that is not an RFC 9110 token (or a known HTTP/2 pseudo-header); a control character other
 * than HTAB in a value; more than one `Host` (or a `Host` that differs from `:authority`); a `Connection` that
 * names one of {@link PROTECTED_HEADERS}.
 */
export function checkRequestHeaders(rawHeaders: readonly string[]): void {
  if (rawHeaders.length % 2 !== 0) rejectHeader('', 'malformed', 'header names and values do not pair up');

  let contentLength: string | undefined;
  let transferEncodings = 0;
  let hosts = 0;
  let host: string | undefined;
  let authority: string | undefined;
  const connection: string[] = [];

  for (let i = 0; i < rawHeaders.length; i += 2) {
    const rawName = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const name = rawName.toLowerCase();
    if (!TCHAR.test(rawName) && !PSEUDO_HEADERS.has(name)) {
      rejectHeader(rawName.replace(/[^\x20-\x7e]/g, '?').slice(0, 64), 'invalid-name', 'a header name with characters outside RFC 9110 tokens');
    }
    if (BAD_VALUE_CHAR.test(value)) rejectHeader(name, 'control-character', `a control character in the value of ${name}`);

    switch (name) {
      case 'content-length':
        if (!/^[0-9]+$/.test(value)) smuggling(name, 'invalid-content-length', 'a Content-Length that is not a decimal number');
        if (contentLength !== undefined && contentLength !== value) smuggling(name, 'conflicting-content-length', 'several different Content-Length values');
        contentLength = value;
        break;
      case 'transfer-encoding':
        if (++transferEncodings > 1) smuggling(name, 'repeated-transfer-encoding', 'more than one Transfer-Encoding header');
        if (value.trim().toLowerCase() !== 'chunked') smuggling(name, 'unsupported-transfer-encoding', 'a Transfer-Encoding other than `chunked`');
        break;
      case 'host':
        if (++hosts > 1) rejectHeader(name, 'duplicate', 'more than one Host');
        host = value;
        break;
      case ':authority':
        authority = value;
        break;
      case 'connection':
        connection.push(value);
        break;
    }
  }

  if (contentLength !== undefined && transferEncodings > 0) smuggling('transfer-encoding', 'content-length-and-transfer-encoding', 'both Content-Length and Transfer-Encoding');
  if (host !== undefined && authority !== undefined && host.toLowerCase() !== authority.toLowerCase()) {
    rejectHeader('host', 'conflicting', 'Host differs from :authority');
  }
  for (const token of connection.join(',').split(',')) {
    const t = token.trim().toLowerCase();
    if (PROTECTED_HEADERS.has(t)) rejectHeader('connection', 'hop-by-hop-abuse', `Connection names the end-to-end header ${t}`);
  }
}
