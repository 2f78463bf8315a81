/**
 * Sizes admission from a latency budget instead of a fixed count. A request
 * admitted behind N others waits for about N × (time per image) / sessions
 * before its own run starts (Little's law), so it is worth admitting
 * 1 + budget × sessions / (time per image) requests at once. Past that the
 * server refuses at once (503 + Retry-After): under overload the requests it
 * does accept still answer within about a lone request's time plus the budget,
 * instead of all of them queueing for seconds.
 *
 * The time per image is a moving average over the batches actually run, so the
 * cap follows the load: batches get cheaper per image as they grow, and
 * everything gets slower when decoding competes for the CPUs.
 */
export interface QueueBudgetOptions {
  /** How long a request may expect to wait before its own inference starts, in ms; 'auto' = AUTO_FACTOR × a lone image's inference time, at least MIN_AUTO_BUDGET_MS. 0 turns the budget off. */
  budgetMs: number | 'auto';
  /** Batches that run side by side. */
  sessions: number;
  /** The hard cap (MAX_IN_FLIGHT), which also holds while nothing has been measured. */
  maxInFlight: number;
}

/** The auto budget: a wait of this many lone inferences; with its own run and some jitter, the tail stays within 3× a lone request. */
export const AUTO_FACTOR = 1;
/**
 * The auto budget is never below this: a shorter one would be inside the
 * jitter of a shared CPU (GC pauses, decodes competing with inference) and
 * refuse requests at moderate load. Measured: a 6.5 ms budget for
 * EfficientNet-Lite0 on 2 cores refused 14 % of requests at 80 % load.
 */
export const MIN_AUTO_BUDGET_MS = 50;
/** Weight of the newest batch in the moving average: about the last ten batches count. */
const ALPHA = 0.2;

export class QueueBudget {
  private perImageMs: number | undefined;
  private singleImageMs: number | undefined;

  constructor(private readonly opts: QueueBudgetOptions) {
    if (!(opts.sessions >= 1)) throw new Error(`sessions must be at least 1, got ${opts.sessions}`);
    if (!(opts.maxInFlight >= 1)) throw new Error(`maxInFlight must be at least 1, got ${opts.maxInFlight}`);
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

  /** The budget in ms, or undefined when it is off or not yet known. */
  get budgetMs(): number | undefined {
    const { budgetMs } = this.opts;
    if (budgetMs === 0) return undefined;
    if (budgetMs === 'auto') return this.singleImageMs === undefined ? undefined : Math.max(MIN_AUTO_BUDGET_MS, AUTO_FACTOR * this.singleImageMs);
    return budgetMs;
  }

  /**
   * Requests to admit now, never more than MAX_IN_FLIGHT and never fewer than
   * one per session plus one being decoded, or the sessions would idle between
   * runs.
   */
  get limit(): number {
    const budget = this.budgetMs;
    if (budget === undefined || this.perImageMs === undefined) return this.opts.maxInFlight;
    const fits = 1 + Math.floor((budget * this.opts.sessions) / this.perImageMs);
    return Math.min(this.opts.maxInFlight, Math.max(this.opts.sessions + 1, fits));
  }
}
