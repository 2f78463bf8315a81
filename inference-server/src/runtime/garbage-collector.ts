import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes of requests ended since the last collection after which one is scheduled. */
export const COLLECT_AFTER_BYTES = 32 * 2 ** 20;
/** At most one forced collection this often; the delay also lets a burst end first. */
const COLLECT_DELAY_MS = 1000;

/** V8's full collection, reached without starting node with --expose-gc (the flag holds for new contexts). */
export function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  return gc;
}

/**
 * Collects garbage soon after large requests end. A body arrives as hundreds
 * of 64 KiB socket chunks whose memory is freed only when V8 collects them,
 * and an idle server does not collect: after a burst of 57 MB v2 bodies the
 * process kept from 230 to 740 MiB more, by when the last collection had run.
 * One full collection (a few ms on this server's small heap), at most once a
 * second and only after COLLECT_AFTER_BYTES of requests ended, returns it.
 */
export class GarbageCollector {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly collect: () => void = exposeGc(),
    private readonly delayMs = COLLECT_DELAY_MS,
  ) {}

  /** A request that held `bytes` has ended. */
  released(bytes: number): void {
    this.pending += bytes;
    if (this.pending < COLLECT_AFTER_BYTES || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pending = 0;
      this.collect();
    }, this.delayMs);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
