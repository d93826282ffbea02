import http from 'node:http';

/**
 * A POST whose declared body the server should refuse before reading it (413 for an oversized
 * Content-Length). Sending the body races the refusal: the server answers and closes while bytes
 * are still arriving, the unread bytes turn its close into a reset, and the client can lose the
 * answer (EPIPE or ECONNRESET, one run in several). So the headers go first, alone, and the body
 * follows only if no answer has come after `bodyAfterMs` (a server that reads before refusing).
 */
export function postAnsweredEarly(url: string, headers: Record<string, string>, payload: string, bodyAfterMs = 5_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    let answered = false;
    let sendBody: NodeJS.Timeout | undefined;
    const request = http.request(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(payload)) } },
      (response) => {
        answered = true;
        clearTimeout(sendBody);
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode!, headers: responseHeaders }));
          request.destroy(); // the declared body was never sent
        });
        response.on('error', reject);
      },
    );
    request.on('error', (error) => {
      if (!answered) reject(error);
    });
    request.flushHeaders();
    sendBody = setTimeout(() => {
      if (!answered) request.end(payload);
    }, bodyAfterMs);
  });
}
