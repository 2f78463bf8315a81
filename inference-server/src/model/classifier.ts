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

export interface LoadOptions {
  preprocessing: PreprocessingOptions;
  /** Intra-op threads; sized from the container's CPU limit by the caller. */
  threads: number;
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
 * One loaded classifier: the session, what it expects, and the serialised run
 * queue. Runs are serialised because each one already uses every CPU the pod has
 * through intra-op threads; concurrent runs would only contend for them.
 */
export class Classifier {
  readonly transform: PixelTransform;
  private readonly runQueue = new Semaphore(1);

  private constructor(
    private readonly session: WorkerSession,
    readonly signature: ModelSignature,
    readonly labels: string[] | undefined,
    readonly header: OnnxHeader,
    readonly sizeBytes: number,
    readonly options: PreprocessingOptions,
  ) {
    this.transform = pixelTransform(signature, options);
    if (labels !== undefined && labels.length !== signature.classes) {
      throw new Error(`the labels list has ${labels.length} entries but the model outputs ${signature.classes} classes`);
    }
  }

  static async load(path: string, opts: LoadOptions): Promise<Classifier> {
    const [header, info] = await Promise.all([readOnnxHeader(path), stat(path)]);
    const session = await WorkerSession.create(path, opts.threads);
    try {
      const signature = describeModel(session.inputMetadata, session.outputMetadata, opts.preprocessing, opts.overrides);
      const labels = opts.labels ?? labelsFromMetadata(header.metadata);
      opts.logger.info({ signature, labels: labels?.length ?? 0, producer: header.producerName }, 'model loaded');
      return new Classifier(session, signature, labels, header, info.size, opts.preprocessing);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  get queueDepth(): number {
    return this.runQueue.waiting;
  }

  /** A zeroed input tensor for `count` images, to be filled by `fill`. */
  allocate(count: number): Float32Array | Uint8Array {
    const n = count * imageElements(this.signature);
    return this.signature.dtype === 'uint8' ? new Uint8Array(n) : new Float32Array(n);
  }

  fill(pixels: Uint8Array, target: Float32Array | Uint8Array, index: number): void {
    writeImage(pixels, this.signature, this.transform, this.options.channelOrder === 'BGR', target, index);
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
      const { outputs, seconds } = await this.session.run(feeds, outputNames);
      return { outputs, timing: { queueSeconds: (started - queued) / 1000, inferenceSeconds: seconds } };
    });
  }

  /** Classifies decoded images (HWC RGB at the model's size): one probability row per image. */
  async classify(images: readonly Uint8Array[]): Promise<{ rows: Float32Array[]; timing: RunTiming }> {
    // A fixed-batch model takes exactly its batch: run in chunks of it, the last padded with zeros.
    const step = this.signature.batch === 'dynamic' ? images.length : this.signature.batch;
    const classes = this.signature.classes;
    const rows: Float32Array[] = [];
    const timing: RunTiming = { queueSeconds: 0, inferenceSeconds: 0 };
    for (let start = 0; start < images.length; start += step) {
      const chunk = images.slice(start, start + step);
      const data = this.allocate(step);
      chunk.forEach((pixels, i) => this.fill(pixels, data, i));
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

  /** One inference on a mid-grey image so the first real request doesn't pay for lazy initialisation. */
  async warmUp(): Promise<void> {
    const grey = new Uint8Array(imageElements(this.signature)).fill(128);
    await this.classify([grey]);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
