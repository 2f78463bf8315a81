/**
 * Paces refusals for load. Each 503 is cheap (a fraction of a millisecond of
 * CPU), but clients that ignore Retry-After and resend at once can ask for
 * thousands a second, and then the refusals take the CPU from the requests
 * being served. Up to `perSecond` refusals a second (with a burst of as many)
 * are sent at once; past that each waits its turn, so a client in a tight
 * loop is slowed to the pace the server can afford while holding only a
 * socket and a timer. Ordinary overload (a few hundred refusals a second)
 * never waits.
 */
export class RefusalPacer {
  private tokens: number;
  private last = performance.now();
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly perSecond: number,
    /** Past this many waiting, a refusal is dropped (the connection closed) rather than queued. */
    private readonly maxWaiting = 10_000,
  ) {
    if (!(perSecond > 0)) throw new Error(`perSecond must be positive, got ${perSecond}`);
    this.tokens = perSecond;
  }

  /** Refusals waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Calls `send` now or in its turn; `drop` instead when too many are waiting already. */
  pace(send: () => void, drop: () => void): void {
    this.refill();
    if (this.waiting.length === 0 && this.tokens >= 1) {
      this.tokens--;
      send();
      return;
    }
    if (this.waiting.length >= this.maxWaiting) {
      drop();
      return;
    }
    this.waiting.push(send);
    this.schedule();
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.refill();
        while (this.waiting.length > 0 && this.tokens >= 1) {
          this.tokens--;
          this.waiting.shift()!();
        }
        if (this.waiting.length > 0) this.schedule();
      },
      Math.max(1, Math.ceil(1000 / this.perSecond)),
    );
  }
}
