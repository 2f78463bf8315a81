import type { Sharp } from 'sharp';
import type { ServerConfig } from '../config/server-config.js';
import { overloaded, unavailable } from '../errors.js';
import { decodeImage, type DecodedImage } from '../imaging/decode.js';
import type { Classifier, ImageTensor } from '../model/classifier.js';
import type { Metrics } from '../http/metrics.js';
import { Batcher } from '../model/batcher.js';
import { Admission, Semaphore } from './semaphore.js';
import { QueueBudget } from './queue-budget.js';

/**
 * The serving side of one model: whether it may take traffic, the admission cap,
 * and the decode → classify pipeline that the HTTP routes and the benchmark share.
 */
export class Serving {
  classifier: Classifier | undefined;
  private batcher: Batcher<ImageTensor, Float32Array> | undefined;
  /** Loaded and warmed up. */
  loaded = false;
  /**
   * SIGTERM received: readiness is false so load balancers stop sending, but
   * requests that still arrive on open connections are served.
   */
  draining = false;
  readonly admission: Admission;
  /** The in-flight cap that keeps the expected wait within MAX_QUEUE_MS. */
  readonly queueBudget: QueueBudget;
  private readonly decodes: Semaphore;

  constructor(
    readonly config: Pick<ServerConfig, 'maxInFlight' | 'maxQueueMs' | 'sessions' | 'decodeConcurrency' | 'maxInputPixels' | 'modelName' | 'maxTopK' | 'maxBatchSize' | 'maxQueueDelayMs' | 'requestDeadlineMs'>,
    readonly metrics: Metrics,
  ) {
    this.admission = new Admission(config.maxInFlight);
    this.queueBudget = new QueueBudget({ budgetMs: config.maxQueueMs, sessions: config.sessions, maxInFlight: config.maxInFlight });
    this.decodes = new Semaphore(config.decodeConcurrency);
  }

  get ready(): boolean {
    return this.loaded && !this.draining && this.classifier !== undefined;
  }

  /** The classifier, or a 503 that says why there is none yet. */
  requireReady(): Classifier {
    if (!this.loaded || this.classifier === undefined) throw unavailable('the model is still loading; retry shortly', 5);
    return this.classifier;
  }

  /**
   * Admits one request or throws 503 + Retry-After; the caller must call the
   * returned release. The cap is the smaller of MAX_IN_FLIGHT and what the
   * queue budget allows at the current inference speed.
   */
  admit(): () => void {
    const limit = this.queueBudget.limit;
    const release = this.admission.tryEnter(limit);
    if (release === undefined) {
      this.metrics.rejected.inc({ reason: 'overloaded' });
      const budget = this.queueBudget.budgetMs;
      const why = budget !== undefined && limit < this.config.maxInFlight ? ` (the most that can be answered within the ${Math.round(budget)} ms queue budget)` : '';
      throw overloaded(`the server is at its limit of ${limit} requests in progress${why}; retry shortly`, 1);
    }
    return release;
  }

  /** Decodes an image to the model's input size; bounded so a burst of uploads cannot exhaust memory. */
  async decode(source: Sharp | Buffer, classifier: Classifier, resize: boolean): Promise<DecodedImage> {
    const { width, height } = classifier.signature;
    return this.decodes.run(async () => {
      const end = this.metrics.decodeDuration.startTimer();
      try {
        return await decodeImage(source, {
          width,
          height,
          resize,
          resizeMode: classifier.options.resizeMode,
          padColor: classifier.options.padColor,
          maxPixels: this.config.maxInputPixels,
        });
      } finally {
        end();
      }
    });
  }

  /** Serves this classifier from now on, batching its images when the model allows it. */
  attach(classifier: Classifier): void {
    this.classifier = classifier;
    const maxBatchSize = classifier.signature.batch === 'dynamic' ? this.config.maxBatchSize : 1;
    this.batcher = new Batcher<ImageTensor, Float32Array>(async (images) => {
      const { rows, timing } = await classifier.classifyPrepared(images);
      this.queueBudget.observe(timing.inferenceSeconds * 1000, images.length);
      this.metrics.inferenceDuration.observe(timing.inferenceSeconds);
      this.metrics.batchSize.observe(images.length);
      return rows;
    }, { maxBatchSize, maxQueueDelayMs: this.config.maxQueueDelayMs, concurrency: classifier.concurrency });
  }

  /** Images waiting for the session (the batcher's queue). */
  get queueDepth(): number {
    return this.batcher?.queued ?? 0;
  }

  /** Runs the model on one decoded image (batched with others in flight); 504 past `deadline` (performance.now() ms). */
  async classify(image: DecodedImage, deadline: number): Promise<Float32Array> {
    if (!this.batcher || !this.classifier) throw unavailable('the model is still loading; retry shortly', 5);
    const { result, queueSeconds } = await this.batcher.submit(this.classifier.prepare(image.pixels), deadline);
    this.metrics.queueDuration.observe(queueSeconds);
    return result;
  }
}
