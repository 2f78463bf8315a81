import sharp from 'sharp';
import { pino } from 'pino';
import { DEFAULT_PREPROCESSING } from '../inference-server/src/config/preprocessing.js';
import { decodeImage } from '../inference-server/src/imaging/decode.js';
import { Classifier } from '../inference-server/src/model/classifier.js';

/** A 224×224 JPEG with photo-like entropy (smooth gradients plus noise), like the seed's Locust payload. */
export async function benchImage(width = 224, height = 224, seed = 7): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = Math.min(255, (x * 255) / width + rand() * 40);
      data[i + 1] = Math.min(255, (y * 255) / height + rand() * 40);
      data[i + 2] = Math.min(255, 128 + 100 * Math.sin((x + y) / 20) + rand() * 20);
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

export interface RawResult {
  concurrency: number;
  seconds: number;
  images: number;
  imagesPerSecond: number;
  meanLatencyMs: number;
}

/**
 * The limit the server is measured against: the same decode → tensor →
 * session.run pipeline the server runs, in-process, with no HTTP, at a given
 * number of images in flight (in flight > 1 overlaps decoding with inference).
 */
export async function rawPipeline(modelPath: string, image: Buffer, threads: number, concurrencies: number[], seconds: number): Promise<RawResult[]> {
  const classifier = await Classifier.load(modelPath, { preprocessing: { ...DEFAULT_PREPROCESSING }, threads, logger: pino({ level: 'silent' }) });
  const { width, height } = classifier.signature;
  const one = async () => {
    const decoded = await decodeImage(image, { width, height, resize: true, resizeMode: 'center-crop', padColor: [0, 0, 0], maxPixels: 40e6 });
    await classifier.classify([decoded.pixels]);
  };
  try {
    for (let i = 0; i < 5; i++) await one();
    const results: RawResult[] = [];
    for (const concurrency of concurrencies) {
      let images = 0;
      let latency = 0;
      const end = performance.now() + seconds * 1000;
      const started = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await one();
          latency += performance.now() - t;
          images++;
        }
      }));
      const elapsed = (performance.now() - started) / 1000;
      results.push({ concurrency, seconds: elapsed, images, imagesPerSecond: images / elapsed, meanLatencyMs: latency / images });
    }
    return results;
  } finally {
    await classifier.close();
  }
}
