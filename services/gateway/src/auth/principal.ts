import type { Tier } from '../limits/limit-config';

/** Who is calling, resolved from the credential. */
export interface Principal {
  tenantId: string;
  userId: string;
  /** The key's id; for a JWT caller `jwt:<sub>` (limits per key then apply per token subject). */
  apiKeyId: string;
  /** Empty means every scope. */
  scopes: string[];
  method: 'api_key' | 'jwt';
  tier: Tier;
}

/** Scopes a key can be limited to. */
export const SCOPES = ['chat', 'models', 'embeddings', 'conversations', 'usage', 'jobs', 'webhooks'] as const;
export type Scope = (typeof SCOPES)[number];

export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.length === 0 || principal.scopes.includes(scope) || principal.scopes.includes('*');
}
