// Arithmetic in GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), as in FIPS 197 §4.
//
// Addition and subtraction are XOR. Multiplication is shift-and-add with masks instead of branches, and there are no
// log/exp tables, so the running time and memory accesses do not depend on the operands (secret coefficients and
// share bytes pass through here). JavaScript gives no hard constant-time guarantee, but nothing here is
// data-dependent by construction.

/** The AES polynomial x^8 + x^4 + x^3 + x + 1. */
export const GF256_POLY = 0x11b;

/** a · b in GF(2^8); both operands are bytes (0..255). */
export function gfMul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 8; i++) {
    p ^= -(b & 1) & a; // add a when the low bit of b is set (mask is all ones or zero)
    const carry = -((a >> 7) & 1); // all ones when a·x overflows degree 7
    a = ((a << 1) ^ (carry & GF256_POLY)) & 0xff; // a·x mod the polynomial
    b >>= 1;
  }
  return p & 0xff;
}

/** The multiplicative inverse a^-1 = a^254 (the group of units has order 255); 0 has none and is refused. */
export function gfInv(a: number): number {
  if (a === 0) throw new RangeError('gfInv: 0 has no inverse in GF(2^8)');
  // Square-and-multiply over the fixed public exponent 254 = 0b11111110.
  let result = 1;
  let base = a;
  for (let e = 254; e > 0; e >>= 1) {
    if (e & 1) result = gfMul(result, base);
    base = gfMul(base, base);
  }
  return result;
}
