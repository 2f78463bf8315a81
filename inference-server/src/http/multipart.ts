import type { Readable } from 'node:stream';
import busboy from 'busboy';
import type { Request } from 'express';
import { badRequest, payloadTooLarge, unsupportedMedia } from '../errors.js';

export interface MultipartLimits {
  maxFileBytes: number;
  /** Small text fields only (flags); a form with more is not one of ours. */
  maxFields?: number;
  maxFieldBytes?: number;
}

export interface MultipartResult<T> {
  fields: Map<string, string>;
  /** What `onFile` returned for the file field, once the whole form has been read. */
  file: T | undefined;
}

/**
 * Streams a multipart/form-data request: the one file field is handed to `onFile`
 * as it arrives (so decoding can start before the upload ends), text fields are
 * collected, every other part is discarded unread. Resolves when the form ends.
 */
export function readMultipart<T>(
  req: Request,
  fileField: string,
  limits: MultipartLimits,
  onFile: (stream: Readable, info: { filename: string | undefined; mimeType: string }) => T,
): Promise<MultipartResult<T>> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { fileSize: limits.maxFileBytes, files: 1, fields: limits.maxFields ?? 16, fieldSize: limits.maxFieldBytes ?? 1024, parts: (limits.maxFields ?? 16) + 1 },
      });
    } catch {
      reject(unsupportedMedia(`send multipart/form-data with the image in a field named ${fileField} (got Content-Type: ${req.get('content-type') ?? 'none'})`));
      return;
    }
    const fields = new Map<string, string>();
    let file: T | undefined;
    let failure: Error | undefined;
    const fail = (err: Error) => {
      failure ??= err;
    };
    parser.on('file', (name, stream, info) => {
      if (name !== fileField || file !== undefined) {
        stream.resume();
        return;
      }
      // busboy truncates the file and discards the rest of it; the form is then refused whole.
      stream.on('limit', () => fail(payloadTooLarge(`${fileField} is larger than the ${limits.maxFileBytes}-byte upload limit`)));
      file = onFile(stream, { filename: info.filename, mimeType: info.mimeType });
    });
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(badRequest(`form field ${name} is too long`));
      fields.set(name, value);
    });
    parser.on('fieldsLimit', () => fail(badRequest('the form has too many fields')));
    parser.on('partsLimit', () => fail(badRequest('the form has too many parts')));
    parser.on('error', (err: Error) => {
      req.unpipe(parser);
      reject(failure ?? badRequest(`malformed multipart body: ${err.message}`));
    });
    parser.on('close', () => {
      if (failure) reject(failure);
      else resolve({ fields, file });
    });
    req.on('aborted', () => reject(badRequest('the client closed the connection before the upload finished')));
    req.pipe(parser);
  });
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** Booleans as the seed's clients send them: True/False (Python), true/false, 1/0. */
export function parseFormBoolean(fields: Map<string, string>, name: string, fallback: boolean): boolean {
  const raw = fields.get(name);
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw badRequest(`form field ${name}=${JSON.stringify(raw)} is not a boolean; use True/False, true/false or 1/0`);
}
