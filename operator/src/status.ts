import type { V1Condition, V1ContainerStatus, V1Deployment, V1Pod, V1Service } from '@kubernetes/client-node';
import { SPEC_DEFAULTS, type OnnxModel, type OnnxModelStatus } from '../../crds/onnxmodel-types.js';
import { EXIT_CODE } from '../../crds/exit-status.js';
import { selectorString } from './ownership.js';

export type ConditionType = 'Ready' | 'Available' | 'Progressing' | 'Degraded';
type Cond = Pick<V1Condition, 'type' | 'status' | 'reason' | 'message'>;

/** What the reconciler observed this round, beyond the children themselves. */
export interface Observation {
  deployment?: V1Deployment;
  service?: V1Service;
  /** The model's pods (any ReplicaSet): they say why replicas are not ready. */
  pods?: V1Pod[];
  /** Set when applying the children failed this round. */
  reconcileError?: string;
  now: Date;
}

function deploymentCondition(d: V1Deployment | undefined, type: string) {
  return d?.status?.conditions?.find((c) => c.type === type);
}

/** The external address: LoadBalancer ingress IP or hostname; the cluster IP for other types. */
export function serviceAddress(service: V1Service | undefined): string | undefined {
  if (!service) return undefined;
  if (service.spec?.type === 'LoadBalancer') {
    const ingress = service.status?.loadBalancer?.ingress?.[0];
    return ingress?.ip ?? ingress?.hostname ?? undefined;
  }
  const ip = service.spec?.clusterIP;
  return ip && ip !== 'None' ? ip : undefined;
}

/** Desired replicas: the HPA's current choice when autoscaling (read back from the Deployment). */
function desiredReplicas(model: OnnxModel, deployment: V1Deployment | undefined): number {
  if (model.spec.autoscaling) return deployment?.spec?.replicas ?? model.spec.autoscaling.minReplicas ?? 1;
  return model.spec.replicas ?? SPEC_DEFAULTS.replicas;
}

/** Waiting reasons that mean the image cannot be had, not that it is on its way. */
const IMAGE_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName']);
const CREATE_FAILURES = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/**
 * The last line of a termination message; with FallbackToLogsOnError it may be a JSON log line, whose msg is the
 * words.
 */
function lastWords(message: string | undefined): string {
  const line = message?.trim().split('\n').pop()?.trim() ?? '';
  if (!line.startsWith('{')) return line;
  try {
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    return typeof msg === 'string' ? msg : line;
  } catch {
    return line;
  }
}

/** Why a not-ready pod is not serving, when it is something the user must fix (or wait out), as a Ready condition. */
function podTrouble(pod: V1Pod): Cond | undefined {
  const name = pod.metadata?.name ?? '?';
  if (pod.metadata?.deletionTimestamp) return undefined;
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'Unschedulable',
      message: `pod ${name}: ${scheduled.message ?? 'no node can run it'}`,
    };
  }
  const server: V1ContainerStatus | undefined =
    pod.status?.containerStatuses?.find((c) => c.name === 'server') ?? pod.status?.containerStatuses?.[0];
  if (!server || server.ready) return undefined;
  const waiting = server.state?.waiting;
  if (waiting?.reason && IMAGE_FAILURES.has(waiting.reason)) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'ImagePullFailed',
      message: `pod ${name}: ${waiting.reason}: ${waiting.message ?? server.image}`,
    };
  }
  if (waiting?.reason && CREATE_FAILURES.has(waiting.reason)) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'PodFailing',
      message: `pod ${name}: ${waiting.reason}: ${waiting.message ?? ''}`.trimEnd(),
    };
  }
  // The last run ended badly: the server said why in its termination message. Only while it is down:
  // a container running again (loading, warming up) is not reported by its previous crash.
  const down = server.state?.terminated !== undefined || server.state?.waiting !== undefined;
  const last = down ? (server.state?.terminated ?? server.lastState?.terminated) : undefined;
  if (!last || last.exitCode === EXIT_CODE.stopped) return undefined;
  const said = lastWords(last.message);
  const restarts = server.restartCount > 0 ? ` (restarted ${server.restartCount} times)` : '';
  if (last.exitCode === EXIT_CODE.modelLoadFailed) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'ModelLoadFailed',
      message: `pod ${name}: ${said || 'the model failed to load'}${restarts}`,
    };
  }
  if (last.exitCode === EXIT_CODE.invalidConfig) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'InvalidServerConfig',
      message: `pod ${name}: ${said || 'the server refused its environment'}${restarts}`,
    };
  }
  const why =
    last.reason === 'OOMKilled'
      ? 'killed for exceeding its memory limit (raise resources.limits.memory)'
      : said || `exited with code ${last.exitCode}`;
  return { type: 'Ready', status: 'False', reason: 'ServerCrashing', message: `pod ${name}: ${why}${restarts}` };
}

function firstTrouble(pods: V1Pod[] | undefined): Cond | undefined {
  for (const pod of [...(pods ?? [])].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))) {
    const trouble = podTrouble(pod);
    if (trouble) return trouble;
  }
  return undefined;
}

/** The four conditions, from the Deployment's progress, the Service's address and this round's errors. */
export function computeConditions(model: OnnxModel, obs: Observation): Cond[] {
  const { deployment: d, service } = obs;
  const desired = desiredReplicas(model, d);
  const ready = d?.status?.readyReplicas ?? 0;
  const updated = d?.status?.updatedReplicas ?? 0;
  const rolledOut =
    d !== undefined &&
    (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
    updated >= desired &&
    (d.status?.replicas ?? 0) <= desired;
  const address = serviceAddress(service);
  const needsAddress = service?.spec?.type === 'LoadBalancer';
  const available = deploymentCondition(d, 'Available');
  const progressing = deploymentCondition(d, 'Progressing');
  const stalled = progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded';

  const conditions: Cond[] = [];
  let readyCond: Cond;
  let trouble: Cond | undefined;
  if (obs.reconcileError)
    readyCond = { type: 'Ready', status: 'False', reason: 'ReconcileError', message: obs.reconcileError };
  else if (!d)
    readyCond = {
      type: 'Ready',
      status: 'False',
      reason: 'DeploymentMissing',
      message: 'the Deployment has not been created yet',
    };
  else if (desired === 0)
    readyCond = {
      type: 'Ready',
      status: 'False',
      reason: 'ScaledToZero',
      message: 'replicas is 0; the model is not served',
    };
  else if (ready < desired && (trouble = firstTrouble(obs.pods))) readyCond = trouble;
  else if (!rolledOut)
    readyCond = {
      type: 'Ready',
      status: 'False',
      reason: 'RolloutInProgress',
      message: `${updated} of ${desired} replicas updated, ${ready} ready`,
    };
  else if (ready < desired)
    readyCond = {
      type: 'Ready',
      status: 'False',
      reason: 'ReplicasNotReady',
      message: `${ready} of ${desired} replicas ready (model loading, or see the pods' events)`,
    };
  else if (needsAddress && !address)
    readyCond = {
      type: 'Ready',
      status: 'False',
      reason: 'AwaitingLoadBalancer',
      message: `${ready} replicas ready; waiting for the load balancer's address`,
    };
  else
    readyCond = {
      type: 'Ready',
      status: 'True',
      reason: 'Serving',
      message: `${ready} of ${desired} replicas ready${address ? ` at ${address}` : ''}`,
    };
  conditions.push(readyCond);

  conditions.push(
    available
      ? {
          type: 'Available',
          status: available.status,
          reason: available.reason ?? 'Deployment',
          message: available.message ?? '',
        }
      : { type: 'Available', status: 'False', reason: 'DeploymentMissing', message: 'no Deployment status yet' },
  );

  const rolling = d !== undefined && !rolledOut && !stalled;
  conditions.push(
    rolling
      ? {
          type: 'Progressing',
          status: 'True',
          reason: 'RollingOut',
          message: `${updated} of ${desired} replicas updated`,
        }
      : {
          type: 'Progressing',
          status: 'False',
          reason: stalled ? 'ProgressDeadlineExceeded' : 'Complete',
          message: stalled ? (progressing?.message ?? 'rollout stalled') : 'the rollout is complete',
        },
  );

  if (obs.reconcileError)
    conditions.push({ type: 'Degraded', status: 'True', reason: 'ReconcileError', message: obs.reconcileError });
  else if (stalled)
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'ProgressDeadlineExceeded',
      message: progressing?.message ?? 'the rollout stalled: pods do not become ready',
    });
  else conditions.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' });
  return conditions;
}

/** Keeps lastTransitionTime when a condition's status did not change (so `kubectl describe` ages are true). */
export function mergeConditions(
  previous: readonly V1Condition[] | undefined,
  next: Cond[],
  generation: number,
  now: Date,
): V1Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now;
    return { ...c, observedGeneration: generation, lastTransitionTime };
  });
}

export function computeStatus(model: OnnxModel, obs: Observation): OnnxModelStatus {
  const { deployment: d, service } = obs;
  const generation = model.metadata.generation ?? 0;
  const address = serviceAddress(service);
  const port = service?.spec?.ports?.[0]?.port ?? SPEC_DEFAULTS.service.port;
  const status: OnnxModelStatus = {
    observedGeneration: generation,
    replicas: d?.status?.replicas ?? 0,
    readyReplicas: d?.status?.readyReplicas ?? 0,
    selector: selectorString(model),
    conditions: mergeConditions(model.status?.conditions, computeConditions(model, obs), generation, obs.now),
  };
  if (address) {
    status.address = address;
    status.url = `http://${address}${port === 80 ? '' : `:${port}`}/predict/image`;
  }
  return status;
}

/** True when two statuses say the same thing (ignoring transition timestamps), so no write is needed. */
export function sameStatus(a: OnnxModelStatus | undefined, b: OnnxModelStatus): boolean {
  const strip = (s: OnnxModelStatus | undefined) =>
    canonical({ ...s, conditions: s?.conditions?.map(({ lastTransitionTime: _t, ...rest }) => rest) });
  return strip(a) === strip(b);
}

/** JSON with sorted keys and no undefined members: the API server returns fields in its own order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([x], [y]) => (x < y ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
