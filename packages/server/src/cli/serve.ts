import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { loadConfig, splitAddr } from '../config/config.js';
import { createLogger } from '../logging.js';
import { createRuntime } from '../runtime.js';
import { lowerGcThreadPriority } from './gc-threads.js';

/** `palisade serve`: initialise on first start, then serve HTTPS until SIGTERM/SIGINT, draining in-flight requests. */
export async function serve(): Promise<void> {
  // A long-running server: V8's memory reducer (made for idle browser tabs) runs a full mark-compact when allocation
  // drops, and on a busy machine its marking stalls the first requests after a lull by tens of ms (ADR 0015).
  setFlagsFromString('--no-memory-reducer');
  const config = loadConfig();
  // Before the logger or anything else starts threads of its own (the platform's are found by their order).
  const gcThreads = lowerGcThreadPriority(config.gc_threads_nice);
  const log = createLogger(config.log_level);
  if ('reniced' in gcThreads) log.debug({ threads: gcThreads.reniced.length, nice: gcThreads.nice }, 'V8 GC threads niced');
  else if (config.gc_threads_nice !== 0) log.warn({ reason: gcThreads.skipped }, 'V8 GC threads left at normal priority');
  let draining = false;
  const banner = (token: string) =>
    process.stderr.write(
      [
        '',
        '==================================================================',
        ' Palisade initialised. The owner API key (shown once; also saved',
        ` to ${join(config.data_dir, 'bootstrap-token')}, mode 0600):`,
        '',
        `   ${token}`,
        '',
        ` Clients trust the CA in ${join(config.data_dir, 'tls', 'ca.pem')}`,
        '==================================================================',
        '',
      ].join('\n'),
    );
  const rt = await createRuntime(config, { log, tls: true, isDraining: () => draining, onOwnerToken: banner });
  rt.startJobs();
  const { host, port } = splitAddr(config.addr);
  await rt.app.listen({ host, port });
  if (rt.gateway) await rt.gateway.listen();
  log.info({ addr: config.addr, tls_min_version: config.tls.min_version, database: rt.storage.dialect, seal: rt.seal.provider }, 'palisade is serving');

  const shutdown = (signal: string) => {
    if (draining) return;
    draining = true;
    log.info({ signal }, 'draining in-flight requests');
    const timer = setTimeout(() => {
      log.error({ grace_seconds: config.shutdown_grace_seconds }, 'shutdown grace period expired; exiting');
      process.exit(1);
    }, config.shutdown_grace_seconds * 1000);
    timer.unref();
    rt.close().then(
      () => {
        log.info('closed cleanly');
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: e }, 'error while closing');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
