import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express types are extended by declaration merging.
  namespace Express {
    interface Request {
      /** Correlates the access log, error logs and the client's X-Request-Id. */
      id: string;
      log: Logger;
    }
  }
}

const CLIENT_ID = /^[\w.:-]{1,128}$/;

/** Labels metrics by route pattern, never by raw path (model names and typos would explode cardinality). */
function routeLabel(req: Parameters<RequestHandler>[0]): string {
  const route = (req as { route?: { path?: unknown } }).route;
  return typeof route?.path === 'string' ? `${req.baseUrl}${route.path}` : 'unmatched';
}

/** Refusals are summed up in one warning per this many ms. */
const SHED_SUMMARY_MS = 10_000;

/**
 * Request id, a child logger, one access-log line and the HTTP metrics per
 * request. No bodies are logged. Requests refused for load (503, shed) get no
 * line of their own: under overload there may be hundreds a second, and
 * writing them would take CPU from the requests being served. They are counted
 * (requests_rejected_total) and summed up in one warning every 10 s.
 */
export function requestContext(logger: Logger, metrics: Metrics): RequestHandler {
  let refused = 0;
  let timer: NodeJS.Timeout | undefined;
  // The first refusal of an episode is logged at once, then a count every 10 s until they stop.
  const flush = () => {
    if (refused === 0) {
      timer = undefined;
      return;
    }
    logger.warn({ refused, withinSeconds: timer === undefined ? 0 : SHED_SUMMARY_MS / 1000 }, 'shedding load: requests refused with 503 at the admission limit');
    refused = 0;
    timer = setTimeout(flush, SHED_SUMMARY_MS).unref();
  };
  const noteShed = () => {
    refused++;
    if (timer === undefined) flush();
  };
  return (req, res, next) => {
    const header = req.get('x-request-id');
    req.id = header !== undefined && CLIENT_ID.test(header) ? header : randomUUID();
    req.log = logger.child({ reqId: req.id });
    res.setHeader('X-Request-Id', req.id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel(req);
      metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.requestDuration.observe({ method: req.method, route }, seconds);
      if (route === '/metrics' || route.startsWith('/v2/health')) return; // probes every few seconds would drown the log
      if (res.locals.shed === true) {
        noteShed();
        return;
      }
      req.log.info({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(seconds * 1e4) / 10, bytesIn: Number(req.get('content-length') ?? 0) || undefined }, 'request');
    });
    next();
  };
}
