import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { isPalisadeError } from '@palisade/core';
import type { Executor } from '../../storage/database.js';

/** The seed's encryption metrics (names and labels from "Monitoring & Alerting"). */
export interface KmsMetrics {
  encryption(algorithm: string, keyType: string, status: 'success' | 'failure', operation: string, seconds: number): void;
  decryption(algorithm: string, keyType: string, status: 'success' | 'failure' | 'unauthorized', seconds?: number): void;
  rotation(keyType: string, status: 'success' | 'failure'): void;
  failure(err: unknown, operation: string): void;
}

export function kmsMetrics(registry: Registry, db: () => Executor, clock: () => Date): KmsMetrics {
  const enc = new Counter({ name: 'encryption_operations_total', help: 'Encryption operations by algorithm, key type and outcome.', labelNames: ['algorithm', 'key_type', 'status'] as const, registers: [registry] });
  const dec = new Counter({ name: 'decryption_operations_total', help: 'Decryption operations by algorithm, key type and outcome (unauthorized = refused by authentication or permission).', labelNames: ['algorithm', 'key_type', 'status'] as const, registers: [registry] });
  // Present from the start at 0, so increase() sees the first refusal (UnauthorizedDecryption alert).
  dec.inc({ algorithm: 'unknown', key_type: 'unknown', status: 'unauthorized' }, 0);
  const duration = new Histogram({
    name: 'encryption_operation_duration_seconds',
    help: 'Duration of encryption and decryption operations inside the KMS.',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0],
    registers: [registry],
  });
  const rotations = new Counter({ name: 'key_rotations_total', help: 'Key rotations by key type and outcome.', labelNames: ['key_type', 'status'] as const, registers: [registry] });
  const failures = new Counter({ name: 'encryption_failures_total', help: 'Failed cryptographic operations by error type and component.', labelNames: ['error_type', 'component'] as const, registers: [registry] });
  new Gauge({
    name: 'key_age_seconds',
    help: 'Age of the current version of each live key (the seed\'s key_age_days is a recording rule in deploy/prometheus).',
    labelNames: ['key_id', 'key_type'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db().selectFrom('kms_keys').select(['key_id', 'key_type', 'rotated_at']).where('status', 'in', ['active', 'disabled', 'rotating', 'deprecated']).execute();
      const now = clock().getTime();
      for (const r of rows) this.set({ key_id: r.key_id, key_type: r.key_type }, (now - Date.parse(r.rotated_at)) / 1000);
    },
  });
  return {
    encryption(algorithm, keyType, status, operation, seconds) {
      enc.inc({ algorithm, key_type: keyType, status });
      duration.observe({ operation }, seconds);
    },
    decryption(algorithm, keyType, status, seconds) {
      dec.inc({ algorithm, key_type: keyType, status });
      if (seconds !== undefined) duration.observe({ operation: 'decrypt' }, seconds);
    },
    rotation(keyType, status) {
      rotations.inc({ key_type: keyType, status });
    },
    failure(err, operation) {
      const code = isPalisadeError(err) ? err.code.replace(/^PAL_(KMS_)?/, '').toLowerCase() : 'internal';
      failures.inc({ error_type: code, component: `kms_${operation}` });
    },
  };
}
