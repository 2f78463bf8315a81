import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ServerConfig } from './config/server-config.js';
import { createApp } from './http/app.js';
import { Metrics } from './http/metrics.js';
import type { ServerInfo } from './http/v2-router.js';
import { Classifier } from './model/classifier.js';
import { parseLabels } from './model/labels.js';
import { fetchArtifact } from './model-source/fetch.js';
import { Serving } from './runtime/serving.js';

export interface RunningServer {
  server: Server;
  serving: Serving;
  url: string;
  /** Resolves when the model is loaded and warmed up; rejects when it cannot be. */
  modelReady: Promise<void>;
  /** Graceful stop: readiness off, listener closed, in-flight requests finished (or cut at the grace period). */
  shutdown(reason: string): Promise<void>;
}

async function loadModel(config: ServerConfig, logger: Logger, signal: AbortSignal): Promise<Classifier> {
  const fetchOptions = { cacheDir: config.cacheDir, deadlineMs: config.fetchDeadlineMs, logger, signal };
  const [model, labelsFile] = await Promise.all([
    fetchArtifact(config.modelUri, fetchOptions),
    config.labelsUri === undefined ? undefined : fetchArtifact(config.labelsUri, fetchOptions),
  ]);
  logger.info({ source: model.source, bytes: model.sizeBytes, fromCache: model.fromCache }, 'model file ready');
  let labels: string[] | undefined;
  if (labelsFile !== undefined) {
    try {
      labels = parseLabels(await readFile(labelsFile.path, 'utf8'));
    } catch (err) {
      throw new Error(`${labelsFile.source}: ${(err as Error).message}`);
    }
  }
  return Classifier.load(model.path, {
    preprocessing: config.preprocessing,
    threads: config.threads,
    sessions: config.sessions,
    labels,
    overrides: { inputSize: config.inputSize, outputName: config.outputName },
    logger,
  });
}

/**
 * Starts listening at once (liveness answers during a long model download),
 * then fetches, loads and warms up the model; readiness follows.
 */
export async function startServer(config: ServerConfig, logger: Logger, info: ServerInfo): Promise<RunningServer> {
  let serving: Serving | undefined;
  const metrics = new Metrics({
    inFlight: () => serving?.admission.inFlight ?? 0,
    admissionLimit: () => serving?.queueBudget.limit ?? config.maxInFlight,
    // Images waiting for a batch, plus batches (v2 requests) waiting for the session.
    queueDepth: () => (serving?.queueDepth ?? 0) + (serving?.classifier?.queueDepth ?? 0),
  });
  serving = new Serving(config, metrics);
  const live = serving;
  const app = createApp({ serving, logger, info, maxUploadBytes: config.maxUploadBytes, maxTensorBytes: config.maxTensorBytes });
  const server = createServer({ requestTimeout: config.requestTimeoutMs, headersTimeout: Math.min(60_000, config.requestTimeoutMs) }, app);
  // Longer than the idle timeouts of cloud load balancers, so they never reuse a socket we just closed.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${port}`;
  logger.info({ url, sessions: config.sessions, threads: config.threads, maxInFlight: config.maxInFlight }, 'listening');

  const abort = new AbortController();
  const started = performance.now();
  const modelReady = (async () => {
    const classifier = await loadModel(config, logger, abort.signal);
    live.attach(classifier);
    // The warm-up's lone inference seeds the queue budget.
    live.queueBudget.calibrate(await classifier.warmUp());
    live.loaded = true;
    const seconds = (performance.now() - started) / 1000;
    metrics.modelLoadSeconds.set(seconds);
    metrics.modelSizeBytes.set(classifier.sizeBytes);
    metrics.modelReady.set(1);
    logger.info({ model: config.modelName, seconds: Math.round(seconds * 1000) / 1000, queueBudgetMs: live.queueBudget.budgetMs, admissionLimit: live.queueBudget.limit }, 'model warmed up; ready');
  })();

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info({ reason, inFlight: live.admission.inFlight, drainDelayMs: config.drainDelayMs }, 'shutting down: readiness off');
      live.draining = true;
      abort.abort(new Error(`shutting down (${reason})`));
      if (config.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.drainDelayMs));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), config.shutdownGraceMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        logger.warn({ inFlight: live.admission.inFlight, graceMs: config.shutdownGraceMs }, 'grace period over: closing remaining connections');
        server.closeAllConnections();
      }
      await live.classifier?.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  return { server, serving, url, modelReady, shutdown };
}
