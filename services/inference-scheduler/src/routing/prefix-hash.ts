/**
 * Approximate token blocks of a prompt, for prefix-cache-aware routing.
 *
 * vLLM caches KV per block of `block_size` tokens and identifies a block by the
 * hash of its tokens chained with its parent block's hash, so a block is reused
 * only when the whole prefix up to it is identical. We do not tokenize on the
 * hot path (the engine's `/tokenize` would cost a round trip per request, and a
 * tokenizer in-process costs more than the routing decision is allowed to):
 * instead the rendered prompt is cut into blocks of `blockSize * CHARS_PER_TOKEN`
 * UTF-16 code units, and each block's hash chains the previous one. Two prompts
 * that share a token prefix share these character blocks up to the same point
 * (±1 block at the boundary), which is all the scorer needs: an estimate of how
 * much of the prompt an engine probably has cached.
 */

/** Average characters per token of BPE tokenizers on English text and code. */
export const CHARS_PER_TOKEN = 4;

/** The prompt as the engine's chat template would see it, roughly: roles and contents in order. */
export function renderPrompt(messages: ReadonlyArray<{ role: string; content: string }>): string {
  let text = '';
  for (const message of messages) text += `<${message.role}>\n${message.content}\n`;
  return text;
}

/**
 * Chained hashes of the full blocks of `text` (a trailing partial block is not
 * cacheable in vLLM either). Two 32-bit FNV-1a lanes with different seeds run
 * over the text once; at each block boundary their state is combined into one
 * 53-bit number (a safe integer, a cheap Map key). Since FNV state carries the
 * whole prefix, each block's hash already depends on every block before it.
 */
export function blockHashes(text: string, blockChars: number, maxBlocks = 4096): number[] {
  const hashes: number[] = [];
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  const end = Math.min(text.length, blockChars * maxBlocks);
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    a = Math.imul(a ^ code, 0x01000193);
    b = Math.imul(b ^ code, 0x01000193) ^ (b >>> 15);
    if ((i + 1) % blockChars === 0) hashes.push((a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff));
  }
  return hashes;
}

/** Block hashes of a request, computed once per block size and shared by every engine with that size. */
export class PromptBlocks {
  private text?: string;
  private readonly byBlockSize = new Map<number, number[]>();

  constructor(private readonly messages: ReadonlyArray<{ role: string; content: string }>) {}

  forBlockSize(blockSize: number): number[] {
    let hashes = this.byBlockSize.get(blockSize);
    if (!hashes) {
      this.text ??= renderPrompt(this.messages);
      hashes = blockHashes(this.text, Math.max(1, blockSize * CHARS_PER_TOKEN));
      this.byBlockSize.set(blockSize, hashes);
    }
    return hashes;
  }
}
