/** Tokens a chat template adds around each message (role markers, turn delimiters). */
export const TEMPLATE_TOKENS_PER_MESSAGE = 8;
/** Tokens a chat template adds once (BOS, the open assistant turn). */
export const TEMPLATE_TOKENS_PER_PROMPT = 8;

/**
 * A deliberately high estimate of a prompt's input tokens, used only when the
 * engine's own count never arrived (a call aborted or broken off before the
 * usage chunk). Subword tokenizers average about 4 bytes of English per token;
 * this assumes 3 bytes, and every message's role, plus template overhead, so
 * that an estimate errs toward the real count or above it, never far below.
 */
export function estimateInputTokens(messages: ReadonlyArray<{ role: string; content: string }>): number {
  let tokens = TEMPLATE_TOKENS_PER_PROMPT;
  for (const message of messages) {
    tokens += TEMPLATE_TOKENS_PER_MESSAGE + Math.ceil(Buffer.byteLength(message.role, 'utf8') / 3) + Math.ceil(Buffer.byteLength(message.content, 'utf8') / 3);
  }
  return tokens;
}
