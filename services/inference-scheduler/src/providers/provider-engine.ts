import { Engine, type EngineKind } from '../engines/engine';
import type { EngineWire } from '../engines/chat-stream';
import { ANTHROPIC_WIRE } from './anthropic-wire';
import { OPENAI_WIRE } from './openai-wire';

export type ProviderUse = 'overflow' | 'fallback';

export interface ProviderSpec {
  /** Id in logs, metrics and usage events (`Completion.engine_id` is `provider:<name>`). */
  name: string;
  kind: 'openai' | 'anthropic';
  /** OpenAI: API root with version (`https://api.openai.com/v1`); Anthropic: without (`https://api.anthropic.com`). */
  baseUrl: string;
  /** Name of the environment variable holding the key (never the key itself in config). */
  apiKeyEnv?: string;
  /** Our model name → the provider's model name; only these models are served. */
  models: Record<string, string>;
  use: ProviderUse[];
  /** Lanes allowed to overflow here (paid capacity); fallback applies to every lane. */
  overflowPriorities: string[];
}

/** An external model API behind the engine interface: not polled, always "healthy" unless its breaker is open. */
export class ProviderEngine extends Engine {
  override readonly kind: EngineKind;
  override readonly wire: EngineWire;
  readonly apiKey?: string;

  constructor(readonly spec: ProviderSpec, env: NodeJS.ProcessEnv = process.env) {
    super(`provider:${spec.name}`, spec.baseUrl.replace(/\/+$/, ''));
    this.kind = spec.kind;
    this.wire = spec.kind === 'anthropic' ? ANTHROPIC_WIRE : OPENAI_WIRE;
    this.apiKey = spec.apiKeyEnv ? env[spec.apiKeyEnv] : undefined;
    this.healthy = true;
    this.models = Object.keys(spec.models).map((id) => ({ id }));
  }

  providerModel(model: string): string {
    return this.spec.models[model] ?? model;
  }
}
