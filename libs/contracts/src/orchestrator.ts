// The orchestrator's services (chat turns, stored conversations) under one namespace.
export * from './gen/ai/platform/orchestrator/v1/chat_pb';
export * from './gen/ai/platform/orchestrator/v1/conversations_pb';
