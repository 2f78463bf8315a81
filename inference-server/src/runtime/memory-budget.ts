/**
 * The memory bound on requests in progress. Everything a request holds while
 * it waits (its body as it arrives, the decoded image, the prepared tensor)
 * is reserved here; a reservation that does not fit is refused (503), so a
 * pod survives any load within its memory limit, and below the bound every
 * request queues and is answered.
 */
const MiB = 1024 * 1024;

/** The auto bound is never below this, so a small pod still queues a useful number of requests. */
export const MIN_AUTO_QUEUE_BYTES = 64 * MiB;
/** Share of the memory left once the model is loaded; the rest is headroom for onnxruntime's arenas, V8 and libvips. */
export const AUTO_QUEUE_SHARE = 0.5;

/** MAX_QUEUE_BYTES=auto: half of what the pod has left after loading the model, at least 64 MiB. */
export function autoQueueBytes(memoryLimitBytes: number, inUseBytes: number): number {
  return Math.max(MIN_AUTO_QUEUE_BYTES, Math.floor((memoryLimitBytes - inUseBytes) * AUTO_QUEUE_SHARE));
}

/** Bytes held by one request; grows as its body arrives and as it is decoded; released once when it is answered. */
export class Reservation {
  private held: number;
  private released = false;

  constructor(
    private readonly budget: MemoryBudget,
    bytes: number,
  ) {
    this.held = bytes;
  }

  get bytes(): number {
    return this.held;
  }

  /** Takes `bytes` more; false (and nothing taken) when they do not fit. */
  grow(bytes: number): boolean {
    if (this.released) return false;
    if (!this.budget.take(bytes)) return false;
    this.held += bytes;
    return true;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.held);
    this.held = 0;
  }
}

export class MemoryBudget {
  private used = 0;

  /** `onRelease` hears of every reservation's bytes as it ends (the garbage collector's cue). */
  constructor(
    readonly limitBytes: number,
    private readonly onRelease: (bytes: number) => void = () => undefined,
  ) {
    if (!(limitBytes >= 1)) throw new Error(`the memory bound must be at least 1 byte, got ${limitBytes}`);
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Whether `bytes` more would fit now. */
  fits(bytes: number): boolean {
    return this.used + bytes <= this.limitBytes;
  }

  /** A reservation of `bytes`, or undefined when they do not fit. */
  tryReserve(bytes: number): Reservation | undefined {
    return this.take(bytes) ? new Reservation(this, bytes) : undefined;
  }

  /** @internal for Reservation */
  take(bytes: number): boolean {
    if (!this.fits(bytes)) return false;
    this.used += bytes;
    return true;
  }

  /** @internal for Reservation */
  give(bytes: number): void {
    this.used -= bytes;
    this.onRelease(bytes);
  }
}
