import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';

/** Owns the `tools` schema; its gRPC API arrives with its own issue. */
@Module({ providers: [databaseProvider('tools', path.resolve(__dirname, '../migrations'))] })
export class AppModule {}
