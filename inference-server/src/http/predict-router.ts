import { Router, type Request } from 'express';
import { InvalidRequest, UnsupportedMedia } from '../errors.js';
import type { DataPlane } from '../runtime/data-plane.js';
import { PREDICT_ROUTE } from './admission-gate.js';
import { inferenceContext } from './request-context.js';
import { parseFormBoolean, readBody, readForm, type UploadLimits } from './upload.js';

/** The seed's answer: label and score, the score as a string with three decimals. */
interface SeedPrediction {
  Label: string;
  Score: string;
}

const FILE_FIELD = 'image_file';

/** `?top_k=N` as a number (NaN when it is not one: the data plane refuses it with the range). */
function topKOf(req: Request): number | undefined {
  const raw = req.query.top_k;
  if (raw === undefined) return undefined;
  return typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
}

/**
 * POST /predict/image, compatible with the seed's clients: multipart `image_file`,
 * `with_resize`, `with_post_process`. A raw `image/*` body is accepted too.
 * The body is received whole before the image enters the data plane.
 */
export function predictRouter(dataPlane: DataPlane, limits: Omit<UploadLimits, 'memoryFull'>): Router {
  const router = Router();
  const uploadLimits: UploadLimits = { ...limits, memoryFull: () => dataPlane.memoryFull() };
  router.post(PREDICT_ROUTE, async (req, res) => {
    const topK = topKOf(req);
    const context = inferenceContext(dataPlane, res);
    const { reservation } = context;
    let image: Buffer | undefined;
    let fields = new Map<string, string>();
    if (req.is('image/*')) {
      image = await readBody(req, uploadLimits, reservation, 'the image');
    } else if (req.is('multipart/form-data')) {
      ({ fields, file: image } = await readForm(
        req,
        FILE_FIELD,
        { ...uploadLimits, maxFileBytes: limits.maxBytes },
        reservation,
      ));
    } else {
      throw new UnsupportedMedia(
        `send multipart/form-data with the image in a field named ${FILE_FIELD}, or a raw image/* body ` +
          `(got Content-Type: ${req.get('content-type') ?? 'none'})`,
      );
    }
    const resize = parseFormBoolean(fields, 'with_resize', true);
    const postProcess = parseFormBoolean(fields, 'with_post_process', true);
    if (image === undefined)
      throw new InvalidRequest(`the form has no ${FILE_FIELD} file field; send it as -F ${FILE_FIELD}=@picture.jpg`);

    const answer = await dataPlane.predictImage({ ...context, image, resize, topK: topK ?? 1, postProcess });
    // For the browser page (and curl -v): where the server's time went, in milliseconds.
    res.set('Server-Timing', `decode;dur=${answer.decodeMs.toFixed(1)}, infer;dur=${answer.inferMs.toFixed(1)}`);
    if (!postProcess) {
      res.json('OK');
      return;
    }
    const seed = answer.predictions.map<SeedPrediction>((p) => ({ Label: p.label, Score: p.score.toFixed(3) }));
    res.json(topK === undefined ? seed[0] : seed);
  });
  return router;
}
