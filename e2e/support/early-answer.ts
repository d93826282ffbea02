import http from 'node:http';

/**
 * A POST whose body the server may refuse before reading it all (413 for an oversized body): the
 * server answers and closes the connection while the body is still being sent, so the upload can
 * fail with EPIPE after the answer arrived. fetch reports that as a failed request; here the
 * answer counts as soon as it has arrived, and only a connection that never answered fails.
 */
export function postAnsweredEarly(url: string, headers: Record<string, string>, payload: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    let answered = false;
    const request = http.request(
      { host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(payload)) } },
      (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode!, headers: responseHeaders }));
        });
        response.on('error', reject);
      },
    );
    request.on('error', (error) => { if (!answered) reject(error); });
    request.end(payload);
  });
}
