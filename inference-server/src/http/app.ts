import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { DataPlane } from '../runtime/data-plane.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { pageRouter } from './page-router.js';
import { predictRouter } from './predict-router.js';
import { requestContext, type RefusalLog } from './request-context.js';
import type { UploadLimits } from './upload.js';
import type { V2Decoder } from './v2-decoder.js';
import { v2Router, type ServerInfo } from './v2-router.js';

export interface AppOptions {
  dataPlane: DataPlane;
  logger: Logger;
  refusals: RefusalLog;
  info: ServerInfo;
  /** Limits of the upload stage; maxBytes is the image's for /predict/image, the body's for v2. */
  upload: Omit<UploadLimits, 'memoryFull' | 'maxBytes'>;
  maxUploadBytes: number;
  maxTensorBytes: number;
  /** Decodes v2 bodies, large ones off the event loop; the server ends it at shutdown. */
  v2Decoder: V2Decoder;
}

/**
 * The Express app: request context, the seed-compatible route, the v2 protocol, metrics, the browser page at /,
 * JSON errors.
 */
export function createApp({
  dataPlane,
  logger,
  refusals,
  info,
  upload,
  maxUploadBytes,
  maxTensorBytes,
  v2Decoder,
}: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext(logger, dataPlane.metrics, refusals));
  app.use((_req, res, next) => {
    // While draining, ask keep-alive clients to reconnect (to another replica) after this response.
    if (dataPlane.draining) res.set('Connection', 'close');
    next();
  });
  app.get('/metrics', async (_req, res) => {
    res.type(dataPlane.metrics.registry.contentType).send(await dataPlane.metrics.registry.metrics());
  });
  app.use(predictRouter(dataPlane, { ...upload, maxBytes: maxUploadBytes }));
  app.use(v2Router(dataPlane, info, { ...upload, maxBytes: maxTensorBytes }, v2Decoder));
  app.use(pageRouter(dataPlane.config.modelName));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
