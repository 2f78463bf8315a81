import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { TooLarge } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { DataPlane } from '../runtime/data-plane.js';
import { toHttpError, writeError } from './errors.js';
import { RefusalPacer } from './refusal-pacer.js';
import { requestId, type RefusalLog } from './request-context.js';
import { FORM_OVERHEAD_BYTES } from './upload.js';

/** The inference routes, as Express names them in metrics. */
export const PREDICT_ROUTE = '/predict/image';
export const V2_INFER_ROUTE = '/v2/models/:name{/versions/:version}/infer';
const V2_INFER_PATH = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer$/;

export interface GateOptions {
  dataPlane: DataPlane;
  metrics: Metrics;
  logger: Logger;
  refusals: RefusalLog;
  maxUploadBytes: number;
  maxTensorBytes: number;
  /** 503s sent at once per second; past it they wait their turn (see RefusalPacer). */
  refusalsPerSecond: number;
}

export interface AdmissionGate {
  listener: RequestListener;
  /** Inference requests received and not yet answered. */
  readonly inFlight: number;
  /** 503s waiting for their turn. */
  readonly pacedRefusals: number;
}

/**
 * In front of Express, for the two inference routes: a request that would be
 * refused anyway (model not loaded, the memory bound or the opt-in limits
 * reached, a declared body over its limit) is answered here from its headers
 * alone, before its body is read and without the Express stack, so that a
 * refusal costs a fraction of a millisecond; past REFUSALS_PER_SECOND the 503s
 * are paced, so a storm of retries cannot take the CPU from the requests the
 * server serves. Everything else goes on to the app.
 */
export function admissionGate(app: RequestListener, opts: GateOptions): AdmissionGate {
  let inFlight = 0;
  const pacer = new RefusalPacer(opts.refusalsPerSecond);
  const route = (req: IncomingMessage): string | undefined => {
    if (req.method !== 'POST' || req.url === undefined) return undefined;
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    if (path === PREDICT_ROUTE) return PREDICT_ROUTE;
    return V2_INFER_PATH.test(path) ? V2_INFER_ROUTE : undefined;
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, name: string, err: unknown) => {
    const error = toHttpError(err);
    const id = requestId(req);
    res.setHeader('X-Request-Id', id);
    opts.metrics.requests.inc({ method: 'POST', route: name, status: String(error.status) });
    if (error.refusal !== undefined) opts.metrics.rejected.inc({ reason: error.refusal });
    if (error.shed) opts.refusals.note();
    else
      opts.logger.info(
        { reqId: id, method: 'POST', path: req.url, status: error.status, refused: error.refusal },
        'request',
      );
    // Only 503s are paced: a 413 is the client's own fault and is not retried as it is.
    if (error.status !== 503) {
      writeError(res, error, id);
      return;
    }
    pacer.pace(
      () => {
        if (!res.destroyed) writeError(res, error, id);
      },
      () => res.destroy(),
    );
  };
  // Pipelined requests on one connection run one after another. HTTP/1.1 answers them in order anyway, so
  // starting them at once only multiplied what one client holds: eight pipelined uploads counted as eight.
  const waiting = new WeakMap<Socket, (() => void)[]>();
  const inTurn = (req: IncomingMessage, res: ServerResponse, handle: () => void) => {
    const socket = req.socket;
    const start = () => {
      res.once('close', () => {
        const queue = waiting.get(socket);
        const next = socket.destroyed ? undefined : queue?.shift();
        if (next) next();
        else waiting.delete(socket);
      });
      handle();
    };
    const queue = waiting.get(socket);
    if (queue) queue.push(start);
    else {
      waiting.set(socket, []);
      start();
    }
  };
  const listener: RequestListener = (req, res) => inTurn(req, res, () => admit(req, res));
  const admit = (req: IncomingMessage, res: ServerResponse) => {
    const name = route(req);
    if (name === undefined) {
      app(req, res);
      return;
    }
    inFlight++;
    res.once('close', () => inFlight--);
    const declared = Number(req.headers['content-length'] ?? NaN);
    const max = name === PREDICT_ROUTE ? opts.maxUploadBytes + FORM_OVERHEAD_BYTES : opts.maxTensorBytes;
    try {
      if (declared > max)
        throw new TooLarge(
          `the request is ${declared} bytes; ` +
            `${name === PREDICT_ROUTE ? `images up to ${opts.maxUploadBytes} bytes` : `bodies up to ${max} bytes`} ` +
            'are accepted',
        );
      opts.dataPlane.precheck(declared >= 0 ? declared : 0);
    } catch (err) {
      refuse(req, res, name, err);
      return;
    }
    app(req, res);
  };
  return {
    listener,
    get inFlight() {
      return inFlight;
    },
    get pacedRefusals() {
      return pacer.queued;
    },
  };
}
