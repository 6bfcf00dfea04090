/**
 * Permissions are `engine:resource:action` strings. A grant matches a required permission segment by segment;
 * `*` matches one segment, and a trailing `*` matches everything below it (`kms:*` covers `kms:keys:create`).
 */
export function grants(granted: string, required: string): boolean {
  const g = granted.split(':');
  const r = required.split(':');
  for (let i = 0; i < g.length; i++) {
    const seg = g[i];
    if (seg === '*' && i === g.length - 1) return true;
    if (i >= r.length) return false;
    if (seg !== '*' && seg !== r[i]) return false;
  }
  return g.length === r.length;
}

export function hasPermission(held: readonly string[], required: string): boolean {
  return held.some((g) => grants(g, required));
}

/** A holder may delegate a permission only if what it delegates is covered by what it holds. */
export function canDelegate(held: readonly string[], wanted: string): boolean {
  return hasPermission(held, wanted) || held.includes('*');
}
