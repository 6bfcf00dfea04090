// The raw load clients' response reader (loadgen.ts closed loop, fixed-rate.ts open loop): one HTTP/1.1 response at a
// time off a keep-alive connection, framed by Content-Length (chunked answers are refused: no proxy path sends one).

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class RawResponse {
  chunks: Buffer[] = [];
  /** Bytes read for this response, head included. */
  buffered = 0;
  headerEnd = -1;
  status = 0;
  contentLength = -1;
  /** The server said `Connection: close`. */
  closeAfter = false;

  /** Forget the previous response (before sending the next request). */
  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.headerEnd = -1;
    this.contentLength = -1;
    this.closeAfter = false;
  }

  /** Feed bytes: 'more' until the response is complete, then 'done'; a reason string when it cannot be read. */
  push(d: Buffer): 'more' | 'done' | string {
    this.chunks.push(d);
    this.buffered += d.length;
    if (this.headerEnd < 0) {
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = [all];
      const i = all.indexOf(CRLFCRLF);
      if (i < 0) return 'more';
      this.headerEnd = i + 4;
      const head = all.subarray(0, i).toString('latin1');
      this.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (!cl) return 'response without Content-Length (chunked responses are not supported by the raw client)';
      this.contentLength = Number(cl[1]);
      this.closeAfter = /\r\nconnection:\s*close/i.test(head);
    }
    return this.buffered < this.headerEnd + this.contentLength ? 'more' : 'done';
  }

  /** The first `n` bytes of the body, as text (for reporting a bad answer). */
  bodyStart(n = 300): string {
    return Buffer.concat(this.chunks).subarray(this.headerEnd, this.headerEnd + n).toString('utf8');
  }
}
