import { Router, type Request } from 'express';
import type { Sharp } from 'sharp';
import { badRequest, payloadTooLarge } from '../errors.js';
import { imageSink } from '../imaging/decode.js';
import type { Serving } from '../runtime/serving.js';
import { parseFormBoolean, readMultipart } from './multipart.js';

/** The seed's answer: label and score, the score as a string with three decimals. */
interface SeedPrediction {
  Label: string;
  Score: string;
}

const FILE_FIELD = 'image_file';
/** Multipart framing and the flag fields on top of the image itself. */
const FORM_OVERHEAD_BYTES = 64 * 1024;

function parseTopK(req: Request, max: number): number | undefined {
  const raw = req.query.top_k;
  if (raw === undefined) return undefined;
  const n = typeof raw === 'string' ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) throw badRequest(`top_k must be an integer from 1 to ${max}`);
  return n;
}

/**
 * POST /predict/image, compatible with the seed's clients: multipart `image_file`,
 * `with_resize`, `with_post_process`. A raw `image/*` body is accepted too.
 */
export function predictRouter(serving: Serving, maxUploadBytes: number): Router {
  const router = Router();
  router.post('/predict/image', async (req, res) => {
    const deadline = performance.now() + serving.config.requestDeadlineMs;
    const classifier = serving.requireReady();
    const topK = parseTopK(req, Math.min(serving.config.maxTopK, classifier.signature.classes));
    const declared = Number(req.get('content-length') ?? NaN);
    if (declared > maxUploadBytes + FORM_OVERHEAD_BYTES) {
      // Refuse before reading a byte; the connection closes so the client stops sending.
      res.set('Connection', 'close');
      throw payloadTooLarge(`the request is ${declared} bytes; images up to ${maxUploadBytes} bytes are accepted`);
    }
    const release = serving.admit();
    res.on('close', release);

    let source: Sharp | undefined;
    let fields = new Map<string, string>();
    if (req.is('image/*')) {
      source = await readRawImage(req, serving.config.maxInputPixels, maxUploadBytes);
    } else {
      ({ fields, file: source } = await readMultipart(req, FILE_FIELD, { maxFileBytes: maxUploadBytes }, (stream) => imageSink(stream, serving.config.maxInputPixels)));
    }
    const resize = parseFormBoolean(fields, 'with_resize', true);
    const postProcess = parseFormBoolean(fields, 'with_post_process', true);
    if (source === undefined) throw badRequest(`the form has no ${FILE_FIELD} file field; send it as -F ${FILE_FIELD}=@picture.jpg`);

    const decodeStart = performance.now();
    const image = await serving.decode(source, classifier, resize);
    const inferStart = performance.now();
    const row = await serving.classify(image, deadline);
    // For the browser page (and curl -v): where the server's time went, in milliseconds.
    res.set('Server-Timing', `decode;dur=${(inferStart - decodeStart).toFixed(1)}, infer;dur=${(performance.now() - inferStart).toFixed(1)}`);
    if (!postProcess) {
      res.json('OK');
      return;
    }
    const predictions = classifier.predictions(row, topK ?? 1);
    const seed = predictions.map<SeedPrediction>((p) => ({ Label: p.label, Score: p.score.toFixed(3) }));
    res.json(topK === undefined ? seed[0] : seed);
  });
  return router;
}

/** A raw image body (`curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg'`), size-capped while streaming. */
function readRawImage(req: Request, maxPixels: number, maxBytes: number): Promise<Sharp> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const sink = imageSink(req, maxPixels);
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) {
        req.unpipe(sink);
        req.resume();
        reject(payloadTooLarge(`the image is larger than the ${maxBytes}-byte upload limit`));
      }
    });
    req.on('end', () => resolve(sink));
    req.on('error', reject);
  });
}
