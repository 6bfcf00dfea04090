import { isBase64 } from '@palisade/core';

/** Formats the API's schemas use, registered with the route validator (ajv). */
export const FORMATS = { base64: { type: 'string', validate: isBase64 } } as const;
