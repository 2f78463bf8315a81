import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeRest } from './rest.js';

export type Handler<T> = (obj: T) => void;

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
      return result;
    };
    this.inner = makeInformer<T>(kc, path, list, labelSelector);
    this.inner.on('connect', () => {
      this.restarts = 0;
    });
    this.inner.on('error', (err: unknown) => {
      if (this.stopped) return;
      const delay = Math.min(30_000, 200 * 2 ** this.restarts++);
      this.logger.warn({ path, err: (err as Error)?.message ?? String(err), delayMs: delay }, 'watch failed; restarting');
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
