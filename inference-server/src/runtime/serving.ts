import type { Sharp } from 'sharp';
import type { ServerConfig } from '../config/server-config.js';
import { unavailable } from '../errors.js';
import { decodeImage, type DecodedImage } from '../imaging/decode.js';
import type { Classifier } from '../model/classifier.js';
import type { Metrics } from '../http/metrics.js';
import { Admission, Semaphore } from './semaphore.js';

/**
 * The serving side of one model: whether it may take traffic, the admission cap,
 * and the decode → classify pipeline that the HTTP routes and the benchmark share.
 */
export class Serving {
  classifier: Classifier | undefined;
  /** Loaded and warmed up. */
  loaded = false;
  /**
   * SIGTERM received: readiness is false so load balancers stop sending, but
   * requests that still arrive on open connections are served.
   */
  draining = false;
  readonly admission: Admission;
  private readonly decodes: Semaphore;

  constructor(
    readonly config: Pick<ServerConfig, 'maxInFlight' | 'decodeConcurrency' | 'maxInputPixels' | 'modelName' | 'maxTopK'>,
    readonly metrics: Metrics,
  ) {
    this.admission = new Admission(config.maxInFlight);
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

  /** Admits one request or throws 503 + Retry-After; the caller must call the returned release. */
  admit(): () => void {
    const release = this.admission.tryEnter();
    if (release === undefined) {
      this.metrics.rejected.inc({ reason: 'overloaded' });
      throw unavailable(`the server is at its limit of ${this.admission.limit} requests in progress; retry shortly`, 1);
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

  /** Runs the model on one decoded image, recording queue and inference time. */
  async classify(classifier: Classifier, image: DecodedImage): Promise<Float32Array> {
    const { rows, timing } = await classifier.classify([image.pixels]);
    this.metrics.queueDuration.observe(timing.queueSeconds);
    this.metrics.inferenceDuration.observe(timing.inferenceSeconds);
    return rows[0]!;
  }
}
