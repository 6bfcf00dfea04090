import { Base64 } from '@palisade/core';

/** The exact pattern string of the shared Base64 schema, to recognise its violations and answer PAL_BAD_BASE64. */
export const BASE64_PATTERN: string = (Base64 as unknown as { pattern: string }).pattern;
