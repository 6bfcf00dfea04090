import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Why an outbound POST did not produce an answer: callers word it in their own terms. */
export class PostError extends Error {
  constructor(
    readonly kind: 'timeout' | 'too-large' | 'network',
    message: string,
    readonly status = 0,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface PostOptions {
  headers: Record<string, string>;
  /** One deadline for connecting, sending and reading the whole answer. */
  timeoutMs: number;
  /** For https: the CAs to trust (add `...tls.rootCertificates` to keep the public roots). */
  ca?: string | Buffer | Array<string | Buffer>;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Answers larger than this fail with kind 'too-large' (default 1 MiB). */
  maxResponseBytes?: number;
  /** Read and drop the answer's body instead of keeping it. */
  discardBody?: boolean;
  /** Aborts the request (e.g. when the caller shuts down). */
  signal?: AbortSignal;
}

/**
 * POST `body` to an http(s) URL and read the answer within one deadline and a size cap, for the server's outbound
 * integrations (time-stamping authorities, witnesses, webhooks). Redirects are not followed. Never hangs: the
 * deadline covers a peer that never answers or never finishes its body.
 */
export function postBuffer(url: URL, body: Buffer, opts: PostOptions): Promise<{ status: number; contentType: string; body: Buffer }> {
  const max = opts.maxResponseBytes ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    let settled = false;
    let res: IncomingMessage | undefined;
    const done = (err: PostError | null, answer?: { status: number; contentType: string; body: Buffer }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', abort);
      if (err) {
        res?.destroy();
        req.destroy();
        reject(err);
      } else resolve(answer!);
    };
    const abort = () => done(new PostError('network', 'aborted'));
    const timer = setTimeout(() => done(new PostError('timeout', `no complete answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const https = url.protocol === 'https:';
    const options = {
      method: 'POST',
      headers: { 'content-length': String(body.length), ...opts.headers },
      ...(https ? { ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.minVersion ? { minVersion: opts.minVersion } : {}) } : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(url, options, (r) => {
      res = r;
      const status = r.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      r.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) return done(new PostError('too-large', `the answer exceeds ${max} bytes`, status));
        if (!opts.discardBody) chunks.push(c);
      });
      r.on('error', (e) => done(new PostError('network', e.message, status, { cause: e })));
      r.on('end', () => done(null, { status, contentType: String(r.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    req.on('error', (e) => done(new PostError('network', e.message, 0, { cause: e })));
    opts.signal?.addEventListener('abort', abort);
    req.end(body);
  });
}
