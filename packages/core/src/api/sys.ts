import { Type, type Static } from '@sinclair/typebox';

const Share = Type.String({ minLength: 16, maxLength: 512, description: 'a recovery share as printed by init or rekey' });
const Passphrase = Type.String({ minLength: 1, maxLength: 1024 });

export const SealStatus = Type.Object({
  provider: Type.Union([Type.Literal('file'), Type.Literal('passphrase'), Type.Literal('pkcs11')]),
  state: Type.Union([Type.Literal('uninitialized'), Type.Literal('sealed'), Type.Literal('unsealed')]),
  recovery: Type.Union([Type.Object({ shares: Type.Integer(), threshold: Type.Integer(), submitted: Type.Integer({ description: 'shares given so far to an unseal in progress' }) }), Type.Null()]),
});
export type SealStatus = Static<typeof SealStatus>;

export const InitRequest = Type.Object(
  {
    passphrase: Passphrase,
    shares: Type.Integer({ minimum: 2, maximum: 255, default: 5 }),
    threshold: Type.Integer({ minimum: 2, maximum: 255, default: 3 }),
  },
  { additionalProperties: false },
);
export type InitRequest = Static<typeof InitRequest>;

export const RecoveryShares = Type.Object({
  shares: Type.Array(Type.String(), { description: 'shown once: give each to a different custodian' }),
  threshold: Type.Integer(),
});
export type RecoveryShares = Static<typeof RecoveryShares>;

export const UnsealRequest = Type.Object(
  {
    passphrase: Type.Optional(Passphrase),
    shares: Type.Optional(Type.Array(Share, { minItems: 1, maxItems: 255 })),
    reset: Type.Optional(Type.Boolean({ description: 'forget the shares given so far' })),
  },
  { additionalProperties: false },
);
export type UnsealRequest = Static<typeof UnsealRequest>;

export const RekeyRequest = Type.Object(
  {
    shares: Type.Optional(Type.Array(Share, { minItems: 1, maxItems: 255 })),
    passphrase: Type.Optional(Passphrase),
    new_passphrase: Passphrase,
    new_shares: Type.Integer({ minimum: 2, maximum: 255, default: 5 }),
    new_threshold: Type.Integer({ minimum: 2, maximum: 255, default: 3 }),
    rotate_root: Type.Optional(Type.Boolean({ description: 'also replace the root key itself (the yearly ceremony), rewrapping the keyring and the system KEKs' })),
  },
  { additionalProperties: false },
);
export type RekeyRequest = Static<typeof RekeyRequest>;
