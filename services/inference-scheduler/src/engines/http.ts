/** Small helpers for talking HTTP to engines. */

/** Reads at most `limit` bytes of a response body as text; the rest is discarded. */
export async function readBodyText(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      text += decoder.decode(size > limit ? value.subarray(0, Math.max(0, value.byteLength - (size - limit))) : value, { stream: true });
      if (size >= limit) break;
    }
    return text + decoder.decode();
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** An error's message, with its cause's (fetch puts the socket error there). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
