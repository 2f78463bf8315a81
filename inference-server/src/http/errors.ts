import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import {
  ClientGone,
  DeadlineExceeded,
  InvalidRequest,
  NotFound,
  NotReady,
  Overloaded,
  ServingError,
  TooLarge,
  UnsupportedMedia,
  UploadTimeout,
} from '../errors.js';

/** The JSON body of every error: `error` is what the KServe v2 protocol specifies. */
export interface ErrorBody {
  error: string;
  status: number;
  requestId?: string;
}

/** The one place a domain error becomes an HTTP status (subclasses first: InvalidImage is an InvalidRequest). */
const STATUS: readonly (readonly [new (...args: never[]) => ServingError, number])[] = [
  [InvalidRequest, 400],
  [NotFound, 404],
  [UploadTimeout, 408],
  [TooLarge, 413],
  [UnsupportedMedia, 415],
  // Nginx's "client closed request": never seen by the client, only by logs and metrics.
  [ClientGone, 499],
  [NotReady, 503],
  [Overloaded, 503],
  [DeadlineExceeded, 504],
];

export interface HttpError {
  status: number;
  message: string;
  headers: Record<string, string>;
  /** Refused for load: summed up in the log, not one line each. */
  shed: boolean;
  /** Refused before inference: the requests_rejected_total reason. */
  refusal: string | undefined;
  /** The error came from the server itself, not from the request: log it. */
  unexpected: boolean;
}

/** Status, message and headers for anything thrown while serving a request. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof ServingError) {
    const status = STATUS.find(([type]) => err instanceof type)?.[1] ?? 500;
    const headers: Record<string, string> = {};
    if (err instanceof NotReady || err instanceof Overloaded) headers['Retry-After'] = String(err.retryAfterSeconds);
    // The rest of a refused upload is not read: the connection must not be reused.
    if (err instanceof TooLarge || err instanceof UploadTimeout) headers.Connection = 'close';
    return {
      status,
      message: err.message,
      headers,
      shed: err instanceof Overloaded,
      refusal: refusalReason(err),
      unexpected: status === 500,
    };
  }
  if (
    typeof err === 'object' &&
    err !== null &&
    'status' in err &&
    typeof err.status === 'number' &&
    err.status >= 400 &&
    err.status < 500
  ) {
    // Express's own errors (a malformed URI) carry a status and a safe message.
    return {
      status: err.status,
      message: err instanceof Error ? err.message : 'bad request',
      headers: {},
      shed: false,
      refusal: undefined,
      unexpected: false,
    };
  }
  return {
    status: 500,
    message: 'internal error; see the server log for this request id',
    headers: {},
    shed: false,
    refusal: undefined,
    unexpected: true,
  };
}

/** Refusals by what refused them; undefined for errors that are the request's own fault. */
function refusalReason(err: ServingError): string | undefined {
  if (err instanceof Overloaded) return err.bound;
  if (err instanceof NotReady) return 'not_ready';
  if (err instanceof DeadlineExceeded) return 'deadline';
  if (err instanceof TooLarge) return 'too_large';
  if (err instanceof UploadTimeout) return 'upload_timeout';
  return undefined;
}

/** Writes a JSON error on a bare Node response: the same body Express's handler sends, without Express. */
export function writeError(res: ServerResponse, error: HttpError, requestId: string | undefined): void {
  const body: ErrorBody = { error: error.message, status: error.status, requestId };
  const json = JSON.stringify(body);
  res.writeHead(error.status, {
    ...error.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(json),
  });
  res.end(json);
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new NotFound(`no route for ${req.method} ${req.path}`));
};

/** Turns anything thrown into a JSON error; unexpected errors are logged and hidden behind a 500. */
export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  const error = toHttpError(err);
  if (error.unexpected) req.log.error({ err }, 'unhandled error');
  if (error.shed) res.locals.shed = true;
  if (error.refusal !== undefined) res.locals.refusal = error.refusal;
  if (res.headersSent || err instanceof ClientGone) {
    res.destroy();
    return;
  }
  writeError(res, error, req.id);
};
