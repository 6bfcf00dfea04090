export { buildApp, type AppDeps } from './app.js';
export { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
export { loadConfig, type Config } from './config/config.js';
