export { keepWrapperPrototypesFast } from './fast-prototypes.js';
