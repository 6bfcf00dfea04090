/** Table types for Kysely. Timestamps are ISO-8601 UTC strings (sortable, identical in both dialects). */
import type { Generated } from 'kysely';

export interface AuditEventTable {
  idx: number;
  ts: string;
  type: string;
  data: string; // canonical JSON of the whole event (RFC 8785); the leaf is H(0x00 || data)
  leaf_hash: Buffer;
  tree_root: Buffer; // RFC 9162 root of the tree of size idx + 1 on every 256th row, empty otherwise
  mac: Buffer; // HMAC over (index, leaf hash, tree_root) with a key derived from the seal: the DB alone cannot forge it
  purged_at: string | null; // set when retention purged the payload (data = ''); the leaf hash stays
  purge_mac: Buffer | null; // HMAC over (index, leaf, ts, type, purged_at), written by the purge
}

export interface AuditNodeTable {
  level: number; // >= 8
  idx: number; // the node covers leaves [idx * 2^level, (idx + 1) * 2^level)
  hash: Buffer;
}

export interface AuditCheckpointTable {
  size: number;
  root: Buffer;
  note: string; // C2SP signed note, signed by the log's checkpoint key
  created_at: string;
}

export interface AuditAnchorTable {
  size: number;
  anchor: string; // configured anchor name
  kind: string; // witness | rfc3161 | ...
  receipt: string; // a cosignature line, a base64 time-stamp token, ...
  created_at: string;
}

export interface AuditExportCursorTable {
  sink: string;
  next_index: number;
  updated_at: string;
  last_error: string | null;
}

export interface AuditHoldTable {
  id: string;
  name: string;
  reason: string;
  filter: string; // JSON: { since?, until?, type?, principal?, resource? }
  created_at: string;
  created_by: string;
  released_at: string | null;
  released_by: string | null;
}

export interface AuditSubjectKeyTable {
  subject_ref: string; // HMAC of the subject identifier, never the identifier itself
  wrapped_key: Buffer | null; // null once erased
  created_at: string;
  erased_at: string | null;
}

export interface AuditHeadTable {
  id: number;
  size: number;
  range: string; // CompactRange JSON
}

export interface ApiKeyTable {
  id: string;
  name: string;
  principal_id: string;
  token_hash: Buffer;
  permissions: string; // JSON array
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface KmsKeyTable {
  key_id: string;
  name: string | null;
  key_type: string;
  algorithm: string;
  usage: string; // JSON array
  classification: string;
  status: string;
  current_version: number;
  min_decryption_version: number;
  rotation_period_days: number;
  created_at: string;
  rotated_at: string;
  destroy_at: string | null;
  status_before_destruction: string | null;
  origin: string; // 'generated' | 'imported'
  exportable: number; // 0 | 1
}

export interface KmsKeyVersionTable {
  key_id: string;
  version: number;
  status: string;
  material: Buffer | null; // wrapped as `wrapping` says; NULL once destroyed
  wrapping: 'barrier' | 'root' | 'kek';
  kek_id: string | null;
  kek_version: number | null;
  deactivate_at: string | null;
  ciphertexts: number;
  rewrapped_away: number;
  public_key: Buffer | null; // SPKI DER for asymmetric keys
  created_at: string;
  destroy_at: string | null;
  nonces_reserved: number;
}

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: string;
}

export interface SettingTable {
  name: string;
  value: string;
}

export interface ApprovalTable {
  id: string;
  action: string;
  permission: string;
  resource_type: string;
  resource_id: string;
  status: string;
  requested_by: string;
  requested_at: string;
  expires_at: string;
  reason: string | null;
  decided_by: string | null;
  decided_at: string | null;
  details: string; // JSON
  result: string | null; // JSON
}

export interface Database {
  approvals: ApprovalTable;
  audit_events: AuditEventTable;
  audit_head: AuditHeadTable;
  audit_nodes: AuditNodeTable;
  audit_checkpoints: AuditCheckpointTable;
  audit_anchors: AuditAnchorTable;
  audit_export_cursors: AuditExportCursorTable;
  audit_holds: AuditHoldTable;
  audit_subject_keys: AuditSubjectKeyTable;
  api_keys: ApiKeyTable;
  kms_keys: KmsKeyTable;
  kms_key_versions: KmsKeyVersionTable;
  leases: LeaseTable;
  settings: SettingTable;
}

export type { Generated };
