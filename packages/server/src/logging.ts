import pino, { type Logger } from 'pino';

/** pino JSON logs; credential-bearing fields are redacted wherever they appear. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'bootstrap_token',
  '*.bootstrap_token',
  'plaintext',
  '*.plaintext',
  'password',
  '*.password',
  'passphrase',
  '*.passphrase',
  '*.new_passphrase',
  'pin',
  '*.pin',
  'shares',
  '*.shares',
  'secret',
  '*.secret',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' }, base: { service: 'palisade' } }, destination);
}
