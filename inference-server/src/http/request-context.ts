import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { DataPlane } from '../runtime/data-plane.js';
import type { Reservation } from '../runtime/memory-budget.js';

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

/** The client's X-Request-Id when it is a sane one, else a new id. */
export function requestId(req: IncomingMessage): string {
  const header = req.headers['x-request-id'];
  return typeof header === 'string' && CLIENT_ID.test(header) ? header : randomUUID();
}

/** What an inference request carries through the data plane, from its arrival to its answer. */
export interface InferenceContext {
  /** performance.now() ms past which its inference is not started. */
  deadline: number;
  /** The memory it holds, released when the response is done (or the client gone). */
  reservation: Reservation;
  /** Aborted when the client goes away before its answer is written, so queued work for it is dropped. */
  signal: AbortSignal;
}

export function inferenceContext(dataPlane: DataPlane, res: ServerResponse): InferenceContext {
  const deadline = performance.now() + dataPlane.config.requestDeadlineMs;
  const reservation = dataPlane.reserve(0);
  const controller = new AbortController();
  res.once('close', () => {
    reservation.release();
    if (!res.writableFinished) controller.abort();
  });
  return { deadline, reservation, signal: controller.signal };
}

/** Labels metrics by route pattern, never by raw path (model names and typos would explode cardinality). */
function routeLabel(req: Parameters<RequestHandler>[0]): string {
  const route = (req as { route?: { path?: unknown } }).route;
  return typeof route?.path === 'string' ? `${req.baseUrl}${route.path}` : 'unmatched';
}

/** Refusals are summed up in one warning per this many ms. */
const SHED_SUMMARY_MS = 10_000;

/**
 * Requests refused for load (503) get no log line of their own: under a
 * retry storm there may be hundreds a second, and writing them would take
 * CPU from the requests being served. The first refusal of an episode is
 * logged at once, then a count every 10 s until they stop.
 */
export class RefusalLog {
  private refused = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly logger: Logger) {}

  note(): void {
    this.refused++;
    if (this.timer === undefined) this.flush();
  }

  private flush(): void {
    if (this.refused === 0) {
      this.timer = undefined;
      return;
    }
    this.logger.warn(
      { refused: this.refused, withinSeconds: this.timer === undefined ? 0 : SHED_SUMMARY_MS / 1000 },
      'shedding load: requests refused with 503',
    );
    this.refused = 0;
    this.timer = setTimeout(() => this.flush(), SHED_SUMMARY_MS).unref();
  }
}

/**
 * Request id, a child logger, one access-log line and the HTTP metrics per
 * request. No bodies are logged; refusals for load go to the RefusalLog.
 */
export function requestContext(logger: Logger, metrics: Metrics, refusals: RefusalLog): RequestHandler {
  return (req, res, next) => {
    req.id = requestId(req);
    req.log = logger.child({ reqId: req.id });
    res.setHeader('X-Request-Id', req.id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeLabel(req);
      metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.requestDuration.observe({ method: req.method, route }, seconds);
      if (typeof res.locals.refusal === 'string') metrics.rejected.inc({ reason: res.locals.refusal });
      // probes every few seconds would drown the log
      if (route === '/metrics' || route.startsWith('/v2/health')) return;
      if (res.locals.shed === true) {
        refusals.note();
        return;
      }
      req.log.info(
        {
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Math.round(seconds * 1e4) / 10,
          bytesIn: Number(req.get('content-length') ?? 0) || undefined,
        },
        'request',
      );
    });
    next();
  };
}
