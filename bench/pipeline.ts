import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { pino } from 'pino';
import { DEFAULT_PREPROCESSING } from '../crds/preprocessing.js';
import { DEFAULT_SAMPLE_IMAGE } from '../inference-server/src/config/server-config.js';
import { decodeImage } from '../inference-server/src/imaging/decode.js';
import { Classifier } from '../inference-server/src/model/classifier.js';
import { imageElements } from '../inference-server/src/model/signature.js';
import { Scheduler } from '../inference-server/src/runtime/scheduler.js';

/** The benchmark's request image, committed: the bundled example photo as a 224×224 JPEG. */
export const SEED_IMAGE_PATH = fileURLToPath(new URL('../../bench/fixtures/seed-224.jpg', import.meta.url));

/**
 * The seed's Locust payload: a 224×224 JPEG sent with `with_resize=False`. Made
 * once from the bundled example photo (center-cropped, quality 90) and committed
 * as bench/fixtures/seed-224.jpg, so the benchmark, the Locust file and users
 * all send the same bytes.
 */
export async function seedImage(): Promise<Buffer> {
  if (!existsSync(SEED_IMAGE_PATH)) {
    const jpeg = await sharp(DEFAULT_SAMPLE_IMAGE)
      .rotate()
      .resize(224, 224, { fit: 'cover' })
      .jpeg({ quality: 90 })
      .toBuffer();
    await mkdir(dirname(SEED_IMAGE_PATH), { recursive: true });
    await writeFile(SEED_IMAGE_PATH, jpeg);
  }
  return readFile(SEED_IMAGE_PATH);
}

export interface RawResult {
  /** Sessions side by side (the server's SESSIONS). */
  sessions: number;
  /** Intra-op threads of each session. */
  threads: number;
  /** Images per session.run. */
  batchSize: number;
  /** Batches in flight: 2 overlaps decoding the next batch with running this one. */
  inFlight: number;
  seconds: number;
  images: number;
  imagesPerSecond: number;
  /** From the first decode of a batch to its scores. */
  meanBatchLatencyMs: number;
}

export interface RawPoint {
  batchSize: number;
  inFlight: number;
}

/**
 * The limit the server is measured against: the same pipeline the server runs,
 * in-process, with no HTTP. One step decodes `batchSize` JPEGs concurrently
 * (decodeImage, sharp on libvips' pool, at the model's size as with_resize=False
 * does), prepares each one as its slice of the input tensor (Classifier.prepare), copies them into one
 * and makes one session.run through the server's scheduler. `inFlight` steps run at once; the scheduler
 * runs one batch per session at a time, so steps beyond the sessions only
 * overlap their decoding with the others' inference.
 */
export async function rawPipeline(
  modelPath: string,
  image: Buffer,
  threads: number,
  points: RawPoint[],
  seconds: number,
  sessions = 1,
): Promise<RawResult[]> {
  const { classifier, sessions: loaded } = await Classifier.load(modelPath, {
    preprocessing: { ...DEFAULT_PREPROCESSING },
    threads,
    sessions,
    logger: pino({ level: 'silent' }),
  });
  // The server's scheduler, fed whole batches: each runs as one session call on whichever session is free.
  const scheduler = new Scheduler(loaded, classifier.signature, { maxBatchSize: 1, maxQueueDelayMs: 0 });
  const perImage = imageElements(classifier.signature);
  const { width, height } = classifier.signature;
  const decodeOne = () =>
    decodeImage(image, {
      width,
      height,
      resize: false,
      resizeMode: classifier.options.resizeMode,
      padColor: classifier.options.padColor,
      maxPixels: 40e6,
    });
  const step = async (batchSize: number) => {
    // As the server does: each image is prepared as soon as it is decoded, the batch is a copy of them.
    const prepared = await Promise.all(
      Array.from({ length: batchSize }, async () => classifier.prepare((await decodeOne()).pixels)),
    );
    const batch =
      classifier.signature.dtype === 'uint8'
        ? new Uint8Array(batchSize * perImage)
        : new Float32Array(batchSize * perImage);
    prepared.forEach((p, i) => (batch as Float32Array).set(p, i * perImage));
    const { dims } = await scheduler.submitBatch(batch, batchSize);
    if (dims[0] !== batchSize) throw new Error(`expected ${batchSize} rows, got ${dims[0]}`);
  };
  try {
    // Lazy initialisation and the first big-batch allocation, on every session.
    for (const b of [1, 8, 1]) await Promise.all(Array.from({ length: sessions }, () => step(b)));
    const results: RawResult[] = [];
    for (const { batchSize, inFlight } of points) {
      await step(batchSize);
      let images = 0;
      let latency = 0;
      let batches = 0;
      const started = performance.now();
      const end = started + seconds * 1000;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            await step(batchSize);
            latency += performance.now() - t;
            images += batchSize;
            batches++;
          }
        }),
      );
      const elapsed = (performance.now() - started) / 1000;
      results.push({
        sessions,
        threads,
        batchSize,
        inFlight,
        seconds: elapsed,
        images,
        imagesPerSecond: images / elapsed,
        meanBatchLatencyMs: latency / batches,
      });
    }
    return results;
  } finally {
    await scheduler.close();
  }
}
