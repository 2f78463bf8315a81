import { expect } from 'chai';
import type { V1Container } from '@kubernetes/client-node';
import type { OnnxModel } from '../../../crds/onnxmodel-types.js';
import { preprocessingFromEnv } from '../../../crds/preprocessing.js';
import { loadConfig } from '../../../inference-server/src/config/server-config.js';
import { desiredObjects, serverEnv } from '../../src/desired-state.js';

const model = (spec: Partial<OnnxModel['spec']> = {}): OnnxModel => ({
  apiVersion: 'serving.onnxoperator.dev/v1alpha1',
  kind: 'OnnxModel',
  metadata: { name: 'resnet', namespace: 'ml', uid: 'uid-1', generation: 3 },
  spec: { modelUri: 'gs://b/resnet50/model.onnx', ...spec },
});
const defaults = { serverImage: 'example/server:1' };
const container = (m: OnnxModel): V1Container =>
  desiredObjects(m, defaults).deployment.spec!.template.spec!.containers[0]!;
const env = (m: OnnxModel) => Object.fromEntries(serverEnv(m).map((e) => [e.name, e.value]));

describe('desired state of an OnnxModel', () => {
  it('owns every child through a controller reference', () => {
    const objs = desiredObjects(
      model({ autoscaling: { maxReplicas: 4 }, podDisruptionBudget: { minAvailable: 1 } }),
      defaults,
    );
    for (const o of [objs.deployment, objs.service, objs.hpa!, objs.pdb!]) {
      expect(o.metadata!.ownerReferences).to.deep.equal([
        {
          apiVersion: 'serving.onnxoperator.dev/v1alpha1',
          kind: 'OnnxModel',
          name: 'resnet',
          uid: 'uid-1',
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(o.metadata!.namespace).to.equal('ml');
    }
  });

  it('runs the server image with the spec as environment the server parses back', () => {
    const m = model({
      labelsUri: 'gs://b/labels.txt',
      preprocessing: { resizeMode: 'letterbox', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], inputSize: '320x240' },
    });
    const e = env(m);
    expect(e).to.include({
      MODEL_URI: 'gs://b/resnet50/model.onnx',
      LABELS_URI: 'gs://b/labels.txt',
      MODEL_NAME: 'resnet',
      RESIZE_MODE: 'letterbox',
      PIXEL_MEAN: '0.5,0.5,0.5',
      INPUT_SIZE: '320x240',
    });
    // The same shared type on both sides: the server reads back exactly what the operator wrote.
    const parsed = loadConfig(e, 2);
    expect(parsed.preprocessing).to.deep.equal(preprocessingFromEnv(e));
    expect(parsed.preprocessing).to.include({ resizeMode: 'letterbox', normalization: 'custom' });
    expect(parsed.inputSize).to.deep.equal({ width: 320, height: 240 });
    expect(container(m).image).to.equal('example/server:1');
    expect(container(model({ image: 'mine:2' })).image).to.equal('mine:2');
  });

  it('passes batching settings to the server', () => {
    const e = env(model({ batching: { maxBatchSize: 16, maxQueueDelayMs: 5 } }));
    expect(e).to.include({ MAX_BATCH_SIZE: '16', MAX_QUEUE_DELAY_MS: '5' });
    expect(loadConfig(e, 2)).to.include({ maxBatchSize: 16, maxQueueDelayMs: 5 });
    expect(env(model())).to.not.have.property('MAX_BATCH_SIZE');
  });

  it('passes the session count to the server, and none when unset', () => {
    expect(env(model({ sessions: 4 }))).to.include({ SESSIONS: '4' });
    expect(env(model())).to.not.have.property('SESSIONS');
    // Beside the batching variables, and spec.env still wins on a name clash.
    const names = serverEnv(model({ batching: { maxBatchSize: 8 }, sessions: 2 })).map((e) => e.name);
    expect(names.indexOf('SESSIONS')).to.equal(names.indexOf('MAX_BATCH_SIZE') + 1);
    const e = serverEnv(model({ sessions: 2, env: [{ name: 'SESSIONS', value: '3' }] }));
    expect(e.filter((v) => v.name === 'SESSIONS')).to.deep.equal([{ name: 'SESSIONS', value: '3' }]);
  });

  it('passes admission settings to the server, and none when unset', () => {
    const e = env(model({ admission: { maxInFlight: 64, maxQueueMs: 1000 } }));
    expect(e).to.include({ MAX_IN_FLIGHT: '64', MAX_QUEUE_MS: '1000' });
    expect(loadConfig(e, 2)).to.include({ maxInFlight: 64, maxQueueMs: 1000 });
    expect(env(model())).to.not.have.property('MAX_IN_FLIGHT');
    expect(env(model())).to.not.have.property('MAX_QUEUE_MS');
    expect(env(model({ admission: {} }))).to.not.have.any.keys('MAX_IN_FLIGHT', 'MAX_QUEUE_MS');
    // 0 turns the queue budget off: a value to pass on, not an absent one.
    const off = env(model({ admission: { maxQueueMs: 0 } }));
    expect(off).to.include({ MAX_QUEUE_MS: '0' });
    expect(off).to.not.have.property('MAX_IN_FLIGHT');
    expect(loadConfig(off, 2)).to.include({ maxQueueMs: 0 });
    // After SESSIONS, and spec.env still wins on a name clash.
    const names = serverEnv(model({ sessions: 2, admission: { maxInFlight: 8, maxQueueMs: 0 } })).map((v) => v.name);
    expect(names.slice(names.indexOf('SESSIONS'), names.indexOf('SESSIONS') + 3)).to.deep.equal([
      'SESSIONS',
      'MAX_IN_FLIGHT',
      'MAX_QUEUE_MS',
    ]);
    const user = serverEnv(
      model({
        admission: { maxInFlight: 8, maxQueueMs: 0 },
        env: [
          { name: 'MAX_QUEUE_MS', value: 'auto' },
          { name: 'MAX_IN_FLIGHT', value: '16' },
        ],
      }),
    );
    expect(user.filter((v) => v.name === 'MAX_QUEUE_MS')).to.deep.equal([{ name: 'MAX_QUEUE_MS', value: 'auto' }]);
    expect(user.filter((v) => v.name === 'MAX_IN_FLIGHT')).to.deep.equal([{ name: 'MAX_IN_FLIGHT', value: '16' }]);
  });

  it("lets the user's env override the operator's", () => {
    const e = serverEnv(
      model({
        env: [
          { name: 'MAX_IN_FLIGHT', value: '64' },
          { name: 'DRAIN_DELAY_MS', value: '0' },
        ],
      }),
    );
    expect(e.filter((v) => v.name === 'DRAIN_DELAY_MS')).to.deep.equal([{ name: 'DRAIN_DELAY_MS', value: '0' }]);
    expect(e.at(-2)).to.deep.equal({ name: 'MAX_IN_FLIGHT', value: '64' });
  });

  it('passes the Pod Security restricted profile', () => {
    const pod = desiredObjects(model(), defaults).deployment.spec!.template.spec!;
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.securityContext).to.deep.equal({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.volumes!.map((v) => v.name)).to.deep.equal(['model-cache', 'tmp']);
    expect(pod.automountServiceAccountToken).to.equal(false);
  });

  it('probes liveness and readiness on the server health endpoints and drains before the kill', () => {
    const c = container(model());
    expect(c.readinessProbe!.httpGet!.path).to.equal('/v2/health/ready');
    expect(c.livenessProbe!.httpGet!.path).to.equal('/v2/health/live');
    expect(c.startupProbe!.httpGet!.path).to.equal('/v2/health/live');
    const grace = desiredObjects(model(), defaults).deployment.spec!.template.spec!.terminationGracePeriodSeconds!;
    expect(grace * 1000).to.be.greaterThan(
      Number(env(model()).DRAIN_DELAY_MS) + Number(env(model()).SHUTDOWN_GRACE_MS),
    );
  });

  it('defaults resources and replicas, and leaves replicas to the HPA when autoscaling', () => {
    const d = desiredObjects(model(), defaults).deployment;
    expect(d.spec!.replicas).to.equal(1);
    expect(container(model()).resources).to.deep.equal({
      requests: { cpu: '1', memory: '1Gi' },
      limits: { cpu: '2', memory: '2Gi' },
    });
    expect(container(model({ resources: { limits: { cpu: '4' } } })).resources!.limits).to.deep.equal({
      cpu: '4',
      memory: '2Gi',
    });
    expect(desiredObjects(model({ replicas: 0 }), defaults).deployment.spec!.replicas).to.equal(0);
    const auto = desiredObjects(
      model({ replicas: 5, autoscaling: { minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 60 } }),
      defaults,
    );
    expect(auto.deployment.spec).to.not.have.property('replicas');
    expect(auto.hpa!.spec).to.deep.include({ minReplicas: 2, maxReplicas: 6 });
    expect(auto.hpa!.spec!.metrics![0]!.resource!.target.averageUtilization).to.equal(60);
  });

  it('exposes a LoadBalancer on port 80 by default, with the annotations asked for', () => {
    const s = desiredObjects(model(), defaults).service;
    expect(s.spec).to.deep.include({ type: 'LoadBalancer', selector: { 'serving.onnxoperator.dev/model': 'resnet' } });
    expect(s.spec!.ports).to.deep.equal([{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
    const internal = desiredObjects(
      model({
        service: { type: 'ClusterIP', port: 8080, annotations: { 'networking.gke.io/load-balancer-type': 'Internal' } },
      }),
      defaults,
    ).service;
    expect(internal.spec!.type).to.equal('ClusterIP');
    expect(internal.metadata!.annotations).to.deep.equal({ 'networking.gke.io/load-balancer-type': 'Internal' });
  });

  it('rolls pods when the configuration changes, and only then', () => {
    const hash = (m: OnnxModel) =>
      desiredObjects(m, defaults).deployment.spec!.template.metadata!.annotations![
        'serving.onnxoperator.dev/config-hash'
      ];
    expect(hash(model())).to.equal(hash(model()));
    expect(hash(model({ modelUri: 'gs://b/v2.onnx' }))).to.not.equal(hash(model()));
    expect(hash(model({ replicas: 3 }))).to.equal(hash(model()));
  });
});
