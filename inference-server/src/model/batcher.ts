import { ApiError } from '../errors.js';

export interface BatchOptions {
  /** Largest batch sent to the session; 1 turns batching off. */
  maxBatchSize: number;
  /** How long the first image of a batch may wait for company while the session is idle. */
  maxQueueDelayMs: number;
  /** Batches that may run at once (one per session); default 1. */
  concurrency?: number;
}

export interface BatchResult<R> {
  result: R;
  batchSize: number;
  queueSeconds: number;
}

interface Item<T, R> {
  input: T;
  enqueuedAt: number;
  deadline: number;
  resolve: (r: BatchResult<R>) => void;
  reject: (err: unknown) => void;
}

/**
 * Dynamic batching: images that arrive while the sessions are busy (or within
 * maxQueueDelayMs of each other while one is idle) run as one tensor, and each
 * caller gets its own row back. A failed batch is retried image by image, so one
 * bad input never fails its batch-mates; an image whose deadline passed while it
 * waited is answered 504 without running.
 */
export class Batcher<T, R> {
  private readonly pending: Item<T, R>[] = [];
  private running = 0;
  private readonly concurrency: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly runBatch: (inputs: T[]) => Promise<R[]>,
    private readonly opts: BatchOptions,
  ) {
    if (!(opts.maxBatchSize >= 1)) throw new Error(`maxBatchSize must be at least 1, got ${opts.maxBatchSize}`);
    this.concurrency = opts.concurrency ?? 1;
    if (!(this.concurrency >= 1)) throw new Error(`concurrency must be at least 1, got ${this.concurrency}`);
  }

  get queued(): number {
    return this.pending.length;
  }

  submit(input: T, deadline = Infinity): Promise<BatchResult<R>> {
    return new Promise((resolve, reject) => {
      this.pending.push({ input, enqueuedAt: performance.now(), deadline, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running >= this.concurrency || this.pending.length === 0) return;
    const waited = performance.now() - this.pending[0]!.enqueuedAt;
    if (this.pending.length < this.opts.maxBatchSize && waited < this.opts.maxQueueDelayMs) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, this.opts.maxQueueDelayMs - waited);
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = performance.now();
    const batch: Item<T, R>[] = [];
    while (batch.length < this.opts.maxBatchSize && this.pending.length > 0) {
      const item = this.pending.shift()!;
      if (now > item.deadline) {
        item.reject(new ApiError(504, `the request waited ${Math.round(now - item.enqueuedAt)} ms for the model, past its deadline; the server is overloaded, retry later`));
      } else {
        batch.push(item);
      }
    }
    if (batch.length === 0) {
      this.pump();
      return;
    }
    this.running++;
    void this.execute(batch, now).finally(() => {
      this.running--;
      this.pump();
    });
    // Another session may be free for what is left.
    this.pump();
  }

  private async execute(batch: Item<T, R>[], startedAt: number): Promise<void> {
    const settle = (item: Item<T, R>, result: R, size: number) =>
      item.resolve({ result, batchSize: size, queueSeconds: (startedAt - item.enqueuedAt) / 1000 });
    try {
      const results = await this.runBatch(batch.map((i) => i.input));
      batch.forEach((item, i) => settle(item, results[i]!, batch.length));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // Find the culprit: each image alone, so its batch-mates still get answers.
      for (const item of batch) {
        try {
          const [result] = await this.runBatch([item.input]);
          settle(item, result!, 1);
        } catch (single) {
          item.reject(single);
        }
      }
    }
  }
}
