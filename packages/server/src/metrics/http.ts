import { Counter, Histogram, type Registry } from 'prom-client';

export interface HttpMetrics {
  observe(method: string, route: string, status: number, seconds: number): void;
  /** One authorization decision of the pipeline. */
  decided(decision: 'allow' | 'deny' | 'approval_required'): void;
}

export function httpMetrics(registry: Registry): HttpMetrics {
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route pattern.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
    registers: [registry],
  });
  const decisions = new Counter({
    name: 'authz_decisions_total',
    help: 'Authorization decisions of the request pipeline, by outcome (allow, deny, approval_required).',
    labelNames: ['decision'] as const,
    registers: [registry],
  });
  return {
    observe(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe({ method, route }, seconds);
    },
    decided(decision) {
      decisions.inc({ decision });
    },
  };
}
