import type { Logger } from 'pino';
import type { Config } from '../../config/config.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { Storage } from '../../storage/database.js';
import { Accounts } from './accounts.js';
import { Certificates } from './certificates.js';
import { Validator } from './challenges/validator.js';
import { EabKeys } from './eab.js';
import { NonceStore } from './nonces.js';
import { Orders } from './orders.js';
import type { AcmeCertificateAuthority } from './ports.js';

export interface AcmeDeps {
  storage: Storage;
  ledger: AuditLedger;
  barrier: () => Barrier;
  ca: AcmeCertificateAuthority;
  config: Config['acme'];
  clock: () => Date;
  log: Logger;
}

/** The ACME engine's parts, wired once: the protocol routes (acmeRoutes) and the EAB admin routes use them. */
export class AcmeEngine {
  readonly nonces: NonceStore;
  readonly eab: EabKeys;
  readonly accounts: Accounts;
  readonly orders: Orders;
  readonly certificates: Certificates;
  readonly validator: Validator;

  constructor(readonly deps: AcmeDeps) {
    const c = deps.config;
    this.nonces = new NonceStore(deps.storage, deps.clock, c.nonce_ttl_seconds);
    this.eab = new EabKeys(deps.barrier, deps.clock);
    this.accounts = new Accounts(this.eab, { requireEab: c.require_eab, termsOfService: c.terms_of_service, clock: deps.clock });
    this.orders = new Orders({ ca: deps.ca, clock: deps.clock, orderTtlHours: c.order_ttl_hours, newOrdersPerHour: c.new_orders_per_hour });
    this.certificates = new Certificates(deps.ca, this.orders, deps.clock);
    this.validator = new Validator({
      storage: deps.storage,
      ledger: deps.ledger,
      clock: deps.clock,
      log: deps.log,
      httpPort: c.challenge.http_port,
      tlsPort: c.challenge.tls_port,
      timeoutSeconds: c.challenge.timeout_seconds,
      policy: { dnsServers: c.challenge.dns_servers, timeoutMs: c.challenge.timeout_seconds * 1000, allowLoopback: c.challenge.allow_loopback, allowLinkLocal: c.challenge.allow_link_local },
    });
  }

  #timer: NodeJS.Timeout | null = null;

  /** Resume abandoned validations now and then (a background job; `serve` starts it). */
  start(isSealed: () => boolean): void {
    const every = Math.max(30, 2 * this.deps.config.challenge.timeout_seconds) * 1000;
    this.#timer = setInterval(() => {
      if (isSealed()) return;
      this.validator.resume().catch((e: unknown) => this.deps.log.error({ err: e }, 'resuming ACME validations failed'));
    }, every);
    this.#timer.unref();
  }

  /** Stop the job and let validations under way finish (before the database closes). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.validator.idle();
  }
}
