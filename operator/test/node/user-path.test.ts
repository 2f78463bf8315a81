/**
 * The user's whole path on a real node: kube-scheduler, kubelet, kube-proxy and
 * containerd run on this machine (scripts/control-plane/start.sh, CP_NODE=1),
 * the images are the ones Dockerfile.operator and Dockerfile.server build, and
 * nothing plays the kubelet's part:
 *
 *   kubectl apply -k config/default      → the operator runs as two pods, one leads
 *   kubectl apply -f model.yaml          → the server pod pulls gs:// from the GCS
 *                                          emulator, passes its probes, is Ready
 *   kubectl get onnxmodels               → Ready, with the address
 *   curl -F image_file=@chelsea.jpg …    → through ClusterIP, NodePort and the
 *                                          load balancer's address
 *
 * then rollouts, scaling, pod deletion and a drain under a closed-loop load that
 * must lose no request, and models that cannot load saying why on the OnnxModel.
 * Only the cloud controller is played: the test writes the LoadBalancer's
 * ingress as one would, with the node's address (kube-proxy then answers on it).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { V1Deployment, V1Pod, V1Service } from '@kubernetes/client-node';
import { expect } from 'chai';
import { API_VERSION, GROUP, KIND, type OnnxModel, type OnnxModelSpec } from '../../../crds/onnxmodel-types.js';
import { startFakeGcs, type FakeGcs } from '../../../inference-server/test/helpers/fake-gcs.js';
import { ClosedLoopLoad, type LoadReport } from '../helpers/closed-loop-load.js';
import { eventually, repoRoot } from '../helpers/control-plane.js';
import { containerPid, startNodeCluster, type NodeCluster } from '../helpers/node-cluster.js';

const ROOT = repoRoot();
const OPERATOR_NS = 'onnx-operator-system';
const MODEL_LABEL = `${GROUP}/model`;
const PHOTOS = join(ROOT, 'inference-server', 'test', 'fixtures', 'photos');
const BUILTIN_MODEL = join(ROOT, 'inference-server', 'models', 'efficientnet-lite0');
const curl = promisify(execFile);
/** What a user types: the cat photo to /predict/image, failing on any non-2xx answer. */
const curlClassify = (url: string) =>
  curl('curl', [
    '-sS',
    '--fail-with-body',
    '--max-time',
    '60',
    '-F',
    `image_file=@${join(PHOTOS, 'chelsea.jpg')}`,
    url,
  ]);
const note = (msg: string) => void (process.env.E2E_VERBOSE === '1' && process.stderr.write(`      · ${msg}\n`));

interface Seed {
  Label: string;
  Score: string;
}

describe('on a real node: the user path, rollouts under load, models that cannot load', function () {
  // The first run builds the node's binaries and both images (cached afterwards).
  this.timeout(10 * 60_000);
  let cluster: NodeCluster;
  let gcs: FakeGcs;
  let ns: string;
  let chelsea: Buffer;
  let accepted: string[];

  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await cluster.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };
  const getJson = async <T>(args: string[]): Promise<T> =>
    JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as T;
  const getModel = (name: string) => getJson<OnnxModel>(['onnxmodel', name, '-n', ns]);
  const podsOf = async (name: string) =>
    (await getJson<{ items: V1Pod[] }>(['pods', '-n', ns, '-l', `${MODEL_LABEL}=${name}`])).items;
  const readyPods = async (name: string) =>
    (await podsOf(name)).filter(
      (p) =>
        !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
  const readyCondition = (m: OnnxModel) => m.status?.conditions?.find((c) => c.type === 'Ready');

  /** The emulator is reached through the node's address: pods cannot see the test's loopback. */
  const spec = (overrides: Partial<OnnxModelSpec> = {}): OnnxModelSpec => ({
    modelUri: 'gs://models/efficientnet/model.onnx',
    labelsUri: 'gs://models/efficientnet/labels.txt',
    replicas: 1,
    // Small requests: three replicas and the operator fit the node's two CPUs.
    resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
    env: [{ name: 'STORAGE_EMULATOR_HOST', value: gcs.url }],
    ...overrides,
  });
  const applyModel = (name: string, s: OnnxModelSpec) =>
    kubectl(
      ['apply', '-n', ns, '-f', '-'],
      JSON.stringify({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: s }),
    );

  /** Ready True for the current generation, with `replicas` ready pods and no others left. */
  const settled = (name: string, replicas: number, timeoutMs = 5 * 60_000) =>
    eventually(
      async () => {
        const m = await getModel(name);
        const ready = readyCondition(m);
        if (m.status?.observedGeneration !== m.metadata.generation || ready?.status !== 'True')
          throw new Error(`${name} not Ready: ${JSON.stringify(ready)}`);
        const pods = await podsOf(name);
        if (pods.length !== replicas || (await readyPods(name)).length !== replicas)
          throw new Error(`${name}: ${pods.length} pods, want ${replicas} ready and no others`);
        return m;
      },
      { timeoutMs, intervalMs: 1000 },
    );

  const seedOk = (body: unknown) =>
    typeof body === 'object' && body !== null && accepted.includes((body as Seed).Label);
  const describeFailures = (r: LoadReport) =>
    JSON.stringify({ phases: r.phases, failures: r.failures.slice(0, 20) }, null, 1);
  const clusterIpUrl = async (name: string) => {
    const svc = await getJson<V1Service>(['service', name, '-n', ns]);
    return `http://${svc.spec!.clusterIP}:${svc.spec!.ports![0]!.port}/predict/image`;
  };

  before(async function () {
    this.timeout(45 * 60_000);
    cluster = await startNodeCluster();
    gcs = await startFakeGcs({ host: cluster.nodeIp });
    await gcs.createBucket('models');
    const [model, labels] = await Promise.all([
      readFile(join(BUILTIN_MODEL, 'model.onnx')),
      readFile(join(BUILTIN_MODEL, 'labels.txt')),
    ]);
    for (const dir of ['efficientnet', 'efficientnet-v2']) {
      await gcs.upload('models', `${dir}/model.onnx`, model);
      await gcs.upload('models', `${dir}/labels.txt`, labels);
    }
    chelsea = await readFile(join(PHOTOS, 'chelsea.jpg'));
    accepted = (
      JSON.parse(await readFile(join(PHOTOS, 'expected.json'), 'utf8')) as Record<string, { accept: string[] }>
    )['chelsea.jpg']!.accept;
    note(`node ${cluster.nodeName} at ${cluster.nodeIp}; fake GCS at ${gcs.url}`);
  });

  after(async function () {
    this.timeout(120_000);
    await gcs?.stop();
    await cluster?.stop();
  });

  const installTitle =
    'kubectl apply -k config/default: the operator runs as two pods with its own ServiceAccount, one of them leads';
  it(installTitle, async () => {
    await kubectl(['apply', '-k', join(ROOT, 'config', 'default')]);
    await kubectl(['rollout', 'status', 'deployment/onnx-operator', '-n', OPERATOR_NS, '--timeout=300s']);
    const pods = (
      await getJson<{ items: V1Pod[] }>(['pods', '-n', OPERATOR_NS, '-l', 'app.kubernetes.io/name=onnx-operator'])
    ).items;
    expect(pods).to.have.length(2);
    for (const pod of pods) {
      expect(pod.spec!.serviceAccountName).to.equal('onnx-operator');
      expect(pod.spec!.containers[0]!.image).to.equal(cluster.images.operator);
      expect(pod.status!.containerStatuses![0]!.ready, pod.metadata!.name).to.equal(true);
    }
    // The leader holds the Lease under its pod's name; the other waits.
    const holder = await eventually(
      async () => {
        const lease = await getJson<{ spec: { holderIdentity?: string } }>([
          'lease',
          'onnx-operator-leader',
          '-n',
          OPERATOR_NS,
        ]);
        const id = lease.spec.holderIdentity ?? '';
        const leader = pods.find((p) => id.startsWith(`${p.metadata!.name}_`));
        if (!leader) throw new Error(`lease held by "${id}", not one of the pods`);
        return leader.metadata!.name!;
      },
      { timeoutMs: 60_000 },
    );
    note(`leader: ${holder}`);
  });

  const servingTitle =
    'an OnnxModel from gs:// in a restricted namespace: the pod is Ready, kubectl get shows the address, ' +
    'curl answers through every Service path';
  it(servingTitle, async () => {
    ns = await cluster.createNamespace('models');
    await kubectl([
      'label',
      'namespace',
      ns,
      'pod-security.kubernetes.io/enforce=restricted',
      'pod-security.kubernetes.io/enforce-version=latest',
    ]);
    await applyModel('cat', spec());
    await eventually(
      async () => {
        if ((await readyPods('cat')).length !== 1) throw new Error('no ready pod yet');
      },
      { timeoutMs: 5 * 60_000, intervalMs: 1000 },
    );
    // Not ready until the load balancer has an address (once the operator has seen the pod ready).
    await eventually(
      async () => {
        expect(readyCondition(await getModel('cat'))).to.deep.include({
          status: 'False',
          reason: 'AwaitingLoadBalancer',
        });
      },
      { timeoutMs: 60_000 },
    );

    // What a cloud controller does once it has a load balancer: here, the node's own address.
    await kubectl([
      'patch',
      'service',
      'cat',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: cluster.nodeIp }] } } }),
    ]);
    const row = await eventually(
      async () => {
        const [header, line] = (await kubectl(['get', 'onnxmodels', 'cat', '-n', ns])).trimEnd().split('\n');
        const cols = header!.trim().split(/\s+/);
        const cells = line!.trim().split(/\s+/);
        const r = Object.fromEntries(cols.map((c, i) => [c, cells[i]]));
        if (r.STATUS !== 'True') throw new Error(`kubectl get onnxmodels: ${line}`);
        return r;
      },
      { timeoutMs: 60_000 },
    );
    expect(row).to.include({ NAME: 'cat', DESIRED: '1', READY: '1', STATUS: 'True', ADDRESS: cluster.nodeIp });

    const svc = await getJson<V1Service>(['service', 'cat', '-n', ns]);
    const urls = [
      `http://${cluster.nodeIp}/predict/image`, // the OnnxModel's address (status.url)
      `http://${svc.spec!.clusterIP}/predict/image`,
      `http://${cluster.nodeIp}:${svc.spec!.ports![0]!.nodePort}/predict/image`,
    ];
    expect((await getModel('cat')).status!.url).to.equal(urls[0]);
    for (const url of urls) {
      // kube-proxy programs the load balancer's address a moment after the status names it, like a cloud's would.
      const { stdout } = await eventually(() => curlClassify(url), { timeoutMs: 60_000, intervalMs: 500 });
      const answer = JSON.parse(stdout) as Seed;
      expect(accepted, `${url}: ${stdout}`).to.include(answer.Label);
      note(`${url} → ${stdout}`);
    }
  });

  it('the restricted profile admits the pods, and they run as UID 1000 on a read-only root', async () => {
    const pods = [...(await podsOf('cat')), ...(await getJson<{ items: V1Pod[] }>(['pods', '-n', OPERATOR_NS])).items];
    expect(pods.length).to.equal(3);
    for (const pod of pods) {
      const pid = await containerPid(cluster, pod.status!.containerStatuses![0]!.containerID!);
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      expect(/^Uid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/), pod.metadata!.name).to.deep.equal([
        '1000',
        '1000',
        '1000',
        '1000',
      ]);
      expect(/^Gid:\s+(.*)$/m.exec(status)![1]!.split(/\s+/)[0]).to.equal('1000');
      expect(/^CapEff:\s+(.*)$/m.exec(status)![1]).to.equal('0000000000000000');
      // mountinfo: the 5th field is the mount point, the 6th its options.
      const root = (await readFile(`/proc/${pid}/mountinfo`, 'utf8'))
        .split('\n')
        .map((l) => l.split(' '))
        .find((f) => f[4] === '/');
      expect(root?.[5]?.split(','), `${pod.metadata!.name}: ${root?.join(' ')}`).to.include('ro');
    }
  });

  it('a rollout under load loses nothing: a batching change, 1 → 3 → 1 replicas, a new model version', async () => {
    await applyModel('rollout', spec({ podDisruptionBudget: { minAvailable: 1 }, service: { type: 'ClusterIP' } }));
    await settled('rollout', 1);
    const load = new ClosedLoopLoad({
      url: await clusterIpUrl('rollout'),
      image: chelsea,
      filename: 'chelsea.jpg',
      concurrency: 4,
      accept: seedOk,
    });
    load.start();
    const step = async (name: string, change: () => Promise<unknown>, replicas: number) => {
      // Traffic flows before each change, so every change lands on a busy model.
      await eventually(
        () => {
          if (load.okInPhase < 10) throw new Error(`only ${load.okInPhase} right answers in this phase`);
        },
        { timeoutMs: 120_000 },
      );
      load.phase(name);
      await change();
      await settled('rollout', replicas);
      note(`${name}: ${load.okInPhase} answers`);
    };
    let report: LoadReport | undefined;
    try {
      await step(
        'batching.maxBatchSize 8',
        () =>
          kubectl([
            'patch',
            'onnxmodel',
            'rollout',
            '-n',
            ns,
            '--type=merge',
            '-p',
            '{"spec":{"batching":{"maxBatchSize":8}}}',
          ]),
        1,
      );
      await step('scale to 3', () => kubectl(['scale', 'onnxmodel', 'rollout', '-n', ns, '--replicas=3']), 3);
      await step('scale to 1', () => kubectl(['scale', 'onnxmodel', 'rollout', '-n', ns, '--replicas=1']), 1);
      await step(
        'a new model version',
        () =>
          kubectl([
            'patch',
            'onnxmodel',
            'rollout',
            '-n',
            ns,
            '--type=merge',
            '-p',
            '{"spec":{"modelUri":"gs://models/efficientnet-v2/model.onnx"}}',
          ]),
        1,
      );
      await step('after', () => Promise.resolve(undefined), 1);
    } finally {
      report = await load.stop();
    }
    note(`rollout: ${report.ok} answers in ${report.durationMs} ms`);
    expect(report.failures, describeFailures(report)).to.deep.equal([]);
    for (const p of report.phases) expect(p.ok, `phase ${p.name}`).to.be.greaterThan(0);
    const d = await getJson<V1Deployment>(['deployment', 'rollout', '-n', ns]);
    expect(d.spec!.template.spec!.containers[0]!.env!.find((e) => e.name === 'MODEL_URI')?.value).to.equal(
      'gs://models/efficientnet-v2/model.onnx',
    );
  });

  it('kubectl delete pod and kubectl drain (with a PodDisruptionBudget) under load lose nothing', async () => {
    await kubectl(['scale', 'onnxmodel', 'rollout', '-n', ns, '--replicas=2']);
    await settled('rollout', 2);
    const load = new ClosedLoopLoad({
      url: await clusterIpUrl('rollout'),
      image: chelsea,
      filename: 'chelsea.jpg',
      concurrency: 4,
      accept: seedOk,
    });
    load.start();
    let report: LoadReport | undefined;
    try {
      await eventually(
        () => {
          if (load.okInPhase < 10) throw new Error('no traffic yet');
        },
        { timeoutMs: 120_000 },
      );
      load.phase('delete a serving pod');
      const victim = (await readyPods('rollout'))[0]!.metadata!.name!;
      await kubectl(['delete', 'pod', victim, '-n', ns, '--wait=true']);
      await settled('rollout', 2);

      load.phase('drain');
      // One node: the first eviction goes through, its replacement cannot be scheduled
      // (the node is cordoned), and the budget refuses to evict the last serving pod.
      const drain = await cluster.kubectl(
        [
          'drain',
          cluster.nodeName,
          `--pod-selector=${MODEL_LABEL}=rollout`,
          '--delete-emptydir-data',
          '--ignore-daemonsets',
          '--timeout=45s',
        ],
        { timeoutMs: 120_000 },
      );
      expect(drain.code, drain.stdout + drain.stderr).to.not.equal(0);
      expect(drain.stderr).to.match(/disruption budget/);
      expect(await readyPods('rollout')).to.have.length(1);
      const during = readyCondition(await getModel('rollout'));
      expect(during).to.deep.include({ status: 'False', reason: 'Unschedulable' });
      expect(during!.message).to.match(/unschedulable/i);

      load.phase('uncordon');
      await kubectl(['uncordon', cluster.nodeName]);
      await settled('rollout', 2);
    } finally {
      report = await load.stop();
      await cluster.kubectl(['uncordon', cluster.nodeName]);
    }
    note(`delete/drain: ${report.ok} answers in ${report.durationMs} ms`);
    expect(report.failures, describeFailures(report)).to.deep.equal([]);
    for (const p of report.phases) expect(p.ok, `phase ${p.name}`).to.be.greaterThan(0);
  });

  const brokenModelTitle =
    'a model that cannot load (a missing object, a corrupt one) is not Ready and says why; fixing the object heals it';
  it(brokenModelTitle, async () => {
    await gcs.upload('models', 'corrupt/model.onnx', Buffer.from('this is not an ONNX model'));
    await applyModel('missing', spec({ modelUri: 'gs://models/missing/model.onnx', service: { type: 'ClusterIP' } }));
    await applyModel('corrupt', spec({ modelUri: 'gs://models/corrupt/model.onnx', service: { type: 'ClusterIP' } }));
    const failing = (name: string, cause: RegExp) =>
      eventually(
        async () => {
          const ready = readyCondition(await getModel(name));
          if (ready?.reason !== 'ModelLoadFailed') throw new Error(`${name}: ${JSON.stringify(ready)}`);
          expect(ready.status).to.equal('False');
          expect(ready.message).to.match(cause);
          return ready.message;
        },
        { timeoutMs: 4 * 60_000, intervalMs: 1000 },
      );
    note(await failing('missing', /gs:\/\/models\/missing\/model\.onnx: object not found \(404\)/));
    note(await failing('corrupt', /not an ONNX model|protobuf|parse/i));

    const model = await readFile(join(BUILTIN_MODEL, 'model.onnx'));
    await gcs.upload('models', 'missing/model.onnx', model);
    await gcs.upload('models', 'corrupt/model.onnx', model);
    // The kubelet restarts the server with back-off (10 s, 20 s, 40 s, …): the next start finds the object.
    for (const name of ['missing', 'corrupt']) {
      await settled(name, 1, 8 * 60_000);
      // kube-proxy writes the Service's rules after the pod turns Ready (at most one sync period, 1 s, later):
      // until then the ClusterIP refuses connections, as it would for any Deployment. Only that (curl's exit 7)
      // is tried again; any answer, and any other failure, counts.
      const url = await clusterIpUrl(name);
      let answer: { stdout: string } | undefined;
      for (let attempt = 1; !answer; attempt++) {
        try {
          answer = await curlClassify(url);
        } catch (err) {
          if ((err as { code?: unknown }).code !== 7 || attempt === 20) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      const { stdout } = answer;
      expect(accepted).to.include((JSON.parse(stdout) as Seed).Label);
    }
  });
});
