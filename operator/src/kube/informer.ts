import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeRest } from './rest.js';

export type Handler<T> = (obj: T) => void;

/** Server-side watch lifetime, randomised so informers do not reconnect in step (client-go does the same). */
const WATCH_SECONDS_MIN = 20;
const WATCH_SECONDS_SPREAD = 10;
/** How long past its lifetime a watch may stay open before we call the connection dead. */
const WATCH_GRACE_SECONDS = 10;

/**
 * A watch that cannot hang forever. The server is asked to end it after
 * timeoutSeconds (ListWatch then re-watches from the last resourceVersion) and to
 * send bookmarks; if it neither ends nor speaks by then (a half-open connection,
 * a stalled proxy), the client aborts it and the informer restarts.
 */
class BoundedWatch extends Watch {
  override async watch(
    path: string,
    queryParams: Record<string, unknown>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const timeoutSeconds = WATCH_SECONDS_MIN + Math.floor(Math.random() * WATCH_SECONDS_SPREAD);
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    // Our abort makes the base Watch report the end too; ListWatch must hear of it once.
    const finish = (err: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(err);
    };
    const controller = await super.watch(
      path,
      { ...queryParams, timeoutSeconds, allowWatchBookmarks: true },
      callback,
      finish,
    );
    timer = setTimeout(
      () => {
        const err = Object.assign(
          new Error(`watch on ${path} silent past its ${timeoutSeconds}s lifetime; reconnecting`),
          { code: 'ETIMEDOUT' },
        );
        finish(err);
        controller.abort();
      },
      (timeoutSeconds + WATCH_GRACE_SECONDS) * 1000,
    );
    timer.unref();
    return controller;
  }
}

/**
 * A list-watch cache for one resource. client-node's ListWatch re-lists on
 * 410 Gone (expired resourceVersion) by itself; on any other error it stops, so
 * we restart it with capped exponential backoff. Relisting reports objects that
 * disappeared meanwhile as deletions, which keeps the controller level-triggered.
 */
export class Informer<T extends KubernetesObject> {
  private readonly inner;
  private restarts = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Resolves after the first list that succeeded: only then does the cache mean anything. */
  private readonly listed: Promise<void>;

  constructor(
    kc: KubeConfig,
    rest: KubeRest,
    readonly path: string,
    private readonly logger: Logger,
    labelSelector?: string,
  ) {
    let markListed!: () => void;
    this.listed = new Promise((resolve) => (markListed = resolve));
    const list = async () => {
      const result = await rest.get<KubernetesListObject<T>>(path, { labelSelector });
      markListed();
      this.restarts = 0;
      return result;
    };
    this.inner = new ListWatch<T>(path, new BoundedWatch(kc), list, false, labelSelector);
    // Backoff resets only on evidence the API server answers again: a list, or an event.
    for (const verb of ['add', 'update', 'delete'] as const) this.inner.on(verb, () => (this.restarts = 0));
    this.inner.on('error', (err: unknown) => {
      if (this.stopped) return;
      const delay = Math.min(30_000, 200 * 2 ** Math.min(this.restarts++, 8));
      this.logger.warn(
        { path, err: (err as Error)?.message ?? String(err), delayMs: delay },
        'watch failed; restarting',
      );
      this.timer = setTimeout(() => void this.inner.start().catch(() => undefined), delay);
    });
  }

  on(event: 'add' | 'update' | 'delete', handler: Handler<T>): void {
    this.inner.on(event, handler);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.inner.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.inner.list(namespace);
  }

  /**
   * Resolves once a list has filled the cache. ListWatch's own start() also
   * resolves when the list fails (e.g. 429 while the API server's storage
   * initialises); the error handler above retries, and we wait for that.
   */
  async start(): Promise<void> {
    await this.inner.start();
    await this.listed;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inner.stop();
  }
}
