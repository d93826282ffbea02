import { Inject, Injectable } from '@nestjs/common';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { billing } from '@ai-platform/contracts';
import { GrpcError, GrpcStatus, type CallInfo, type ServiceImplementation } from '@ai-platform/platform';
import { PRICE_TABLE } from '../infra/tokens';
import type { PriceTable } from '@ai-platform/pricing';
import { InsufficientCreditError, MAX_TOKENS_PER_REQUEST, ReservationNotFoundError, ReservationService } from './reservation.service';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_ID_LENGTH = 256;

function invalid(message: string): GrpcError {
  return new GrpcError(GrpcStatus.INVALID_ARGUMENT, message);
}

/** gRPC face of billing.v1.BillingService: validation and status codes; the work is in ReservationService. */
@Injectable()
export class BillingGrpcHandler implements ServiceImplementation<typeof billing.BillingService> {
  constructor(
    @Inject(ReservationService) private readonly reservations: ReservationService,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
  ) {}

  async reserve(request: billing.ReserveRequest, call: CallInfo): Promise<MessageInitShape<typeof billing.ReserveResponseSchema>> {
    if (!request.tenantId) throw invalid('tenant_id is required');
    for (const [name, value] of [['tenant_id', request.tenantId], ['user_id', request.userId], ['api_key_id', request.apiKeyId], ['request_id', request.requestId]] as const) {
      if (value.length > MAX_ID_LENGTH) throw invalid(`${name} must be at most ${MAX_ID_LENGTH} characters`);
    }
    if (call.context.tenantId && call.context.tenantId !== request.tenantId) {
      throw new GrpcError(GrpcStatus.PERMISSION_DENIED, 'tenant_id does not match the x-tenant-id of the call');
    }
    if (!request.model) throw invalid('model is required');
    if (!this.prices.has(request.model)) throw invalid(`unknown model "${request.model}"; known models: ${this.prices.models().join(', ')}`);
    if (request.inputTokens > MAX_TOKENS_PER_REQUEST) throw invalid(`input_tokens must be at most ${MAX_TOKENS_PER_REQUEST}`);
    if (request.maxOutputTokens > MAX_TOKENS_PER_REQUEST) throw invalid(`max_output_tokens must be at most ${MAX_TOKENS_PER_REQUEST}`);
    try {
      const reservation = await this.reservations.reserve({
        tenantId: request.tenantId,
        userId: request.userId,
        apiKeyId: request.apiKeyId,
        requestId: request.requestId,
        model: request.model,
        inputTokens: request.inputTokens,
        maxOutputTokens: request.maxOutputTokens,
      });
      return {
        reservationId: reservation.reservationId,
        amountMicros: reservation.amountMicros,
        availableMicros: reservation.availableMicros,
        expiresAt: timestampFromDate(reservation.expiresAt),
      };
    } catch (error) {
      if (error instanceof InsufficientCreditError) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, error.message);
      throw error;
    }
  }

  async release(request: billing.ReleaseRequest, call: CallInfo): Promise<MessageInitShape<typeof billing.ReleaseResponseSchema>> {
    if (!request.reservationId) throw invalid('reservation_id is required');
    if (!UUID.test(request.reservationId)) throw invalid('reservation_id must be a UUID');
    try {
      const released = await this.reservations.release(request.reservationId.toLowerCase(), request.reason.slice(0, 500), call.context.tenantId);
      return { released };
    } catch (error) {
      if (error instanceof ReservationNotFoundError) throw new GrpcError(GrpcStatus.NOT_FOUND, error.message);
      throw error;
    }
  }
}
