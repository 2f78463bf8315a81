import { expect } from 'chai';
import type { V1ContainerStatus, V1Deployment, V1Pod, V1Service } from '@kubernetes/client-node';
import { EXIT_CODE } from '../../../crds/exit-status.js';
import type { OnnxModel } from '../../../crds/onnxmodel-types.js';
import { computeStatus, sameStatus } from '../../src/status.js';

const model = (replicas = 2, status?: OnnxModel['status']): OnnxModel => ({
  apiVersion: 'serving.onnxoperator.dev/v1alpha1',
  kind: 'OnnxModel',
  metadata: { name: 'm', namespace: 'ns', generation: 4 },
  spec: { modelUri: 'gs://b/m.onnx', replicas },
  status,
});
const deployment = (s: Partial<NonNullable<V1Deployment['status']>>, generation = 2): V1Deployment => ({
  metadata: { generation },
  spec: { replicas: 2, selector: {}, template: {} },
  status: { observedGeneration: generation, ...s },
});
const lb = (ip?: string): V1Service => ({
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  status: { loadBalancer: { ingress: ip ? [{ ip }] : [] } },
});
const now = new Date('2026-11-29T10:00:00Z');
const cond = (st: ReturnType<typeof computeStatus>, type: string) => st.conditions!.find((c) => c.type === type)!;

describe('OnnxModel status', () => {
  it('is Ready with its address once every replica is ready and the load balancer has an IP', () => {
    const st = computeStatus(model(), {
      deployment: deployment({
        replicas: 2,
        readyReplicas: 2,
        updatedReplicas: 2,
        availableReplicas: 2,
        conditions: [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }],
      }),
      service: lb('203.0.113.7'),
      now,
    });
    expect(st).to.deep.include({
      observedGeneration: 4,
      replicas: 2,
      readyReplicas: 2,
      address: '203.0.113.7',
      url: 'http://203.0.113.7/predict/image',
      selector: 'serving.onnxoperator.dev/model=m',
    });
    expect(cond(st, 'Ready')).to.deep.include({ status: 'True', reason: 'Serving', observedGeneration: 4 });
    expect(cond(st, 'Available').status).to.equal('True');
    expect(cond(st, 'Progressing')).to.deep.include({ status: 'False', reason: 'Complete' });
    expect(cond(st, 'Degraded').status).to.equal('False');
  });

  it('waits for the load balancer', () => {
    const st = computeStatus(model(), {
      deployment: deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 }),
      service: lb(),
      now,
    });
    expect(cond(st, 'Ready')).to.deep.include({ status: 'False', reason: 'AwaitingLoadBalancer' });
    expect(st.address).to.equal(undefined);
  });

  it('reports a rollout in progress and a stalled one', () => {
    const rolling = computeStatus(model(), {
      deployment: deployment({ replicas: 3, readyReplicas: 2, updatedReplicas: 1 }),
      service: lb('1.2.3.4'),
      now,
    });
    expect(cond(rolling, 'Ready').reason).to.equal('RolloutInProgress');
    expect(cond(rolling, 'Progressing').status).to.equal('True');
    const stalled = computeStatus(model(), {
      deployment: deployment({
        replicas: 3,
        updatedReplicas: 1,
        conditions: [
          {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
            message: 'ReplicaSet "m-1" has timed out progressing.',
          },
        ],
      }),
      service: lb('1.2.3.4'),
      now,
    });
    expect(cond(stalled, 'Degraded')).to.deep.include({ status: 'True', reason: 'ProgressDeadlineExceeded' });
  });

  it('says why it is not ready: scaled to zero, replicas loading, reconcile errors', () => {
    expect(cond(computeStatus(model(0), { deployment: deployment({}), service: lb(), now }), 'Ready').reason).to.equal(
      'ScaledToZero',
    );
    expect(
      cond(
        computeStatus(model(), {
          deployment: deployment({ replicas: 2, updatedReplicas: 2, readyReplicas: 1 }),
          service: lb('1.1.1.1'),
          now,
        }),
        'Ready',
      ).reason,
    ).to.equal('ReplicasNotReady');
    const failed = computeStatus(model(), { reconcileError: 'admission webhook denied', now });
    expect(cond(failed, 'Ready')).to.deep.include({ reason: 'ReconcileError', message: 'admission webhook denied' });
    expect(cond(failed, 'Degraded').status).to.equal('True');
  });

  it('keeps lastTransitionTime unless the status flips, and detects no-op writes', () => {
    const d = deployment({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 });
    const first = computeStatus(model(), { deployment: d, service: lb('1.1.1.1'), now });
    const later = new Date('2026-11-29T11:00:00Z');
    const again = computeStatus(model(2, first), { deployment: d, service: lb('1.1.1.1'), now: later });
    expect(cond(again, 'Ready').lastTransitionTime).to.equal(now);
    expect(sameStatus(first, again)).to.equal(true);
    const flipped = computeStatus(model(2, first), { deployment: d, service: lb(), now: later });
    expect(cond(flipped, 'Ready').lastTransitionTime).to.equal(later);
    expect(sameStatus(first, flipped)).to.equal(false);
  });

  describe('says what the pods say when replicas are not ready', () => {
    const loading = deployment({ replicas: 1, updatedReplicas: 1, readyReplicas: 0 });
    const pod = (name: string, server: Partial<V1ContainerStatus>, status: V1Pod['status'] = {}): V1Pod => ({
      metadata: { name },
      status: {
        ...status,
        containerStatuses: [{ name: 'server', image: 'srv:1', imageID: '', ready: false, restartCount: 0, ...server }],
      },
    });
    const ready = (pods: V1Pod[], d = loading) =>
      cond(computeStatus(model(1), { deployment: d, service: lb('1.1.1.1'), pods, now }), 'Ready');

    it('a model that failed to load: the termination message, and the restarts', () => {
      const crashing = pod('m-1', {
        restartCount: 3,
        state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } },
        lastState: {
          terminated: {
            exitCode: EXIT_CODE.modelLoadFailed,
            reason: 'Error',
            message: 'model failed to load: gs://b/m.onnx: object not found (404)',
          },
        },
      });
      expect(ready([crashing])).to.deep.include({
        status: 'False',
        reason: 'ModelLoadFailed',
        message: 'pod m-1: model failed to load: gs://b/m.onnx: object not found (404) (restarted 3 times)',
      });
    });

    it('a crash without a message falls back to the last log line, or the exit code; OOM kills say which limit', () => {
      const logLine = JSON.stringify({ level: 60, msg: 'Cannot find module x' });
      const backOff = { waiting: { reason: 'CrashLoopBackOff' } };
      expect(
        ready([
          pod('m-1', {
            state: backOff,
            lastState: { terminated: { exitCode: 1, message: `{"level":30}\n${logLine}\n` } },
          }),
        ]),
      ).to.deep.include({ reason: 'ServerCrashing', message: 'pod m-1: Cannot find module x' });
      expect(ready([pod('m-1', { state: { terminated: { exitCode: 139 } } })]).message).to.equal(
        'pod m-1: exited with code 139',
      );
      expect(
        ready([
          pod('m-1', {
            state: backOff,
            restartCount: 1,
            lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
          }),
        ]).message,
      ).to.match(/memory limit.*\(restarted 1 times\)$/);
      expect(
        ready([
          pod('m-1', {
            state: backOff,
            lastState: {
              terminated: {
                exitCode: EXIT_CODE.invalidConfig,
                message: 'invalid configuration: MAX_BATCH_SIZE must be',
              },
            },
          }),
        ]).reason,
      ).to.equal('InvalidServerConfig');
    });

    it('images that cannot be had, pods no node can take', () => {
      expect(
        ready([
          pod('m-1', { state: { waiting: { reason: 'ErrImageNeverPull', message: 'image "srv:1" is not present' } } }),
        ]),
      ).to.deep.include({
        reason: 'ImagePullFailed',
        message: 'pod m-1: ErrImageNeverPull: image "srv:1" is not present',
      });
      const pending: V1Pod = {
        metadata: { name: 'm-2' },
        status: {
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message: '0/1 nodes are available: 1 Insufficient cpu.',
            },
          ],
        },
      };
      expect(ready([pending])).to.deep.include({
        reason: 'Unschedulable',
        message: 'pod m-2: 0/1 nodes are available: 1 Insufficient cpu.',
      });
    });

    const notTroubleTitle =
      'a pod still starting, a cleanly stopped one or a terminating one is not trouble; ' +
      'the first troubled pod by name wins';
    it(notTroubleTitle, () => {
      expect(ready([pod('m-1', { state: { waiting: { reason: 'ContainerCreating' } } })]).reason).to.equal(
        'ReplicasNotReady',
      );
      expect(
        ready([
          pod('m-1', {
            state: { waiting: { reason: 'CrashLoopBackOff' } },
            lastState: { terminated: { exitCode: EXIT_CODE.stopped } },
          }),
        ]).reason,
      ).to.equal('ReplicasNotReady');
      // Restarted after a failed load and loading again: its last crash is history, not the present.
      const reloading = pod('m-1', {
        restartCount: 2,
        state: { running: { startedAt: now } },
        lastState: { terminated: { exitCode: EXIT_CODE.modelLoadFailed } },
      });
      expect(ready([reloading]).reason).to.equal('ReplicasNotReady');
      const terminating = pod('m-0', { state: { terminated: { exitCode: 1 } } });
      terminating.metadata!.deletionTimestamp = now;
      const b = pod('m-b', { state: { terminated: { exitCode: 1 } } });
      const a = pod('m-a', { state: { terminated: { exitCode: EXIT_CODE.modelLoadFailed } } });
      expect(ready([terminating, b, a]).message).to.match(/^pod m-a:/);
    });

    it('all replicas ready: pods are not consulted', () => {
      const d = deployment({ replicas: 1, updatedReplicas: 1, readyReplicas: 1 });
      expect(ready([pod('old', { state: { terminated: { exitCode: 1 } } })], d).reason).to.equal('Serving');
    });
  });
});
