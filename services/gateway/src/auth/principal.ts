/** Who is calling, resolved from the credential. */
export interface Principal {
  tenantId: string;
  userId: string;
  apiKeyId: string;
  scopes: string[];
}
