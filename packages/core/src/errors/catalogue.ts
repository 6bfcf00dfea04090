/**
 * The one catalogue of stable error codes. Codes never change meaning once released;
 * `docs/errors.md` is generated from this table (`npm run docs:errors`) and a test keeps them in sync.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly title: string;
  readonly description: string;
}

export const ERROR_CATALOGUE = {
  // generic request handling
  PAL_VALIDATION_FAILED: { status: 400, title: 'Request validation failed', description: 'The request body, path or query does not match the route schema; `errors` lists each violation.' },
  PAL_MALFORMED_JSON: { status: 400, title: 'Malformed JSON', description: 'The body is not valid JSON.' },
  PAL_BAD_BASE64: { status: 400, title: 'Invalid base64', description: 'A field that must be standard base64 is not.' },
  PAL_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type', description: 'The route accepts `application/json` only.' },
  PAL_BODY_TOO_LARGE: { status: 413, title: 'Request body too large', description: 'The body exceeds the configured limit (10 MiB by default).' },
  PAL_NOT_FOUND: { status: 404, title: 'Not found', description: 'No route matches this method and path.' },
  PAL_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed', description: 'The route exists but not for this method.' },
  PAL_INTERNAL: { status: 500, title: 'Internal error', description: 'An unexpected error; the server log has the details under the request id.' },
  PAL_UNAVAILABLE: { status: 503, title: 'Service unavailable', description: 'A dependency (storage, seal, audit) is not ready; `/readyz` says which.' },
  PAL_SHUTTING_DOWN: { status: 503, title: 'Shutting down', description: 'The server is draining and accepts no new requests.' },
  // authentication and authorization
  PAL_AUTH_REQUIRED: { status: 401, title: 'Authentication required', description: 'No credential was presented; send `Authorization: Bearer <api key>`.' },
  PAL_AUTH_INVALID: { status: 401, title: 'Invalid credential', description: 'The credential is unknown, revoked or expired.' },
  PAL_FORBIDDEN: { status: 403, title: 'Permission denied', description: 'The principal lacks the permission the route requires; `permission` names it.' },
  PAL_AUTH_GRANT_EXCEEDS: { status: 403, title: 'Cannot grant more than you hold', description: 'A new API key may only carry permissions its creator holds.' },
  PAL_AUTH_API_KEY_NOT_FOUND: { status: 404, title: 'API key not found', description: 'No API key with this id.' },
  // audit
  PAL_APPROVAL_NOT_FOUND: { status: 404, title: 'Approval request not found', description: 'No approval request with this id.' },
  PAL_APPROVAL_NOT_PENDING: { status: 409, title: 'Approval request already decided', description: 'The request was approved, rejected or has expired; `status` says which.' },
  PAL_APPROVAL_SELF: { status: 403, title: 'Cannot approve your own request', description: 'Multi-person approval: a different principal must approve or reject.' },
  PAL_AUDIT_EVENT_NOT_FOUND: { status: 404, title: 'Audit event not found', description: 'The log has no entry with this index (yet).' },
  PAL_AUDIT_EVENT_PURGED: { status: 410, title: 'Audit event purged', description: "Retention removed this entry's payload; its leaf hash stays in the tree, so proofs still verify." },
  PAL_AUDIT_PROOF_RANGE: { status: 400, title: 'Proof out of range', description: 'The index or tree sizes asked for do not fit the log: need index < tree_size <= size, and 0 < from <= to <= size.' },
  PAL_AUDIT_CHECKPOINT_NOT_FOUND: { status: 404, title: 'No checkpoint yet', description: 'The log has not signed a checkpoint (of this size) yet.' },
  PAL_AUDIT_HOLD_NOT_FOUND: { status: 404, title: 'Legal hold not found', description: 'No legal hold has this id.' },
  PAL_AUDIT_HOLD_RELEASED: { status: 409, title: 'Legal hold already released', description: 'The legal hold was released before; holds are never re-opened, create a new one.' },
  PAL_AUDIT_SUBJECT_ERASED: { status: 409, title: 'Subject already erased', description: "The data subject's key was destroyed before; its personal fields are unreadable for good." },
  PAL_AUDIT_EXPORT_INVALID: { status: 400, title: 'Invalid audit export', description: 'The export file is not a Palisade audit export, or it is malformed; the message says where.' },
  PAL_AUDIT_WRITE_FAILED: { status: 503, title: 'Audit write failed', description: 'The audit event could not be committed, so the operation was not performed (fail closed).' },
  // configuration (start-up)
  PAL_CONFIG_INVALID: { status: 500, title: 'Invalid configuration', description: 'A setting in palisade.yaml or the environment is invalid; the message names it.' },
  // seal
  PAL_SEAL_SEALED: { status: 503, title: 'Sealed', description: 'The root of trust is sealed; unseal it before using data routes.' },
  PAL_SEAL_NOT_INITIALIZED: { status: 503, title: 'Not initialised', description: 'The seal has no root key yet; run `palisade operator init`.' },
  PAL_SEAL_ALREADY_INITIALIZED: { status: 409, title: 'Already initialised', description: 'The seal was initialised before; init runs once.' },
  PAL_SEAL_UNSEAL_FAILED: { status: 400, title: 'Unseal failed', description: 'The passphrase or the recovery shares do not open the root key.' },
  PAL_SEAL_SHARE_INVALID: { status: 400, title: 'Invalid recovery share', description: 'A recovery share is malformed or corrupted (its checksum does not match), or belongs to another set.' },
  PAL_SEAL_UNAVAILABLE: { status: 503, title: 'Root of trust unavailable', description: 'The HSM (PKCS#11 token) cannot be reached or refused the operation; `detail` says why.' },
  PAL_SEAL_CORRUPT: { status: 500, title: 'Seal material corrupt', description: 'The seal file or a barrier blob failed authentication.' },
  // backups (`palisade backup`)
  PAL_BACKUP_CORRUPT: { status: 400, title: 'Backup corrupt', description: 'The backup file is truncated or not a Palisade backup, its manifest is damaged or its signature invalid, or a part (named in the message) does not match its SHA-256 or fails authentication.' },
  PAL_BACKUP_UNSUPPORTED: { status: 409, title: 'Backup not restorable here', description: 'The backup\'s format or schema (its migrations) is newer than this Palisade, or from a diverged schema; upgrade Palisade first.' },
  PAL_BACKUP_TARGET_NOT_EMPTY: { status: 409, title: 'Restore target not empty', description: 'The configured database already holds data; restore replaces it only with `--force`.' },
  PAL_BACKUP_ROOT_MISMATCH: { status: 400, title: 'Backup needs its root of trust', description: 'The configured seal does not open the backup\'s keyring: bring the same root as the server the backup came from (its `seal.key`, the same HSM token and key label, or its passphrase or recovery shares).' },
  // kms
  PAL_KMS_KEY_NOT_FOUND: { status: 404, title: 'Key not found', description: 'No key with this id.' },
  PAL_KMS_KEY_NAME_TAKEN: { status: 409, title: 'Key name in use', description: 'Another key already has this name.' },
  PAL_KMS_INVALID_ALGORITHM: { status: 400, title: 'Algorithm does not fit key type', description: 'The algorithm is not allowed for this key_type (for example an AES key as a signing key).' },
  PAL_KMS_INVALID_USAGE: { status: 400, title: 'Usage does not fit algorithm', description: 'A requested usage is not possible with the algorithm (for example `sign` on an AES key).' },
  PAL_KMS_OPERATION_NOT_PERMITTED: { status: 400, title: 'Operation not permitted by key usage', description: 'The key was not created for this operation (its `usage` does not include it).' },
  PAL_KMS_KEY_DISABLED: { status: 409, title: 'Key disabled', description: 'The key is disabled; enable it to use it again.' },
  PAL_KMS_KEY_PENDING_DESTRUCTION: { status: 409, title: 'Key pending destruction', description: 'The key is scheduled for destruction; cancel the destruction to use it again.' },
  PAL_KMS_KEY_DESTROYED: { status: 410, title: 'Key material destroyed', description: 'The key version needed for this operation has been destroyed; data under it is unrecoverable.' },
  PAL_KMS_VERSION_NOT_FOUND: { status: 404, title: 'Key version not found', description: 'The key has no such version.' },
  PAL_KMS_VERSION_BELOW_MINIMUM: { status: 400, title: 'Key version below minimum', description: 'The ciphertext is under a version older than the key\'s `min_decryption_version`.' },
  PAL_KMS_DECRYPT_FAILED: { status: 400, title: 'Decryption failed', description: 'The ciphertext, iv, tag, key version or context does not authenticate. No plaintext is returned.' },
  PAL_KMS_BATCH_TOO_LARGE: { status: 400, title: 'Batch too large', description: 'A batch holds at most 1,000 items.' },
  PAL_KMS_INVALID_STATE: { status: 409, title: 'Invalid key state for this action', description: 'The key is not in a state that allows this action (for example enabling a key that is not disabled).' },
  PAL_KMS_INVALID_DESTRUCTION_WINDOW: { status: 400, title: 'Invalid destruction window', description: 'Destruction must be scheduled 7 to 30 days ahead.' },
  PAL_KMS_CANNOT_DESTROY_CURRENT_VERSION: { status: 409, title: 'Cannot destroy the current version', description: 'Rotate first: the current version encrypts new data.' },
  PAL_KMS_VERSION_IN_USE: { status: 409, title: 'Key version still in use', description: 'Key material is still wrapped under this KEK version; wait for the background rewrap (progress in `rewrap`) to finish.' },
  PAL_KMS_SYSTEM_KEY: { status: 409, title: 'System key', description: 'System keys (`system/...`, the KEKs of the key hierarchy) wrap other keys; they cannot be used, disabled or destroyed directly.' },
  PAL_KMS_IMPORT_INVALID: { status: 400, title: 'Imported key invalid', description: 'The wrapped key does not unwrap with the server\'s wrapping key (RSA_AES_KEY_WRAP_SHA_256), or the material does not fit the algorithm.' },
  PAL_KMS_NOT_EXPORTABLE: { status: 409, title: 'Key not exportable', description: 'Only keys created or imported with `exportable: true` can be exported (wrapped for another party).' },
  PAL_KMS_SIGNATURE_INVALID_FORMAT: { status: 400, title: 'Signature malformed', description: 'The signature is not well-formed for the key\'s algorithm.' },
  // pki
  PAL_PKI_NOT_INITIALIZED: { status: 409, title: 'No certificate authority yet', description: 'There is no root or no active issuing CA; run `palisade pki init-root`.' },
  PAL_PKI_ROOT_EXISTS: { status: 409, title: 'Root CA exists', description: 'A root CA was created before; a second one is refused (rotate the intermediate instead).' },
  PAL_PKI_CA_NOT_FOUND: { status: 404, title: 'CA not found', description: 'No certificate authority has this id.' },
  PAL_PKI_CA_OFFLINE: { status: 409, title: 'CA key offline', description: 'The CA\'s key is not held by the server (exported and removed): sign offline with `palisade pki sign-intermediate` and install the result.' },
  PAL_PKI_HSM_UNAVAILABLE: { status: 409, title: 'No HSM for CA keys', description: 'key_store `hsm` keeps the CA key in the PKCS#11 token of the seal; this server\'s seal is not `pkcs11` (configure `seal.pkcs11`, or use key_store `kms`).' },
  PAL_PKI_KEY_NOT_EXPORTABLE: { status: 409, title: 'CA key not exportable', description: 'The CA key was generated in the HSM as non-extractable and never leaves it: keep the root offline by keeping the token offline.' },
  PAL_PKI_CA_STATE: { status: 409, title: 'CA in the wrong state', description: 'The CA cannot do this in its current state (`status` says which), e.g. installing a certificate on a CA that already has one.' },
  PAL_PKI_INTERMEDIATE_INVALID: { status: 400, title: 'Intermediate certificate invalid', description: 'The certificate does not carry the pending key, is not a CA certificate, or does not chain to the root.' },
  PAL_PKI_CERTIFICATE_NOT_FOUND: { status: 404, title: 'Certificate not found', description: 'No certificate with this serial number was issued here.' },
  PAL_PKI_ALREADY_REVOKED: { status: 409, title: 'Certificate already revoked', description: 'The certificate was revoked before; revocation is final.' },
  PAL_PKI_CSR_INVALID: { status: 400, title: 'CSR invalid', description: 'The certification request is malformed, its signature does not verify, it asks for CA:TRUE, or its key is not one we certify (EC P-256/P-384, Ed25519, RSA ≥ 2048).' },
  PAL_PKI_TEMPLATE_NOT_FOUND: { status: 404, title: 'Template not found', description: 'No issuance template has this name; `GET /v1/pki/templates` lists them.' },
  PAL_PKI_NAME_NOT_ALLOWED: { status: 403, title: 'Name not allowed', description: 'The issuance policy does not let this principal ask for this service or name; `name` says which.' },
  PAL_PKI_TTL_EXCEEDS: { status: 400, title: 'Validity too long', description: 'The requested validity exceeds the template\'s maximum (or the issuing CA\'s own expiry).' },
  // acme (answered as RFC 8555 problem documents, `type` urn:ietf:params:acme:error:<acme type>)
  PAL_ACME_MALFORMED: { status: 400, title: 'Malformed ACME request', description: 'ACME `malformed`: the JWS or its payload is not what the endpoint accepts; `detail` says what.' },
  PAL_ACME_BAD_NONCE: { status: 400, title: 'Bad replay nonce', description: 'ACME `badNonce`: the nonce is unknown, expired or was used before; retry with the `Replay-Nonce` of this answer.' },
  PAL_ACME_BAD_SIGNATURE_ALGORITHM: { status: 400, title: 'Unsupported JWS algorithm', description: 'ACME `badSignatureAlgorithm`: use one of `algorithms` (ES256, ES384, RS256, EdDSA).' },
  PAL_ACME_BAD_PUBLIC_KEY: { status: 400, title: 'Unacceptable account key', description: 'ACME `badPublicKey`: EC P-256/P-384, Ed25519 or RSA of at least 2048 bits, public members only.' },
  PAL_ACME_UNAUTHORIZED: { status: 403, title: 'Not authorized', description: 'ACME `unauthorized`: the signature does not verify, the object belongs to another account, or the account may not do this.' },
  PAL_ACME_ACCOUNT_DOES_NOT_EXIST: { status: 400, title: 'ACME account does not exist', description: 'ACME `accountDoesNotExist`: no account has this key (onlyReturnExisting) or this kid.' },
  PAL_ACME_EXTERNAL_ACCOUNT_REQUIRED: { status: 403, title: 'External account binding required', description: 'ACME `externalAccountRequired`: this server enrols only holders of an EAB key (`POST /v1/acme/eab-keys`).' },
  PAL_ACME_USER_ACTION_REQUIRED: { status: 403, title: 'Terms of service not agreed', description: 'ACME `userActionRequired`: agree to the terms of service in the directory (`termsOfServiceAgreed`).' },
  PAL_ACME_INVALID_CONTACT: { status: 400, title: 'Invalid contact', description: 'ACME `invalidContact`: a contact is not a valid mailto: URL with one address.' },
  PAL_ACME_UNSUPPORTED_CONTACT: { status: 400, title: 'Unsupported contact', description: 'ACME `unsupportedContact`: only mailto: contacts are accepted.' },
  PAL_ACME_REJECTED_IDENTIFIER: { status: 400, title: 'Identifier rejected', description: 'ACME `rejectedIdentifier`: the name or address cannot be certified (syntax, wildcard placement); `subproblems` lists each.' },
  PAL_ACME_UNSUPPORTED_IDENTIFIER: { status: 400, title: 'Unsupported identifier type', description: 'ACME `unsupportedIdentifier`: only `dns` and `ip` identifiers are issued for.' },
  PAL_ACME_ORDER_NOT_READY: { status: 403, title: 'Order not ready', description: 'ACME `orderNotReady`: finalize needs an order in state `ready` (every authorization valid).' },
  PAL_ACME_BAD_CSR: { status: 400, title: 'CSR rejected', description: 'ACME `badCSR`: the CSR\'s names are not exactly the order\'s identifiers, or the CA refused it (CA:TRUE, weak or unsupported key, bad signature).' },
  PAL_ACME_BAD_REVOCATION_REASON: { status: 400, title: 'Revocation reason not allowed', description: 'ACME `badRevocationReason`: use an RFC 5280 reason code (0-6, 9).' },
  PAL_ACME_ALREADY_REVOKED: { status: 400, title: 'Certificate already revoked', description: 'ACME `alreadyRevoked`.' },
  PAL_ACME_ALREADY_REPLACED: { status: 409, title: 'Certificate already replaced', description: 'ACME `alreadyReplaced` (RFC 9773): another order already names this certificate in `replaces`.' },
  PAL_ACME_NOT_FOUND: { status: 404, title: 'ACME resource not found', description: 'ACME `malformed` with 404: no account, order, authorization, challenge or certificate at this URL.' },
  PAL_ACME_CONFLICT: { status: 409, title: 'Key in use', description: 'ACME `malformed` with 409: the new account key already belongs to another account (`Location` names it).' },
  PAL_ACME_RATE_LIMITED: { status: 429, title: 'Rate limited', description: 'ACME `rateLimited`: too many new orders for this account in the last hour (`acme.new_orders_per_hour`); `Retry-After` says when to retry.' },
  PAL_ACME_CHALLENGE_FAILED: { status: 400, title: 'Challenge failed', description: 'A challenge did not validate; its `error` is the ACME problem (`connection`, `dns`, `incorrectResponse`, `tls`, `unauthorized`). Recorded as the error_code of a failed acme.challenge.validate event.' },
  PAL_ACME_EAB_KEY_NOT_FOUND: { status: 404, title: 'EAB key not found', description: 'No External Account Binding key has this id.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
