/** The absolute URLs of the ACME resources under one base (scheme://host[:port]). */
export function acmeUrls(base: string) {
  const a = `${base}/acme`;
  return {
    directory: `${a}/directory`,
    newNonce: `${a}/new-nonce`,
    newAccount: `${a}/new-account`,
    newOrder: `${a}/new-order`,
    revokeCert: `${a}/revoke-cert`,
    keyChange: `${a}/key-change`,
    renewalInfo: `${a}/renewal-info`,
    accountPrefix: `${a}/account/`,
    account: (id: string) => `${a}/account/${id}`,
    orders: (id: string) => `${a}/account/${id}/orders`,
    order: (id: string) => `${a}/order/${id}`,
    finalize: (id: string) => `${a}/order/${id}/finalize`,
    authz: (id: string) => `${a}/authz/${id}`,
    challenge: (id: string) => `${a}/challenge/${id}`,
    certificate: (serial: string) => `${a}/cert/${serial}`,
  };
}
export type AcmeUrls = ReturnType<typeof acmeUrls>;
