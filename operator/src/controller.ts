import type { KubeConfig, KubernetesObject, V1Deployment, V1Pod, V1PodDisruptionBudget, V1Service, V1ServicePort, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { OnnxModel } from '../../crds/onnxmodel-types.js';
import { desiredObjects, type OperatorDefaults } from './desired-state.js';
import { EventRecorder } from './kube/events.js';
import { Informer } from './kube/informer.js';
import { isNotFound, isTransient, paths, type KubeRest } from './kube/rest.js';
import { FIELD_MANAGER, MODEL_LABEL, ownerKey } from './labels.js';
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
 * The OnnxModel controller: watches OnnxModels and the children they own, and
 * reconciles each model by key, level-triggered: every reconcile computes the
 * whole desired state from the current spec and applies it, whatever the event.
 */
export class OnnxModelController {
  readonly queue = new WorkQueue();
  readonly metrics: OperatorMetrics;
  private readonly models: Informer<OnnxModel>;
  private readonly deployments: Informer<V1Deployment>;
  private readonly services: Informer<V1Service>;
  private readonly hpas: Informer<V2HorizontalPodAutoscaler>;
  private readonly pdbs: Informer<V1PodDisruptionBudget>;
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
    this.deployments = new Informer<V1Deployment>(kc, rest, paths.deployments(ns), logger, owned);
    this.services = new Informer<V1Service>(kc, rest, paths.services(ns), logger, owned);
    this.hpas = new Informer<V2HorizontalPodAutoscaler>(kc, rest, paths.hpas(ns), logger, owned);
    this.pdbs = new Informer<V1PodDisruptionBudget>(kc, rest, paths.pdbs(ns), logger, owned);
    this.pods = new Informer<V1Pod>(kc, rest, paths.pods(ns), logger, owned);
    this.events = new EventRecorder(rest, opts.identity, logger);
    this.metrics = new OperatorMetrics({ queueDepth: () => this.queue.length, models: () => this.models.list().length });

    const enqueueModel = (m: OnnxModel) => this.queue.add(keyOf(m));
    for (const verb of ['add', 'update', 'delete'] as const) this.models.on(verb, enqueueModel);
    // A child changed or vanished: reconcile its owner, which puts it back as designed.
    const enqueueOwner = (child: KubernetesObject) => {
      const key = ownerKey(child);
      if (key) this.queue.add(key);
    };
    for (const informer of [this.deployments, this.services, this.hpas, this.pdbs] as Informer<KubernetesObject>[]) {
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
    return [this.models, this.deployments, this.services, this.hpas, this.pdbs, this.pods] as Informer<KubernetesObject>[];
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
    this.synced = true;
    this.logger.info({ models: this.models.list().length, namespace: this.opts.namespace ?? '(all)' }, 'caches synced; reconciling');
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
        this.logger.warn({ key, err: (err as Error).message, retryInMs: delay, transient: isTransient(err) }, 'reconcile failed; will retry');
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  /** Applies one child with server-side apply; records an event when the API server changed something. */
  private async applyChild<T extends KubernetesObject>(model: OnnxModel, desired: T, collection: string, cached: T | undefined): Promise<T> {
    const name = desired.metadata!.name!;
    const applied = await this.rest.apply<T>(`${collection}/${name}`, desired, FIELD_MANAGER);
    if (!cached) this.events.normal(model, 'Created', `created ${desired.kind} ${name}`);
    else if (cached.metadata?.resourceVersion !== applied.metadata?.resourceVersion && cached.metadata?.generation !== applied.metadata?.generation) {
      this.events.normal(model, 'Updated', `updated ${desired.kind} ${name} to the OnnxModel's spec`);
    }
    return applied;
  }

  private async deleteChild(model: OnnxModel, kind: string, collection: string, cached: KubernetesObject | undefined): Promise<void> {
    if (!cached || ownerKey(cached) !== keyOf(model)) return;
    try {
      await this.rest.delete(`${collection}/${cached.metadata!.name}`);
      this.events.normal(model, 'Deleted', `deleted ${kind} ${cached.metadata!.name}: no longer in the spec`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Server-side apply merges Service ports by port number: after someone edits
   * the port, our apply would add a second port named "http" (422, forever).
   * So when the live ports are not ours, they are replaced whole first, keeping
   * the node ports the cluster allocated.
   */
  private async replaceForeignPorts(desired: V1Service, live: V1Service | undefined, collection: string): Promise<void> {
    const want = desired.spec?.ports ?? [];
    const have = live?.spec?.ports ?? [];
    const same = (a: V1ServicePort, b: V1ServicePort) => a.name === b.name && a.port === b.port && (a.protocol ?? 'TCP') === (b.protocol ?? 'TCP') && String(a.targetPort) === String(b.targetPort);
    if (!live || (have.length === want.length && want.every((p, i) => same(p, have[i]!)))) return;
    const ports = want.map((p) => {
      const nodePort = have.find((h) => h.name === p.name)?.nodePort;
      return nodePort !== undefined && desired.spec?.type !== 'ClusterIP' ? { ...p, nodePort } : p;
    });
    await this.rest.mergePatch(`${collection}/${live.metadata!.name}`, { spec: { ports } });
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const model = this.models.get(name, namespace);
    // Gone or going: owner references let the garbage collector remove the children.
    if (!model || model.metadata.deletionTimestamp) return;

    const desired = desiredObjects(model, this.defaults);
    let deployment = this.deployments.get(name, namespace);
    let service = this.services.get(name, namespace);
    let failure: unknown;
    try {
      deployment = await this.applyChild(model, desired.deployment, paths.deployments(namespace), deployment);
      await this.replaceForeignPorts(desired.service, service, paths.services(namespace));
      service = await this.applyChild(model, desired.service, paths.services(namespace), service);
      const hpa = this.hpas.get(name, namespace);
      if (desired.hpa) await this.applyChild(model, desired.hpa, paths.hpas(namespace), hpa);
      else await this.deleteChild(model, 'HorizontalPodAutoscaler', paths.hpas(namespace), hpa);
      const pdb = this.pdbs.get(name, namespace);
      if (desired.pdb) await this.applyChild(model, desired.pdb, paths.pdbs(namespace), pdb);
      else await this.deleteChild(model, 'PodDisruptionBudget', paths.pdbs(namespace), pdb);
    } catch (err) {
      failure = err;
      this.events.warning(model, 'ReconcileError', (err as Error).message);
    }

    const pods = this.pods.list().filter((p) => p.metadata?.namespace === namespace && p.metadata.labels?.[MODEL_LABEL] === name);
    const status = computeStatus(model, { deployment, service, pods, reconcileError: failure ? (failure as Error).message : undefined, now: new Date() });
    if (!sameStatus(model.status, status)) {
      try {
        // A merge patch keeps what it does not mention: a vanished address must be nulled explicitly.
        await this.rest.mergePatch(`${paths.onnxModels(namespace)}/${name}/status`, { status: { ...status, address: status.address ?? null, url: status.url ?? null } });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (failure) throw failure;
  }
}
