import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The operator's Prometheus series. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly queueDepth: Gauge;
  readonly retries: Counter;
  readonly leader: Gauge;
  readonly managedModels: Gauge;

  constructor(sources: { queueDepth: () => number; models: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.reconciles = new Counter({
      name: 'onnx_operator_reconcile_total',
      help: 'Reconciles by result (success, error)',
      labelNames: ['result'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'onnx_operator_reconcile_duration_seconds',
      help: 'Time per reconcile',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'onnx_operator_workqueue_depth',
      help: 'Keys waiting to be reconciled',
      registers,
      collect() {
        this.set(sources.queueDepth());
      },
    });
    this.retries = new Counter({
      name: 'onnx_operator_workqueue_retries_total',
      help: 'Reconciles re-queued after an error',
      registers,
    });
    this.leader = new Gauge({
      name: 'onnx_operator_leader',
      help: '1 while this replica holds the leader lease',
      registers,
    });
    this.managedModels = new Gauge({
      name: 'onnx_operator_models',
      help: 'OnnxModels in the cache',
      registers,
      collect() {
        this.set(sources.models());
      },
    });
  }
}
