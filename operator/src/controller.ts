import type { KubeConfig, KubernetesObject, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { OnnxModel } from '../../crds/onnxmodel-types.js';
import { desiredObjects, type DesiredObjects, type OperatorDefaults } from './desired-state.js';
import { EventRecorder } from './kube/events.js';
import { Informer } from './kube/informer.js';
import { isNotFound, looksTransient, paths, type KubeRest } from './kube/rest.js';
import { FIELD_MANAGER, MODEL_LABEL, ownerKey } from './ownership.js';
import { OperatorMetrics } from './metrics.js';
import { computeStatus, sameStatus } from './status.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  /** Watch one namespace, or all when undefined. */
  namespace?: string;
  workers?: number;
  /** Every model is reconciled again this often even without events (drift the watch cannot see). */
  resyncMs?: number;
  identity: string;
}

const keyOf = (o: KubernetesObject) => `${o.metadata!.namespace}/${o.metadata!.name}`;

/**
 * Server-side apply merges Service ports by port number: after someone edits
 * the port, our apply would add a second port named "http" (422, forever).
 * So when the live ports are not ours, they are replaced whole first, keeping
 * the node ports the cluster allocated.
 */
async function replaceForeignPorts(
  rest: KubeRest,
  desired: V1Service,
  live: V1Service | undefined,
  collection: string,
): Promise<void> {
  const want = desired.spec?.ports ?? [];
  const have = live?.spec?.ports ?? [];
  const same = (a: V1ServicePort, b: V1ServicePort) =>
    a.name === b.name &&
    a.port === b.port &&
    (a.protocol ?? 'TCP') === (b.protocol ?? 'TCP') &&
    String(a.targetPort) === String(b.targetPort);
  if (!live || (have.length === want.length && want.every((p, i) => same(p, have[i]!)))) return;
  const ports = want.map((p) => {
    const nodePort = have.find((h) => h.name === p.name)?.nodePort;
    return nodePort !== undefined && desired.spec?.type !== 'ClusterIP' ? { ...p, nodePort } : p;
  });
  await rest.mergePatch(`${collection}/${live.metadata!.name}`, { spec: { ports } });
}

/**
 * A kind of child the controller owns, as controller-runtime's `Owns()`: one
 * entry drives its informer, its event wiring and its reconcile step.
 */
interface OwnedKind {
  kind: string;
  collection: (ns?: string) => string;
  /** The child a model wants, or undefined when its spec wants none (an existing one is then deleted). */
  desired: (objects: DesiredObjects) => KubernetesObject | undefined;
  /** A step before the apply, when server-side apply alone cannot reach the desired state. */
  prepare?: (
    rest: KubeRest,
    desired: KubernetesObject,
    live: KubernetesObject | undefined,
    collection: string,
  ) => Promise<void>;
}

/** In the order they are applied: the Deployment first, so a Service never selects pods that cannot exist. */
const OWNED_KINDS: readonly OwnedKind[] = [
  { kind: 'Deployment', collection: paths.deployments, desired: (o) => o.deployment },
  {
    kind: 'Service',
    collection: paths.services,
    desired: (o) => o.service,
    prepare: (rest, d, l, c) => replaceForeignPorts(rest, d, l, c),
  },
  { kind: 'HorizontalPodAutoscaler', collection: paths.hpas, desired: (o) => o.hpa },
  { kind: 'PodDisruptionBudget', collection: paths.pdbs, desired: (o) => o.pdb },
];

/**
 * The OnnxModel controller: watches OnnxModels and the children they own, and
 * reconciles each model by key, level-triggered: every reconcile computes the
 * whole desired state from the current spec and applies it, whatever the event.
 */
export class OnnxModelController {
  readonly queue = new WorkQueue();
  readonly metrics: OperatorMetrics;
  private readonly models: Informer<OnnxModel>;
  /** One informer per owned kind, by kind. */
  private readonly children: ReadonlyMap<string, Informer<KubernetesObject>>;
  /** Read only, for the status: why replicas are not ready. */
  private readonly pods: Informer<V1Pod>;
  private readonly events: EventRecorder;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void>[] = [];
  synced = false;

  constructor(
    kc: KubeConfig,
    private readonly rest: KubeRest,
    private readonly defaults: OperatorDefaults,
    private readonly logger: Logger,
    private readonly opts: ControllerOptions,
  ) {
    const ns = opts.namespace;
    const owned = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;
    this.models = new Informer<OnnxModel>(kc, rest, paths.onnxModels(ns), logger);
    this.children = new Map(
      OWNED_KINDS.map((k) => [k.kind, new Informer<KubernetesObject>(kc, rest, k.collection(ns), logger, owned)]),
    );
    this.pods = new Informer<V1Pod>(kc, rest, paths.pods(ns), logger, owned);
    this.events = new EventRecorder(rest, opts.identity, logger);
    this.metrics = new OperatorMetrics({
      queueDepth: () => this.queue.length,
      models: () => this.models.list().length,
    });

    const enqueueModel = (m: OnnxModel) => this.queue.add(keyOf(m));
    for (const verb of ['add', 'update', 'delete'] as const) this.models.on(verb, enqueueModel);
    // A child changed or vanished: reconcile its owner, which puts it back as designed.
    const enqueueOwner = (child: KubernetesObject) => {
      const key = ownerKey(child);
      if (key) this.queue.add(key);
    };
    for (const informer of this.children.values()) {
      for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, enqueueOwner);
    }
    // Pods belong to ReplicaSets; the model label names their OnnxModel.
    const enqueueModelOfPod = (pod: V1Pod) => {
      const model = pod.metadata?.labels?.[MODEL_LABEL];
      if (model && pod.metadata?.namespace) this.queue.add(`${pod.metadata.namespace}/${model}`);
    };
    for (const verb of ['add', 'update', 'delete'] as const) this.pods.on(verb, enqueueModelOfPod);
  }

  private get informers(): Informer<KubernetesObject>[] {
    return [this.models, ...this.children.values(), this.pods] as Informer<KubernetesObject>[];
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
    this.synced = true;
    this.logger.info(
      { models: this.models.list().length, namespace: this.opts.namespace ?? '(all)' },
      'caches synced; reconciling',
    );
    for (const m of this.models.list()) this.queue.add(keyOf(m));
    const resyncMs = this.opts.resyncMs ?? 10 * 60_000;
    this.resync = setInterval(() => this.models.list().forEach((m) => this.queue.add(keyOf(m))), resyncMs);
    this.running = Array.from({ length: this.opts.workers ?? 4 }, () => this.worker());
  }

  async stop(): Promise<void> {
    clearInterval(this.resync);
    this.queue.shutDown();
    await Promise.all(this.running);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const end = this.metrics.reconcileDuration.startTimer();
      try {
        await this.reconcile(key);
        this.queue.forget(key);
        this.metrics.reconciles.inc({ result: 'success' });
      } catch (err) {
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ result: 'error' });
        this.metrics.retries.inc();
        this.logger.warn(
          {
            key,
            err: (err as Error).message,
            failures: this.queue.retries(key),
            retryInMs: delay,
            transient: looksTransient(err),
          },
          'reconcile failed; will retry',
        );
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  /** Applies one child with server-side apply; records an event when the API server changed something. */
  private async applyChild<T extends KubernetesObject>(
    model: OnnxModel,
    desired: T,
    collection: string,
    cached: T | undefined,
  ): Promise<T> {
    const name = desired.metadata!.name!;
    const applied = await this.rest.apply<T>(`${collection}/${name}`, desired, FIELD_MANAGER);
    if (!cached) this.events.normal(model, 'Created', `created ${desired.kind} ${name}`);
    else if (
      cached.metadata?.resourceVersion !== applied.metadata?.resourceVersion &&
      cached.metadata?.generation !== applied.metadata?.generation
    ) {
      this.events.normal(model, 'Updated', `updated ${desired.kind} ${name} to the OnnxModel's spec`);
    }
    return applied;
  }

  private async deleteChild(
    model: OnnxModel,
    kind: string,
    collection: string,
    cached: KubernetesObject | undefined,
  ): Promise<void> {
    if (!cached || ownerKey(cached) !== keyOf(model)) return;
    try {
      await this.rest.delete(`${collection}/${cached.metadata!.name}`);
      this.events.normal(model, 'Deleted', `deleted ${kind} ${cached.metadata!.name}: no longer in the spec`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const model = this.models.get(name, namespace);
    // Gone or going: owner references let the garbage collector remove the children.
    if (!model || model.metadata.deletionTimestamp) return;

    const desired = desiredObjects(model, this.defaults);
    /** Each child as last seen: from the cache, then as applied. */
    const live = new Map<string, KubernetesObject | undefined>();
    let failure: Error | undefined;
    try {
      for (const owned of OWNED_KINDS) {
        const collection = owned.collection(namespace);
        const cached = this.children.get(owned.kind)!.get(name, namespace);
        live.set(owned.kind, cached);
        const want = owned.desired(desired);
        if (want === undefined) {
          await this.deleteChild(model, owned.kind, collection, cached);
          continue;
        }
        await owned.prepare?.(this.rest, want, cached, collection);
        live.set(owned.kind, await this.applyChild(model, want, collection, cached));
      }
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      this.events.warning(model, 'ReconcileError', failure.message);
    }
    const deployment = live.get('Deployment');
    const service = live.get('Service');

    const pods = this.pods
      .list()
      .filter((p) => p.metadata?.namespace === namespace && p.metadata.labels?.[MODEL_LABEL] === name);
    const status = computeStatus(model, {
      deployment,
      service,
      pods,
      reconcileError: failure?.message,
      now: new Date(),
    });
    if (!sameStatus(model.status, status)) {
      try {
        // A merge patch keeps what it does not mention: a vanished address must be nulled explicitly.
        await this.rest.mergePatch(`${paths.onnxModels(namespace)}/${name}/status`, {
          status: { ...status, address: status.address ?? null, url: status.url ?? null },
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (failure) throw failure;
  }
}
