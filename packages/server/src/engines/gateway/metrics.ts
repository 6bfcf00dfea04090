import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface GatewayMetrics {
  /** One answer of the gateway: its route (or `unmatched`), status, total and upstream seconds (null: not proxied). */
  answered(route: string, status: number, seconds: number, upstreamSeconds: number | null): void;
  /** A refusal, by error code (rate limits, malformed requests, authentication, authorization, screening). */
  refused(route: string, code: string): void;
  screened(route: string, verdict: 'pass' | 'flag' | 'block' | 'unscreened'): void;
  circuit(upstream: string, state: 'closed' | 'open' | 'half_open'): void;
}

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  const requests = new Counter({ name: 'gateway_requests_total', help: 'Requests the gateway answered, by route and status code.', labelNames: ['route', 'status'] as const, registers: [registry] });
  const duration = new Histogram({
    name: 'gateway_request_duration_seconds',
    help: 'Time from a request\'s arrival at the gateway to its response headers, by route.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const upstream = new Histogram({
    name: 'gateway_upstream_duration_seconds',
    help: 'Time for the upstream to start its answer, by route.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const refusals = new Counter({ name: 'gateway_refusals_total', help: 'Requests the gateway refused, by route and error code.', labelNames: ['route', 'code'] as const, registers: [registry] });
  const screenings = new Counter({ name: 'gateway_prompt_screenings_total', help: 'Prompt screenings, by route and verdict (pass, flag, block, unscreened: no detector set).', labelNames: ['route', 'verdict'] as const, registers: [registry] });
  const circuits = new Gauge({ name: 'gateway_circuit_open', help: 'Whether an upstream\'s circuit is open (1), half-open (0.5) or closed (0).', labelNames: ['upstream'] as const, registers: [registry] });
  return {
    answered(route, status, seconds, upstreamSeconds) {
      requests.inc({ route, status: String(status) });
      duration.observe({ route }, seconds);
      if (upstreamSeconds !== null) upstream.observe({ route }, upstreamSeconds);
    },
    refused(route, code) {
      refusals.inc({ route, code });
    },
    screened(route, verdict) {
      screenings.inc({ route, verdict });
    },
    circuit(name, state) {
      circuits.set({ upstream: name }, state === 'open' ? 1 : state === 'half_open' ? 0.5 : 0);
    },
  };
}
