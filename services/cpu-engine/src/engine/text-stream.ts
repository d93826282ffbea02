/** Turns token ids into text: `detokenize(tokens, lastTokens)` with the preceding tokens as context. */
export type Detokenize = (tokens: readonly number[], lastTokens: readonly number[]) => string;

const REPLACEMENT_CHAR = '\uFFFD';
/** Longest run of tokens a single character can be split across (UTF-8 byte-fallback tokens). */
const MAX_PENDING_TOKENS = 4;
/** Tokens of context handed to the detokenizer (leading-space rules of SentencePiece vocabularies). */
const CONTEXT_TOKENS = 8;

export interface TextStep {
  /** Text safe to send to the client now (never part of a stop string). */
  delta: string;
  /** Set when a stop string matched: the output ends before it. */
  stopped: boolean;
}

/**
 * Incremental detokenizer with stop strings, as in vLLM's output processor:
 * - a token that ends inside a multi-byte character is held until the character is whole;
 * - text that could be the beginning of a stop string is held back until it is known not to be;
 * - when a stop string appears, the text before it is released and the stop string is dropped.
 */
export class TextStream {
  private readonly history: number[] = [];
  private pending: number[] = [];
  private text = '';
  private emitted = 0;
  private done = false;
  private readonly longestStop: number;

  constructor(
    private readonly detokenize: Detokenize,
    private readonly stops: readonly string[],
  ) {
    this.longestStop = stops.reduce((max, stop) => Math.max(max, stop.length), 0);
  }

  /** All text released so far. */
  get output(): string {
    return this.text.slice(0, this.emitted);
  }

  /** Feeds one generated token. */
  push(token: number): TextStep {
    if (this.done) return { delta: '', stopped: true };
    this.pending.push(token);
    const decoded = this.detokenize(this.pending, this.history.slice(-CONTEXT_TOKENS));
    if (decoded.endsWith(REPLACEMENT_CHAR) && this.pending.length < MAX_PENDING_TOKENS) return { delta: '', stopped: false };
    this.history.push(...this.pending);
    this.pending = [];
    this.text += decoded;
    return this.release(false);
  }

  /** Ends the stream (end of generation or length): releases everything still held back. */
  finish(): TextStep {
    if (this.done) return { delta: '', stopped: true };
    if (this.pending.length > 0) {
      this.text += this.detokenize(this.pending, this.history.slice(-CONTEXT_TOKENS));
      this.history.push(...this.pending);
      this.pending = [];
    }
    return this.release(true);
  }

  private release(final: boolean): TextStep {
    const stopAt = this.findStop();
    if (stopAt !== -1) {
      const delta = this.text.slice(this.emitted, stopAt);
      this.text = this.text.slice(0, stopAt);
      this.emitted = stopAt;
      this.done = true;
      return { delta, stopped: true };
    }
    const safeEnd = final ? this.text.length : this.text.length - this.heldBack();
    if (final) this.done = true;
    if (safeEnd <= this.emitted) return { delta: '', stopped: false };
    const delta = this.text.slice(this.emitted, safeEnd);
    this.emitted = safeEnd;
    return { delta, stopped: false };
  }

  /** Earliest index where a stop string starts in the unreleased text, -1 if none (released text never holds the start of one). */
  private findStop(): number {
    let earliest = -1;
    for (const stop of this.stops) {
      if (!stop) continue;
      const index = this.text.indexOf(stop, this.emitted);
      if (index !== -1 && (earliest === -1 || index < earliest)) earliest = index;
    }
    return earliest;
  }

  /** Length of the longest tail of the text that is a proper prefix of a stop string. */
  private heldBack(): number {
    const tailStart = Math.max(this.emitted, this.text.length - this.longestStop + 1);
    for (let start = tailStart; start < this.text.length; start++) {
      const tail = this.text.slice(start);
      if (this.stops.some((stop) => stop.length > tail.length && stop.startsWith(tail))) return this.text.length - start;
    }
    return 0;
  }
}
