export {
  SIGNATURE_V1_ALGORITHM,
  EMPTY_BODY_SHA256,
  canonicalRequest,
  canonicalPath,
  canonicalQuery,
  normaliseSignedHeaders,
  splitTarget,
  type CanonicalRequestInput,
  type HeaderBag,
} from './canonical.js';
export {
  SIGNATURE_HEADER,
  SIGNATURE_VERSIONS,
  formatSignatureHeader,
  parseSignatureHeader,
  signatureV1,
  checkSignatureV1,
  type SignatureParams,
  type SignatureVersion,
} from './header.js';
