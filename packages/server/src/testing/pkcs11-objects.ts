/** Test helper: what a PKCS#11 token says about the objects Palisade put in it, read on a session of the test's own. */
import pkcs11js from 'pkcs11js';
import { acquire, findSlot, login, release } from '../kernel/seal/pkcs11-provider.js';

const P = pkcs11js;

/** Attributes of the private key labelled `label`; `value`: what reading its secret (CKA_VALUE, RSA's CKA_PRIVATE_EXPONENT) gets. */
export function privateKeyAttributes(
  token: { module: string; label: string; pin: string },
  label: string,
): { count: number; sensitive: boolean; extractable: boolean; token: boolean; sign: boolean; value: string } {
  const m = acquire(token.module);
  const { lib } = m;
  const s = lib.C_OpenSession(findSlot(lib, { token: token.label }), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  try {
    login(lib, s, token.pin, token.label);
    lib.C_FindObjectsInit(s, [
      { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
      { type: P.CKA_LABEL, value: label },
    ]);
    const found = lib.C_FindObjects(s, 2);
    lib.C_FindObjectsFinal(s);
    const key = found[0]!;
    const flag = (type: number) => Buffer.from(lib.C_GetAttributeValue(s, key, [{ type }])[0]!.value ?? [])[0] === 1;
    const rsa = Buffer.from(lib.C_GetAttributeValue(s, key, [{ type: P.CKA_KEY_TYPE }])[0]!.value ?? []).readUIntLE(0, 1) === P.CKK_RSA;
    let value: string;
    try {
      const secret = rsa ? P.CKA_PRIVATE_EXPONENT : P.CKA_VALUE;
      value = `read ${Buffer.from(lib.C_GetAttributeValue(s, key, [{ type: secret }])[0]!.value ?? []).length} bytes`;
    } catch (e) {
      value = (e as Error).message;
    }
    return { count: found.length, sensitive: flag(P.CKA_SENSITIVE), extractable: flag(P.CKA_EXTRACTABLE), token: flag(P.CKA_TOKEN), sign: flag(P.CKA_SIGN), value };
  } finally {
    lib.C_CloseSession(s);
    release(m);
  }
}
