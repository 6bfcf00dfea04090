import './provided-context.js';

export { startPostgres, findPostgresBinDir, type PostgresHandle, type StartPostgresOptions } from './postgres.js';
export {
  startRedis,
  findRedisServer,
  redisCommand,
  RedisReplyError,
  type RedisHandle,
  type StartRedisOptions,
  type RespValue,
} from './redis.js';
export {
  serviceAvailability,
  requireService,
  isCI,
  SERVICE_NAMES,
  INSTALL_HINT,
  type ServiceName,
  type ServiceStatus,
  type ServiceRequirement,
} from './services.js';
export { startSoftHsm, findSoftHsmModule, useSoftHsmEnv, type SoftHsmHandle, type StartSoftHsmOptions } from './softhsm.js';
export { freshPostgresDatabase } from './pg-db.js';
export { findExecutable, getFreePort } from './proc.js';
export { startOpensslTsa, type OpensslTsaHandle, type StartOpensslTsaOptions, type IssueCertificateOptions, type IssuedCertificate, type TsaKeyType } from './tsa.js';
export { startDnsServer, type TestDnsServer, type DnsRecordType } from './dns-server.js';
