import { Registry } from 'prom-client';

/**
 * One registry per server instance, without prom-client's default process metrics (their names do not pass
 * `promtool check metrics`). Engines add their own collectors to it.
 */
export function createRegistry(): Registry {
  return new Registry();
}
