/** How much wait the user accepts, and how many batches share it. */
export interface QueueBudgetOptions {
  /**
   * The accepted wait before an inference starts, in ms; 'auto' = a lone image's inference time, at least
   * MIN_AUTO_BUDGET_MS.
   */
  budgetMs: number | 'auto';
  /** Batches that run side by side. */
  sessions: number;
}

/**
 * The auto budget is never below this: a shorter one would be inside the
 * jitter of a shared CPU (GC pauses, decodes competing with inference) and
 * refuse requests at moderate load. Measured: a 6.5 ms budget for
 * EfficientNet-Lite0 on 2 cores refused 14 % of requests at 80 % load.
 */
export const MIN_AUTO_BUDGET_MS = 50;
/** Weight of the newest batch in the moving average: about the last ten batches count. */
const ALPHA = 0.2;

/**
 * The opt-in latency budget (SLO mode, MAX_QUEUE_MS): admission sized from a
 * wait the user accepts instead of from memory. An image queued behind N
 * others waits about N × (time per image) / sessions before its own run
 * starts (Little's law), so it is worth holding 1 + budget × sessions /
 * (time per image) images at once. Past that the server refuses at once
 * (503 + Retry-After): under overload the requests it accepts still answer
 * within about the budget plus one batch, and a load balancer or client can
 * send the rest elsewhere. Without a budget every request queues (FIFO) up to
 * the memory bound, as users' load tests expect.
 *
 * The time per image is a moving average over the batches actually run, so the
 * limit follows the load: batches get cheaper per image as they grow, and
 * everything gets slower when decoding competes for the CPUs.
 */
export class QueueBudget {
  private perImageMs: number | undefined;
  private singleImageMs: number | undefined;

  constructor(private readonly opts: QueueBudgetOptions) {
    if (!(opts.sessions >= 1)) throw new Error(`sessions must be at least 1, got ${opts.sessions}`);
    if (opts.budgetMs !== 'auto' && !(opts.budgetMs > 0))
      throw new Error(`the budget must be 'auto' or a positive number of ms, got ${opts.budgetMs}`);
  }

  /** A lone image's inference time (from the warm-up), the base of the auto budget. */
  calibrate(singleImageMs: number): void {
    if (!(singleImageMs > 0)) return;
    this.singleImageMs = singleImageMs;
    this.perImageMs ??= singleImageMs;
  }

  /** One batch run: `ms` for `images` images. */
  observe(ms: number, images: number): void {
    if (!(ms > 0) || !(images >= 1)) return;
    const x = ms / images;
    this.perImageMs = this.perImageMs === undefined ? x : this.perImageMs + ALPHA * (x - this.perImageMs);
  }

  /** The budget in ms, or undefined while the auto budget has nothing to go on. */
  get budgetMs(): number | undefined {
    const { budgetMs } = this.opts;
    if (budgetMs === 'auto')
      return this.singleImageMs === undefined ? undefined : Math.max(MIN_AUTO_BUDGET_MS, this.singleImageMs);
    return budgetMs;
  }

  /**
   * Images to hold (queued or running) now; never fewer than one per session
   * plus one waiting, or the sessions would idle between runs. Infinity until
   * something has been measured.
   */
  get limit(): number {
    const budget = this.budgetMs;
    if (budget === undefined || this.perImageMs === undefined) return Infinity;
    const fits = 1 + Math.floor((budget * this.opts.sessions) / this.perImageMs);
    return Math.max(this.opts.sessions + 1, fits);
  }
}
