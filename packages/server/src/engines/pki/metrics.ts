import { Gauge, type Registry } from 'prom-client';
import type { Executor } from '../../storage/database.js';

/**
 * `certificate_expiry_seconds{certificate_type,service}` (ADR 0002: base units; `certificate_expiry_days` is a
 * recording rule): time left on each CA, and on the newest valid certificate of each service or ACME name set — an
 * older certificate that a renewal superseded must not page anyone.
 */
export function pkiMetrics(registry: Registry, db: () => Executor, clock: () => Date): void {
  new Gauge({
    name: 'certificate_expiry_seconds',
    help: 'Seconds until expiry: each CA (certificate_type root|intermediate, service = CA name) and the newest valid certificate per service (certificate_type = its template, e.g. service, acme).',
    labelNames: ['certificate_type', 'service'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const now = clock().getTime();
      const cas = await db().selectFrom('pki_cas').select(['name', 'kind', 'not_after']).where('status', '=', 'active').where('not_after', 'is not', null).execute();
      for (const c of cas) this.set({ certificate_type: c.kind, service: c.name }, (Date.parse(c.not_after!) - now) / 1000);
      const leaves = await db()
        .selectFrom('pki_certificates')
        .select(({ fn }) => ['template', 'service', 'sans', fn.max('not_after').as('not_after')])
        .where('status', '=', 'valid')
        .groupBy(['template', 'service', 'sans'])
        .execute();
      const newest = new Map<string, number>();
      for (const l of leaves) {
        const name = l.service ?? (JSON.parse(l.sans) as string[])[0]?.replace(/^[a-z]+:/, '') ?? 'unknown';
        const key = `${l.template}\u0000${name}`;
        newest.set(key, Math.max(newest.get(key) ?? -Infinity, Date.parse(String(l.not_after))));
      }
      for (const [key, notAfter] of newest) {
        const [certificate_type, service] = key.split('\u0000') as [string, string];
        this.set({ certificate_type, service }, (notAfter - now) / 1000);
      }
    },
  });
}
