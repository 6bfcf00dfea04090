/**
 * Gateway path patterns: literal segments, `:name` for exactly one segment, and a trailing `*` for any rest (zero
 * or more segments). `/framework/*` matches `/framework` and everything below it, never `/frameworks`. Patterns match
 * the decoded path of a request target that request-target.ts accepted (no dot segments, no empty segments), so
 * matching segment by segment is exact.
 */
export interface PathPattern {
  readonly source: string;
  /** The literal segments before the first `:` or `*` (`/framework/v1` of `/framework/v1/:id/*`). */
  readonly prefix: string;
  match(path: string): boolean;
}

export function compilePattern(source: string): PathPattern {
  if (!source.startsWith('/')) throw new Error(`path pattern ${source} must start with /`);
  const segs = source === '/' ? [] : source.slice(1).replace(/\/$/, '').split('/');
  const rest = segs[segs.length - 1] === '*';
  const fixed = rest ? segs.slice(0, -1) : segs;
  for (const s of fixed) if (s === '' || s.includes('*')) throw new Error(`path pattern ${source}: * may only be the last segment, and segments may not be empty`);
  const firstParam = fixed.findIndex((s) => s.startsWith(':'));
  const literal = firstParam === -1 ? fixed : fixed.slice(0, firstParam);
  return {
    source,
    prefix: '/' + literal.join('/'),
    match(path: string): boolean {
      const parts = path === '/' ? [] : path.slice(1).replace(/\/$/, '').split('/');
      if (rest ? parts.length < fixed.length : parts.length !== fixed.length) return false;
      for (let i = 0; i < fixed.length; i++) {
        const f = fixed[i]!;
        if (f.startsWith(':') ? parts[i] === '' : f !== parts[i]) return false;
      }
      return true;
    },
  };
}
