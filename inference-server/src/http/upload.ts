import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { ClientGone, InvalidRequest, TooLarge, UnsupportedMedia, UploadTimeout } from '../errors.js';
import type { Reservation } from '../runtime/memory-budget.js';

/**
 * Receiving request bodies: the upload stage, before a request may enter the
 * inference queue. A body is read whole, under its own limits, so a slow
 * uploader holds only the bytes it has sent (in the memory bound), never an
 * inference slot, and is cut off once it stalls or trickles.
 */
export interface UploadLimits {
  /** The largest body, in bytes. */
  maxBytes: number;
  /** No byte for this long: 408. */
  idleTimeoutMs: number;
  /** Once the upload is older than idleTimeoutMs, an average rate below this: 408. */
  minBytesPerSecond: number;
  /** What to throw when the memory bound cannot take the next chunk. */
  memoryFull: () => Error;
}

/**
 * Watches a body as it arrives: each chunk counts against maxBytes and grows
 * the request's memory reservation; a timer checks the idle time and the
 * rate. Calls `fail` at most once; returns the function that stops watching.
 */
function meter(
  req: IncomingMessage,
  limits: UploadLimits,
  reservation: Reservation,
  what: string,
  fail: (err: Error) => void,
): () => void {
  let seen = 0;
  const started = performance.now();
  let last = started;
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    last = performance.now();
    if (seen > limits.maxBytes) fail(new TooLarge(`${what} is larger than the ${limits.maxBytes}-byte limit`));
    else if (!reservation.grow(chunk.length)) fail(limits.memoryFull());
  };
  const check = () => {
    const now = performance.now();
    const age = now - started;
    if (now - last >= limits.idleTimeoutMs) {
      fail(
        new UploadTimeout(
          `no byte of the body arrived for ${Math.round((now - last) / 1000)} s (UPLOAD_IDLE_TIMEOUT_MS); ` +
            'the upload is abandoned',
        ),
      );
    } else if (age >= limits.idleTimeoutMs && (seen * 1000) / age < limits.minBytesPerSecond) {
      const rate = Math.round((seen * 1000) / age);
      fail(
        new UploadTimeout(
          `the body arrives at ${rate} bytes/s, below the minimum of ${limits.minBytesPerSecond} ` +
            '(UPLOAD_MIN_BYTES_PER_SECOND); the upload is abandoned',
        ),
      );
    }
  };
  const timer = setInterval(check, Math.max(50, Math.min(1000, limits.idleTimeoutMs / 4)));
  const onClose = () => {
    if (!req.complete) fail(new ClientGone('the client closed the connection before the upload finished'));
  };
  req.on('data', onData);
  req.once('close', onClose);
  return () => {
    clearInterval(timer);
    req.off('data', onData);
    req.off('close', onClose);
  };
}

/**
 * Where a body's chunks go. With a Content-Length they are copied into one
 * buffer of that size as they arrive, so a large body is never joined in one
 * long copy on the event loop at its end (eight 57 MB bodies ending together
 * held it for 350 ms); its pages are touched only as bytes arrive. Chunked
 * bodies are kept as chunks and joined at the end.
 */
class BodyBuffer {
  private readonly chunks: Buffer[] = [];
  private readonly whole: Buffer | undefined;
  private length = 0;

  constructor(declared: number | undefined) {
    this.whole = declared === undefined ? undefined : Buffer.allocUnsafe(declared);
  }

  add(chunk: Buffer): void {
    if (this.whole && this.length + chunk.length <= this.whole.length) chunk.copy(this.whole, this.length);
    else this.chunks.push(chunk);
    this.length += chunk.length;
  }

  bytes(): Buffer {
    if (this.whole && this.length === this.whole.length && this.chunks.length === 0) return this.whole;
    if (this.whole)
      return Buffer.concat([this.whole.subarray(0, Math.min(this.length, this.whole.length)), ...this.chunks]);
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }
}

/** The declared length, when it is one the limit allows (a larger one is refused as it arrives). */
function declaredLength(req: IncomingMessage, maxBytes: number): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined || req.headers['transfer-encoding'] !== undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 && n <= maxBytes ? n : undefined;
}

/** Reads a whole body (a raw image, a v2 request) under the limits. */
export function readBody(
  req: IncomingMessage,
  limits: UploadLimits,
  reservation: Reservation,
  what = 'the request body',
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const body = new BodyBuffer(declaredLength(req, limits.maxBytes));
    let settled = false;
    const collect = (chunk: Buffer) => body.add(chunk);
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      stop();
      req.off('data', collect);
      if (err === undefined) {
        resolve(body.bytes());
        return;
      }
      // Drain what is still in flight (the connection is closed after the answer), so the socket is not left paused.
      req.resume();
      reject(err);
    };
    req.on('data', collect);
    const stop = meter(req, limits, reservation, what, finish);
    req.once('end', () => finish(undefined));
    req.once('error', (err) => finish(new ClientGone(`the upload broke off: ${err.message}`)));
  });
}

export interface Form {
  /** The small text fields (flags), by name. */
  fields: Map<string, string>;
  /** The file field's bytes, when the form had it. */
  file: Buffer | undefined;
}

export interface FormLimits extends UploadLimits {
  /** The largest file; the whole body may add FORM_OVERHEAD_BYTES of framing and fields on top. */
  maxFileBytes: number;
}

/** Multipart framing and the small fields on top of the file itself. */
export const FORM_OVERHEAD_BYTES = 64 * 1024;
const MAX_FIELDS = 16;
const MAX_FIELD_BYTES = 1024;

/**
 * Reads a multipart/form-data body whole: the one file field into a buffer,
 * small text fields into a map, every other part discarded unread. Resolves
 * when the form has ended, so only a complete request goes on.
 */
export function readForm(
  req: IncomingMessage,
  fileField: string,
  limits: FormLimits,
  reservation: Reservation,
): Promise<Form> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        // +1: busboy reports a limit when a part reaches it, and a part of exactly the limit is allowed.
        limits: {
          fileSize: limits.maxFileBytes + 1,
          files: 1,
          fields: MAX_FIELDS,
          fieldSize: MAX_FIELD_BYTES + 1,
          parts: MAX_FIELDS + 1,
        },
      });
    } catch {
      reject(
        new UnsupportedMedia(
          `send multipart/form-data with the image in a field named ${fileField} ` +
            `(got Content-Type: ${req.headers['content-type'] ?? 'none'})`,
        ),
      );
      return;
    }
    const fields = new Map<string, string>();
    const fileChunks: Buffer[] = [];
    let sawFile = false;
    let failure: Error | undefined;
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      stop();
      if (err) {
        req.unpipe(parser);
        req.resume();
        reject(err);
      } else {
        resolve({ fields, file: sawFile ? Buffer.concat(fileChunks) : undefined });
      }
    };
    // The first problem wins; the form is refused whole once it has been read (or at once, for the meter's).
    const note = (err: Error) => {
      failure ??= err;
    };
    const stop = meter(
      req,
      { ...limits, maxBytes: limits.maxFileBytes + FORM_OVERHEAD_BYTES },
      reservation,
      'the upload',
      (err) => finish(err),
    );
    parser.on('file', (name, stream) => {
      if (name !== fileField || sawFile) {
        stream.resume();
        return;
      }
      sawFile = true;
      stream.on('data', (chunk: Buffer) => fileChunks.push(chunk));
      // A broken form also fails the file stream; the parser's own error reports it.
      stream.on('error', () => undefined);
      // busboy truncates the file and discards the rest of it; the form is then refused whole.
      stream.on('limit', () =>
        note(new TooLarge(`${fileField} is larger than the ${limits.maxFileBytes}-byte upload limit`)),
      );
    });
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) note(new InvalidRequest(`form field ${name} is too long`));
      fields.set(name, value);
    });
    parser.on('fieldsLimit', () => note(new InvalidRequest('the form has too many fields')));
    parser.on('partsLimit', () => note(new InvalidRequest('the form has too many parts')));
    parser.on('error', (err: Error) =>
      finish(failure ?? new InvalidRequest(`malformed multipart body: ${err.message}`)),
    );
    parser.on('close', () => finish(failure));
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
  throw new InvalidRequest(
    `form field ${name}=${JSON.stringify(raw)} is not a boolean; use True/False, true/false or 1/0`,
  );
}
