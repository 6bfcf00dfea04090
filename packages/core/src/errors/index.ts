export { ERROR_CATALOGUE, type ErrorCode, type ErrorSpec } from './catalogue.js';
export { PalisadeError, isPalisadeError, PROBLEM_TYPE_BASE, type ProblemDetails } from './palisade-error.js';
export { renderErrorsDoc } from './doc.js';
