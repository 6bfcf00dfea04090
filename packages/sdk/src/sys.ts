import type { Approval, InitRequest, RecoveryShares, RekeyRequest, SealStatus, UnsealRequest } from '@palisade/core';
import type { Transport } from './transport.js';

/** The seal lifecycle (`palisade operator ...`). Status, init and unseal need no token; seal and rekey do. */
export class SysClient {
  constructor(private readonly t: Transport) {}

  sealStatus(): Promise<SealStatus> {
    return this.t.send('GET', '/v1/sys/seal-status');
  }
  init(req: InitRequest): Promise<RecoveryShares> {
    return this.t.send('POST', '/v1/sys/init', req);
  }
  unseal(req: UnsealRequest): Promise<SealStatus> {
    return this.t.send('POST', '/v1/sys/unseal', req);
  }
  seal(): Promise<SealStatus> {
    return this.t.send('POST', '/v1/sys/seal');
  }
  /** Root rotation (file, pkcs11): an approval request; a second principal's approval runs it. */
  rotateRoot(): Promise<Approval> {
    return this.t.send('POST', '/v1/sys/rotate-root');
  }
  rekey(req: RekeyRequest): Promise<RecoveryShares> {
    return this.t.send('POST', '/v1/sys/rekey', req);
  }
}
