import { Counter, Histogram, type Registry } from 'prom-client';
import type { ProviderObserver } from './provider.js';

/** `hsm_operations_total{operation,status}` (the seed's name; status success|failed) and the operations' latency. */
export function hsmMetrics(registry: Registry): { observe: ProviderObserver } {
  const ops = new Counter({ name: 'hsm_operations_total', help: 'Root-of-trust (PKCS#11 token) operations by operation and outcome.', labelNames: ['operation', 'status'] as const, registers: [registry] });
  const duration = new Histogram({ name: 'hsm_operation_duration_seconds', help: 'Latency of root-of-trust operations.', labelNames: ['operation'] as const, buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] });
  for (const operation of ['wrap', 'unwrap', 'check'] as const) for (const status of ['success', 'failed'] as const) ops.inc({ operation, status }, 0);
  return {
    observe: (operation, status, seconds) => {
      ops.inc({ operation, status: status === 'success' ? 'success' : 'failed' });
      duration.observe({ operation }, seconds);
    },
  };
}
