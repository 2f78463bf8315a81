import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { PreprocessingOptions } from '../config/preprocessing.js';
import { Semaphore } from '../runtime/semaphore.js';
import { labelsFromMetadata } from './labels.js';
import { readOnnxHeader, type OnnxHeader } from './onnx-metadata.js';
import { WorkerSession, type TensorData } from './worker-session.js';
import { labelFor, toProbabilities, topK, type Prediction } from './postprocess.js';
import {
  describeModel,
  imageElements,
  pixelTransform,
  writeImage,
  type ModelSignature,
  type PixelTransform,
  type SignatureOverrides,
} from './signature.js';

/** One image's slice of the model's input tensor (float32 or uint8, as the model takes). */
export type ImageTensor = Float32Array | Uint8Array;

export interface LoadOptions {
  preprocessing: PreprocessingOptions;
  /** Intra-op threads of each session; sized from the container's CPU limit by the caller. */
  threads: number;
  /** Sessions run side by side (default 1), each with `threads` intra-op threads and its own copy of the weights. */
  sessions?: number;
  /** Labels from LABELS_URI; they win over labels embedded in the model. */
  labels?: string[];
  overrides?: SignatureOverrides;
  logger: Logger;
}

/** Timings of one inference, for metrics. */
export interface RunTiming {
  queueSeconds: number;
  inferenceSeconds: number;
}

/**
 * One loaded classifier: its sessions, what it expects, and the run queue. A
 * session runs one batch at a time with its share of the CPUs as intra-op
 * threads; with several sessions (SESSIONS) that many batches run side by side,
 * each on its own worker thread.
 */
export class Classifier {
  readonly transform: PixelTransform;
  private readonly runQueue: Semaphore;
  /** Sessions not running a batch now. */
  private readonly idle: WorkerSession[];

  private constructor(
    private readonly sessions: readonly WorkerSession[],
    readonly signature: ModelSignature,
    readonly labels: string[] | undefined,
    readonly header: OnnxHeader,
    readonly sizeBytes: number,
    readonly options: PreprocessingOptions,
  ) {
    this.transform = pixelTransform(signature, options);
    this.runQueue = new Semaphore(sessions.length);
    this.idle = [...sessions];
    if (labels !== undefined && labels.length !== signature.classes) {
      throw new Error(`the labels list has ${labels.length} entries but the model outputs ${signature.classes} classes`);
    }
  }

  static async load(path: string, opts: LoadOptions): Promise<Classifier> {
    const [header, info] = await Promise.all([readOnnxHeader(path), stat(path)]);
    const created = await Promise.allSettled(Array.from({ length: opts.sessions ?? 1 }, () => WorkerSession.create(path, opts.threads)));
    const sessions = created.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
    try {
      const failed = created.find((c): c is PromiseRejectedResult => c.status === 'rejected');
      if (failed) throw failed.reason;
      const first = sessions[0]!;
      const signature = describeModel(first.inputMetadata, first.outputMetadata, opts.preprocessing, opts.overrides);
      const labels = opts.labels ?? labelsFromMetadata(header.metadata);
      opts.logger.info({ signature, labels: labels?.length ?? 0, producer: header.producerName, sessions: sessions.length, threads: opts.threads }, 'model loaded');
      return new Classifier(sessions, signature, labels, header, info.size, opts.preprocessing);
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release()));
      throw err;
    }
  }

  get queueDepth(): number {
    return this.runQueue.waiting;
  }

  /** Sessions that run batches side by side. */
  get concurrency(): number {
    return this.sessions.length;
  }

  /** Sessions not running a batch now. */
  get idleSessions(): number {
    return this.idle.length;
  }

  /** A zeroed input tensor for `count` images, to be filled by `fill`. */
  allocate(count: number): Float32Array | Uint8Array {
    const n = count * imageElements(this.signature);
    return this.signature.dtype === 'uint8' ? new Uint8Array(n) : new Float32Array(n);
  }

  fill(pixels: Uint8Array, target: Float32Array | Uint8Array, index: number): void {
    writeImage(pixels, this.signature, this.transform, this.options.channelOrder === 'BGR', target, index);
  }

  /**
   * One decoded image (HWC RGB at the model's size) as its slice of the input
   * tensor: layout, channel order and normalisation applied. Done as each image
   * is decoded, while the session runs others, so forming a batch is only a copy.
   */
  prepare(pixels: Uint8Array): ImageTensor {
    const data = this.allocate(1);
    this.fill(pixels, data, 0);
    return data;
  }

  inputShape(count: number): number[] {
    const { layout, height, width } = this.signature;
    return layout === 'NCHW' ? [count, 3, height, width] : [count, height, width, 3];
  }

  /** Runs the model on an already-built input tensor (its buffer is handed over); returns the named outputs. */
  async run(feeds: Record<string, TensorData>, outputNames: string[]): Promise<{ outputs: Record<string, TensorData>; timing: RunTiming }> {
    const queued = performance.now();
    return this.runQueue.run(async () => {
      const started = performance.now();
      // The semaphore admits at most as many runs as there are sessions, so one is idle.
      const session = this.idle.pop()!;
      try {
        const { outputs, seconds } = await session.run(feeds, outputNames);
        return { outputs, timing: { queueSeconds: (started - queued) / 1000, inferenceSeconds: seconds } };
      } finally {
        this.idle.push(session);
      }
    });
  }

  /** Classifies decoded images (HWC RGB at the model's size): one probability row per image. */
  classify(images: readonly Uint8Array[]): Promise<{ rows: Float32Array[]; timing: RunTiming }> {
    return this.classifyPrepared(images.map((pixels) => this.prepare(pixels)));
  }

  /** Classifies images already prepared by `prepare`: one probability row per image. */
  async classifyPrepared(images: readonly ImageTensor[]): Promise<{ rows: Float32Array[]; timing: RunTiming }> {
    // A fixed-batch model takes exactly its batch: run in chunks of it, the last padded with zeros.
    const step = this.signature.batch === 'dynamic' ? images.length : this.signature.batch;
    const classes = this.signature.classes;
    const per = imageElements(this.signature);
    const rows: Float32Array[] = [];
    const timing: RunTiming = { queueSeconds: 0, inferenceSeconds: 0 };
    for (let start = 0; start < images.length; start += step) {
      const chunk = images.slice(start, start + step);
      const data = this.allocate(step);
      chunk.forEach((image, i) => {
        if (image.length !== per || image.constructor !== data.constructor) throw new Error(`a prepared image must be a ${data.constructor.name} of ${per} elements`);
        // Same element type, checked above.
        (data as Float32Array).set(image as Float32Array, i * per);
      });
      const tensor = { type: this.signature.dtype, data, dims: this.inputShape(step) };
      const { outputs, timing: t } = await this.run({ [this.signature.inputName]: tensor }, [this.signature.outputName]);
      const scores = outputs[this.signature.outputName]!.data as Float32Array;
      chunk.forEach((_, i) => rows.push(toProbabilities(scores.slice(i * classes, (i + 1) * classes), this.options.softmax)));
      timing.queueSeconds += t.queueSeconds;
      timing.inferenceSeconds += t.inferenceSeconds;
    }
    return { rows, timing };
  }

  predictions(row: Float32Array, k: number): Prediction[] {
    return topK(row, k).map(({ index, score }) => ({ index, score, label: labelFor(this.labels, index) }));
  }

  /**
   * One inference per session on a mid-grey image so the first real requests
   * don't pay for lazy initialisation, then one more on a warm session: returns
   * that lone image's inference time in ms.
   */
  async warmUp(): Promise<number> {
    const grey = new Uint8Array(imageElements(this.signature)).fill(128);
    await Promise.all(this.sessions.map(() => this.classify([grey])));
    const { timing } = await this.classify([grey]);
    return timing.inferenceSeconds * 1000;
  }

  async close(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}
