/**
 * The gateway as the runtime starts it: the rate-limit store (Redis when `redis_url` is set, so limits hold exactly
 * across nodes; this process otherwise), the engine, and its listener with its own hot-reloading certificate.
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { splitAddr } from '../../config/config.js';
import { ListenerTls, type ListenerTlsOptions } from '../../http/listener-tls.js';
import type { GatewayConfig } from './config.js';
import { Gateway, type GatewayDeps } from './gateway.js';
import { createGatewayServer } from './listener.js';
import { gatewayMetrics } from './metrics.js';
import { MemorySlidingWindowLimiter, RedisSlidingWindowLimiter, type SlidingWindowLimiter } from './rate-limit.js';
import { MemoryReplayCache, RedisReplayCache, type ReplayCache } from '../../kernel/signing/replay-cache.js';
import { signatureVerifier, type SigningKeys } from './signing-keys.js';
import { closeRedis, connectRedis } from '../../storage/redis.js';

export interface GatewayRuntime {
  engine: Gateway;
  server: HttpServer;
  /** Listen on `gateway.addr` (or the given port, 0 for any); the base URL it serves. */
  listen(port?: number): Promise<string>;
  /** Pick up a new certificate or trust roots now (the PKI changed), not at the next poll. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenGatewayOptions extends Omit<GatewayDeps, 'limiter' | 'metrics' | 'config' | 'signatures'> {
  config: GatewayConfig;
  /** The secrets of signed requests (routes with `signed`). */
  signingKeys: Pick<SigningKeys, 'secretFor'>;
  redisUrl?: string | undefined;
  /** The listener's TLS (the server's certificate source); absent: plain HTTP (tests). */
  tls?: Omit<ListenerTlsOptions, 'clock' | 'log'> | undefined;
  registry: Registry;
  log: Logger;
}

export async function openGateway(o: OpenGatewayOptions): Promise<GatewayRuntime> {
  // Rate-limit windows and the nonces of signed requests: in Redis when there is one, so they hold across nodes.
  // One connection serves both (each store leaves a caller's connection open; it is closed here).
  const redis = o.redisUrl ? connectRedis(o.redisUrl) : null;
  const limiter: SlidingWindowLimiter = redis ? new RedisSlidingWindowLimiter(redis) : new MemorySlidingWindowLimiter();
  const replay: ReplayCache = redis ? new RedisReplayCache(redis) : new MemoryReplayCache();
  const log = o.log.child({ component: 'gateway' });
  const { tls, redisUrl: _r, registry, signingKeys, ...deps } = o;
  const engine = new Gateway({ ...deps, log, limiter, signatures: signatureVerifier(signingKeys, replay, o.clock), metrics: gatewayMetrics(registry) });
  const listener = tls ? await ListenerTls.open({ ...tls, clock: o.clock, log }) : null;
  const server = createGatewayServer(engine, o.config.limits, listener?.serverOptions());
  if (listener) {
    if (!(server instanceof TlsServer)) throw new Error('the gateway listener is not an HTTPS server');
    listener.attach(server);
  }
  return {
    engine,
    server,
    async listen(port?: number) {
      const { host, port: configured } = splitAddr(o.config.addr);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port ?? configured, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const a = server.address() as AddressInfo;
      const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      log.info({ addr: `${h}:${a.port}`, routes: o.config.routes.length, rate_limits: o.redisUrl ? 'redis' : 'memory' }, 'gateway is serving');
      return `${listener ? 'https' : 'http'}://${h}:${a.port}`;
    },
    async reload() {
      await listener?.reload();
    },
    async close() {
      listener?.close();
      await new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Streams and relayed WebSockets still open after a grace period are cut, so shutdown cannot hang on a client
        // that never leaves.
        setTimeout(() => {
          server.closeAllConnections();
          engine.close();
        }, 2000).unref();
      });
      engine.close();
      await limiter.close();
      await replay.close();
      if (redis) await closeRedis(redis);
    },
  };
}
