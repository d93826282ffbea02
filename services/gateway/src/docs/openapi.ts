import { z } from 'zod';
import { createKeyRequest, createTenantRequest, createUserRequest, updateLimitsRequest } from '../admin/admin.controller';
import { billingHoldsQuery, billingLedgerQuery, billingUsageQuery, costReportQuery, liftKillSwitchRequest, topUpRequest } from '../billing/billing-schemas';
import { STRIPE_WEBHOOK_PATH } from '../billing/stripe-webhook.route';
import { chatCompletionRequest } from '../openai/chat-request';
import { embeddingsRequest, jobRequest, renameConversationRequest, uiChatRequest, webhookRequest } from '../product/schemas';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });

const errorSchema = {
  type: 'object', required: ['error'], additionalProperties: false,
  properties: { error: { type: 'object', required: ['message', 'type', 'code', 'param'], properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: ['string', 'null'] }, param: { type: ['string', 'null'] } } } },
};
const errors = Object.fromEntries(['400', '401', '403', '404', '409', '413', '415', '422', '429', '503'].map((code) => [code, { $ref: '#/components/responses/Error' }]));
const json = (s: unknown) => ({ required: true, content: { 'application/json': { schema: s } } });
const ok = (description: string, contentType = 'application/json') => ({ description, content: { [contentType]: { schema: { type: 'object' } } } });
/** The query parameters of a strict zod object, each with the schema that validates it. */
function queryParams(query: z.ZodObject): Array<Record<string, unknown>> {
  return Object.entries(query.shape).map(([name, field]) => {
    const { $schema: _, ...fieldSchema } = schema(field as z.ZodType) as Record<string, unknown>;
    // A date-time is described by its format; zod's equivalent regular expression only slows generators down.
    if (fieldSchema.format === 'date-time') delete fieldSchema.pattern;
    return { name, in: 'query', required: !(field as z.ZodType).safeParse(undefined).success, schema: fieldSchema };
  });
}
const idem = { $ref: '#/components/parameters/IdempotencyKey' };
const idParam = (name: string, pattern?: string) => ({ name, in: 'path', required: true, schema: { type: 'string', maxLength: 64, ...(pattern ? { pattern } : {}) } });
const UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

function op(summary: string, extra: Record<string, unknown>, success: Record<string, unknown>, security: Array<Record<string, string[]>> = [{ bearer: [] }]) {
  return { summary, security, ...extra, responses: { ...success, ...errors } };
}

/** OpenAPI 3.1 of the public API, built from the same zod schemas that validate requests. */
export function buildOpenApi(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'AI platform gateway', version: '1.0.0', description: 'OpenAI-compatible /v1 API, product /api endpoints and the operator /admin API. Every error is {"error":{"message","type","code","param"}}.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key pk_<id>_<secret> or a JWT (RS256/ES256)' }, admin: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' } },
      parameters: { IdempotencyKey: { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' } } },
      responses: { Error: { description: 'error', content: { 'application/json': { schema: errorSchema } } } },
    },
    paths: {
      '/v1/chat/completions': { post: op('Create a chat completion (JSON or SSE)', { parameters: [idem], requestBody: json(schema(chatCompletionRequest)) }, { 200: ok('completion or SSE stream') }) },
      '/v1/models': { get: op('List models', {}, { 200: ok('models') }) },
      '/v1/embeddings': { post: op('Create embeddings (OpenAI shape; all-minilm-l6-v2, 384 dimensions)', { parameters: [idem], requestBody: json(schema(embeddingsRequest)) }, { 200: ok('embeddings') }) },
      '/api/chat': { post: op('Chat in the AI SDK UI message stream protocol', { parameters: [idem], requestBody: json(schema(uiChatRequest)) }, { 200: ok('UI message stream', 'text/event-stream') }) },
      '/api/conversations': { get: op('List conversations', { parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }, { name: 'cursor', in: 'query', schema: { type: 'string', maxLength: 200 } }] }, { 200: ok('page') }) },
      '/api/conversations/{id}': {
        get: op('Read a conversation', { parameters: [idParam('id', UUID)] }, { 200: ok('conversation') }),
        patch: op('Rename a conversation', { parameters: [idParam('id', UUID)], requestBody: json(schema(renameConversationRequest)) }, { 200: ok('conversation') }),
        delete: op('Delete a conversation', { parameters: [idParam('id', UUID)] }, { 200: ok('deleted') }),
      },
      '/api/usage': { get: op('The caller\'s usage', { parameters: [{ name: 'from', in: 'query', schema: { type: 'string', format: 'date-time' } }, { name: 'to', in: 'query', schema: { type: 'string', format: 'date-time' } }] }, { 200: ok('usage'), 501: { $ref: '#/components/responses/Error' } }) },
      '/api/jobs': { post: op('Start an async job', { parameters: [idem], requestBody: json(schema(jobRequest)) }, { 202: ok('job id') }) },
      '/api/jobs/{id}': { get: op('Job status and progress', { parameters: [idParam('id')] }, { 200: ok('job') }) },
      '/api/jobs/{id}/events': { get: op('Job progress as SSE', { parameters: [idParam('id')] }, { 200: ok('events', 'text/event-stream') }) },
      '/api/webhooks': {
        post: op('Register a webhook endpoint (answer holds its signing secret)', { parameters: [idem], requestBody: json(schema(webhookRequest)) }, { 201: ok('webhook') }),
        get: op('List webhook endpoints', {}, { 200: ok('webhooks') }),
      },
      '/api/webhooks/dead-letters': { get: op('Deliveries that failed every retry', {}, { 200: ok('dead letters') }) },
      '/api/webhooks/dead-letters/{id}/replay': { post: op('Deliver a dead letter again', { parameters: [idParam('id')] }, { 202: ok('queued') }) },
      '/v1/billing/balance': { get: op('The caller\'s balance, open holds and credit expiring next (micro-credits)', {}, { 200: ok('balance') }) },
      '/v1/billing/holds': { get: op('The caller\'s open holds', { parameters: queryParams(billingHoldsQuery) }, { 200: ok('holds') }) },
      '/v1/billing/ledger': { get: op('The caller\'s ledger entries, newest first (page with before=<cursor>)', { parameters: queryParams(billingLedgerQuery) }, { 200: ok('ledger page') }) },
      '/v1/billing/usage': { get: op('The caller\'s usage grouped by day, model, user and/or key', { parameters: queryParams(billingUsageQuery) }, { 200: ok('usage groups') }) },
      '/v1/billing/invoice-preview': { get: op('Invoice preview of the current period', {}, { 200: ok('invoice preview') }) },
      '/v1/billing/top-ups': { post: op('Start a Stripe Checkout session for a credit top-up', { parameters: [idem], requestBody: json(schema(topUpRequest)) }, { 200: ok('checkout session') }) },
      '/v1/admin/billing/cost-report': { get: op('Operators: usage and balance per tenant', { parameters: queryParams(costReportQuery) }, { 200: ok('cost report') }, [{ admin: [] }]) },
      '/v1/admin/billing/kill-switch/lift': { post: op('Operators: lift a tripped budget kill switch', { requestBody: json(schema(liftKillSwitchRequest)) }, { 200: ok('lifted') }, [{ admin: [] }]) },
      [STRIPE_WEBHOOK_PATH]: {
        post: op('Stripe webhook events (verified by the Stripe-Signature header over the raw body)', {
          parameters: [{ name: 'Stripe-Signature', in: 'header', required: true, schema: { type: 'string', maxLength: 1024 } }],
          requestBody: json({ type: 'object' }),
        }, { 200: ok('handled') }, []),
      },
      '/admin/tenants': { post: op('Create a tenant', { requestBody: json(schema(createTenantRequest)) }, { 200: ok('tenant') }, [{ admin: [] }]) },
      '/admin/tenants/{tenant}': { get: op('Read a tenant and its keys', { parameters: [idParam('tenant')] }, { 200: ok('tenant') }, [{ admin: [] }]) },
      '/admin/tenants/{tenant}/limits': { put: op('Set a tenant\'s tier and limit overrides', { parameters: [idParam('tenant')], requestBody: json(schema(updateLimitsRequest)) }, { 200: ok('tenant') }, [{ admin: [] }]) },
      '/admin/tenants/{tenant}/users': { post: op('Create a user', { parameters: [idParam('tenant')], requestBody: json(schema(createUserRequest)) }, { 200: ok('user') }, [{ admin: [] }]) },
      '/admin/tenants/{tenant}/keys': { post: op('Create an API key (shown once)', { parameters: [idParam('tenant')], requestBody: json(schema(createKeyRequest)) }, { 200: ok('key') }, [{ admin: [] }]) },
      '/admin/tenants/{tenant}/keys/{key}': { delete: op('Revoke a key', { parameters: [idParam('tenant'), idParam('key')] }, { 200: ok('revoked') }, [{ admin: [] }]) },
    },
  };
}
