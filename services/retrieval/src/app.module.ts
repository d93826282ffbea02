import path from 'node:path';
import { Module } from '@nestjs/common';
import { databaseProvider } from '@ai-platform/platform';

/** Owns the `retrieval` schema; its gRPC API arrives with its own issue. */
@Module({ providers: [databaseProvider('retrieval', path.resolve(__dirname, '../migrations'))] })
export class AppModule {}
