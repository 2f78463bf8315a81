import { connect } from 'node:net';

export interface RawAnswer {
  /** 0 when the server closed without a status line. */
  status: number;
  /** The status line and headers. */
  head: string;
  contentType: string;
  /** The body, cut at Content-Length when there is one. */
  body: string;
  /** Everything the server sent. */
  text: string;
}

/**
 * Writes `bytes` on a fresh connection and reads until the server closes: for
 * requests no HTTP client sends on purpose. `halfClose` (the default) ends our
 * side after writing; false leaves it open, as a client that stalls does.
 * Resolves undefined when the server closed without sending a byte.
 */
export function rawRequest(
  port: number,
  bytes: string | Buffer,
  opts: { halfClose?: boolean; timeoutMs?: number } = {},
): Promise<RawAnswer | undefined> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server neither answered nor closed within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined); // a reset after the answer: what was read is judged
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      if (text === '') return resolve(undefined);
      const end = text.indexOf('\r\n\r\n');
      const head = end === -1 ? text : text.slice(0, end);
      const rest = end === -1 ? '' : text.slice(end + 4);
      const length = Number(/^content-length:\s*(\d+)$/im.exec(head)?.[1] ?? -1);
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0),
        head,
        contentType: /^content-type:\s*(.*)$/im.exec(head)?.[1]?.trim() ?? '',
        body: length >= 0 ? rest.slice(0, length) : rest,
        text,
      });
    });
    if (opts.halfClose === false) socket.write(bytes);
    else socket.end(bytes);
  });
}
