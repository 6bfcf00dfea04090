export { AUDIT_CATEGORIES, AUDIT_EVENT_CATALOGUE, AUDIT_HMAC_PATTERN, type AuditCategory, type AuditEventSpec } from './catalogue.js';
export { auditEventProblem, auditEventSchema, auditEventSpec, auditEventTypes } from './validate.js';
export { renderAuditEventsDoc } from './doc.js';
