/**
 * JSON answers for what Node's HTTP layer refuses before Express sees a
 * request: parser errors (bad methods, CL with TE, bad chunk sizes), headers
 * over the limit (431), request and header timeouts (408), an unmet `Expect`
 * (417) and CONNECT (405). Node's defaults send these with no body at all; the
 * API promises a JSON error for every refusal.
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorBody } from './errors.js';

/** The status for a `clientError`, from Node's error code. */
export function clientErrorStatus(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return 408;
    default:
      // Including HPE_INVALID_METHOD: llhttp gives the same code for an unknown method and for garbage.
      return 400;
  }
}

const MESSAGES: Record<number, string> = {
  400: 'the request is not valid HTTP/1.1',
  408: 'the request did not arrive in time',
  431: 'the request headers are larger than the server accepts',
};

/** A whole HTTP/1.1 response with a JSON error body, for writing straight to a socket. */
export function rawJsonError(status: number, message: string): string {
  const body = JSON.stringify({ error: message, status } satisfies ErrorBody);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/** Installs the handlers on `server`: a JSON error for each, then the connection closes. */
export function answerProtocolErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node does the same check: a response already under way on this socket cannot be followed by another.
    const inProgress = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err.code);
    socket.end(rawJsonError(status, `${MESSAGES[status] ?? 'the request was refused'} (${err.code ?? err.message})`));
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({
      error: `Expect: ${req.headers.expect ?? ''} is not supported; only 100-continue is`,
      status: 417,
    } satisfies ErrorBody);
    res
      .writeHead(417, {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        Connection: 'close',
      })
      .end(body);
  });
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.end(rawJsonError(405, 'CONNECT is not supported: this is not a proxy'));
  });
}
