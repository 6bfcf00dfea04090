import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditLedger } from './ledger.js';

/** The ledger's own metrics: its size, and every append that failed (requests fail closed then; /readyz says so). */
export function auditMetrics(registry: Registry, ledger: AuditLedger): void {
  const failures = new Counter({ name: 'audit_write_failures_total', help: 'Audit appends that failed; the operation they recorded was refused (fail closed).', registers: [registry] });
  ledger.onWriteFailure = () => failures.inc();
  new Gauge({
    name: 'audit_log_size',
    help: 'Entries in the audit log (the Merkle tree size).',
    registers: [registry],
    async collect() {
      this.set(await ledger.size());
    },
  });
}
