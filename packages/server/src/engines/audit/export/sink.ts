import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PalisadeError } from '@palisade/core';
import type { AuditEvent } from '../../../kernel/audit/events.js';

/** Where the exporter hands batches: a SIEM transport (syslog-sink.ts, webhook-sink.ts). */
export interface AuditSink {
  readonly name: string;
  /**
   * Deliver the events, in order. Resolves once the batch counts as delivered (the transport's acknowledgement);
   * rejects when it may not have arrived, and the exporter sends the same batch again.
   */
  deliver(events: readonly AuditEvent[]): Promise<void>;
  /** Close connections; a later deliver() may reopen them. */
  close(): Promise<void>;
}

export function configError(sink: string, message: string): PalisadeError {
  return new PalisadeError('PAL_CONFIG_INVALID', `audit export ${sink}: ${message}`, { extensions: { setting: 'audit.exports' } });
}

/** A URL for messages: scheme, host, port and path only (never credentials or a query string). */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** The PEM certificates of a CA file, checked to parse (a config error names the file, never its content). */
export function readCaFile(sink: string, path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw configError(sink, `cannot read ca_file ${path}: ${(e as Error).message}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw configError(sink, `ca_file ${path} holds no PEM certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch {
      throw configError(sink, `ca_file ${path} holds an unreadable certificate`);
    }
  }
  return blocks.join('\n');
}

/** Bounded, single-line error text for logs and `last_error`. */
export function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s+/g, ' ').slice(0, 500);
}
