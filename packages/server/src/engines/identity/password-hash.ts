import { hash, verify } from '@node-rs/argon2';
import { randomBytes } from '@palisade/core';

const ARGON2ID = 2; // @node-rs/argon2's Algorithm.Argon2id (a const enum, which isolated modules cannot read)

/** OWASP Password Storage Cheat Sheet, Argon2id first option: 19 MiB, 2 passes, 1 lane; 16-byte salt, 32-byte tag. */
export const PASSWORD_HASH_PARAMS = { memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32 } as const;

/** `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (PHC string format, unpadded standard base64). */
const PHC = /^\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

interface PhcParams {
  algorithm: string;
  version: number;
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  saltLen: number;
  outputLen: number;
}

function parsePhc(phc: string): PhcParams | null {
  const m = PHC.exec(phc);
  if (!m) return null;
  const [, algorithm, v, mem, t, p, salt, tag] = m as unknown as [string, string, string, string, string, string, string, string];
  return {
    algorithm,
    version: Number(v),
    memoryCost: Number(mem),
    timeCost: Number(t),
    parallelism: Number(p),
    saltLen: Buffer.from(salt, 'base64').length,
    outputLen: Buffer.from(tag, 'base64').length,
  };
}

/**
 * Passwords are NFKC-normalised before hashing (NIST SP 800-63B §5.1.1.2), so the same password typed on another
 * keyboard or OS (composed vs decomposed accents, full-width digits) still verifies.
 */
function prepare(password: string): string {
  return password.normalize('NFKC');
}

/** An Argon2id PHC string for the password, with a fresh random salt and the current parameters. */
export function hashPassword(password: string): Promise<string> {
  return hash(prepare(password), { algorithm: ARGON2ID, ...PASSWORD_HASH_PARAMS });
}

/**
 * True when the password matches. Never throws: a hash that is not an Argon2 PHC string (an empty column, a federated
 * account without a local password) answers false after the same work as a real check, so it tells nothing either.
 */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  if (typeof phc !== 'string' || parsePhc(phc) === null) return verifyDummy(password);
  try {
    return await verify(phc, prepare(password));
  } catch {
    return false;
  }
}

let dummyHash: Promise<string> | undefined;

/**
 * For an unknown user: the same Argon2id work as verifying a real password (same parameters), then false, so the answer
 * and its time do not reveal whether the account exists. The dummy hash of a random password is made on first use
 * (that first call costs one hash more), and no password can match it.
 */
export async function verifyDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64url'));
  try {
    await verify(await dummyHash, prepare(password));
  } catch {
    // the outcome is false whatever happens
  }
  return false;
}

/**
 * True when the stored hash is weaker than what `hashPassword` makes today (another Argon2 variant or version, less
 * memory, fewer passes or lanes, a shorter salt or tag), or unreadable: rehash at the next successful sign-in.
 */
export function needsRehash(phc: string): boolean {
  const p = parsePhc(phc);
  if (!p) return true;
  return (
    p.algorithm !== 'argon2id' ||
    p.version !== 19 ||
    p.memoryCost < PASSWORD_HASH_PARAMS.memoryCost ||
    p.timeCost < PASSWORD_HASH_PARAMS.timeCost ||
    p.parallelism < PASSWORD_HASH_PARAMS.parallelism ||
    p.saltLen < 16 ||
    p.outputLen < PASSWORD_HASH_PARAMS.outputLen
  );
}
