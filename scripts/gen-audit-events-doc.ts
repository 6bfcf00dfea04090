import { writeFileSync } from 'node:fs';
import { renderAuditEventsDoc } from '../packages/core/src/audit/doc.ts';

writeFileSync(new URL('../docs/audit-events.md', import.meta.url), renderAuditEventsDoc());
console.log('wrote docs/audit-events.md');
