import type { ServerConfig } from '../config/server-config.js';
import { ClientGone, InvalidRequest, NotReady, Overloaded } from '../errors.js';
import { decodeImage } from '../imaging/decode.js';
import type { Metrics } from '../metrics.js';
import type { Classifier, LoadedModel } from '../model/classifier.js';
import type { Prediction } from '../model/postprocess.js';
import { batchShape, imageElements, type ModelSignature } from '../model/signature.js';
import { GarbageCollector } from './garbage-collector.js';
import { MemoryBudget, type Reservation } from './memory-budget.js';
import { QueueBudget } from './queue-budget.js';
import { Scheduler } from './scheduler.js';
import { Semaphore } from './semaphore.js';

export type DataPlaneConfig = Pick<
  ServerConfig,
  | 'maxInFlight'
  | 'maxQueueMs'
  | 'sessions'
  | 'decodeConcurrency'
  | 'maxInputPixels'
  | 'maxTopK'
  | 'maxBatchSize'
  | 'maxQueueDelayMs'
  | 'requestDeadlineMs'
  | 'modelName'
>;

/** A request's own bookkeeping (request and response objects, socket buffers), on top of what it carries. */
export const REQUEST_OVERHEAD_BYTES = 16 * 1024;
/** The most images one v2 request may carry. */
export const MAX_TENSOR_BATCH = 256;

export interface ImageRequest {
  /** The encoded image, complete. */
  image: Buffer;
  /** false: the image must already be the model's size (the seed's with_resize=False). */
  resize: boolean;
  /** How many predictions to answer (1 to MAX_TOP_K). */
  topK: number;
  /** false: run the model and answer no predictions (the seed's with_post_process=False). */
  postProcess: boolean;
  /** performance.now() ms past which the inference is not started. */
  deadline: number;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** What the request holds so far (its body); grown by what decoding it takes. */
  reservation: Reservation;
}

export interface ImageAnswer {
  predictions: Prediction[];
  decodeMs: number;
  /** Queue wait and the session run. */
  inferMs: number;
}

export interface TensorRequest {
  inputName: string;
  /** Row-major, in the model's layout and element type, already preprocessed. */
  data: Float32Array | Uint8Array;
  shape: number[];
  deadline: number;
  signal?: AbortSignal;
  reservation: Reservation;
}

export interface TensorAnswer {
  /** The model's output for the whole batch, row-major. */
  scores: Float32Array;
  dims: number[];
}

/**
 * What one image request holds besides its body while it waits: the decoded
 * pixels, its slice of the input tensor and its output row.
 */
export function imageWorkingBytes(sig: Pick<ModelSignature, 'height' | 'width' | 'dtype' | 'classes'>): number {
  const elements = imageElements(sig);
  return elements + elements * (sig.dtype === 'uint8' ? 1 : 4) + sig.classes * 4;
}

interface Attached {
  classifier: Classifier;
  scheduler: Scheduler;
  memory: MemoryBudget;
  /** What one image request holds besides its body: decoded pixels, its tensor slice, its output row. */
  imageBytes: number;
}

/**
 * The data plane of one model: request → tensor → scheduler → answer, with
 * the limits at every stage (memory, decode concurrency, deadline, the opt-in
 * queue budget). It knows nothing of HTTP: routes parse and encode, this
 * decides, and it throws the domain errors of errors.ts for the HTTP layer
 * to turn into statuses.
 */
export class DataPlane {
  private model: Attached | undefined;
  /** SIGTERM received: readiness is false so load balancers stop sending, but what still arrives is served. */
  draining = false;
  private readonly decodes: Semaphore;
  /** Returns what large requests' bodies leave as garbage once they end (see garbage-collector.ts). */
  private readonly collector = new GarbageCollector();
  /** Images admitted and being decoded, not yet in the scheduler: they count against the opt-in limits too. */
  private decoding = 0;
  /** Present in SLO mode (MAX_QUEUE_MS set): admission sized from a latency budget. */
  readonly queueBudget: QueueBudget | undefined;

  constructor(
    readonly config: DataPlaneConfig,
    readonly metrics: Metrics,
  ) {
    this.decodes = new Semaphore(config.decodeConcurrency);
    this.queueBudget =
      config.maxQueueMs === 0 ? undefined : new QueueBudget({ budgetMs: config.maxQueueMs, sessions: config.sessions });
  }

  /** Loaded, warmed up and not draining. */
  get ready(): boolean {
    return this.model !== undefined && !this.draining;
  }

  get scheduler(): Scheduler | undefined {
    return this.model?.scheduler;
  }

  get memory(): MemoryBudget | undefined {
    return this.model?.memory;
  }

  /**
   * Serves a loaded model from now on: its sessions go to a scheduler, which
   * is warmed up (and seeds the queue budget) before the first request.
   */
  async attach({ classifier, sessions }: LoadedModel, maxQueueBytes: number): Promise<void> {
    const sig = classifier.signature;
    const scheduler = new Scheduler(
      sessions,
      sig,
      {
        maxBatchSize: this.config.maxBatchSize,
        maxQueueDelayMs: this.config.maxQueueDelayMs,
        maxImages: this.config.maxInFlight,
        budget: this.queueBudget,
      },
      this.metrics,
    );
    // Always warmed up, budget or not: the first request must not pay for onnxruntime's lazy initialisation.
    const warmMs = await scheduler.warmUp(classifier.blank());
    this.queueBudget?.calibrate(warmMs);
    this.model = {
      classifier,
      scheduler,
      memory: new MemoryBudget(maxQueueBytes, (bytes) => this.collector.released(bytes)),
      imageBytes: imageWorkingBytes(sig),
    };
  }

  /** The model, or NotReady saying why there is none. */
  requireReady(): Attached {
    if (this.model === undefined) throw new NotReady('the model is still loading; retry shortly', 5);
    return this.model;
  }

  /**
   * The cheap check made when a request arrives, before its body is read:
   * whether a request of `bodyBytes` would be refused anyway (not ready, the
   * memory bound, the opt-in limits). Refusing then costs almost nothing.
   */
  precheck(bodyBytes: number): void {
    const { memory, scheduler, imageBytes } = this.requireReady();
    if (!memory.fits(bodyBytes + imageBytes + REQUEST_OVERHEAD_BYTES)) throw this.memoryFull(memory);
    scheduler.checkAdmission(1, this.decoding);
  }

  /** Reserves what a request holds on arrival; grown as its body comes in. */
  reserve(bytes: number): Reservation {
    const { memory } = this.requireReady();
    const reservation = memory.tryReserve(bytes + REQUEST_OVERHEAD_BYTES);
    if (reservation === undefined) throw this.memoryFull(memory);
    return reservation;
  }

  /** Overloaded for the memory bound: what every refusal past MAX_QUEUE_BYTES says. */
  memoryFull(memory = this.requireReady().memory): Overloaded {
    return new Overloaded(
      'the server holds as many requests as its memory bound allows ' +
        `(${Math.round(memory.limitBytes / 2 ** 20)} MiB, MAX_QUEUE_BYTES); retry shortly`,
      'memory',
    );
  }

  /** Decodes, preprocesses and classifies one image; the top `topK` predictions. */
  async predictImage(req: ImageRequest): Promise<ImageAnswer> {
    const { classifier, scheduler, imageBytes } = this.requireReady();
    if (!req.reservation.grow(imageBytes)) throw this.memoryFull();
    if (!(Number.isInteger(req.topK) && req.topK >= 1 && req.topK <= this.topKLimit(classifier))) {
      throw new InvalidRequest(`top_k must be an integer from 1 to ${this.topKLimit(classifier)}`);
    }
    // Refused before the decode is spent on it, when the opt-in limits are already reached.
    scheduler.checkAdmission(1, this.decoding);
    const { width, height } = classifier.signature;
    const decodeStart = performance.now();
    this.decoding++;
    let tensor;
    try {
      const decoded = await this.decodes.run(async () => {
        // A client that left while its image waited for a decoder costs nothing more (a disconnect storm queues many).
        if (req.signal?.aborted) throw new ClientGone('the client closed the connection before its image was decoded');
        const end = this.metrics.decodeDuration.startTimer();
        try {
          return await decodeImage(req.image, {
            width,
            height,
            resize: req.resize,
            resizeMode: classifier.options.resizeMode,
            padColor: classifier.options.padColor,
            maxPixels: this.config.maxInputPixels,
          });
        } finally {
          end();
        }
      });
      tensor = classifier.prepare(decoded.pixels);
    } finally {
      this.decoding--;
    }
    const inferStart = performance.now();
    const { output } = await scheduler.submitImage(tensor, { deadline: req.deadline, signal: req.signal });
    const done = performance.now();
    const predictions = !req.postProcess ? [] : classifier.predictions(classifier.probabilities(output), req.topK);
    return { predictions, decodeMs: inferStart - decodeStart, inferMs: done - inferStart };
  }

  /** The largest top_k a request may ask for. */
  topKLimit(classifier = this.requireReady().classifier): number {
    return Math.min(this.config.maxTopK, classifier.signature.classes);
  }

  /**
   * Runs the model on a whole preprocessed batch (the Open Inference
   * Protocol's tensors), queued with everything else and counted as its
   * number of images.
   */
  async inferTensor(req: TensorRequest): Promise<TensorAnswer> {
    const { classifier, scheduler } = this.requireReady();
    const sig = classifier.signature;
    if (req.inputName !== sig.inputName)
      throw new InvalidRequest(`the model takes one input named ${sig.inputName}; got ${req.inputName}`);
    const expected = batchShape(sig, 1);
    const batch = req.shape[0] ?? 0;
    const wrong =
      req.shape.length !== 4 ||
      req.shape.slice(1).some((d, i) => d !== expected[i + 1]) ||
      batch < 1 ||
      batch > MAX_TENSOR_BATCH ||
      (sig.batch !== 'dynamic' && batch !== sig.batch);
    if (wrong) {
      const batchText = sig.batch === 'dynamic' ? `1..${MAX_TENSOR_BATCH}` : String(sig.batch);
      throw new InvalidRequest(
        `input ${sig.inputName} must have shape [${batchText}, ${expected.slice(1).join(', ')}], ` +
          `got [${req.shape.join(', ')}]`,
      );
    }
    // The tensor the session call is built from, and its output.
    if (!req.reservation.grow(req.data.byteLength + batch * sig.classes * 4)) throw this.memoryFull();
    scheduler.checkAdmission(batch, this.decoding);
    const { output, dims } = await scheduler.submitBatch(req.data, batch, {
      deadline: req.deadline,
      signal: req.signal,
    });
    return { scores: output, dims };
  }

  /** Stops the scheduler (what is still queued is refused) and releases the sessions. */
  async close(): Promise<void> {
    this.collector.stop();
    await this.model?.scheduler.close();
  }
}
