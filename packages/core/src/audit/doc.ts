import { AUDIT_CATEGORIES, AUDIT_DATE_TIME_PATTERN, AUDIT_EVENT_CATALOGUE, AUDIT_HMAC_PATTERN, type AuditEventSpec } from './catalogue.js';

interface Json {
  type?: string;
  pattern?: string;
  description?: string;
  const?: unknown;
  anyOf?: Json[];
  items?: Json;
  properties?: Record<string, Json>;
  required?: string[];
  minimum?: number;
  maximum?: number;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ');
const code = (s: string) => `\`${s.replace(/\|/g, '\\|')}\``;

/** A short, human type name for a field's schema. */
function typeName(s: Json): string {
  if (s.anyOf) return s.anyOf.map(typeName).join(' | ');
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'string' && s.pattern === AUDIT_HMAC_PATTERN) return 'hmac-sha256:<hex>';
  if (s.type === 'string' && s.pattern === AUDIT_DATE_TIME_PATTERN) return 'date-time';
  if (s.type === 'string' && s.pattern === '^[0-9a-f]{64}$') return 'sha-256 hex';
  if (s.type === 'array') return s.items?.anyOf ? `(${typeName(s.items)})[]` : `${s.items ? typeName(s.items) : 'any'}[]`;
  if (s.type === 'integer' && (s.minimum ?? 0) > 0) return `integer ≥ ${s.minimum}${s.maximum !== undefined ? `, ≤ ${s.maximum}` : ''}`;
  return s.type ?? 'any';
}

function fieldRows(spec: AuditEventSpec): string[] {
  const rows: string[] = [];
  const walk = (props: Record<string, Json>, required: string[], prefix: string, top: boolean) => {
    for (const [name, s] of Object.entries(props)) {
      const marks = top ? [spec.personal.includes(name) ? 'personal' : '', spec.sensitive.includes(name) ? 'sensitive (HMAC only)' : ''].filter(Boolean).join(', ') : '';
      rows.push(`| \`${prefix}${name}\` | ${code(typeName(s.properties ? { type: 'object' } : s))} | ${required.includes(name) ? 'yes' : 'no'} | ${cell(s.description ?? '')} | ${marks} |`);
      if (s.properties) walk(s.properties, s.required ?? [], `${prefix}${name}.`, false);
    }
  };
  const d = spec.details as unknown as Json;
  walk(d.properties ?? {}, d.required ?? [], '', true);
  return rows;
}

function section(spec: AuditEventSpec): string[] {
  const fields = fieldRows(spec);
  return [
    `### \`${spec.type}\``,
    '',
    `${spec.description}${spec.planned ? ' *(planned: the engine that emits it is not built yet)*' : ''}`,
    '',
    `Outcomes: ${spec.outcomes.map((o) => `\`${o}\``).join(', ')}. Resource: ${spec.resource ? `\`${spec.resource}\`` : 'none'}.`,
    '',
    ...(fields.length === 0
      ? ['`details`: none (an empty object).']
      : ['| `details` field | type | required | description | marks |', '|---|---|---|---|---|', ...fields]),
    '',
    'Example `details`:',
    '',
    '```json',
    JSON.stringify(spec.example),
    '```',
    '',
  ];
}

/** `docs/audit-events.md`, rendered from the catalogue (`npm run docs:audit-events`); a test fails when the file drifts. */
export function renderAuditEventsDoc(): string {
  const specs = Object.values(AUDIT_EVENT_CATALOGUE);
  const counts = AUDIT_CATEGORIES.map((c) => [c, specs.filter((s) => s.category === c).length] as const).filter(([, n]) => n > 0);
  return [
    '# Audit event catalogue',
    '',
    'Every state change and every cryptographic operation appends one event to the audit ledger. Each event has the',
    'envelope of `AuditEvent` (`index`, `time`, `type`, `actor`, `outcome`, `request_id`, `action`, `resource`,',
    '`error_code`, `details`, `personal`); this catalogue fixes, per `type`, the schema of `details` and the outcomes.',
    '',
    '- **Personal** fields (names, emails, user agents ...) belong to a data subject: they are written to',
    '  `personal_fields` and encrypted under the subject\'s key, so erasing the subject shreds them (ADR 0007).',
    '- **Sensitive** fields (secrets, tokens, session ids) only ever appear as `hmac-sha256:<hex>`, keyed from the',
    '  seal, as Vault\'s audit devices do; `POST /v1/audit/hash` computes the HMAC of a value to search for it.',
    '- A `success` carries every required field; a `failure` or `denied` event may lack any of them (the operation',
    '  can fail before it recorded them), never an unknown one. `auditEventProblem()` in `@palisade/core` checks an',
    '  event; `auditEventSchema(type)` returns its full JSON Schema for SIEM pipelines.',
    '- **Resource** is the `resource.type` the event names; a failed request may name none (it failed first).',
    '',
    'This file is generated from `packages/core/src/audit/catalogue.ts` by `npm run docs:audit-events`; a test fails',
    'when they disagree. Types marked *planned* belong to engines not built yet: their schema is the contract.',
    '',
    `${specs.length} types: ${counts.map(([c, n]) => `${c} ${n}`).join(', ')}.`,
    '',
    '| type | category | outcomes | description |',
    '|---|---|---|---|',
    ...specs.map((s) => `| [\`${s.type}\`](#${s.type.replace(/[^a-z0-9_-]/g, '')}) | ${s.category} | ${s.outcomes.join(', ')} | ${cell(s.description)}${s.planned ? ' *(planned)*' : ''} |`),
    '',
    ...counts.flatMap(([c]) => [`## ${c}`, '', ...specs.filter((s) => s.category === c).flatMap(section)]),
  ].join('\n');
}
