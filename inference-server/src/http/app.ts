import express, { type Express } from 'express';
import type { Logger } from 'pino';
import type { Serving } from '../runtime/serving.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { pageRouter } from './page-router.js';
import { predictRouter } from './predict-router.js';
import { requestContext } from './request-context.js';
import { v2Router, type ServerInfo } from './v2-router.js';

export interface AppOptions {
  serving: Serving;
  logger: Logger;
  info: ServerInfo;
  maxUploadBytes: number;
  maxTensorBytes: number;
}

/** The Express app: request context, the seed-compatible route, the v2 protocol, metrics, the browser page at /, JSON errors. */
export function createApp({ serving, logger, info, maxUploadBytes, maxTensorBytes }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext(logger, serving.metrics));
  app.use((_req, res, next) => {
    // While draining, ask keep-alive clients to reconnect (to another replica) after this response.
    if (serving.draining) res.set('Connection', 'close');
    next();
  });
  app.get('/metrics', async (_req, res) => {
    res.type(serving.metrics.registry.contentType).send(await serving.metrics.registry.metrics());
  });
  app.use(predictRouter(serving, maxUploadBytes));
  app.use(v2Router(serving, info, maxTensorBytes));
  app.use(pageRouter(serving.config.modelName));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
