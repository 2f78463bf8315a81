import sharp, { type FailOnOptions, type FitEnum } from 'sharp';
import { ServingError, invalidImage, tooLarge, unsupportedMedia } from '../errors.js';
import type { ResizeMode, Triple } from '../../../crds/preprocessing.js';
import { sniffImage, type AcceptedFormat } from './sniff.js';

const SUPPORTED = 'send JPEG, PNG, WebP, GIF, TIFF or AVIF';

export interface DecodeRequest {
  width: number;
  height: number;
  resizeMode: ResizeMode;
  /** false: the image must already be width×height (the seed's `with_resize=False`). */
  resize: boolean;
  padColor: Triple;
  maxPixels: number;
}

export interface DecodedImage {
  /** width×height×3 interleaved 8-bit sRGB. */
  pixels: Buffer;
  width: number;
  height: number;
  sourceFormat: string;
  sourceWidth: number;
  sourceHeight: number;
}

const FIT: Record<ResizeMode, keyof FitEnum> = {
  stretch: 'fill',
  'center-crop': 'cover',
  letterbox: 'contain',
};

/**
 * What a decoder failure means. The bytes were sniffed as a format we decode, so
 * whatever libvips refuses about them is the input's fault (400), whichever
 * loader and message it comes from; only its size limits are 413. Our own
 * domain errors pass through.
 */
function inputError(err: unknown, maxPixels: number): ServingError {
  if (err instanceof ServingError) return err;
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
  if (/pixel limit|security limit/i.test(message))
    return tooLarge(`image has more pixels than the limit of ${maxPixels} (${message})`);
  return invalidImage(`image could not be decoded (corrupt or truncated): ${message}`);
}

/** A pipeline that produced the wrong output: our bug (a 500), never mapped to the input's fault. */
class PipelineBug extends Error {}

/** libvips reports data that ends early as a warning; under failOn 'warning' these name it. */
const TRUNCATED = /premature end|truncat|unexpected end|short read|end of (file|data)/i;

/**
 * Decodes an encoded image into the model's RGB pixels in one sharp pipeline
 * on libvips' thread pool: header check (format, pixel count, before any pixel
 * is decoded), EXIF orientation, alpha flattened, any colour space or bit
 * depth to 8-bit sRGB, then resized per the mode.
 */
export async function decodeImage(input: Buffer, req: DecodeRequest): Promise<DecodedImage> {
  const sniffed = sniffImage(input);
  if (!sniffed.accepted) {
    throw unsupportedMedia(
      sniffed.format
        ? `image format ${sniffed.format} is not supported; ${SUPPORTED}`
        : `image_file is not an image in a supported format; ${SUPPORTED}`,
    );
  }
  let decoded: DecodedImage;
  try {
    // Strict first: data that ends early (a forged header, a cut upload) is refused, as PIL refuses it.
    decoded = await decodeWith(input, req, sniffed.format, 'warning');
  } catch (strict) {
    if (strict instanceof ServingError || strict instanceof PipelineBug) throw strict;
    const message = strict instanceof Error ? strict.message : String(strict);
    if (TRUNCATED.test(message))
      throw invalidImage(`image could not be decoded (truncated): ${message.split('\n')[0]}`);
    // Any other warning (an odd marker, a known-incorrect colour profile) is tolerated, as other servers do.
    try {
      decoded = await decodeWith(input, req, sniffed.format, 'error');
    } catch (err) {
      throw err instanceof PipelineBug ? err : inputError(err, req.maxPixels);
    }
  }
  // Outside the mapping: a pipeline that produced the wrong shape is our bug, a 500.
  if (
    decoded.pixels.length !== req.width * req.height * 3 ||
    decoded.width !== req.width ||
    decoded.height !== req.height
  ) {
    throw new PipelineBug(
      `decoder produced ${decoded.width}×${decoded.height} (${decoded.pixels.length} bytes), ` +
        `expected ${req.width}×${req.height}×3`,
    );
  }
  return decoded;
}

async function decodeWith(
  input: Buffer,
  req: DecodeRequest,
  sniffedFormat: AcceptedFormat,
  failOn: FailOnOptions,
): Promise<DecodedImage> {
  const image = sharp(input, { limitInputPixels: req.maxPixels, pages: 1, failOn });
  const meta = await image.metadata();
  const format = meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : meta.format;
  // The container says one thing and the loader another (a PNG header on a TIFF, a HEIC brand on AV1): refuse both.
  if (format !== sniffedFormat)
    throw unsupportedMedia(
      `image_file starts like ${sniffedFormat} but decodes as ${format ?? 'nothing known'}; ${SUPPORTED}`,
    );
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width <= 0 || height <= 0) throw invalidImage(`image has no pixels (${width}×${height})`);
  if (width * height > req.maxPixels) {
    throw tooLarge(`image is ${width}×${height} = ${width * height} pixels; the limit is ${req.maxPixels}`);
  }
  // Orientations 5–8 swap the axes, and the seed's with_resize=False check is about the upright image.
  const swapped = (meta.orientation ?? 1) >= 5;
  const uprightW = swapped ? height : width;
  const uprightH = swapped ? width : height;
  if (!req.resize && (uprightW !== req.width || uprightH !== req.height)) {
    throw invalidImage(
      `with_resize=False needs an image of exactly ${req.width}×${req.height}, got ${uprightW}×${uprightH}; ` +
        'send with_resize=True to let the server resize it',
    );
  }
  const [r, g, b] = req.padColor;
  let pipeline = image.rotate().flatten({ background: { r, g, b } }).toColourspace('srgb');
  if (uprightW !== req.width || uprightH !== req.height) {
    pipeline = pipeline.resize(req.width, req.height, {
      fit: FIT[req.resizeMode],
      position: 'centre',
      background: { r, g, b, alpha: 1 },
    });
  }
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new PipelineBug(`decoder produced ${info.channels} channels, expected 3`);
  return {
    pixels: data,
    width: info.width,
    height: info.height,
    sourceFormat: format,
    sourceWidth: uprightW,
    sourceHeight: uprightH,
  };
}
