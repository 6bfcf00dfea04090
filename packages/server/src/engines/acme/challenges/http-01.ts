/**
 * http-01 (RFC 8555 §8.3): GET http://<identifier>:<port>/.well-known/acme-challenge/<token> must answer the key
 * authorization. Redirects are followed (at most 10) only to the same host on port 80 (http) or 443 (https); the
 * body is capped; connections go only to addresses the policy allows.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { problem, type AcmeProblem } from '../problem.js';
import { addressesOf, type AddressPolicy } from './addresses.js';

const MAX_BODY = 8 * 1024;
const MAX_REDIRECTS = 10;

interface Answer {
  status: number;
  location: string | undefined;
  body: string;
}

const hostPart = (host: string) => (isIP(host) === 6 ? `[${host}]` : host);

function get(url: URL, ip: string, host: string, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === 'https:';
    const port = Number(url.port || (https ? 443 : 80));
    const headers = { host: port === (https ? 443 : 80) ? hostPart(host) : `${hostPart(host)}:${port}`, 'user-agent': 'palisade-acme-validator', accept: '*/*' };
    const opts = { host: ip, port, path: url.pathname + url.search, method: 'GET', headers, signal };
    const onResponse = (res: IncomingMessage) => {
      let size = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          res.destroy();
          reject(new Error(`the response is larger than ${MAX_BODY} bytes`));
        } else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = https
      ? httpsRequest({ ...opts, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) }, onResponse)
      : httpRequest(opts, onResponse);
    req.on('error', reject);
    req.end();
  });
}

export async function validateHttp01(a: { host: string; token: string; keyAuthorization: string; port: number; policy: AddressPolicy; signal: AbortSignal }): Promise<AcmeProblem | null> {
  let url = new URL(`http://${hostPart(a.host)}:${a.port}/.well-known/acme-challenge/${a.token}`);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const addresses = await addressesOf(a.host, a.policy);
    if (!Array.isArray(addresses)) return addresses;
    let answer: Answer | null = null;
    let lastError = '';
    for (const ip of addresses) {
      try {
        answer = await get(url, ip, a.host, a.signal);
        break;
      } catch (e) {
        if (a.signal.aborted) return problem('connection', `fetching ${url.href} timed out`);
        lastError = `${hostPart(ip)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      }
    }
    if (!answer) return problem('connection', `fetching ${url.href} failed (${lastError})`);
    if (answer.status >= 300 && answer.status < 400 && answer.location) {
      let next: URL;
      try {
        next = new URL(answer.location, url);
      } catch {
        return problem('connection', `${url.href} redirects to an invalid URL`);
      }
      const port = Number(next.port || (next.protocol === 'https:' ? 443 : 80));
      const sameHost = next.hostname.replace(/^\[|\]$/g, '').toLowerCase() === a.host.toLowerCase();
      if (!sameHost || !((next.protocol === 'http:' && port === 80) || (next.protocol === 'https:' && port === 443))) {
        return problem('connection', `${url.href} redirects to ${next.href}: only the same host on port 80 (http) or 443 (https) is followed`);
      }
      url = next;
      continue;
    }
    if (answer.status !== 200) return problem('incorrectResponse', `${url.href} answered HTTP ${answer.status}`);
    if (answer.body.trim() !== a.keyAuthorization) return problem('incorrectResponse', `${url.href} did not answer the key authorization`);
    return null;
  }
  return problem('connection', `more than ${MAX_REDIRECTS} redirects`);
}
