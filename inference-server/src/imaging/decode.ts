import sharp, { type FitEnum } from 'sharp';
import { ServingError, invalidImage, tooLarge, unsupportedMedia } from '../errors.js';
import type { ResizeMode, Triple } from '../config/preprocessing.js';

/** Formats we decode; SVG/PDF and friends are refused (they can fetch, execute or explode). */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

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

/** Maps libvips' messages about broken input onto client errors; anything else stays a server error. */
function classifySharpError(err: unknown, maxPixels: number): Error {
  if (err instanceof ServingError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/unsupported image format/i.test(message)) {
    return unsupportedMedia('image_file is not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, AVIF)');
  }
  if (/pixel limit/i.test(message)) return tooLarge(`image has more pixels than the limit of ${maxPixels}`);
  if (/vips|read error|premature|corrupt|invalid|truncated|bad |not a known file format|decode/i.test(message)) {
    return invalidImage(`image could not be decoded (corrupt or truncated): ${message.split('\n')[0]}`);
  }
  return err instanceof Error ? err : new Error(message);
}

/**
 * Decodes an encoded image into the model's RGB pixels in one sharp pipeline
 * on libvips' thread pool: header check (format, pixel count, before any pixel
 * is decoded), EXIF orientation, alpha flattened, any colour space or bit
 * depth to 8-bit sRGB, then resized per the mode.
 */
export async function decodeImage(input: Buffer, req: DecodeRequest): Promise<DecodedImage> {
  const image = sharp(input, { limitInputPixels: req.maxPixels, pages: 1, failOn: 'error' });
  try {
    const meta = await image.metadata();
    const format = meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : meta.format;
    if (format === undefined || !ACCEPTED_FORMATS.has(meta.format ?? '') || (meta.format === 'heif' && format !== 'avif')) {
      throw unsupportedMedia(`image format ${format ?? 'unknown'} is not supported; send JPEG, PNG, WebP, GIF, TIFF or AVIF`);
    }
    const width = meta.width ?? 0;
    const height = meta.height ?? 0;
    if (width <= 0 || height <= 0) throw invalidImage('image has no dimensions');
    if (width * height > req.maxPixels) {
      throw tooLarge(`image is ${width}×${height} = ${width * height} pixels; the limit is ${req.maxPixels}`);
    }
    // Orientations 5–8 swap the axes, and the seed's with_resize=False check is about the upright image.
    const swapped = (meta.orientation ?? 1) >= 5;
    const uprightW = swapped ? height : width;
    const uprightH = swapped ? width : height;
    if (!req.resize && (uprightW !== req.width || uprightH !== req.height)) {
      throw invalidImage(
        `with_resize=False needs an image of exactly ${req.width}×${req.height}, got ${uprightW}×${uprightH}; send with_resize=True to let the server resize it`,
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
    if (info.channels !== 3 || info.width !== req.width || info.height !== req.height) {
      throw new Error(`decoder produced ${info.width}×${info.height}×${info.channels}, expected ${req.width}×${req.height}×3`);
    }
    return { pixels: data, width: info.width, height: info.height, sourceFormat: format, sourceWidth: uprightW, sourceHeight: uprightH };
  } catch (err) {
    throw classifySharpError(err, req.maxPixels);
  }
}
