import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GrpcStatus, isServiceError, type Logger } from '@ai-platform/platform';

/** Outside /v1 and /api: Stripe authenticates by signature, not by an API key. */
export const STRIPE_WEBHOOK_PATH = '/webhooks/stripe';

export type ForwardWebhook = (payload: Uint8Array, signature: string) => Promise<{ eventId: string; eventType: string; duplicate: boolean; outcome: string }>;

/**
 * The public Stripe webhook endpoint. Stripe signs the exact bytes it sends, so
 * this route keeps the body as a Buffer and forwards it untouched, with the
 * `Stripe-Signature` header, to billing's HandleStripeWebhook, which holds the
 * secret, verifies and handles each event id once. The raw-body parser lives
 * in an encapsulated plugin with only this route: JSON parsing everywhere else
 * is unchanged. A bad signature answers 400 (Stripe does not retry it for
 * ever); billing unreachable answers 503, so Stripe redelivers later.
 */
export async function registerStripeWebhookRoute(fastify: FastifyInstance, forward: ForwardWebhook, logger?: Logger): Promise<void> {
  await fastify.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1024 * 1024 }, (_request, body, done) => done(null, body));
    scope.post(STRIPE_WEBHOOK_PATH, async (request: FastifyRequest, reply: FastifyReply) => {
      const signature = request.headers['stripe-signature'];
      const body = request.body;
      if (typeof signature !== 'string' || signature.length === 0) return reply.code(400).send(error('the Stripe-Signature header is required', 'missing_signature'));
      if (!Buffer.isBuffer(body) || body.length === 0) return reply.code(400).send(error('the request body is empty', 'empty_body'));
      try {
        const result = await forward(body, signature);
        return reply.code(200).send({ received: true, event_id: result.eventId, type: result.eventType, duplicate: result.duplicate, outcome: result.outcome });
      } catch (caught) {
        if (isServiceError(caught) && caught.code === GrpcStatus.INVALID_ARGUMENT) return reply.code(400).send(error(caught.details, 'invalid_signature'));
        logger?.warn({ err: caught }, 'stripe webhook not handed to billing; Stripe will redeliver');
        return reply.code(503).header('retry-after', '5').send({ error: { message: 'billing is unavailable; retry later', type: 'service_unavailable', code: 'service_unavailable', param: null } });
      }
    });
  });
}

const error = (message: string, code: string) => ({ error: { message, type: 'invalid_request_error', code, param: null } });
