import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { PreprocessingOptions } from '../../../crds/preprocessing.js';
import { labelsFromMetadata } from './labels.js';
import { readOnnxHeader, type OnnxHeader } from './onnx-metadata.js';
import { WorkerSession } from './worker-session.js';
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

/**
 * A loaded model: what it expects and means (the classifier), and the sessions that run it (handed to the scheduler).
 */
export interface LoadedModel {
  classifier: Classifier;
  sessions: WorkerSession[];
}

/**
 * What one classifier expects and what its outputs mean: its signature, the
 * preprocessing that turns decoded pixels into its input, and its labels.
 * Running it is the scheduler's (runtime/scheduler.ts), which owns the sessions.
 */
export class Classifier {
  readonly transform: PixelTransform;

  constructor(
    readonly signature: ModelSignature,
    readonly labels: string[] | undefined,
    readonly header: OnnxHeader,
    readonly sizeBytes: number,
    readonly options: PreprocessingOptions,
  ) {
    this.transform = pixelTransform(signature, options);
    if (labels !== undefined && labels.length !== signature.classes) {
      throw new Error(
        `the labels list has ${labels.length} entries but the model outputs ${signature.classes} classes`,
      );
    }
  }

  /** Reads the model file, starts its sessions (SESSIONS, each on its own worker thread) and describes it. */
  static async load(path: string, opts: LoadOptions): Promise<LoadedModel> {
    const [header, info] = await Promise.all([readOnnxHeader(path), stat(path)]);
    const created = await Promise.allSettled(
      Array.from({ length: opts.sessions ?? 1 }, () => WorkerSession.create(path, opts.threads)),
    );
    const sessions = created.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
    try {
      const failed = created.find((c): c is PromiseRejectedResult => c.status === 'rejected');
      if (failed) throw failed.reason;
      const first = sessions[0]!;
      const signature = describeModel(first.inputMetadata, first.outputMetadata, opts.preprocessing, opts.overrides);
      const labels = opts.labels ?? labelsFromMetadata(header.metadata);
      opts.logger.info(
        {
          signature,
          labels: labels?.length ?? 0,
          producer: header.producerName,
          sessions: sessions.length,
          threads: opts.threads,
        },
        'model loaded',
      );
      return { classifier: new Classifier(signature, labels, header, info.size, opts.preprocessing), sessions };
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release()));
      throw err;
    }
  }

  /**
   * One decoded image (HWC RGB at the model's size) as its slice of the input
   * tensor: layout, channel order and normalisation applied. Done as each image
   * is decoded, while the session runs others, so forming a batch is only a copy.
   */
  prepare(pixels: Uint8Array): ImageTensor {
    const data =
      this.signature.dtype === 'uint8'
        ? new Uint8Array(imageElements(this.signature))
        : new Float32Array(imageElements(this.signature));
    writeImage(pixels, this.signature, this.transform, this.options.channelOrder === 'BGR', data, 0);
    return data;
  }

  /** A mid-grey image, prepared: what the warm-up runs. */
  blank(): ImageTensor {
    return this.prepare(new Uint8Array(imageElements(this.signature)).fill(128));
  }

  /** One output row as class probabilities (softmax applied unless the model already gives a distribution). */
  probabilities(row: Float32Array): Float32Array {
    return toProbabilities(row, this.options.softmax);
  }

  predictions(row: Float32Array, k: number): Prediction[] {
    return topK(row, k).map(({ index, score }) => ({ index, score, label: labelFor(this.labels, index) }));
  }
}
