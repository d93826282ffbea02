import { Controller, Get } from '@nestjs/common';
import { buildOpenApi } from './openapi';

@Controller()
export class OpenApiController {
  private readonly document = buildOpenApi();

  @Get('openapi.json')
  openapi() {
    return this.document;
  }
}
