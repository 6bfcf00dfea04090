import { readFileSync } from 'node:fs';
import { PalisadeError } from '@palisade/core';
import type { Config } from '../../../config/config.js';
import type { Anchor } from './anchor.js';
import { Rfc3161Anchor } from './rfc3161.js';
import { WitnessAnchor } from './witness.js';

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
    if (!a.key) throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting audit.anchors.${a.name}.key: a witness needs its verifier key (\`palisade witness key\`) to check its cosignatures`);
    try {
      return new WitnessAnchor({ name: a.name, url: a.url, key: a.key, ...(caPem ? { caPem } : {}) });
    } catch (e) {
      throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting audit.anchors.${a.name}.key: ${(e as Error).message}`);
    }
  });
}
