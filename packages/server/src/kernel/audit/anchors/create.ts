import { readFileSync } from 'node:fs';
import { PalisadeError } from '@palisade/core';
import type { Config } from '../../../config/config.js';
import type { Anchor } from './anchor.js';
import { Rfc3161Anchor } from './rfc3161.js';

/** The anchors the configuration names, in order. */
export function createAnchors(list: Config['audit']['anchors']): Anchor[] {
  return list.map((a) => {
    let caPem: string | undefined;
    try {
      caPem = a.ca_file ? readFileSync(a.ca_file, 'utf8') : undefined;
    } catch (e) {
      throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting audit.anchors.${a.name}.ca_file: ${(e as Error).message}`);
    }
    if (a.kind === 'rfc3161') return new Rfc3161Anchor({ name: a.name, url: a.url, ...(caPem ? { caPem } : {}) });
    throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting audit.anchors.${a.name}: kind ${a.kind} is not available yet`);
  });
}
