import { Worker } from 'node:worker_threads';
import { InvalidImage, InvalidRequest, NotReady, TooLarge, UnsupportedMedia, asError } from '../errors.js';
import { decodeInferBody, type DecodedInput, type DecodedRequest } from './v2-codec.js';

/**
 * Decoding KServe v2 bodies without stalling the event loop. JSON.parse of a
 * large body is one uninterruptible call (about a second for 16 M elements
 * here), so every body whose JSON part is over INLINE_JSON_BYTES is split,
 * parsed, validated and flattened on a worker thread, and only the typed
 * arrays come back (transferred, not copied). One worker takes one body at a
 * time, so what parsing holds is bounded whatever the number of such
 * requests: a body whose parse would hold more than maxParseBytes is refused
 * before it is parsed (counted by scanJson), and the worker's heap limit is
 * twice that, never reached (a worker that hits its limit can abort the whole
 * process in Node 20). It is ended once idle, so that what a large parse grew
 * goes back to the system instead of staying in the process.
 */

/** A JSON part this small parses in well under a millisecond: on the event loop, without a round trip. */
export const INLINE_JSON_BYTES = 64 * 1024;

/**
 * What a large parse is reserved per byte of JSON in the memory bound (text, parsed arrays, typed copy: 2–5×
 * measured).
 */
const JSON_PARSE_EXPANSION = 6;

/** An idle worker is ended after this long: ending it is what returns its heap. */
const IDLE_RECYCLE_MS = 1000;

/** What the decode worker is started with. */
export interface DecodeWorkerData {
  maxParseBytes: number;
}

/** A job for the decode worker: the body (its buffer transferred) and the header length. */
export interface DecodeJob {
  id: number;
  body: Uint8Array;
  headerLength: string | undefined;
}

/** The worker's answer: the decoded request, or the domain error it raised (by class name). */
export type DecodeReply = { id: number; ok: DecodedRequest } | { id: number; error: { name: string; message: string } };

/** The domain errors a decode may raise, rebuilt on this side of the thread boundary. */
const ERRORS: Record<string, new (message: string) => Error> = {
  InvalidRequest,
  InvalidImage,
  TooLarge,
  UnsupportedMedia,
};

interface Pending {
  job: DecodeJob;
  resolve: (r: DecodedRequest) => void;
  reject: (err: Error) => void;
}

export interface V2DecoderOptions {
  /** The most one parse may hold; a body that would need more is refused with TooLarge. */
  maxParseBytes: number;
  /** Override of IDLE_RECYCLE_MS (tests). */
  idleRecycleMs?: number;
}

export class V2Decoder {
  private worker: Worker | undefined;
  private current: Pending | undefined;
  private readonly queue: Pending[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: V2DecoderOptions) {}

  /** Whether the worker is running (it is started by the first large body and ended when idle). */
  get workerRunning(): boolean {
    return this.worker !== undefined;
  }

  /** Whether a body with this JSON part is decoded on the worker. */
  static offloads(body: Buffer, headerLength: string | undefined): boolean {
    const n = headerLength === undefined ? body.length : Number(headerLength);
    return !(Number.isInteger(n) && n >= 0 && n <= INLINE_JSON_BYTES);
  }

  /** What a body's decoding should add to its request's memory reservation. */
  reserveBytes(body: Buffer, headerLength: string | undefined): number {
    if (!V2Decoder.offloads(body, headerLength)) return 0;
    const jsonBytes = headerLength === undefined ? body.length : Math.min(body.length, Number(headerLength) || 0);
    return Math.min(this.options.maxParseBytes, jsonBytes * JSON_PARSE_EXPANSION);
  }

  /** Decodes a v2 body; the body's buffer is handed over (the caller must not use it again). */
  decode(body: Buffer, headerLength: string | undefined): Promise<DecodedRequest> {
    if (!V2Decoder.offloads(body, headerLength) || this.closed) {
      try {
        return Promise.resolve(decodeInferBody(body, headerLength, this.options.maxParseBytes));
      } catch (err) {
        return Promise.reject(asError(err));
      }
    }
    // Only a view spanning its whole buffer can be transferred without taking its neighbours along.
    const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : Buffer.from(body);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, body: own, headerLength }, resolve, reject });
      this.pump();
    });
  }

  /** Ends the worker; bodies it held or queued are refused as the server stops, later ones decode inline. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    const stopping = new NotReady('the server is shutting down; retry on another replica', 1);
    for (const pending of [...(this.current ? [this.current] : []), ...this.queue.splice(0)]) pending.reject(stopping);
    this.current = undefined;
    if (worker) await worker.terminate();
  }

  private pump(): void {
    if (this.current || this.queue.length === 0) return;
    clearTimeout(this.idleTimer);
    const next = this.queue.shift()!;
    this.current = next;
    const { job } = next;
    this.spawned().postMessage(job, [job.body.buffer as ArrayBuffer]);
  }

  private spawned(): Worker {
    if (this.worker) return this.worker;
    const { maxParseBytes } = this.options;
    const worker = new Worker(new URL('./v2-decode-worker.js', import.meta.url), {
      workerData: { maxParseBytes } satisfies DecodeWorkerData,
      resourceLimits: { maxOldGenerationSizeMb: Math.ceil((2 * maxParseBytes) / 2 ** 20) + 32 },
    });
    worker.on('message', (reply: DecodeReply) => this.settle(reply));
    worker.on('error', (err: Error & { code?: string }) => this.lost(worker, err));
    worker.on('exit', (code) => this.lost(worker, new Error(`the v2 decode worker exited (code ${code})`)));
    // An idle worker must not keep the process alive (tests, a shutdown that skipped close()).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(reply: DecodeReply): void {
    const pending = this.current;
    if (pending?.job.id !== reply.id) return;
    this.current = undefined;
    if ('ok' in reply) pending.resolve(reply.ok);
    else pending.reject(new (ERRORS[reply.error.name] ?? Error)(reply.error.message));
    this.afterJob();
  }

  /** The worker died (a bug: parsing is bounded before it starts): its body fails, the next job gets a new worker. */
  private lost(worker: Worker, err: Error & { code?: string }): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const pending = this.current;
    this.current = undefined;
    pending?.reject(new Error(`the v2 decode worker failed: ${err.message}`));
    this.afterJob();
  }

  private afterJob(): void {
    if (this.queue.length > 0) {
      this.pump();
      return;
    }
    const worker = this.worker;
    if (!worker) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.worker !== worker || this.current) return;
      this.worker = undefined;
      void worker.terminate();
    }, this.options.idleRecycleMs ?? IDLE_RECYCLE_MS);
    this.idleTimer.unref();
  }
}

/** The typed arrays of a decoded request: what the worker transfers back. */
export function transferables(inputs: readonly DecodedInput[]): ArrayBuffer[] {
  return inputs.map((i) => i.data.buffer as ArrayBuffer);
}
