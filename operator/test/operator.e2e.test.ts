/**
 * The operator end to end: its real entry point (dist/operator/src/main.js) as a
 * process, against a real etcd + kube-apiserver + kube-controller-manager
 * (garbage collector, Deployment, ReplicaSet and HPA controllers run; there is
 * no scheduler, kubelet or cloud load balancer, so the tests play those parts:
 * helpers/kubelet.ts marks pods Ready and gives Services their address).
 *
 * Every test has its own namespace and its own operator(s) watching only that
 * namespace (WATCH_NAMESPACE; one test checks the all-namespaces default), so
 * tests cannot see each other's models. A failing test prints the tail of its
 * operators' logs; E2E_VERBOSE=1 also prints timings (takeover delays, …).
 *
 *   npm run build && npx mocha --no-config --exit --timeout 600000 dist/operator/test/operator.e2e.test.js
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type {
  KubernetesObject,
  V1Deployment,
  V1EnvVar,
  V1PodDisruptionBudget,
  V1ReplicaSet,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, type OnnxModel, type OnnxModelSpec } from '../../crds/onnxmodel-types.js';
import { startFakeGcs, type FakeGcs } from '../../inference-server/test/helpers/fake-gcs.js';
import { GREEN, RED, picture } from '../../inference-server/test/helpers/images.js';
import { testModels } from '../../inference-server/test/helpers/models.js';
import { spawnServer, type ServerProcess } from '../../inference-server/test/helpers/process.js';
import { eventually, repoRoot, sharedControlPlane, type ControlPlane } from './helpers/control-plane.js';
import { markPodsReady, setLoadBalancerIngress, startFakeKubelet } from './helpers/kubelet.js';
import {
  metricValue,
  startOperator,
  type LogLine,
  type OperatorEnv,
  type OperatorProcess,
} from './helpers/operator-process.js';
import { kubeconfigServer, startTcpProxy, writeKubeconfigCopy, type TcpProxy } from './helpers/tcp-proxy.js';

const ROOT = repoRoot();
const CRD_FILE = join(ROOT, 'crds', 'onnxmodel.yaml');
const SAMPLES_DIR = join(ROOT, 'config', 'samples');
const CRD_NAME = `${PLURAL}.${GROUP}`;
/** What the operator is told to run: the tests check it lands in every pod template. */
const SERVER_IMAGE = 'registry.example.test/onnx/inference-server:e2e';
const MODEL_LABEL = `${GROUP}/model`;
const CONFIG_HASH = `${GROUP}/config-hash`;
const LB_IP = '203.0.113.9';

let cp: ControlPlane;

// ------------------------------------------------------------------ kubectl and objects

/** Runs kubectl and returns stdout; throws with stderr on a non-zero exit. */
async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function getJson<T>(ns: string, kind: string, name: string, extra: string[] = []): Promise<T> {
  return JSON.parse(await kubectl(['get', kind, name, '-n', ns, '-o', 'json', ...extra])) as T;
}

async function list<T>(ns: string, kinds: string, selector?: string): Promise<T[]> {
  const out = await kubectl(['get', kinds, '-n', ns, '-o', 'json', ...(selector ? ['-l', selector] : [])]);
  return (JSON.parse(out) as { items: T[] }).items;
}

/** Whether the object exists (NotFound → false; any other failure throws). */
async function exists(ns: string, kind: string, name: string): Promise<boolean> {
  return (await kubectl(['get', kind, name, '-n', ns, '--ignore-not-found', '-o', 'name'])).trim() !== '';
}

const manifest = (name: string, spec: OnnxModelSpec) => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name },
  spec,
});

async function applyModel(ns: string, name: string, spec: OnnxModelSpec): Promise<void> {
  await kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(manifest(name, spec)));
}

async function patchModel(ns: string, name: string, patch: unknown, type: 'merge' | 'json' = 'merge'): Promise<void> {
  await kubectl(['patch', 'onnxmodel', name, '-n', ns, `--type=${type}`, '-p', JSON.stringify(patch)]);
}

const getModel = (ns: string, name: string) => getJson<OnnxModel>(ns, 'onnxmodel', name);
const getDeployment = (ns: string, name: string) => getJson<V1Deployment>(ns, 'deployment', name);
const getService = (ns: string, name: string) => getJson<V1Service>(ns, 'service', name);

const serverContainer = (d: V1Deployment) => {
  const c = d.spec!.template.spec!.containers.find((x) => x.name === 'server');
  if (!c) throw new Error(`deployment ${d.metadata!.name} has no server container`);
  return c;
};
const envOf = (env: V1EnvVar[] | undefined): Record<string, string | undefined> =>
  Object.fromEntries((env ?? []).map((e) => [e.name, e.value]));
const serverEnv = (d: V1Deployment) => envOf(serverContainer(d).env);
const condition = (m: OnnxModel, type: string) => m.status?.conditions?.find((c) => c.type === type);

/** The controller reference a child must carry: the OnnxModel, by uid. */
const ownerRefOf = (m: OnnxModel) => ({
  apiVersion: API_VERSION,
  kind: KIND,
  name: m.metadata.name,
  uid: m.metadata.uid,
  controller: true,
  blockOwnerDeletion: true,
});

function childLabels(name: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'onnx-inference-server',
    'app.kubernetes.io/instance': name,
    'app.kubernetes.io/component': 'inference',
    'app.kubernetes.io/managed-by': 'onnx-operator',
    [MODEL_LABEL]: name,
  };
}

/** A kubectl table as records, cut at the header's column starts (so empty cells stay empty). */
function parseTable(text: string): Record<string, string>[] {
  const [header = '', ...rows] = text.trimEnd().split('\n');
  const cols = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return rows.map((row) => Object.fromEntries(cols.map((c, i) => [c.name, row.slice(c.at, cols[i + 1]?.at).trim()])));
}

/** Fails if `fn` fails at any point during `ms` (the opposite of eventually: nothing changes back). */
async function consistently(fn: () => unknown, ms: number, intervalMs = 500): Promise<void> {
  const deadline = Date.now() + ms;
  do {
    await fn();
    await new Promise((r) => setTimeout(r, intervalMs));
  } while (Date.now() < deadline);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Timings and counts worth seeing when E2E_VERBOSE=1 (mocha prints nothing of passing tests). */
const note = (msg: string) => void (process.env.E2E_VERBOSE === '1' && process.stderr.write(`      · ${msg}\n`));
const isMsg = (msg: string) => (l: LogLine) => l.msg === msg;

// ------------------------------------------------------------------ per-test fixtures

const cleanups: (() => Promise<void>)[] = [];
const operatorsOfTest: OperatorProcess[] = [];

/** A fresh namespace, deleted (without waiting) after the test. */
async function namespace(prefix: string): Promise<string> {
  const ns = await cp.createNamespace(prefix);
  cleanups.push(async () => void (await cp.kubectl(['delete', 'namespace', ns, '--wait=false'])));
  return ns;
}

/** Starts an operator (stopped after the test) and waits for 'operator started'. */
async function operator(
  env: Partial<OperatorEnv> & { WATCH_NAMESPACE: string },
  name?: string,
): Promise<OperatorProcess> {
  const op = await startOperator(
    { KUBECONFIG: cp.kubeconfigPath, SERVER_IMAGE, LOG_LEVEL: 'debug', ...env },
    name === undefined ? {} : { name },
  );
  operatorsOfTest.push(op);
  cleanups.push(async () => void (await op.stop()));
  return op;
}

/** A namespace with one operator watching it, caches synced. */
async function setup(prefix: string, env: Partial<OperatorEnv> = {}): Promise<{ ns: string; op: OperatorProcess }> {
  const ns = await namespace(prefix);
  const op = await operator({ WATCH_NAMESPACE: ns, ...env });
  await op.waitFor(isMsg('caches synced; reconciling'), 30_000);
  return { ns, op };
}

/** A TCP proxy in front of the API server (closed after the test) and a kubeconfig that goes through it. */
async function proxiedKubeconfig(): Promise<{ proxy: TcpProxy; kubeconfig: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'onnx-operator-e2e-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const proxy = await startTcpProxy(kubeconfigServer(cp.kubeconfigPath));
  cleanups.push(() => proxy.close());
  return { proxy, kubeconfig: writeKubeconfigCopy(cp.kubeconfigPath, proxy.url, join(dir, 'kubeconfig')) };
}

/** Waits until the operator created the model's Deployment and Service. */
async function childrenOf(
  ns: string,
  name: string,
  timeoutMs = 30_000,
): Promise<{ deployment: V1Deployment; service: V1Service }> {
  return eventually(async () => ({ deployment: await getDeployment(ns, name), service: await getService(ns, name) }), {
    timeoutMs,
  });
}

// ------------------------------------------------------------------ the tests

describe('onnx-operator end to end (operator process + real control plane)', function () {
  this.timeout(120_000);

  before(async function () {
    this.timeout(900_000); // the first run compiles the control plane
    cp = await sharedControlPlane();
    await kubectl(['apply', '-f', CRD_FILE]);
    await kubectl(['wait', '--for=condition=Established', `crd/${CRD_NAME}`, '--timeout=60s']);
    // Discovery of the new kind can lag Established by a moment.
    await eventually(() => kubectl(['get', PLURAL, '-A']), { timeoutMs: 30_000 });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const op of operatorsOfTest) process.stderr.write(`\n${op.tail(40)}\n`);
    }
    operatorsOfTest.length = 0;
    for (const clean of cleanups.splice(0).reverse()) {
      await clean().catch((err: unknown) => process.stderr.write(`cleanup failed: ${(err as Error).message}\n`));
    }
  });

  // ---------------------------------------------------------------- 1
  describe('the samples (config/samples)', () => {
    it('kubectl get onnxmodels lists them; each gets a Deployment and Service exactly as designed', async () => {
      const { ns, op } = await setup('samples');
      // The restricted Pod Security profile is enforced: the ReplicaSet controller can only create the pods if the
      // template complies.
      await kubectl(['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
      await kubectl(['create', 'serviceaccount', 'resnet50-reader', '-n', ns]);
      await kubectl(['apply', '-k', SAMPLES_DIR, '-n', ns]);

      const table = await eventually(async () => {
        const rows = parseTable(await kubectl(['get', 'onnxmodels', '-n', ns]));
        expect(rows.map((r) => r.STATUS)).to.deep.equal(['False', 'False']); // status written by the operator
        return rows;
      });
      const header = (await kubectl(['get', 'onnxmodels', '-n', ns])).split('\n')[0]!.trim().split(/\s+/);
      expect(header).to.deep.equal(['NAME', 'MODEL', 'DESIRED', 'READY', 'STATUS', 'ADDRESS', 'AGE']);
      expect(
        table.map(({ NAME, MODEL, DESIRED, READY, ADDRESS }) => ({ NAME, MODEL, DESIRED, READY, ADDRESS })),
      ).to.deep.equal([
        { NAME: 'minimal', MODEL: 'gs://your-bucket/models/classifier.onnx', DESIRED: '1', READY: '0', ADDRESS: '' },
        { NAME: 'resnet50', MODEL: 'gs://your-bucket/resnet50/model.onnx', DESIRED: '2', READY: '0', ADDRESS: '' },
      ]);
      const wide = parseTable(await kubectl(['get', 'om', '-n', ns, '-o', 'wide']));
      expect(Object.keys(wide[0]!)).to.include('URL');

      const resnet = await getModel(ns, 'resnet50');
      const { deployment: d, service: s } = await childrenOf(ns, 'resnet50');
      for (const obj of [d, s] as KubernetesObject[]) {
        expect(obj.metadata!.ownerReferences, obj.kind).to.deep.equal([ownerRefOf(resnet)]);
        expect(obj.metadata!.labels, obj.kind).to.deep.equal(childLabels('resnet50'));
      }
      // Deployment
      expect(d.spec!.replicas).to.equal(2);
      expect(d.spec!.selector).to.deep.equal({ matchLabels: { [MODEL_LABEL]: 'resnet50' } });
      expect(d.spec!.strategy).to.deep.equal({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
      });
      const tpl = d.spec!.template;
      expect(tpl.metadata!.labels).to.deep.equal(childLabels('resnet50'));
      expect(tpl.metadata!.annotations?.[CONFIG_HASH]).to.match(/^[0-9a-f]{16}$/);
      const pod = tpl.spec!;
      expect(pod.containers).to.have.length(1);
      expect(pod.serviceAccountName).to.equal('resnet50-reader');
      expect(pod.automountServiceAccountToken).to.equal(false);
      expect(pod.securityContext).to.deep.equal({
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        fsGroup: 1000,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.volumes).to.deep.equal([
        { name: 'model-cache', emptyDir: {} },
        { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
      ]);
      const c = serverContainer(d);
      expect(c.image).to.equal(SERVER_IMAGE);
      expect(c.ports).to.deep.equal([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
      expect(serverEnv(d)).to.deep.equal({
        MODEL_URI: 'gs://your-bucket/resnet50/model.onnx',
        LABELS_URI: 'gs://your-bucket/resnet50/labels.txt',
        MODEL_NAME: 'resnet50',
        MODEL_CACHE_DIR: '/var/cache/onnx-model',
        PORT: '8080',
        DRAIN_DELAY_MS: '5000',
        SHUTDOWN_GRACE_MS: '20000',
        RESIZE_MODE: 'stretch',
        CHANNEL_ORDER: 'RGB',
        INPUT_LAYOUT: 'NHWC',
        NORMALIZATION: 'none',
        SOFTMAX: 'auto',
      });
      expect(c.resources).to.deep.equal({ requests: { cpu: '2', memory: '2Gi' }, limits: { cpu: '2', memory: '4Gi' } });
      expect(c.startupProbe?.httpGet).to.include({ path: '/v2/health/live', port: 'http' });
      expect(c.livenessProbe?.httpGet).to.include({ path: '/v2/health/live', port: 'http' });
      expect(c.readinessProbe?.httpGet).to.include({ path: '/v2/health/ready', port: 'http' });
      expect(c.securityContext).to.deep.equal({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.volumeMounts).to.deep.equal([
        { name: 'model-cache', mountPath: '/var/cache/onnx-model' },
        { name: 'tmp', mountPath: '/tmp' },
      ]);
      expect(pod.terminationGracePeriodSeconds).to.equal(30);
      // Service
      expect(s.spec!.type).to.equal('LoadBalancer');
      expect(s.spec!.selector).to.deep.equal({ [MODEL_LABEL]: 'resnet50' });
      expect(s.spec!.ports).to.have.length(1);
      expect(s.spec!.ports![0]).to.include({ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' });
      // PodDisruptionBudget (the sample asks for one)
      const pdb = await getJson<V1PodDisruptionBudget>(ns, 'pdb', 'resnet50');
      expect(pdb.spec).to.deep.include({ minAvailable: 1, selector: { matchLabels: { [MODEL_LABEL]: 'resnet50' } } });
      expect(pdb.metadata!.ownerReferences).to.deep.equal([ownerRefOf(resnet)]);

      // The minimal sample: every default.
      const minimal = await childrenOf(ns, 'minimal');
      expect(minimal.deployment.spec!.replicas).to.equal(1);
      expect(serverContainer(minimal.deployment).resources).to.deep.equal({
        requests: { cpu: '1', memory: '1Gi' },
        limits: { cpu: '2', memory: '2Gi' },
      });
      expect(serverEnv(minimal.deployment)).to.not.have.any.keys('LABELS_URI', 'RESIZE_MODE', 'NORMALIZATION');
      expect(minimal.deployment.spec!.template.spec!.serviceAccountName).to.equal(undefined);
      expect(minimal.service.spec!.type).to.equal('LoadBalancer');
      expect(minimal.service.spec!.ports![0]).to.include({ port: 80 });
      expect(await exists(ns, 'pdb', 'minimal')).to.equal(false);
      expect(await exists(ns, 'hpa', 'minimal')).to.equal(false);

      // Pod Security admission let the ReplicaSet controller create every pod (2 + 1).
      await eventually(async () => expect(await list(ns, 'pods')).to.have.length(3));
      const failed = (await list<{ reason: string; message: string }>(ns, 'events')).filter(
        (e) => e.reason === 'FailedCreate',
      );
      expect(failed, JSON.stringify(failed)).to.deep.equal([]);

      // The operator's own endpoints.
      expect((await fetch(`${op.url}/healthz`)).status).to.equal(200);
      expect((await fetch(`${op.url}/readyz`)).status).to.equal(200);
      expect(await metricValue(op, 'onnx_operator_models')).to.equal(2);
    });
  });

  describe('watching every namespace (no WATCH_NAMESPACE, the default)', () => {
    it('reconciles models in any namespace', async () => {
      const [ns1, ns2] = [await namespace('all-a'), await namespace('all-b')];
      const op = await operator({ WATCH_NAMESPACE: '' });
      expect((await op.waitFor(isMsg('caches synced; reconciling'))).namespace).to.equal('(all)');
      await applyModel(ns1, 'one', { modelUri: 'gs://models/colors/model.onnx' });
      await applyModel(ns2, 'two', { modelUri: 'gs://models/colors/model.onnx', service: { type: 'ClusterIP' } });
      const [a, b] = [await childrenOf(ns1, 'one'), await childrenOf(ns2, 'two')];
      expect(a.deployment.metadata!.ownerReferences![0]!.uid).to.equal((await getModel(ns1, 'one')).metadata.uid);
      expect(b.service.spec!.type).to.equal('ClusterIP');
      // A ClusterIP Service's address is its cluster IP.
      await eventually(async () =>
        expect((await getModel(ns2, 'two')).status?.address).to.equal(b.service.spec!.clusterIP),
      );
    });
  });

  // ---------------------------------------------------------------- 2
  describe('status and conditions', () => {
    it('follow the Deployment and the Service: not ready → pods ready → load balancer address → Ready', async () => {
      const { ns } = await setup('status');
      await applyModel(ns, 'colors', { modelUri: 'gs://models/colors/model.onnx', replicas: 2 });
      await childrenOf(ns, 'colors');

      const notReady = await eventually(async () => {
        const m = await getModel(ns, 'colors');
        expect(condition(m, 'Ready')).to.include({ status: 'False', reason: 'ReplicasNotReady' });
        return m;
      });
      expect(notReady.status).to.include({
        observedGeneration: notReady.metadata.generation,
        readyReplicas: 0,
        selector: `${MODEL_LABEL}=colors`,
      });
      expect(notReady.status?.address).to.equal(undefined);
      expect(condition(notReady, 'Available')).to.include({ status: 'False' });
      for (const c of notReady.status!.conditions!)
        expect(c.observedGeneration, c.type).to.equal(notReady.metadata.generation);

      // The "kubelet": both pods Running and Ready; the Deployment controller reports them.
      await eventually(async () => expect(await list(ns, 'pods')).to.have.length(2));
      expect(await markPodsReady(cp, ns)).to.equal(2);
      await eventually(async () => {
        const m = await getModel(ns, 'colors');
        expect(condition(m, 'Ready'), JSON.stringify(m.status)).to.include({
          status: 'False',
          reason: 'AwaitingLoadBalancer',
        });
        expect(m.status).to.include({ readyReplicas: 2, replicas: 2 });
        expect(condition(m, 'Available')).to.include({ status: 'True' });
      });

      // The "cloud": the Service gets its address.
      await setLoadBalancerIngress(cp, ns, 'colors', LB_IP);
      const ready = await eventually(async () => {
        const m = await getModel(ns, 'colors');
        expect(condition(m, 'Ready'), JSON.stringify(m.status)).to.include({ status: 'True', reason: 'Serving' });
        return m;
      });
      expect(ready.status).to.include({
        address: LB_IP,
        url: `http://${LB_IP}/predict/image`,
        observedGeneration: ready.metadata.generation,
      });
      expect(condition(ready, 'Degraded')).to.include({ status: 'False' });
      const [row] = parseTable(await kubectl(['get', 'om', 'colors', '-n', ns]));
      expect(row).to.include({ NAME: 'colors', DESIRED: '2', READY: '2', STATUS: 'True', ADDRESS: LB_IP });

      // The address goes away again (load balancer deleted): status says so, the stale address is removed.
      await kubectl([
        'patch',
        'service',
        'colors',
        '-n',
        ns,
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"loadBalancer":{"ingress":null}}}',
      ]);
      await eventually(async () => {
        const m = await getModel(ns, 'colors');
        expect(condition(m, 'Ready')).to.include({ status: 'False', reason: 'AwaitingLoadBalancer' });
        expect(m.status?.address).to.equal(undefined);
        expect(m.status?.url).to.equal(undefined);
      });
    });
  });

  // ---------------------------------------------------------------- 3, 4
  describe('spec changes', () => {
    const rolloutTitle =
      'a preprocessing or modelUri change rolls the Deployment to a new ReplicaSet; observedGeneration follows';
    it(rolloutTitle, async () => {
      const { ns } = await setup('rollout');
      const kubelet = startFakeKubelet(cp, ns);
      cleanups.push(() => kubelet.stop());
      await applyModel(ns, 'roll', {
        modelUri: 'gs://models/v1/model.onnx',
        preprocessing: { resizeMode: 'center-crop' },
        service: { type: 'ClusterIP' },
      });
      const first = (await childrenOf(ns, 'roll')).deployment;
      const hash1 = first.spec!.template.metadata!.annotations![CONFIG_HASH];
      expect(serverEnv(first)).to.include({ RESIZE_MODE: 'center-crop', MODEL_URI: 'gs://models/v1/model.onnx' });
      await eventually(async () =>
        expect(condition(await getModel(ns, 'roll'), 'Ready')).to.include({ status: 'True' }),
      );

      const replicaSets = () => list<V1ReplicaSet>(ns, 'replicasets', `${MODEL_LABEL}=roll`);
      const rolledTo = async (generation: number, env: Record<string, string>) =>
        eventually(
          async () => {
            const d = await getDeployment(ns, 'roll');
            expect(serverEnv(d)).to.include(env);
            const m = await getModel(ns, 'roll');
            expect(m.metadata.generation).to.equal(generation);
            expect(m.status?.observedGeneration).to.equal(generation);
            // the fake kubelet readies the new pods
            expect(condition(m, 'Ready'), JSON.stringify(m.status)).to.include({ status: 'True' });
            const rss = await replicaSets();
            const current = rss.find(
              (rs) =>
                rs.spec!.template!.metadata!.annotations?.[CONFIG_HASH] ===
                d.spec!.template.metadata!.annotations![CONFIG_HASH],
            );
            expect(current, 'a ReplicaSet with the new template').to.not.equal(undefined);
            expect(envOf(current!.spec!.template!.spec!.containers[0]!.env)).to.include(env);
            expect(current!.status?.readyReplicas).to.equal(1);
            for (const old of rss.filter((rs) => rs !== current))
              expect(old.spec!.replicas, 'old ReplicaSets scaled down').to.equal(0);
            return { d, rss };
          },
          { timeoutMs: 60_000 },
        );

      await patchModel(ns, 'roll', { spec: { preprocessing: { resizeMode: 'letterbox' } } });
      const second = await rolledTo(2, { RESIZE_MODE: 'letterbox', MODEL_URI: 'gs://models/v1/model.onnx' });
      const hash2 = second.d.spec!.template.metadata!.annotations![CONFIG_HASH];
      expect(hash2)
        .to.match(/^[0-9a-f]{16}$/)
        .and.not.equal(hash1);
      expect(second.rss).to.have.length(2);

      await patchModel(ns, 'roll', { spec: { modelUri: 'gs://models/v2/model.onnx' } });
      const third = await rolledTo(3, { RESIZE_MODE: 'letterbox', MODEL_URI: 'gs://models/v2/model.onnx' });
      expect(third.d.spec!.template.metadata!.annotations![CONFIG_HASH]).to.not.be.oneOf([hash1, hash2]);
      expect(third.rss).to.have.length(3);
      expect(third.d.metadata!.annotations?.['deployment.kubernetes.io/revision']).to.equal('3');
    });

    const scaleTitle =
      'kubectl scale onnxmodel sets spec.replicas; the Deployment follows; the scale subresource shows the selector';
    it(scaleTitle, async () => {
      const { ns } = await setup('scale');
      await applyModel(ns, 'scaled', { modelUri: 'gs://models/colors/model.onnx' });
      expect((await childrenOf(ns, 'scaled')).deployment.spec!.replicas).to.equal(1);

      await kubectl(['scale', 'onnxmodel/scaled', '--replicas=3', '-n', ns]);
      expect((await getModel(ns, 'scaled')).spec.replicas).to.equal(3);
      await eventually(async () => expect((await getDeployment(ns, 'scaled')).spec!.replicas).to.equal(3));
      const scale = await eventually(async () => {
        const s = await getJson<{
          kind: string;
          spec: { replicas: number };
          status: { replicas: number; selector: string };
        }>(ns, 'onnxmodel', 'scaled', ['--subresource=scale']);
        expect(s.status.replicas).to.equal(3); // the three pods the ReplicaSet controller created
        return s;
      });
      expect(scale).to.deep.include({
        kind: 'Scale',
        spec: { replicas: 3 },
        status: { replicas: 3, selector: `${MODEL_LABEL}=scaled` },
      });
      // The selector is the pods' one: the HPA and `kubectl get pods -l` find them with it.
      expect(await list(ns, 'pods', scale.status.selector)).to.have.length(3);
      expect(
        await kubectl(['get', 'om', 'scaled', '-n', ns, '-o', 'jsonpath={.status.selector} {.status.replicas}']),
      ).to.equal(`${MODEL_LABEL}=scaled 3`);

      await kubectl(['scale', 'onnxmodel/scaled', '--replicas=0', '-n', ns]);
      await eventually(async () => {
        expect((await getDeployment(ns, 'scaled')).spec!.replicas).to.equal(0);
        expect(condition(await getModel(ns, 'scaled'), 'Ready')).to.include({
          status: 'False',
          reason: 'ScaledToZero',
        });
      });
    });
  });

  // ---------------------------------------------------------------- 5
  describe('validation', () => {
    it('the API server refuses an invalid spec with a clear message, and nothing is created', async () => {
      const { ns } = await setup('invalid');
      const r = await cp.kubectl(['apply', '-n', ns, '-f', '-'], {
        input: JSON.stringify(
          manifest('bad', {
            modelUri: 'gs://models/colors/model.onnx',
            autoscaling: { minReplicas: 5, maxReplicas: 2 },
          }),
        ),
      });
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.contain('autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas');
      expect(r.stderr).to.contain('spec.autoscaling.minReplicas');
      expect(await exists(ns, 'onnxmodel', 'bad')).to.equal(false);
      expect(await list(ns, 'deployments,services')).to.deep.equal([]);
    });
  });

  // ---------------------------------------------------------------- 6
  describe('drift: children are put back as designed', () => {
    let ns: string;
    beforeEach(async () => {
      ({ ns } = await setup('drift'));
      await applyModel(ns, 'kept', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'kept');
    });

    it('a deleted Deployment and a deleted Service are recreated', async () => {
      const before = await childrenOf(ns, 'kept');
      await kubectl(['delete', 'deployment', 'kept', '-n', ns, '--wait=false']);
      await kubectl(['delete', 'service', 'kept', '-n', ns, '--wait=false']);
      const after = await eventually(async () => {
        const now = await childrenOf(ns, 'kept', 1000);
        expect(now.deployment.metadata!.uid).to.not.equal(before.deployment.metadata!.uid);
        expect(now.service.metadata!.uid).to.not.equal(before.service.metadata!.uid);
        return now;
      });
      expect(serverContainer(after.deployment).image).to.equal(SERVER_IMAGE);
      expect(after.service.spec!.type).to.equal('LoadBalancer');
    });

    it('a Deployment scaled by hand goes back to spec.replicas', async () => {
      await kubectl(['scale', 'deployment/kept', '--replicas=7', '-n', ns]);
      await eventually(async () => expect((await getDeployment(ns, 'kept')).spec!.replicas).to.equal(1));
    });

    it('an edited container image, env and pod template go back', async () => {
      const before = await getDeployment(ns, 'kept');
      await kubectl(['set', 'image', 'deployment/kept', 'server=evil.example.test/server:1', '-n', ns]);
      await eventually(async () => {
        const d = await getDeployment(ns, 'kept');
        expect(serverContainer(d).image).to.equal(SERVER_IMAGE);
        expect(d.spec!.template.metadata!.annotations![CONFIG_HASH]).to.equal(
          before.spec!.template.metadata!.annotations![CONFIG_HASH],
        );
      });
      await kubectl(['set', 'env', 'deployment/kept', 'MODEL_URI=gs://elsewhere/model.onnx', '-n', ns]);
      await eventually(async () =>
        expect(serverEnv(await getDeployment(ns, 'kept'))).to.include({ MODEL_URI: 'gs://models/colors/model.onnx' }),
      );
    });

    it('an edited Service type goes back to LoadBalancer', async () => {
      const patched = JSON.parse(
        await kubectl(['patch', 'service', 'kept', '-n', ns, '-p', '{"spec":{"type":"NodePort"}}', '-o', 'json']),
      ) as V1Service;
      expect(patched.spec!.type).to.equal('NodePort');
      await eventually(async () => expect((await getService(ns, 'kept')).spec!.type).to.equal('LoadBalancer'));
    });

    it('an edited Service port goes back to 80', async () => {
      await kubectl([
        'patch',
        'service',
        'kept',
        '-n',
        ns,
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/ports/0/port","value":8081}]',
      ]);
      await eventually(
        async () => {
          const s = await getService(ns, 'kept');
          expect(s.spec!.ports!.map((p) => p.port)).to.deep.equal([80]);
          const m = await getModel(ns, 'kept');
          expect(condition(m, 'Degraded'), JSON.stringify(m.status?.conditions)).to.include({ status: 'False' });
        },
        { timeoutMs: 20_000 },
      );
    });
  });

  // ---------------------------------------------------------------- 7
  describe('autoscaling and the disruption budget', () => {
    it('autoscaling set → an HPA owns the replica count; removed → HPA deleted, spec.replicas again', async () => {
      const { ns, op } = await setup('hpa');
      await applyModel(ns, 'auto', { modelUri: 'gs://models/colors/model.onnx', replicas: 1 });
      await childrenOf(ns, 'auto');

      await patchModel(ns, 'auto', {
        spec: { autoscaling: { minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 60 } },
      });
      const model = await getModel(ns, 'auto');
      const hpa = await eventually(() => getJson<V2HorizontalPodAutoscaler>(ns, 'hpa', 'auto'));
      expect(hpa.metadata!.ownerReferences).to.deep.equal([ownerRefOf(model)]);
      expect(hpa.spec).to.deep.include({
        minReplicas: 2,
        maxReplicas: 5,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'auto' },
      });
      expect(hpa.spec!.metrics).to.deep.equal([
        { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
      ]);

      // The operator no longer owns spec.replicas; the HPA controller raises it to minReplicas (its sync period is
      // 15 s).
      const operatorOwnsReplicas = async () => {
        const d = await getJson<V1Deployment>(ns, 'deployment', 'auto', ['--show-managed-fields']);
        const ours = d.metadata!.managedFields!.find((f) => f.manager === 'onnx-operator' && f.operation === 'Apply');
        return JSON.stringify(ours?.fieldsV1 ?? {}).includes('"f:replicas"');
      };
      await eventually(async () => expect(await operatorOwnsReplicas()).to.equal(false));
      await eventually(async () => expect((await getDeployment(ns, 'auto')).spec!.replicas).to.equal(2), {
        timeoutMs: 60_000,
      });

      // Whatever the autoscaler (or anyone) sets within bounds stays: the operator reconciles without touching it.
      const reconciles = await metricValue(op, 'onnx_operator_reconcile_total');
      await kubectl(['scale', 'deployment/auto', '--replicas=4', '-n', ns]);
      await eventually(async () =>
        expect(await metricValue(op, 'onnx_operator_reconcile_total')).to.be.greaterThan(reconciles),
      );
      await consistently(async () => expect((await getDeployment(ns, 'auto')).spec!.replicas).to.equal(4), 3000);

      await patchModel(ns, 'auto', [{ op: 'remove', path: '/spec/autoscaling' }], 'json');
      await eventually(async () => {
        expect(await exists(ns, 'hpa', 'auto')).to.equal(false);
        expect((await getDeployment(ns, 'auto')).spec!.replicas).to.equal(1);
        expect(await operatorOwnsReplicas()).to.equal(true);
      });
    });

    it('podDisruptionBudget set → a PDB; changed → updated; removed → deleted', async () => {
      const { ns } = await setup('pdb');
      await applyModel(ns, 'guarded', { modelUri: 'gs://models/colors/model.onnx', replicas: 3 });
      await childrenOf(ns, 'guarded');
      expect(await exists(ns, 'pdb', 'guarded')).to.equal(false);

      await patchModel(ns, 'guarded', { spec: { podDisruptionBudget: { minAvailable: 2 } } });
      const pdb = await eventually(() => getJson<V1PodDisruptionBudget>(ns, 'pdb', 'guarded'));
      expect(pdb.spec).to.deep.include({ minAvailable: 2, selector: { matchLabels: { [MODEL_LABEL]: 'guarded' } } });
      expect(pdb.metadata!.ownerReferences).to.deep.equal([ownerRefOf(await getModel(ns, 'guarded'))]);

      await patchModel(ns, 'guarded', { spec: { podDisruptionBudget: { minAvailable: '50%' } } });
      await eventually(async () =>
        expect((await getJson<V1PodDisruptionBudget>(ns, 'pdb', 'guarded')).spec!.minAvailable).to.equal('50%'),
      );

      await patchModel(ns, 'guarded', [{ op: 'remove', path: '/spec/podDisruptionBudget' }], 'json');
      await eventually(async () => expect(await exists(ns, 'pdb', 'guarded')).to.equal(false));
    });
  });

  // ---------------------------------------------------------------- 8
  describe('deleting an OnnxModel', () => {
    it('removes every child through the garbage collector, and the operator does not recreate them', async () => {
      const { ns } = await setup('delete');
      await applyModel(ns, 'gone', {
        modelUri: 'gs://models/colors/model.onnx',
        replicas: 2,
        autoscaling: { maxReplicas: 3 },
        podDisruptionBudget: { minAvailable: 1 },
      });
      await applyModel(ns, 'stays', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'stays');
      await eventually(async () => {
        expect(await list(ns, 'deployments,services,hpa,pdb', `${MODEL_LABEL}=gone`)).to.have.length(4);
        expect(await list(ns, 'replicasets', `${MODEL_LABEL}=gone`)).to.have.length(1);
        expect(await list(ns, 'pods', `${MODEL_LABEL}=gone`)).to.have.length.at.least(1);
      });

      await kubectl(['delete', 'onnxmodel', 'gone', '-n', ns]);
      await eventually(
        async () => {
          expect(await list(ns, 'deployments,services,hpa,pdb,replicasets,pods', `${MODEL_LABEL}=gone`)).to.deep.equal(
            [],
          );
        },
        { timeoutMs: 60_000 },
      );
      await consistently(async () => expect(await exists(ns, 'deployment', 'gone')).to.equal(false), 2000);
      // The other model is untouched.
      await childrenOf(ns, 'stays', 1000);
    });
  });

  // ---------------------------------------------------------------- 9
  describe('events', () => {
    it('kubectl get events shows what the operator did to each OnnxModel, once', async () => {
      const { ns, op } = await setup('events');
      await applyModel(ns, 'noted', {
        modelUri: 'gs://models/colors/model.onnx',
        podDisruptionBudget: { minAvailable: 1 },
      });
      await childrenOf(ns, 'noted');

      interface Event {
        reason: string;
        message: string;
        type: string;
        involvedObject: { kind: string; name: string };
        reportingComponent?: string;
        reportingInstance?: string;
      }
      const modelEvents = async () =>
        (await list<Event>(ns, 'events')).filter(
          (e) => e.involvedObject.kind === KIND && e.involvedObject.name === 'noted',
        );
      const created = await eventually(async () => {
        const evs = (await modelEvents()).filter((e) => e.reason === 'Created');
        expect(evs.map((e) => e.message).sort()).to.deep.equal([
          'created Deployment noted',
          'created PodDisruptionBudget noted',
          'created Service noted',
        ]);
        return evs;
      });
      for (const e of created)
        expect(e).to.include({ type: 'Normal', reportingComponent: 'onnx-operator', reportingInstance: op.identity });
      const table = await kubectl(['get', 'events', '-n', ns]);
      expect(table).to.match(/Normal\s+Created\s+onnxmodel\/noted\s+created Deployment noted/);

      await patchModel(ns, 'noted', { spec: { preprocessing: { resizeMode: 'stretch' } } });
      await patchModel(ns, 'noted', [{ op: 'remove', path: '/spec/podDisruptionBudget' }], 'json');
      await eventually(async () => {
        const evs = await modelEvents();
        expect(evs.filter((e) => e.reason === 'Updated').map((e) => e.message)).to.include(
          "updated Deployment noted to the OnnxModel's spec",
        );
        expect(evs.filter((e) => e.reason === 'Deleted').map((e) => e.message)).to.deep.equal([
          'deleted PodDisruptionBudget noted: no longer in the spec',
        ]);
      });
      // Reconciles that change nothing record nothing: give the operator a few rounds, then count again.
      await sleep(2000);
      const evs = await modelEvents();
      const count = (reason: string, message: string) =>
        evs.filter((e) => e.reason === reason && e.message === message).length;
      expect(count('Created', 'created Deployment noted'), 'one Created per child').to.equal(1);
      expect(count('Created', 'created Service noted'), 'one Created per child').to.equal(1);
      expect(
        count('Updated', "updated Deployment noted to the OnnxModel's spec"),
        'one Updated per spec change',
      ).to.equal(1);
    });
  });

  // ---------------------------------------------------------------- 10
  describe('leader election', () => {
    interface Lease {
      spec: { holderIdentity?: string; leaseTransitions?: number };
    }
    const LEASE = 'onnx-operator-e2e';

    async function twoCandidates(prefix: string) {
      const ns = await namespace(prefix);
      const env = { WATCH_NAMESPACE: ns, LEADER_ELECTION: 'true' as const, LEASE_NAMESPACE: ns, LEASE_NAME: LEASE };
      const ops = await Promise.all([
        operator({ ...env, POD_NAME: 'operator-a' }, 'operator-a'),
        operator({ ...env, POD_NAME: 'operator-b' }, 'operator-b'),
      ]);
      const leader = await eventually(
        () => {
          const leaders = ops.filter((op) => op.logged(isMsg('became leader')));
          expect(leaders).to.have.length(1);
          return leaders[0]!;
        },
        { timeoutMs: 30_000 },
      );
      const standby = ops.find((op) => op !== leader)!;
      return { ns, leader, standby, lease: () => getJson<Lease>(ns, 'lease', LEASE) };
    }

    const failoverTitle =
      'exactly one of two operators leads and reconciles; after it stops, the other takes over within seconds';
    it(failoverTitle, async () => {
      const { ns, leader, standby, lease } = await twoCandidates('leader');
      await leader.waitFor(isMsg('caches synced; reconciling'));
      expect((await lease()).spec.holderIdentity).to.equal(leader.identity);
      expect(leader.identity).to.match(/^operator-[ab]_[0-9a-f]{8}$/);

      await applyModel(ns, 'before', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'before');
      // The standby does nothing but stay ready (so a rollout of the operator's Deployment proceeds).
      await consistently(() => {
        expect(standby.logged(isMsg('became leader')), 'standby became leader').to.equal(false);
        expect(standby.logged(isMsg('caches synced; reconciling')), 'standby reconciles').to.equal(false);
      }, 5000);
      expect(await metricValue(standby, 'onnx_operator_reconcile_total')).to.equal(0);
      expect(await metricValue(standby, 'onnx_operator_leader')).to.equal(0);
      expect(await metricValue(leader, 'onnx_operator_leader')).to.equal(1);
      expect(await metricValue(leader, 'onnx_operator_reconcile_total')).to.be.greaterThan(0);
      expect((await fetch(`${standby.url}/readyz`)).status).to.equal(200);
      const transitions = (await lease()).spec.leaseTransitions ?? 0;

      const exit = await leader.stop('SIGTERM');
      expect(exit).to.deep.equal({ code: 0, signal: null });
      const released = leader.logs.find(isMsg('released leadership'));
      expect(released, leader.tail()).to.not.equal(undefined);
      const took = await standby.waitFor(isMsg('became leader'), 15_000);
      expect(Number(took.time) - Number(released!.time), 'takeover delay (ms)').to.be.lessThan(5000);
      note(`takeover ${Number(took.time) - Number(released!.time)} ms after the lease was released`);
      await standby.waitFor(isMsg('caches synced; reconciling'));
      const l = await lease();
      expect(l.spec.holderIdentity).to.equal(standby.identity);
      expect(l.spec.leaseTransitions).to.equal(transitions + 1);

      await applyModel(ns, 'after', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'after');
      const events = (
        await list<{ reason: string; involvedObject: { name: string }; reportingInstance?: string }>(ns, 'events')
      ).filter((e) => e.reason === 'Created' && e.involvedObject.name === 'after');
      expect(events.map((e) => e.reportingInstance)).to.deep.equal([standby.identity, standby.identity]);
    });

    it('a leader killed without releasing the lease is replaced once the lease expires, not before', async () => {
      const { ns, leader, standby, lease } = await twoCandidates('leader-kill');
      await leader.waitFor(isMsg('caches synced; reconciling'));
      await leader.kill();
      const killedAt = Date.now();
      expect((await lease()).spec.holderIdentity).to.equal(leader.identity);
      const took = await standby.waitFor(isMsg('became leader'), 40_000);
      const after = Number(took.time) - killedAt;
      note(`takeover ${after} ms after SIGKILL`);
      // 15 s lease, renewed every 2 s: the standby must wait at least 13 s, and takes at most a retry period more.
      expect(after, 'takeover delay (ms)').to.be.within(12_000, 20_000);
      await standby.waitFor(isMsg('caches synced; reconciling'));
      expect((await lease()).spec.holderIdentity).to.equal(standby.identity);
      await applyModel(ns, 'after-kill', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'after-kill');
    });

    it('a leader whose connections to the API server go silent steps down before the standby takes over', async () => {
      const ns = await namespace('leader-stall');
      const { proxy, kubeconfig } = await proxiedKubeconfig();
      const env = { WATCH_NAMESPACE: ns, LEADER_ELECTION: 'true' as const, LEASE_NAMESPACE: ns, LEASE_NAME: LEASE };
      const leader = await operator({ ...env, KUBECONFIG: kubeconfig, POD_NAME: 'operator-a' }, 'operator-a');
      await leader.waitFor(isMsg('caches synced; reconciling'));
      const standby = await operator({ ...env, POD_NAME: 'operator-b' }, 'operator-b');
      await sleep(3000);
      expect(standby.logged(isMsg('became leader'))).to.equal(false);

      // The leader's connections (watches, the pooled keep-alive socket its lease renewals use) go silent.
      expect(proxy.stall()).to.be.at.least(5);
      const took = await standby.waitFor(isMsg('became leader'), 40_000);
      const exit = await Promise.race([leader.exited, sleep(40_000).then(() => undefined)]);
      const lost = leader.logs.find(isMsg('lost leadership'));
      expect(lost, 'the old leader never stepped down').to.not.equal(undefined);
      // Renew deadline (10 s) < lease duration (15 s): the old leader must have stopped before anyone else may start.
      const overlap = Number(lost!.time) - Number(took.time);
      note(`the old leader stepped down ${overlap} ms after the standby took over`);
      expect(
        overlap,
        'ms during which both led (the old one stepped down this long after the new one took over)',
      ).to.be.below(0);
      expect(exit?.code).to.equal(1);
    });
  });

  // ---------------------------------------------------------------- 11
  describe('operator restarts', () => {
    const N = 20;
    const names = Array.from({ length: N }, (_, i) => `m${String(i).padStart(2, '0')}`);

    interface World {
      models: OnnxModel[];
      deployments: V1Deployment[];
      services: V1Service[];
    }
    async function world(ns: string): Promise<World> {
      const [models, deployments, services] = await Promise.all([
        list<OnnxModel>(ns, 'onnxmodels'),
        list<V1Deployment>(ns, 'deployments'),
        list<V1Service>(ns, 'services'),
      ]);
      return { models, deployments, services };
    }

    /** Every model has its Deployment and Service, owned by it, as its current spec says; no child without a model. */
    function assertConverged(w: World, expect_: { models: string[]; letterbox: string[] }): void {
      expect(w.models.map((m) => m.metadata.name).sort()).to.deep.equal([...expect_.models].sort());
      for (const m of w.models) {
        const name = m.metadata.name!;
        const d = w.deployments.find((x) => x.metadata!.name === name);
        const s = w.services.find((x) => x.metadata!.name === name);
        expect(d, `deployment ${name}`).to.not.equal(undefined);
        expect(s, `service ${name}`).to.not.equal(undefined);
        expect(d!.metadata!.ownerReferences?.[0]?.uid, `deployment ${name} owner`).to.equal(m.metadata.uid);
        expect(s!.metadata!.ownerReferences?.[0]?.uid, `service ${name} owner`).to.equal(m.metadata.uid);
        expect(serverContainer(d!).image, `deployment ${name} image`).to.equal(SERVER_IMAGE);
        expect(d!.spec!.replicas, `deployment ${name} replicas`).to.equal(1);
        expect(serverEnv(d!).RESIZE_MODE, `deployment ${name} RESIZE_MODE`).to.equal(
          expect_.letterbox.includes(name) ? 'letterbox' : undefined,
        );
        expect(m.status?.observedGeneration, `model ${name} observedGeneration`).to.equal(m.metadata.generation);
      }
      expect(w.deployments.map((d) => d.metadata!.name).sort()).to.deep.equal([...expect_.models].sort());
      expect(w.services.map((s) => s.metadata!.name).sort()).to.deep.equal([...expect_.models].sort());
    }

    it('killed mid-way and while changes pile up, a restarted operator converges every model', async () => {
      const ns = await namespace('restart');
      await kubectl(
        ['apply', '-n', ns, '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: names.map((n) => manifest(n, { modelUri: `gs://models/${n}/model.onnx` })),
        }),
      );
      const env = { WATCH_NAMESPACE: ns, WORKERS: '1' };

      // 1. SIGKILL as soon as a few models are reconciled (the metric is read every few ms).
      const first = await operator(env, 'first');
      await eventually(
        async () =>
          expect(await metricValue(first, 'onnx_operator_reconcile_total', { result: 'success' })).to.be.at.least(3),
        { timeoutMs: 30_000, intervalMs: 5 },
      );
      await first.kill();
      const partial = await world(ns);
      expect(partial.deployments.length, 'some were reconciled before the kill').to.be.at.least(3);
      note(
        `killed with ${partial.deployments.length} of ${N} Deployments and ${partial.services.length} Services created`,
      );

      // 2. Restarted: everything converges.
      const second = await operator(env, 'second');
      await eventually(async () => assertConverged(await world(ns), { models: names, letterbox: [] }), {
        timeoutMs: 60_000,
        intervalMs: 1000,
      });
      await second.kill();

      // 3. While no operator runs: spec changes, deleted and edited children, deleted and new models.
      const letterbox = names.slice(0, 5);
      for (const n of letterbox) await patchModel(ns, n, { spec: { preprocessing: { resizeMode: 'letterbox' } } });
      await kubectl(['delete', 'deployment', 'm05', 'm06', '-n', ns, '--wait=false']);
      await kubectl(['delete', 'service', 'm07', 'm08', '-n', ns, '--wait=false']);
      await kubectl(['scale', 'deployment/m09', '--replicas=5', '-n', ns]);
      await kubectl(['set', 'image', 'deployment/m12', 'server=evil.example.test/server:1', '-n', ns]);
      await kubectl(['delete', 'onnxmodel', 'm10', 'm11', '-n', ns]);
      const added = ['m20', 'm21'];
      for (const n of added) await applyModel(ns, n, { modelUri: `gs://models/${n}/model.onnx` });
      const expected = [...names.filter((n) => !['m10', 'm11'].includes(n)), ...added];

      // 4. Restarted again: it catches up with all of it (the garbage collector removed m10/m11's children meanwhile).
      const third = await operator(env, 'third');
      await third.waitFor(isMsg('caches synced; reconciling'));
      await eventually(async () => assertConverged(await world(ns), { models: expected, letterbox }), {
        timeoutMs: 60_000,
        intervalMs: 1000,
      });
    });
  });

  // ---------------------------------------------------------------- 12
  describe('dropped watches', () => {
    async function behindProxy(prefix: string) {
      const { proxy, kubeconfig } = await proxiedKubeconfig();
      const ns = await namespace(prefix);
      // A long resync: only the watches can bring the changes below in time.
      const op = await operator({ WATCH_NAMESPACE: ns, KUBECONFIG: kubeconfig, RESYNC_SECONDS: '3600' });
      await op.waitFor(isMsg('caches synced; reconciling'));
      await applyModel(ns, 'a', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'a');
      return { ns, op, proxy };
    }

    it('after every connection to the API server is cut, later changes are still reconciled', async () => {
      const { ns, op, proxy } = await behindProxy('watch-cut');
      expect(proxy.open, 'five watches and the REST client go through the proxy').to.be.at.least(5);
      const accepted = proxy.accepted;

      expect(proxy.cut()).to.be.at.least(5);
      await sleep(500);
      await applyModel(ns, 'b', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'b');
      const before = await getDeployment(ns, 'a');
      await kubectl(['delete', 'deployment', 'a', '-n', ns, '--wait=false']);
      await eventually(async () =>
        expect((await getDeployment(ns, 'a')).metadata!.uid).to.not.equal(before.metadata!.uid),
      );
      await kubectl(['delete', 'service', 'b', '-n', ns, '--wait=false']);
      await eventually(() => getService(ns, 'b'));
      expect(proxy.accepted, 'the operator reconnected').to.be.greaterThan(accepted);
      expect(op.running).to.equal(true);
    });

    const outageTitle =
      'after an outage (connections cut and refused for a while), the changes made meanwhile are reconciled';
    it(outageTitle, async () => {
      const { ns, op, proxy } = await behindProxy('watch-outage');
      proxy.refuse();
      proxy.cut();
      // Meanwhile: a new model, a deleted child, a spec change.
      await applyModel(ns, 'during', { modelUri: 'gs://models/colors/model.onnx' });
      await kubectl(['delete', 'service', 'a', '-n', ns, '--wait=false']);
      await patchModel(ns, 'a', { spec: { replicas: 2 } });
      await sleep(3000);
      proxy.accept();
      await childrenOf(ns, 'during');
      await eventually(async () => {
        expect(await exists(ns, 'service', 'a')).to.equal(true);
        expect((await getDeployment(ns, 'a')).spec!.replicas).to.equal(2);
      });
      expect(op.running).to.equal(true);
    });

    const silentWatchTitle =
      'watches that go silent (no data, no close) are replaced: a model created afterwards is reconciled within 60 s';
    it(silentWatchTitle, async () => {
      const { ns, op, proxy } = await behindProxy('watch-stall');
      expect(proxy.stall(), 'stalled connections').to.be.at.least(5);
      const t0 = Date.now();
      await applyModel(ns, 'unseen', { modelUri: 'gs://models/colors/model.onnx' });
      await childrenOf(ns, 'unseen', 60_000).catch((err: Error) => {
        throw new Error(`model 'unseen' not reconciled 60 s after the watches went silent (${err.message})`);
      });
      note(`reconciled ${Date.now() - t0} ms after the watches went silent`);
      expect(op.running).to.equal(true);
    });

    it('backs off between watch restarts while the API server stays unreachable', async () => {
      const { op, proxy } = await behindProxy('watch-backoff');
      const from = op.logs.length;
      proxy.refuse();
      proxy.cut();
      await sleep(6000);
      proxy.accept();
      const restarts = op.logs.slice(from).filter(isMsg('watch failed; restarting'));
      const delays = restarts.map((l) => Number(l.delayMs));
      // Five informers, 6 s: with backoff doubling from 200 ms each retries about five times (200+400+800+1600+3200).
      expect(Math.max(...delays), `delays logged: ${delays.join(',')}`).to.be.at.least(1600);
      expect(restarts.length, 'watch restarts logged in 6 s').to.be.at.most(50);
    });
  });

  // ---------------------------------------------------------------- 13
  describe('the generated pod spec serves', () => {
    let gcs: FakeGcs | undefined;
    let server: ServerProcess | undefined;
    afterEach(async () => {
      if (server && server.child.exitCode === null && server.child.signalCode === null) {
        server.child.kill('SIGKILL');
        await server.exited;
      }
      server = undefined;
      await gcs?.stop();
      gcs = undefined;
    });

    it("the server started with the Deployment's exact env pulls the model from GCS and answers curl", async () => {
      const models = await testModels();
      gcs = await startFakeGcs();
      await gcs.createBucket('models');
      await gcs.upload('models', 'colors/model.onnx', await readFile(models.colorNchw));
      await gcs.upload('models', 'colors/labels.txt', await readFile(models.colorLabels));

      const { ns } = await setup('serve');
      await applyModel(ns, 'colors', {
        modelUri: 'gs://models/colors/model.onnx',
        labelsUri: 'gs://models/colors/labels.txt',
      });
      const { deployment } = await childrenOf(ns, 'colors');
      const container = serverContainer(deployment);
      const env = container.env ?? [];
      expect(
        env.filter((e) => e.value === undefined),
        'every variable has a literal value',
      ).to.deep.equal([]);

      const dir = await mkdtemp(join(tmpdir(), 'onnx-operator-serve-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      // The pod's env exactly, plus only what the cluster provides: GCS (credentials → emulator), the network
      // (loopback), the emptyDir.
      server = spawnServer({
        ...envOf(env),
        STORAGE_EMULATOR_HOST: gcs.url,
        PORT: '0',
        HOST: '127.0.0.1',
        MODEL_CACHE_DIR: join(dir, 'model-cache'),
      });
      const { url } = (await server.waitFor((l) => l.msg === 'listening')) as { url: string };
      await server.waitFor((l) => l.msg === 'model warmed up; ready', 90_000);

      // The probes of the pod spec answer on the server as configured.
      for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
        expect((await fetch(`${url}${probe!.httpGet!.path!}`)).status, probe!.httpGet!.path).to.equal(200);
      }
      // The model is served under the OnnxModel's name.
      expect((await fetch(`${url}/v2/models/colors/ready`)).status).to.equal(200);

      // The user curls status.url: same path, with the load balancer's address standing for this loopback server.
      await setLoadBalancerIngress(cp, ns, 'colors', LB_IP);
      const statusUrl = await eventually(async () => {
        const u = (await getModel(ns, 'colors')).status?.url;
        expect(u).to.be.a('string');
        return new URL(u!);
      });
      expect(statusUrl.host).to.equal(LB_IP);
      const image = join(dir, 'green-over-red.jpg');
      await writeFile(image, await picture(64, 64, GREEN, RED).jpeg().toBuffer());
      const target = `${url}${statusUrl.pathname}`;
      const { stdout } = await promisify(execFile)(
        'curl',
        ['-sS', '--fail-with-body', '-F', `image_file=@${image}`, target],
        { timeout: 30_000 },
      );
      const answer = JSON.parse(stdout) as { Label: string; Score: string };
      expect(answer.Label).to.equal('green');
      expect(Number(answer.Score)).to.be.within(0.5, 1);

      // SIGTERM as the kubelet sends it: drains for DRAIN_DELAY_MS and exits 0 well within the pod's grace period.
      const t0 = Date.now();
      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      expect(code).to.equal(0);
      expect(Date.now() - t0).to.be.lessThan(
        (deployment.spec!.template.spec!.terminationGracePeriodSeconds ?? 30) * 1000,
      );
    });
  });
});
