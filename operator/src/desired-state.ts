import { createHash } from 'node:crypto';
import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1Probe,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { SPEC_DEFAULTS, type OnnxModel } from '../../crds/onnxmodel-types.js';
import { TERMINATION_LOG } from '../../crds/exit-status.js';
import { preprocessingToEnv } from '../../crds/preprocessing.js';
import { SERVER_ENV } from '../../crds/server-env.js';
import { CONFIG_HASH_ANNOTATION, childLabels, ownerReference, selectorLabels } from './ownership.js';

/** What the operator is configured with, independent of any one model. */
export interface OperatorDefaults {
  /** The inference server image of this release. */
  serverImage: string;
}

export interface DesiredObjects {
  deployment: V1Deployment;
  service: V1Service;
  /** Present when spec.autoscaling is set; otherwise an existing one is deleted. */
  hpa?: V2HorizontalPodAutoscaler;
  /** Present when spec.podDisruptionBudget is set. */
  pdb?: V1PodDisruptionBudget;
}

const SERVER_PORT = 8080;
const CACHE_DIR = '/var/cache/onnx-model';
/** Readiness off → endpoints updated → listener closed: the server waits this long after SIGTERM. */
const DRAIN_DELAY_SECONDS = 5;
const SHUTDOWN_GRACE_SECONDS = 20;

/** 5 s answers: on a node saturated by inference, a 2 s probe times out and pulls a healthy pod from the Service. */
function probe(path: string, periodSeconds: number, failureThreshold: number): V1Probe {
  return { httpGet: { path, port: 'http' }, periodSeconds, failureThreshold, timeoutSeconds: 5 };
}

/** A spec value written as the contract writes it, or nothing when the spec leaves it out. */
const optional = <T>(value: T | undefined, write: (v: T) => string): string | undefined =>
  value === undefined ? undefined : write(value);

/**
 * The server's environment (crds/server-env.ts): what the spec says, then the user's own env (which wins on a name
 * clash).
 */
export function serverEnv(model: OnnxModel): V1EnvVar[] {
  const { spec } = model;
  const { inputSize, outputName, ...preprocessing } = spec.preprocessing ?? {};
  const e = SERVER_ENV;
  const ours: Record<string, string | undefined> = {
    [e.modelUri.name]: spec.modelUri,
    [e.labelsUri.name]: spec.labelsUri,
    [e.modelName.name]: model.metadata.name,
    [e.cacheDir.name]: CACHE_DIR,
    [e.port.name]: e.port.write(SERVER_PORT),
    [e.drainDelayMs.name]: e.drainDelayMs.write(DRAIN_DELAY_SECONDS * 1000),
    [e.shutdownGraceMs.name]: e.shutdownGraceMs.write(SHUTDOWN_GRACE_SECONDS * 1000),
    [e.inputSize.name]: inputSize,
    [e.outputName.name]: outputName,
    [e.maxBatchSize.name]: optional(spec.batching?.maxBatchSize, e.maxBatchSize.write),
    [e.maxQueueDelayMs.name]: optional(spec.batching?.maxQueueDelayMs, e.maxQueueDelayMs.write),
    [e.sessions.name]: optional(spec.sessions, e.sessions.write),
    // Tested against undefined, not falsiness: maxQueueMs 0 (budget off) is a value to pass on.
    [e.maxInFlight.name]: optional(spec.admission?.maxInFlight, e.maxInFlight.write),
    [e.maxQueueMs.name]: optional(spec.admission?.maxQueueMs, e.maxQueueMs.write),
    ...preprocessingToEnv(preprocessing),
  };
  const user = spec.env ?? [];
  const overridden = new Set(user.map((e) => e.name));
  const env: V1EnvVar[] = Object.entries(ours)
    .filter((e): e is [string, string] => e[1] !== undefined && !overridden.has(e[0]))
    .map(([name, value]) => ({ name, value }));
  return [...env, ...user];
}

/** A stable digest of the server's configuration, stamped on the pod template. */
export function configHash(container: V1Container): string {
  const material = JSON.stringify({ image: container.image, env: container.env, resources: container.resources });
  return createHash('sha256').update(material).digest('hex').slice(0, 16);
}

function serverContainer(model: OnnxModel, defaults: OperatorDefaults): V1Container {
  const { spec } = model;
  const requests = { ...SPEC_DEFAULTS.resources.requests, ...spec.resources?.requests };
  const limits = { ...SPEC_DEFAULTS.resources.limits, ...spec.resources?.limits };
  return {
    name: 'server',
    image: spec.image ?? defaults.serverImage,
    ports: [{ name: 'http', containerPort: SERVER_PORT, protocol: 'TCP' }],
    env: serverEnv(model),
    resources: { requests, limits },
    // Liveness answers during a long model download; readiness only after the warm-up inference.
    startupProbe: probe('/v2/health/live', 2, 30),
    livenessProbe: probe('/v2/health/live', 10, 3),
    // Every second: a warmed-up pod joins the Service within a second of being able to answer (a 5 s
    // period added 2.5 s to every cold start on average); 3 misses take it out.
    readinessProbe: probe('/v2/health/ready', 1, 3),
    // The server leaves why it stopped here (a model that failed to load); the operator shows it on the OnnxModel.
    terminationMessagePath: TERMINATION_LOG,
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: 'model-cache', mountPath: CACHE_DIR },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

function metadata(model: OnnxModel, annotations?: Record<string, string>) {
  return {
    name: model.metadata.name!,
    namespace: model.metadata.namespace!,
    labels: childLabels(model),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
    ownerReferences: [ownerReference(model)],
  };
}

/**
 * The one pure function from an OnnxModel to the objects that run it. The
 * reconciler applies its output as-is (server-side apply), so what it returns is
 * exactly the set of fields the operator owns.
 */
export function desiredObjects(model: OnnxModel, defaults: OperatorDefaults): DesiredObjects {
  const { spec } = model;
  const container = serverContainer(model, defaults);
  const selector = selectorLabels(model);
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(model),
    spec: {
      // With an HPA the replica count is the autoscaler's: leaving it out lets it own the field.
      ...(spec.autoscaling ? {} : { replicas: spec.replicas ?? SPEC_DEFAULTS.replicas }),
      selector: { matchLabels: selector },
      // Never below the desired capacity during a rollout: a new pod must be ready before an old one goes.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: childLabels(model), annotations: { [CONFIG_HASH_ANNOTATION]: configHash(container) } },
        spec: {
          containers: [container],
          // The server never talks to the Kubernetes API; Workload Identity uses the metadata server.
          automountServiceAccountToken: false,
          ...(spec.serviceAccountName ? { serviceAccountName: spec.serviceAccountName } : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            fsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationGracePeriodSeconds: DRAIN_DELAY_SECONDS + SHUTDOWN_GRACE_SECONDS + 5,
          volumes: [
            { name: 'model-cache', emptyDir: {} },
            { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
          ],
          ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
          ...(spec.tolerations ? { tolerations: spec.tolerations } : {}),
          ...(spec.affinity ? { affinity: spec.affinity } : {}),
        },
      },
    },
  };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(model, spec.service?.annotations),
    spec: {
      type: spec.service?.type ?? SPEC_DEFAULTS.service.type,
      selector,
      ports: [
        { name: 'http', port: spec.service?.port ?? SPEC_DEFAULTS.service.port, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  };
  const objects: DesiredObjects = { deployment, service };
  if (spec.autoscaling) {
    objects.hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: metadata(model),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: model.metadata.name! },
        minReplicas: spec.autoscaling.minReplicas ?? 1,
        maxReplicas: spec.autoscaling.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: {
              name: 'cpu',
              target: {
                type: 'Utilization',
                averageUtilization:
                  spec.autoscaling.targetCPUUtilizationPercentage ?? SPEC_DEFAULTS.targetCPUUtilizationPercentage,
              },
            },
          },
        ],
      },
    };
  }
  if (spec.podDisruptionBudget) {
    objects.pdb = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: metadata(model),
      spec: { minAvailable: spec.podDisruptionBudget.minAvailable, selector: { matchLabels: selector } },
    };
  }
  return objects;
}
