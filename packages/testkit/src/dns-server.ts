/**
 * A tiny authoritative DNS server on loopback UDP for tests: answers A, AAAA and TXT queries from a map that the
 * test changes at will (NXDOMAIN for unknown names, an empty answer for a known name without that type).
 * Enough for a resolver pointed at it (node:dns Resolver.setServers(['127.0.0.1:<port>'])); no TCP, no EDNS.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export type DnsRecordType = 'A' | 'AAAA' | 'TXT';

const TYPES: Record<DnsRecordType, number> = { A: 1, AAAA: 28, TXT: 16 };
const CLASS_IN = 1;

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, as dns servers are configured. */
  readonly address: string;
  readonly port: number;
  /** Replace the records of a type at a name (values: addresses, or TXT strings). */
  set(name: string, type: DnsRecordType, values: string[]): void;
  /** Forget a name's records of one type, or all of them. */
  delete(name: string, type?: DnsRecordType): void;
  /** Queries answered so far, as `<TYPE> <name>`. */
  readonly queries: string[];
  close(): Promise<void>;
}

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  for (;;) {
    const len = msg[i];
    if (len === undefined || len >= 0xc0) throw new Error('compressed or truncated name in a question');
    i++;
    if (len === 0) break;
    labels.push(msg.subarray(i, i + len).toString('ascii'));
    i += len;
  }
  return { name: labels.join('.').toLowerCase(), end: i };
}

function rdata(type: DnsRecordType, value: string): Buffer {
  if (type === 'A') {
    if (!isIPv4(value)) throw new Error(`${value} is not an IPv4 address`);
    return Buffer.from(value.split('.').map(Number));
  }
  if (type === 'AAAA') {
    if (!isIPv6(value)) throw new Error(`${value} is not an IPv6 address`);
    const [head = '', tail = ''] = value.split('::');
    const h = head ? head.split(':') : [];
    const t = value.includes('::') && tail ? tail.split(':') : [];
    const groups = value.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    const out = Buffer.alloc(16);
    groups.forEach((g, k) => out.writeUInt16BE(parseInt(g, 16), k * 2));
    return out;
  }
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.of(chunk.length), chunk);
  }
  return Buffer.concat(parts);
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const zone = new Map<string, Map<DnsRecordType, string[]>>();
  const queries: string[] = [];
  const socket = createSocket('udp4');
  const key = (name: string) => name.toLowerCase().replace(/\.$/, '');

  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    if (msg.length < 12) return;
    let question: { name: string; end: number };
    try {
      question = readName(msg, 12);
    } catch {
      return;
    }
    const qtype = msg.readUInt16BE(question.end);
    const type = (Object.keys(TYPES) as DnsRecordType[]).find((t) => TYPES[t] === qtype);
    queries.push(`${type ?? qtype} ${question.name}`);
    const records = zone.get(question.name);
    const values = type ? (records?.get(type) ?? []) : [];
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (records ? 0 : 3), 2); // QR, AA, RD copied, NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(values.length, 6);
    const answers = values.map((v) => {
      const data = rdata(type!, v);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
      rr.writeUInt16BE(TYPES[type!], 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(0, 6); // TTL
      rr.writeUInt16BE(data.length, 10);
      return Buffer.concat([rr, data]);
    });
    socket.send(Buffer.concat([header, msg.subarray(12, question.end + 4), ...answers]), from.port, from.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const port = socket.address().port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    set(name, type, values) {
      for (const v of values) rdata(type, v); // refuse bad values now, not when queried
      const k = key(name);
      const records = zone.get(k) ?? new Map<DnsRecordType, string[]>();
      records.set(type, [...values]);
      zone.set(k, records);
    },
    delete(name, type) {
      const k = key(name);
      if (type === undefined) zone.delete(k);
      else zone.get(k)?.delete(type);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
