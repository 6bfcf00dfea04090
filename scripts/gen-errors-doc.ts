import { writeFileSync } from 'node:fs';
import { renderErrorsDoc } from '../packages/core/src/errors/doc.ts';

writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc());
console.log('wrote docs/errors.md');
