import type { Logger } from 'pino';
import { API_VERSION, KIND, type OnnxModel } from '../../../crds/onnxmodel-types.js';
import { paths, type KubeRest } from './rest.js';

/**
 * Kubernetes Events on an OnnxModel (`kubectl describe onnxmodel` shows them).
 * Best effort: a failure to record an event never fails a reconcile.
 */
export class EventRecorder {
  constructor(
    private readonly rest: KubeRest,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {}

  normal(model: OnnxModel, reason: string, message: string): void {
    this.record(model, 'Normal', reason, message);
  }

  warning(model: OnnxModel, reason: string, message: string): void {
    this.record(model, 'Warning', reason, message);
  }

  private record(model: OnnxModel, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date().toISOString();
    const ns = model.metadata.namespace!;
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${model.metadata.name}.`, namespace: ns },
      involvedObject: {
        apiVersion: API_VERSION,
        kind: KIND,
        name: model.metadata.name,
        namespace: ns,
        uid: model.metadata.uid,
        resourceVersion: model.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: 'onnx-operator' },
      reportingComponent: 'onnx-operator',
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    this.rest.post(paths.events(ns), event).catch((err: unknown) => {
      this.logger.debug({ err: (err as Error).message, reason }, 'could not record event');
    });
  }
}
