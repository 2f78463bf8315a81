import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ApiError } from '../errors.js';

/** The JSON body of every error: `error` is what the KServe v2 protocol specifies. */
export interface ErrorBody {
  error: string;
  status: number;
  requestId?: string;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new ApiError(404, `no route for ${req.method} ${req.path}`));
};

/** Turns anything thrown into a JSON error; unexpected errors are logged and hidden behind a 500. */
export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  let status = 500;
  let message = 'internal error; see the server log for this request id';
  let headers: Record<string, string> = {};
  if (err instanceof ApiError) {
    ({ status, message, headers } = err);
    if (err.shed) res.locals.shed = true;
  } else if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
    // body-parser's errors (413 entity too large, 400 bad JSON) carry a status and a safe message.
    status = err.status;
    message = err instanceof Error ? err.message : 'bad request';
  } else {
    req.log.error({ err }, 'unhandled error');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body: ErrorBody = { error: message, status, requestId: req.id };
  res.status(status).set(headers).json(body);
};
