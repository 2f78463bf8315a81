/**
 * The field names of the OnnxModel types as runtime values, so a test can
 * compare them with the properties of the CRD schema (crds/onnxmodel.yaml).
 *
 * Each list is built from an object literal typed `{ [K in keyof T]-?: true }`:
 * a field added to the TypeScript type but not here fails to compile (missing
 * property), and a name here that the type lacks fails too (excess property).
 * The CRD test then catches the schema drifting from either.
 */
import type {
  AdmissionSpec,
  AutoscalingSpec,
  BatchingSpec,
  OnnxModelSpec,
  OnnxModelStatus,
  PreprocessingSpec,
  ResourceList,
  ServiceSpec,
} from './onnxmodel-types.js';

/** Every key of T, each exactly once: the compiler rejects a missing or an unknown key. */
type AllKeys<T> = { readonly [K in keyof T]-?: true };

type Resources = NonNullable<OnnxModelSpec['resources']>;
type PodDisruptionBudget = NonNullable<OnnxModelSpec['podDisruptionBudget']>;

function keysOf<T>(all: AllKeys<T>): readonly (keyof T)[] {
  return Object.freeze(Object.keys(all) as (keyof T)[]);
}

export const SPEC_FIELDS: readonly (keyof OnnxModelSpec)[] = keysOf<OnnxModelSpec>({
  modelUri: true,
  labelsUri: true,
  replicas: true,
  resources: true,
  image: true,
  preprocessing: true,
  batching: true,
  sessions: true,
  admission: true,
  service: true,
  autoscaling: true,
  podDisruptionBudget: true,
  serviceAccountName: true,
  env: true,
  nodeSelector: true,
  tolerations: true,
  affinity: true,
});

export const PREPROCESSING_FIELDS: readonly (keyof PreprocessingSpec)[] = keysOf<PreprocessingSpec>({
  resizeMode: true,
  channelOrder: true,
  layout: true,
  normalization: true,
  scale: true,
  mean: true,
  std: true,
  padColor: true,
  softmax: true,
  inputSize: true,
  outputName: true,
});

export const RESOURCES_FIELDS: readonly (keyof Resources)[] = keysOf<Resources>({
  requests: true,
  limits: true,
});

export const RESOURCE_LIST_FIELDS: readonly (keyof ResourceList)[] = keysOf<ResourceList>({
  cpu: true,
  memory: true,
});

export const SERVICE_FIELDS: readonly (keyof ServiceSpec)[] = keysOf<ServiceSpec>({
  type: true,
  port: true,
  annotations: true,
});

export const AUTOSCALING_FIELDS: readonly (keyof AutoscalingSpec)[] = keysOf<AutoscalingSpec>({
  minReplicas: true,
  maxReplicas: true,
  targetCPUUtilizationPercentage: true,
});

export const BATCHING_FIELDS: readonly (keyof BatchingSpec)[] = keysOf<BatchingSpec>({
  maxBatchSize: true,
  maxQueueDelayMs: true,
});

export const ADMISSION_FIELDS: readonly (keyof AdmissionSpec)[] = keysOf<AdmissionSpec>({
  maxInFlight: true,
  maxQueueMs: true,
});

export const POD_DISRUPTION_BUDGET_FIELDS: readonly (keyof PodDisruptionBudget)[] = keysOf<PodDisruptionBudget>({
  minAvailable: true,
});

export const STATUS_FIELDS: readonly (keyof OnnxModelStatus)[] = keysOf<OnnxModelStatus>({
  observedGeneration: true,
  replicas: true,
  readyReplicas: true,
  selector: true,
  address: true,
  url: true,
  conditions: true,
});

/** Property paths of the CRD's spec schema (relative to `spec`) and the TypeScript keys they must match. */
export const SCHEMA_FIELD_LISTS: ReadonlyArray<{ path: string; fields: readonly string[] }> = [
  { path: '', fields: SPEC_FIELDS },
  { path: 'preprocessing', fields: PREPROCESSING_FIELDS },
  { path: 'resources', fields: RESOURCES_FIELDS },
  { path: 'resources.requests', fields: RESOURCE_LIST_FIELDS },
  { path: 'resources.limits', fields: RESOURCE_LIST_FIELDS },
  { path: 'service', fields: SERVICE_FIELDS },
  { path: 'autoscaling', fields: AUTOSCALING_FIELDS },
  { path: 'podDisruptionBudget', fields: POD_DISRUPTION_BUDGET_FIELDS },
  { path: 'batching', fields: BATCHING_FIELDS },
  { path: 'admission', fields: ADMISSION_FIELDS },
];
