import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ServerConfig } from './config/server-config.js';
import { admissionGate } from './http/admission-gate.js';
import { createApp } from './http/app.js';
import { V2Decoder } from './http/v2-decoder.js';
import { answerProtocolErrors } from './http/protocol-errors.js';
import { RefusalLog } from './http/request-context.js';
import type { ServerInfo } from './http/v2-router.js';
import { Metrics } from './metrics.js';
import { Classifier, type LoadedModel } from './model/classifier.js';
import { parseLabels } from './model/labels.js';
import { fetchArtifact } from './model-source/fetch.js';
import { DataPlane } from './runtime/data-plane.js';
import { autoQueueBytes } from './runtime/memory-budget.js';
import { effectiveMemory } from './runtime/memory-limit.js';

/**
 * Headers must arrive within this long (Node's default is a minute, checked
 * every 30 s): a client trickling its headers holds only a socket, but not
 * for long.
 */
const HEADERS_TIMEOUT_MS = 15_000;

export interface RunningServer {
  server: Server;
  dataPlane: DataPlane;
  /** Inference requests received and not yet answered. */
  readonly inFlight: number;
  url: string;
  /** Resolves when the model is loaded and warmed up; rejects when it cannot be. */
  modelReady: Promise<void>;
  /** Graceful stop: readiness off, listener closed, in-flight requests finished (or cut at the grace period). */
  shutdown(reason: string): Promise<void>;
}

async function loadModel(config: ServerConfig, logger: Logger, signal: AbortSignal): Promise<LoadedModel> {
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
      throw new Error(`${labelsFile.source}: ${(err as Error).message}`, { cause: err });
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
 * The most parsing one v2 JSON body may hold: room for a MAX_TENSOR_BYTES body of ordinary numbers ("0.123," and
 * longer).
 */
const V2_PARSE_BYTES_PER_TENSOR_BYTE = 4;

/**
 * Starts listening at once (liveness answers during a long model download),
 * then fetches, loads and warms up the model; readiness follows.
 */
export async function startServer(config: ServerConfig, logger: Logger, info: ServerInfo): Promise<RunningServer> {
  // Read at scrape time only, when `live` and `gate` below exist.
  const metrics: Metrics = new Metrics({
    inFlight: () => gate.inFlight,
    queuedImages: () => live.scheduler?.queuedImages ?? 0,
    runningImages: () => live.scheduler?.runningImages ?? 0,
    admissionLimit: () => live.scheduler?.limit ?? Infinity,
    memoryReserved: () => live.memory?.usedBytes ?? 0,
    memoryBound: () => live.memory?.limitBytes ?? 0,
    queueBudgetSeconds: () => (live.queueBudget?.budgetMs ?? 0) / 1000,
  });
  const live: DataPlane = new DataPlane(config, metrics);
  const refusals = new RefusalLog(logger);
  const v2Decoder = new V2Decoder({ maxParseBytes: V2_PARSE_BYTES_PER_TENSOR_BYTE * config.maxTensorBytes });
  const app = createApp({
    dataPlane: live,
    logger,
    refusals,
    info,
    upload: { idleTimeoutMs: config.uploadIdleTimeoutMs, minBytesPerSecond: config.uploadMinBytesPerSecond },
    maxUploadBytes: config.maxUploadBytes,
    maxTensorBytes: config.maxTensorBytes,
    v2Decoder,
  });
  const gate = admissionGate(app, {
    dataPlane: live,
    metrics,
    logger,
    refusals,
    maxUploadBytes: config.maxUploadBytes,
    maxTensorBytes: config.maxTensorBytes,
    refusalsPerSecond: config.refusalsPerSecond,
  });
  const server = createServer(
    {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(HEADERS_TIMEOUT_MS, config.requestTimeoutMs),
      connectionsCheckingInterval: 1000,
    },
    gate.listener,
  );
  answerProtocolErrors(server);
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
  logger.info({ url, sessions: config.sessions, threads: config.threads }, 'listening');

  const abort = new AbortController();
  const started = performance.now();
  const modelReady = (async () => {
    const model = await loadModel(config, logger, abort.signal);
    // The bound is sized once the weights are in memory: what is left of the pod's limit is what requests may hold.
    const maxQueueBytes =
      config.maxQueueBytes === 'auto'
        ? autoQueueBytes(effectiveMemory(), process.memoryUsage.rss())
        : config.maxQueueBytes;
    await live.attach(model, maxQueueBytes);
    const seconds = (performance.now() - started) / 1000;
    metrics.modelLoadSeconds.set(seconds);
    metrics.modelSizeBytes.set(model.classifier.sizeBytes);
    metrics.modelReady.set(1);
    logger.info(
      {
        model: config.modelName,
        seconds: Math.round(seconds * 1000) / 1000,
        maxQueueBytes,
        queueBudgetMs: live.queueBudget?.budgetMs,
        admissionLimit: Number.isFinite(live.scheduler!.limit) ? live.scheduler!.limit : undefined,
      },
      'model warmed up; ready',
    );
  })();

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info(
        { reason, inFlight: gate.inFlight, drainDelayMs: config.drainDelayMs },
        'shutting down: readiness off',
      );
      live.draining = true;
      abort.abort(new Error(`shutting down (${reason})`));
      if (config.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.drainDelayMs));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections whose last request ends during the drain go idle later, not now: close them as they do.
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        closed.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), config.shutdownGraceMs);
        }),
      ]);
      clearTimeout(timer);
      clearInterval(sweep);
      // Requests read but never answered: 0 unless the grace period ran out.
      let unanswered = 0;
      if (timedOut) {
        unanswered = gate.inFlight;
        logger.warn(
          { inFlight: unanswered, graceMs: config.shutdownGraceMs },
          'grace period over: closing remaining connections',
        );
        server.closeAllConnections();
      }
      await Promise.all([live.close(), v2Decoder.close()]);
      logger.info({ unanswered }, 'stopped');
    })();
    return stopping;
  };
  return {
    server,
    dataPlane: live,
    get inFlight() {
      return gate.inFlight;
    },
    url,
    modelReady,
    shutdown,
  };
}
