/**
 * The OnnxModel custom resource as TypeScript, the contract between the CRD
 * schema (crds/onnxmodel.yaml), the operator that reconciles it and the
 * inference server whose environment it becomes. The preprocessing options are
 * the server's own type, so a field added there is a field the CRD must carry.
 */
import type { V1Affinity, V1Condition, V1EnvVar, V1ObjectMeta, V1Toleration } from '@kubernetes/client-node';
import type { PreprocessingOptions } from './preprocessing.js';

export const GROUP = 'serving.onnxoperator.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'OnnxModel';
export const PLURAL = 'onnxmodels';

/** Preprocessing as the user writes it in the manifest: every field optional, server defaults apply. */
export type PreprocessingSpec = Partial<PreprocessingOptions> & {
  /** For models whose spatial size is symbolic: `224` or `WIDTHxHEIGHT`. */
  inputSize?: string;
  outputName?: string;
};

export interface ResourceList {
  cpu?: string;
  memory?: string;
}

export interface ServiceSpec {
  /** Default LoadBalancer. */
  type?: 'LoadBalancer' | 'ClusterIP' | 'NodePort';
  /** Default 80. */
  port?: number;
  annotations?: Record<string, string>;
}

export interface AutoscalingSpec {
  minReplicas?: number;
  maxReplicas: number;
  /** Average CPU utilisation (% of requests) the HPA aims for; default 70. */
  targetCPUUtilizationPercentage?: number;
}

/** Dynamic batching in the server (models with a dynamic batch dimension only). */
export interface BatchingSpec {
  /** Largest batch per session.run; 1 turns batching off. Server default 8. */
  maxBatchSize?: number;
  /** How long a lone image may wait for batch-mates on an idle server. Server default 0. */
  maxQueueDelayMs?: number;
}

/**
 * Admission control in the inference server. Unset, every request queues (FIFO) and is answered
 * up to the memory bound; these fields opt into refusing earlier.
 */
export interface AdmissionSpec {
  /**
   * Opt-in cap on images queued or running in each pod, 1-10000 (a v2 request of N images counts N); past it,
   * 503 + Retry-After.
   */
  maxInFlight?: number;
  /**
   * SLO mode: a queue budget in milliseconds (0-600000). Each pod holds only as many images as
   * can start their inference within it at the measured speed and refuses the rest at once.
   * Unset or 0: off, requests queue.
   */
  maxQueueMs?: number;
}

export interface OnnxModelSpec {
  modelUri: string;
  labelsUri?: string;
  /** Default 1; 0 scales the model down without deleting it. Ignored while autoscaling is set. */
  replicas?: number;
  resources?: { requests?: ResourceList; limits?: ResourceList };
  /** Defaults to the operator's configured server image (the same release). */
  image?: string;
  preprocessing?: PreprocessingSpec;
  batching?: BatchingSpec;
  /**
   * onnxruntime sessions per pod, side by side (1-16), each with an equal share of the
   * CPU limit as intra-op threads and its own copy of the weights. Server default applies when unset.
   */
  sessions?: number;
  admission?: AdmissionSpec;
  service?: ServiceSpec;
  autoscaling?: AutoscalingSpec;
  /** minAvailable for a PodDisruptionBudget; none when unset. */
  podDisruptionBudget?: { minAvailable: number | string };
  serviceAccountName?: string;
  env?: V1EnvVar[];
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
}

export interface OnnxModelStatus {
  observedGeneration?: number;
  replicas?: number;
  readyReplicas?: number;
  /** The label selector of the pods, for the scale subresource (HPA, kubectl scale). */
  selector?: string;
  /** LoadBalancer ingress IP or hostname (or the cluster IP for ClusterIP services). */
  address?: string;
  url?: string;
  conditions?: V1Condition[];
}

export interface OnnxModel {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: OnnxModelSpec;
  status?: OnnxModelStatus;
}

/** Defaults the operator applies (the CRD schema carries the same ones, so `kubectl get -o yaml` shows them). */
export const SPEC_DEFAULTS = {
  replicas: 1,
  resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
  service: { type: 'LoadBalancer', port: 80 },
  targetCPUUtilizationPercentage: 70,
} as const;
