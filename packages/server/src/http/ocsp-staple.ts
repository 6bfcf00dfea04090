/**
 * OCSP stapling (the seed's `ocsp_stapling: true`): the listener answers a client's status request with an OCSP
 * response for its own certificate, fetched through a port and cached until it is due for refresh.
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, id_pkix_ocsp_basic, OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp';

/**
 * Where staples come from (the PKI engine's OCSP responder): the DER OCSPResponse for `leafDer` issued by
 * `issuerDer`, or null when there is none to staple. Called off the handshake path whenever possible.
 */
export type OcspStapler = (leafDer: Buffer, issuerDer: Buffer) => Promise<Buffer | null>;

/** A response without nextUpdate ("newer information is always available") is re-fetched after this long. */
const NO_NEXT_UPDATE_REFRESH_MS = 3_600_000;
/** After a failure, an unsuccessful response or no response, the port is asked again after this long. */
const RETRY_MS = 60_000;

interface Entry {
  response: Buffer | null;
  /** Ask the port again from this time on (the cached response is still served meanwhile). */
  refreshAt: number;
  /** Never staple the response after this time (its nextUpdate). */
  expiresAt: number;
}

/** The validity window of a successful OCSP response, or null for anything else (not stapled). */
export function ocspWindow(der: Buffer): { thisUpdate: number; nextUpdate: number | null } | null {
  try {
    const res = AsnConvert.parse(der, OCSPResponse);
    if (res.responseStatus !== OCSPResponseStatus.successful || res.responseBytes?.responseType !== id_pkix_ocsp_basic) return null;
    const basic = AsnConvert.parse(res.responseBytes.response, BasicOCSPResponse);
    const singles = basic.tbsResponseData.responses;
    if (singles.length === 0) return null;
    const thisUpdate = Math.max(...singles.map((s) => s.thisUpdate.getTime()));
    const nexts = singles.map((s) => s.nextUpdate?.getTime()).filter((t): t is number => t !== undefined);
    return { thisUpdate, nextUpdate: nexts.length === singles.length ? Math.min(...nexts) : null };
  } catch {
    return null;
  }
}

/**
 * One cached staple per served certificate. A response is refreshed halfway through its validity window (so a
 * responder outage of up to half that window goes unnoticed by clients) and never stapled after its nextUpdate.
 */
export class StapleCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Buffer | null>>();

  constructor(
    private readonly fetch: OcspStapler,
    private readonly clock: () => Date,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** The staple for a handshake: the cached one when fresh, else the one being fetched. */
  async get(leaf: Buffer, issuer: Buffer): Promise<Buffer | null> {
    const key = fingerprint(leaf);
    const now = this.clock().getTime();
    const entry = this.#entries.get(key);
    if (entry && now < entry.refreshAt) return entry.response;
    const refreshing = this.#refresh(key, leaf, issuer);
    if (entry?.response && now < entry.expiresAt) return entry.response; // still valid: serve it while refreshing
    return refreshing;
  }

  /** Fetch ahead of the first handshake (a new certificate), and forget the staples of certificates no longer served. */
  prefetch(leaf: Buffer, issuer: Buffer): void {
    const key = fingerprint(leaf);
    for (const k of this.#entries.keys()) if (k !== key) this.#entries.delete(k);
    void this.#refresh(key, leaf, issuer);
  }

  #refresh(key: string, leaf: Buffer, issuer: Buffer): Promise<Buffer | null> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = this.#fetchEntry(leaf, issuer)
      .then((entry) => {
        this.#entries.set(key, entry);
        return entry.response;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  async #fetchEntry(leaf: Buffer, issuer: Buffer): Promise<Entry> {
    const fetchedAt = this.clock().getTime();
    const retry: Entry = { response: null, refreshAt: fetchedAt + RETRY_MS, expiresAt: 0 };
    let der: Buffer | null;
    try {
      der = await this.fetch(leaf, issuer);
    } catch (e) {
      this.onError(e);
      return retry;
    }
    const window = der ? ocspWindow(der) : null;
    if (!der || !window) return retry;
    if (window.nextUpdate === null) return { response: der, refreshAt: fetchedAt + NO_NEXT_UPDATE_REFRESH_MS, expiresAt: fetchedAt + NO_NEXT_UPDATE_REFRESH_MS };
    if (window.nextUpdate <= fetchedAt) return retry; // already stale: stapling it would make clients fail
    const half = window.thisUpdate + (window.nextUpdate - window.thisUpdate) / 2;
    return { response: der, refreshAt: Math.min(Math.max(half, fetchedAt + RETRY_MS / 2), window.nextUpdate), expiresAt: window.nextUpdate };
  }
}

function fingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
