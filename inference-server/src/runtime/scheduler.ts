import { ClientGone, DeadlineExceeded, NotReady, Overloaded, asError } from '../errors.js';
import { batchShape, imageElements, type ModelSignature } from '../model/signature.js';
import type { TensorData } from '../model/session-protocol.js';
import type { QueueBudget } from './queue-budget.js';

/** One image's slice of the input tensor, or a whole batch of them (float32 or uint8, as the model takes). */
export type Tensor = Float32Array | Uint8Array;

/** What the scheduler runs on: a session on its own thread (model/worker-session.ts), or a fake in tests. */
export interface Session {
  run(
    feeds: Record<string, TensorData>,
    outputNames: string[],
  ): Promise<{ outputs: Record<string, TensorData>; seconds: number }>;
  release(): Promise<void>;
}

export interface SchedulerOptions {
  /** Largest batch formed from single images (dynamic-batch models); 1 turns batching off. */
  maxBatchSize: number;
  /** How long the first image of a batch may wait for company while a session is idle. */
  maxQueueDelayMs: number;
  /** Opt-in cap on images queued or running (MAX_IN_FLIGHT); unset, only the memory bound applies, upstream. */
  maxImages?: number;
  /** Opt-in latency budget (MAX_QUEUE_MS): admit only what can start within it. */
  budget?: QueueBudget;
}

/** Where the scheduler reports what it does; the metrics module implements it. */
export interface SchedulerObserver {
  /** A job left the queue for a session after waiting this long. */
  waited(seconds: number): void;
  /** A session ran `images` images in one call for this long. */
  ran(images: number, seconds: number): void;
}

export interface JobOptions {
  /** performance.now() ms after which the job is not started (DeadlineExceeded). */
  deadline?: number;
  /** Aborted when the client goes away: a job still queued is dropped, not run. */
  signal?: AbortSignal;
}

export interface JobResult {
  /** The output rows of this job's images (a view; the row count is the job's image count). */
  output: Float32Array;
  dims: number[];
  queueSeconds: number;
  inferenceSeconds: number;
  /** Images in the session call this job ran in. */
  batchSize: number;
}

interface Job {
  /** A single image may share a run with others; a batch (v2) runs as it came. */
  kind: 'image' | 'batch';
  data: Tensor;
  images: number;
  enqueuedAt: number;
  deadline: number;
  /** Queued, then in a session call (a client leaving then no longer drops it), then answered. */
  state: 'queued' | 'running' | 'settled';
  resolve(result: JobResult): void;
  reject(err: unknown): void;
}

type Outcome = Omit<JobResult, 'queueSeconds'> | { error: unknown };

interface CallResult {
  output: Float32Array;
  dims: number[];
  seconds: number;
}

const expired = (job: Job, now: number) =>
  new DeadlineExceeded(
    `the request waited ${Math.round(now - job.enqueuedAt)} ms for the model, ` +
      'past its deadline (REQUEST_DEADLINE_MS); the server is overloaded, retry later',
  );

const noObserver: SchedulerObserver = { waited: () => undefined, ran: () => undefined };

/**
 * The one owner of the model's sessions. Single images (from /predict/image)
 * and whole batches (v2 requests) wait in one FIFO queue; when a session is
 * free it takes the head: a batch alone, or as many single images as are
 * queued behind each other, up to the batch size, as one tensor. Queue
 * accounting is in images, so a v2 batch of N weighs N. A failed run of
 * several images is retried image by image, so one bad input never fails its
 * batch-mates; a job past its deadline when its turn comes is refused
 * unstarted; a job whose client left is dropped.
 */
export class Scheduler {
  private readonly queue: Job[] = [];
  private readonly idle: Session[];
  private queued = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly perImage: number;
  private readonly maxBatch: number;

  constructor(
    private readonly sessions: readonly Session[],
    private readonly signature: ModelSignature,
    private readonly opts: SchedulerOptions,
    private readonly observer: SchedulerObserver = noObserver,
  ) {
    if (sessions.length === 0) throw new Error('the scheduler needs at least one session');
    if (!(opts.maxBatchSize >= 1)) throw new Error(`maxBatchSize must be at least 1, got ${opts.maxBatchSize}`);
    this.idle = [...sessions];
    this.perImage = imageElements(signature);
    // A fixed-batch model takes exactly its batch: single images fill it (padded when fewer).
    this.maxBatch = signature.batch === 'dynamic' ? opts.maxBatchSize : signature.batch;
  }

  /** Images waiting for a session. */
  get queuedImages(): number {
    return this.queued;
  }

  /** Images in a session call now. */
  get runningImages(): number {
    return this.running;
  }

  /** The most images queued or running that the opt-in limits allow now (Infinity when none is set). */
  get limit(): number {
    return Math.min(this.opts.maxImages ?? Infinity, this.opts.budget?.limit ?? Infinity);
  }

  /**
   * Throws Overloaded when `images` more would be past the opt-in limits;
   * `pending` counts images on their way in (being decoded). A job larger
   * than the limit is still taken when nothing else is held, or a big v2
   * batch could never run.
   */
  checkAdmission(images: number, pending = 0): void {
    const held = this.queued + this.running + pending;
    const limit = this.limit;
    if (held === 0 || held + images <= limit) return;
    const budget = this.opts.budget?.budgetMs;
    if (budget !== undefined && limit === this.opts.budget?.limit) {
      throw new Overloaded(
        `the server holds ${held} images, the most that can start within the ${Math.round(budget)} ms queue budget ` +
          `(MAX_QUEUE_MS) is ${limit}; retry shortly`,
        'queue_budget',
      );
    }
    throw new Overloaded(
      `the server holds ${held} images, its MAX_IN_FLIGHT limit is ${limit}; retry shortly`,
      'max_in_flight',
    );
  }

  /**
   * One image's slice of the input tensor (not reused by the caller); batched with others queued beside it. Resolves to
   * its output row.
   */
  submitImage(data: Tensor, opts: JobOptions = {}): Promise<JobResult> {
    if (data.length !== this.perImage)
      throw new Error(`an image must be ${this.perImage} elements, got ${data.length}`);
    return this.enqueue('image', data, 1, opts);
  }

  /** A whole input tensor of `images` images, run as one call (its buffer is handed over). */
  submitBatch(data: Tensor, images: number, opts: JobOptions = {}): Promise<JobResult> {
    if (data.length !== images * this.perImage)
      throw new Error(`a batch of ${images} must be ${images * this.perImage} elements, got ${data.length}`);
    if (this.signature.batch !== 'dynamic' && images !== this.signature.batch)
      throw new Error(`this model takes batches of exactly ${this.signature.batch}`);
    return this.enqueue('batch', data, images, opts);
  }

  /**
   * One inference on every session so the first requests do not pay for lazy
   * initialisation, then one more on a warm session: returns that lone
   * image's inference time in ms (the base of the auto queue budget).
   */
  async warmUp(image: Tensor): Promise<number> {
    // Not observed: first runs pay for lazy initialisation and would skew the budget's average.
    // A copy each time: a call hands its tensor's buffer over to the session's thread.
    const run = (session: Session) => this.call(session, [image.slice()], 1, false).then((r) => r.seconds * 1000);
    await Promise.all(this.sessions.map(run));
    return run(this.sessions[0]!);
  }

  /** Refuses what is still queued and releases the sessions once their runs end. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const job of this.queue.splice(0))
      this.settle(job, new NotReady('the server is shutting down; retry on another replica', 1));
    while (this.running > 0) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(this.sessions.map((s) => s.release()));
  }

  private enqueue(kind: Job['kind'], data: Tensor, images: number, opts: JobOptions): Promise<JobResult> {
    if (this.closed) return Promise.reject(new NotReady('the server is shutting down; retry on another replica', 1));
    if (opts.signal?.aborted) return Promise.reject(new ClientGone('the client closed the connection'));
    try {
      this.checkAdmission(images);
    } catch (err) {
      return Promise.reject(asError(err));
    }
    return new Promise<JobResult>((resolve, reject) => {
      const job: Job = {
        kind,
        data,
        images,
        enqueuedAt: performance.now(),
        deadline: opts.deadline ?? Infinity,
        state: 'queued',
        resolve,
        reject,
      };
      this.queue.push(job);
      this.queued += images;
      opts.signal?.addEventListener(
        'abort',
        () => this.settle(job, new ClientGone('the client closed the connection')),
        { once: true },
      );
      this.pump();
    });
  }

  /** Refuses a job still in the queue (it is skipped when its turn comes); a running job settles when its run ends. */
  private settle(job: Job, err: unknown): void {
    if (job.state !== 'queued') return;
    job.state = 'settled';
    this.queued -= job.images;
    job.reject(err);
  }

  private pump(): void {
    while (this.idle.length > 0) {
      this.dropSettled();
      const head = this.queue[0];
      if (head === undefined) return;
      const now = performance.now();
      if (now > head.deadline) {
        this.queue.shift();
        this.settle(head, expired(head, now));
        continue;
      }
      if (head.kind === 'batch') {
        this.queue.shift();
        this.dispatch([head], now);
        continue;
      }
      const waited = now - head.enqueuedAt;
      if (
        this.opts.maxQueueDelayMs > 0 &&
        waited < this.opts.maxQueueDelayMs &&
        this.adjacentImages() < this.maxBatch
      ) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, this.opts.maxQueueDelayMs - waited);
        return;
      }
      const batch: Job[] = [];
      while (batch.length < this.maxBatch) {
        this.dropSettled();
        const next = this.queue[0];
        if (next === undefined || next.kind !== 'image') break;
        this.queue.shift();
        if (now > next.deadline) {
          this.settle(next, expired(next, now));
          continue;
        }
        batch.push(next);
      }
      if (batch.length > 0) this.dispatch(batch, now);
    }
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private dropSettled(): void {
    while (this.queue.length > 0 && this.queue[0]!.state === 'settled') this.queue.shift();
  }

  /** Single images queued one behind the other at the head, up to a batch. */
  private adjacentImages(): number {
    let n = 0;
    for (const job of this.queue) {
      if (n >= this.maxBatch || job.kind !== 'image') break;
      if (job.state === 'queued') n++;
    }
    return n;
  }

  private dispatch(jobs: Job[], startedAt: number): void {
    const session = this.idle.pop()!;
    const images = jobs.reduce((n, j) => n + j.images, 0);
    this.queued -= images;
    this.running += images;
    for (const job of jobs) {
      job.state = 'running';
      this.observer.waited((startedAt - job.enqueuedAt) / 1000);
    }
    void this.execute(session, jobs).then((outcomes) => {
      // The session is free again before anyone hears back, so what callers then see of the queue is current.
      this.running -= images;
      this.idle.push(session);
      if (!this.closed) this.pump();
      outcomes.forEach((outcome, i) => {
        const job = jobs[i]!;
        job.state = 'settled';
        if ('error' in outcome) job.reject(outcome.error);
        else job.resolve({ ...outcome, queueSeconds: (startedAt - job.enqueuedAt) / 1000 });
      });
    });
  }

  /** Runs the jobs on the session; one outcome per job, never a rejection. */
  private async execute(session: Session, jobs: Job[]): Promise<Outcome[]> {
    const rows = (r: CallResult, batchSize: number): Outcome[] => {
      const row = r.output.length / (r.dims[0] ?? 1);
      const dims = [1, ...r.dims.slice(1)];
      return jobs.map((_, i) => ({
        output: r.output.subarray(i * row, (i + 1) * row),
        dims,
        inferenceSeconds: r.seconds,
        batchSize,
      }));
    };
    if (jobs[0]!.kind === 'batch') {
      const job = jobs[0]!;
      try {
        const r = await this.call(session, [job.data], job.images);
        return [{ output: r.output, dims: r.dims, inferenceSeconds: r.seconds, batchSize: job.images }];
      } catch (error) {
        return [{ error }];
      }
    }
    try {
      return rows(
        await this.call(
          session,
          jobs.map((j) => j.data),
          jobs.length,
        ),
        jobs.length,
      );
    } catch (error) {
      if (jobs.length === 1) return [{ error }];
    }
    // Find the culprit: each image alone, so its batch-mates still get answers.
    const outcomes: Outcome[] = [];
    for (const job of jobs) {
      try {
        const r = await this.call(session, [job.data], 1);
        outcomes.push({ output: r.output, dims: [1, ...r.dims.slice(1)], inferenceSeconds: r.seconds, batchSize: 1 });
      } catch (error) {
        outcomes.push({ error });
      }
    }
    return outcomes;
  }

  /**
   * One session call on `parts` laid end to end (`images` images; a fixed-batch
   * model's batch is padded with zeros). Its buffer is transferred to the
   * session's thread, so single images are copied into a fresh tensor and a
   * whole batch is handed over: callers never reuse what they submit.
   */
  private async call(session: Session, parts: Tensor[], images: number, observe = true): Promise<CallResult> {
    const sig = this.signature;
    const count = sig.batch === 'dynamic' ? images : sig.batch;
    let data: Tensor;
    if (parts.length === 1 && parts[0]!.length === count * this.perImage) {
      // A whole batch as it came (v2): handed over as is, no copy.
      data = parts[0]!;
    } else {
      data = sig.dtype === 'uint8' ? new Uint8Array(count * this.perImage) : new Float32Array(count * this.perImage);
      let offset = 0;
      for (const part of parts) {
        // Same element type: both come from the model's dtype.
        (data as Float32Array).set(part, offset);
        offset += part.length;
      }
    }
    const { outputs, seconds } = await session.run(
      { [sig.inputName]: { type: sig.dtype, data, dims: batchShape(sig, count) } },
      [sig.outputName],
    );
    const out = outputs[sig.outputName];
    if (out === undefined) throw new Error(`the model returned no ${sig.outputName}`);
    if (observe) {
      this.observer.ran(images, seconds);
      this.opts.budget?.observe(seconds * 1000, images);
    }
    const per = out.data.length / count;
    // A padded fixed batch: only the rows of real images are returned.
    return {
      output: (out.data as Float32Array).subarray(0, per * images),
      dims: [images, ...out.dims.slice(1)],
      seconds,
    };
  }
}
