/**
 * The install manifests (config/default) on a real kube-apiserver: they render,
 * apply server-side, grant the operator's service account exactly what the
 * operator does (kubectl auth can-i), and are enough for the real operator
 * process authenticated AS that service account (a minted token, not the admin)
 * to win the leader Lease and reconcile config/samples/minimal.yaml through every
 * verb it has: create/patch Deployment, Service, HPA and PDB, delete the HPA and
 * PDB again, patch the status, record events and release the Lease on SIGTERM.
 *
 * A second control plane runs with the OwnerReferencesPermissionEnforcement
 * admission plugin (OpenShift and some hardened clusters enable it): there,
 * setting blockOwnerDeletion on a child needs `update` on onnxmodels/finalizers.
 *
 * The operator's Deployment itself stays Pending here (no kubelet; operator/test/node runs it
 * as pods on a real node): its pods are
 * created, which shows the namespace's restricted Pod Security level admits them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { parse, parseAllDocuments, stringify } from 'yaml';
import {
  eventually,
  repoRoot,
  sharedControlPlane,
  startControlPlane,
  type ControlPlane,
} from './helpers/control-plane.js';

const ROOT = repoRoot();
const OPERATOR_MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const NS = 'onnx-operator-system';
const SA = 'onnx-operator';
const SA_USER = `system:serviceaccount:${NS}:${SA}`;
const LEASE = 'onnx-operator-leader';
const CRD = 'onnxmodels.serving.onnxoperator.dev';
const OM = 'onnxmodels.serving.onnxoperator.dev';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; generation?: number; uid?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}
interface Container {
  name: string;
  image: string;
  env?: { name: string; value?: string }[];
}
interface Deployment extends K8sObject {
  spec: { replicas?: number; template: { spec: { serviceAccountName?: string; containers: Container[] } } };
}
interface Condition {
  type: string;
  status: string;
  reason?: string;
}
interface Model extends K8sObject {
  status?: { observedGeneration?: number; selector?: string; conditions?: Condition[] };
}
interface ManagerEnv {
  LEADER_ELECTION: string;
  POD_NAMESPACE: string;
  SERVER_IMAGE: string;
  PORT: string;
}

async function ok(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const getJson = async <T>(cp: ControlPlane, args: string[]): Promise<T> =>
  JSON.parse(await ok(cp, ['get', ...args, '-o', 'json'])) as T;

/** The rendered install, as objects. */
async function render(cp: ControlPlane): Promise<K8sObject[]> {
  const out = await ok(cp, ['kustomize', join(ROOT, 'config', 'default')]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** The operator container's env in the rendered Deployment: what the pods would run with. */
function managerEnv(objects: K8sObject[]): ManagerEnv {
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === SA) as Deployment | undefined;
  if (!deployment) throw new Error('config/default renders no onnx-operator Deployment');
  const env = Object.fromEntries(
    (deployment.spec.template.spec.containers[0]!.env ?? []).map((e) => [e.name, e.value]),
  );
  for (const key of ['LEADER_ELECTION', 'SERVER_IMAGE', 'PORT'] as const) {
    if (!env[key]) throw new Error(`the operator container sets no ${key}`);
  }
  // POD_NAMESPACE comes from the downward API: the Deployment's namespace.
  return {
    LEADER_ELECTION: env.LEADER_ELECTION!,
    POD_NAMESPACE: deployment.metadata.namespace ?? '',
    SERVER_IMAGE: env.SERVER_IMAGE!,
    PORT: env.PORT!,
  };
}

async function install(cp: ControlPlane): Promise<void> {
  await ok(cp, ['apply', '--server-side', '-k', join(ROOT, 'config', 'default')]);
  await ok(cp, ['wait', '--for=condition=Established', `crd/${CRD}`, '--timeout=60s']);
}

/**
 * A kubeconfig for the same server and CA as the admin's, authenticating with a token minted for the operator's
 * service account.
 */
async function serviceAccountKubeconfig(cp: ControlPlane, dir: string): Promise<string> {
  const token = (await ok(cp, ['create', 'token', SA, '-n', NS, '--duration=1h'])).trim();
  expect(token.split('.')).to.have.length(3, 'a JWT');
  const admin = parse(await readFile(cp.kubeconfigPath, 'utf8')) as {
    'current-context': string;
    contexts: { name: string; context: { cluster: string } }[];
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const clusterName = admin.contexts.find((c) => c.name === admin['current-context'])!.context.cluster;
  const cluster = admin.clusters.find((c) => c.name === clusterName)!.cluster;
  const path = join(dir, 'onnx-operator.kubeconfig');
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'cluster', cluster }],
      users: [{ name: SA, user: { token } }],
      contexts: [{ name: SA, context: { cluster: 'cluster', user: SA, namespace: NS } }],
      'current-context': SA,
    }),
    { mode: 0o600 },
  );
  return path;
}

// ------------------------------------------------------------------ the operator process

type LogLine = Record<string, unknown> & { msg?: string; level?: number };

interface Operator {
  child: ChildProcess;
  logs: LogLine[];
  waitFor(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<number | null>;
  tail(): string;
}

/** Operators still running when the test process exits (a crash, mocha --exit) are killed with it. */
const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

function startOperator(env: Record<string, string>): Operator {
  const child = spawn(process.execPath, [OPERATOR_MAIN], {
    // Nothing of the developer's kubeconfig or settings leaks in.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const raw: string[] = [];
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  createInterface({ input: child.stdout }).on('line', (text) => {
    raw.push(text);
    try {
      logs.push(JSON.parse(text) as LogLine);
    } catch {
      logs.push({ msg: text });
    }
  });
  running.add(child);
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let exited = false;
  void closed.then(() => {
    exited = true;
    running.delete(child);
  });
  const tail = () =>
    `--- operator log (last 40 lines) ---\n${raw.slice(-40).join('\n')}\n--- stderr ---\n${stderr.slice(-3000)}`;
  return {
    child,
    logs,
    tail,
    async waitFor(pred, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs.find(pred);
        if (hit) return hit;
        if (exited) throw new Error(`the operator exited before the awaited log line\n${tail()}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for a log line\n${tail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await closed;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Log lines that say the API server refused the operator something. */
/**
 * An RBAC refusal. The operator watches every namespace of the shared control plane, so it also
 * meets other test files' namespaces while they are deleted; the API server refuses writes there
 * with a 403 that is about the namespace's lifecycle, not about permissions.
 */
const forbidden = (l: LogLine) => {
  const text = JSON.stringify(l);
  return /\b403\b|forbidden/i.test(text) && !/because it is being terminated/.test(text);
};

// ------------------------------------------------------------------ tests

describe('install manifests (config/default) on a real API server', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let objects: K8sObject[];
  let dir: string;

  before(async function () {
    this.timeout(900_000);
    cp = await sharedControlPlane();
    dir = await mkdtemp(join(tmpdir(), 'onnx-install-'));
  });

  after(async function () {
    this.timeout(120_000);
    if (dir) await rm(dir, { recursive: true, force: true });
    if (!cp) return;
    // Not the CRD: other test files share this plane and install it themselves.
    await cp.kubectl([
      'delete',
      'clusterrolebinding/onnx-operator',
      'clusterrole/onnx-operator',
      `namespace/${NS}`,
      '--ignore-not-found',
      '--wait=false',
    ]);
  });

  const renderTitle =
    'kubectl kustomize config/default renders the CRD, RBAC and the operator in onnx-operator-system, images pinned';
  it(renderTitle, async () => {
    objects = await render(cp);
    const ids = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(ids).to.deep.equal([
      'ClusterRole/onnx-operator',
      'ClusterRoleBinding/onnx-operator',
      `CustomResourceDefinition/${CRD}`,
      'Deployment/onnx-operator',
      `Namespace/${NS}`,
      'Role/onnx-operator-leader-election',
      'RoleBinding/onnx-operator-leader-election',
      'ServiceAccount/onnx-operator',
    ]);
    const clusterScoped = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objects)
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).to.equal(clusterScoped.has(o.kind) ? undefined : NS);
    for (const binding of objects.filter((o) => o.kind.endsWith('Binding'))) {
      expect((binding as unknown as { subjects: unknown[] }).subjects).to.deep.equal([
        { kind: 'ServiceAccount', name: SA, namespace: NS },
      ]);
    }
    const deployment = objects.find((o) => o.kind === 'Deployment') as Deployment;
    const container = deployment.spec.template.spec.containers[0]!;
    expect(deployment.spec.template.spec.serviceAccountName).to.equal(SA);
    expect(container.image, 'a registry path to the onnx-operator image').to.match(
      /^\S+\/onnx-operator(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/,
    );
    expect(container.image).to.not.match(/:latest$/);
    const env = managerEnv(objects);
    expect(env.SERVER_IMAGE, 'SERVER_IMAGE follows the inference-server image (image-fields.yaml)').to.match(
      /\/inference-server[:@]/,
    );
    expect(env.LEADER_ELECTION).to.equal('true');
    expect(env.POD_NAMESPACE).to.equal(NS);
  });

  const applyTitle =
    'kubectl apply --server-side -k config/default succeeds, twice, ' +
    'and the restricted namespace admits the operator pods';
  it(applyTitle, async () => {
    await install(cp);
    // idempotent: a re-install (an upgrade with nothing new) changes nothing and conflicts with nothing
    await install(cp);
    const ns = await getJson<K8sObject>(cp, ['namespace', NS]);
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).to.equal('restricted');
    const deployment = await getJson<Deployment>(cp, ['deployment', SA, '-n', NS]);
    expect(deployment.spec.replicas).to.equal(2);
    // No kubelet: the pods stay Pending, but the ReplicaSet creates them (Pod Security admission would refuse them
    // otherwise).
    await eventually(
      async () => {
        const pods = await getJson<{ items: unknown[] }>(cp, [
          'pods',
          '-n',
          NS,
          '-l',
          'app.kubernetes.io/name=onnx-operator',
        ]);
        expect(pods.items).to.have.length(2);
      },
      { timeoutMs: 60_000 },
    );
    const events = await ok(cp, ['get', 'events', '-n', NS, '--field-selector', 'reason=FailedCreate', '-o', 'name']);
    expect(events.trim(), 'no FailedCreate events').to.equal('');
  });

  const samplesTitle =
    'the samples pass the API server validation (schema and CEL rules): ' +
    'kubectl apply --dry-run=server -k config/samples';
  it(samplesTitle, async () => {
    const ns = await cp.createNamespace('install-samples');
    try {
      const out = await ok(cp, [
        'apply',
        '--server-side',
        '--dry-run=server',
        '-n',
        ns,
        '-k',
        join(ROOT, 'config', 'samples'),
      ]);
      expect(out).to.match(/onnxmodel\.serving\.onnxoperator\.dev\/minimal serverside-applied \(server dry run\)/);
      expect(out).to.match(/onnxmodel\.serving\.onnxoperator\.dev\/resnet50 serverside-applied \(server dry run\)/);
    } finally {
      await cp.kubectl(['delete', 'namespace', ns, '--wait=false']);
    }
  });

  describe(`RBAC: kubectl auth can-i --as=${SA_USER}`, () => {
    /** [verb, resource, scope]: scope is a namespace, '*' for all namespaces, or '' for cluster scope. */
    type Check = [verb: string, resource: string, scope: string, extra?: string[]];
    const allowed: Check[] = [
      ['list', OM, '*'],
      ['watch', OM, '*'],
      ['get', OM, 'team-a'],
      ['patch', OM, 'team-a', ['--subresource=status']],
      // Only checked where OwnerReferencesPermissionEnforcement is on: children set blockOwnerDeletion.
      ['update', OM, 'team-a', ['--subresource=finalizers']],
      ...(['get', 'list', 'watch', 'create', 'patch'] as const).flatMap((v): Check[] => [
        [v, 'deployments.apps', '*'],
        [v, 'services', '*'],
      ]),
      ...(['get', 'list', 'watch', 'create', 'patch', 'delete'] as const).flatMap((v): Check[] => [
        [v, 'horizontalpodautoscalers.autoscaling', 'team-a'],
        [v, 'poddisruptionbudgets.policy', 'team-a'],
      ]),
      // Read only, for the status: why a model's replicas are not ready.
      ...(['get', 'list', 'watch'] as const).map((v): Check => [v, 'pods', '*']),
      ['create', 'events', 'team-a'],
      ['get', `leases.coordination.k8s.io/${LEASE}`, NS],
      ['update', `leases.coordination.k8s.io/${LEASE}`, NS],
      ['create', 'leases.coordination.k8s.io', NS],
    ];
    const denied: Check[] = [
      // Children: the garbage collector deletes them with their OnnxModel; the operator never updates (PUTs) them.
      ['delete', 'deployments.apps', 'team-a'],
      ['update', 'deployments.apps', 'team-a'],
      ['delete', 'services', 'team-a'],
      ['deletecollection', 'horizontalpodautoscalers.autoscaling', 'team-a'],
      // The OnnxModel's spec is the user's: no create, update, patch or delete; status by patch only.
      ['create', OM, 'team-a'],
      ['update', OM, 'team-a'],
      ['patch', OM, 'team-a'],
      ['delete', OM, 'team-a'],
      ['update', OM, 'team-a', ['--subresource=status']],
      // Nothing else in the namespaces it serves.
      ['get', 'secrets', 'team-a'],
      ['list', 'secrets', '*'],
      ['get', 'secrets', NS],
      ['get', 'configmaps', 'team-a'],
      ['create', 'pods', 'team-a'],
      ['delete', 'pods', 'team-a'],
      ['get', 'pods', 'team-a', ['--subresource=log']],
      ['create', 'pods', 'team-a', ['--subresource=exec']],
      ['create', 'serviceaccounts', 'team-a', ['--subresource=token']],
      ['update', 'events', 'team-a'],
      ['patch', 'deployments.apps', 'team-a', ['--subresource=scale']],
      // Leases: only its own, only in its own namespace.
      ['create', 'leases.coordination.k8s.io', 'default'],
      ['create', 'leases.coordination.k8s.io', 'kube-system'],
      ['get', 'leases.coordination.k8s.io/kube-controller-manager', 'kube-system'],
      ['update', 'leases.coordination.k8s.io/someone-else', NS],
      ['delete', `leases.coordination.k8s.io/${LEASE}`, NS],
      ['list', 'leases.coordination.k8s.io', NS],
      // Nothing cluster-admin-ish.
      ['*', '*', '*'],
      ['create', 'namespaces', ''],
      ['delete', 'namespaces', ''],
      ['update', 'nodes', ''],
      ['create', 'customresourcedefinitions.apiextensions.k8s.io', ''],
      ['update', `customresourcedefinitions.apiextensions.k8s.io/${CRD}`, ''],
      ['create', 'clusterroles.rbac.authorization.k8s.io', ''],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io', ''],
      ['create', 'rolebindings.rbac.authorization.k8s.io', NS],
      ['escalate', 'clusterroles.rbac.authorization.k8s.io', ''],
      ['bind', 'clusterroles.rbac.authorization.k8s.io', ''],
      ['impersonate', 'users', ''],
      ['impersonate', 'serviceaccounts', NS],
      ['create', 'certificatesigningrequests.certificates.k8s.io', ''],
      ['create', 'mutatingwebhookconfigurations.admissionregistration.k8s.io', ''],
    ];

    async function canI([verb, resource, scope, extra = []]: Check): Promise<boolean> {
      const where = scope === '*' ? ['--all-namespaces'] : scope === '' ? [] : ['-n', scope];
      const r = await cp.kubectl(['auth', 'can-i', verb, resource, ...extra, ...where, `--as=${SA_USER}`]);
      const answer = r.stdout.trim();
      if (!['yes', 'no'].includes(answer.split('\n')[0]!.trim()) || (r.code !== 0 && r.code !== 1)) {
        throw new Error(
          `kubectl auth can-i ${verb} ${resource} ${extra.join(' ')}: exit ${r.code}: ${answer} ${r.stderr}`,
        );
      }
      return r.code === 0;
    }
    const show = ([verb, resource, scope, extra = []]: Check) =>
      `${verb} ${resource}${extra.length ? ` ${extra.join(' ')}` : ''} ` +
      `${scope === '*' ? 'in all namespaces' : scope === '' ? '(cluster)' : `in ${scope}`}`;

    async function answers(checks: Check[]): Promise<string[]> {
      const out: string[] = [];
      for (let i = 0; i < checks.length; i += 8) {
        const batch = checks.slice(i, i + 8);
        const results = await Promise.all(batch.map(canI));
        batch.forEach((c, j) => out.push(`${results[j] ? 'yes' : 'no '} ${show(c)}`));
      }
      return out;
    }

    it('yes for every verb the operator uses', async () => {
      const got = await answers(allowed);
      expect(
        got.filter((l) => l.startsWith('no ')),
        'denied, but the operator needs it',
      ).to.deep.equal([]);
    });

    it('no for everything it must not do', async () => {
      const got = await answers(denied);
      expect(
        got.filter((l) => l.startsWith('yes')),
        'allowed, but the operator must not',
      ).to.deep.equal([]);
    });

    it('kubectl auth can-i --list shows no resource beyond those', async () => {
      const expected = new Set([
        OM,
        `${OM}/status`,
        `${OM}/finalizers`,
        'deployments.apps',
        'services',
        'horizontalpodautoscalers.autoscaling',
        'poddisruptionbudgets.policy',
        'pods',
        'events',
        'leases.coordination.k8s.io',
        // Every authenticated user's (system:basic-user): asking the API server about oneself.
        'selfsubjectreviews.authentication.k8s.io',
        'selfsubjectaccessreviews.authorization.k8s.io',
        'selfsubjectrulesreviews.authorization.k8s.io',
      ]);
      for (const scope of [NS, 'team-a']) {
        const out = await ok(cp, ['auth', 'can-i', '--list', '-n', scope, `--as=${SA_USER}`]);
        const rows = out.trim().split('\n').slice(1);
        const resources = rows.map((r) => r.trim().split(/\s+/)[0]!).filter((r) => !r.startsWith('['));
        expect(resources, `the table parsed:\n${out}`).to.include('services');
        const unexpected = resources.filter((r) => !expected.has(r));
        expect(unexpected, `extra resources in ${scope}:\n${out}`).to.deep.equal([]);
        if (scope !== NS) expect(out, `leases outside ${NS}`).to.not.match(/^leases/m);
      }
    });
  });

  describe('the operator process, authenticated as its service account', () => {
    let op: Operator;
    let ns: string;
    let env: ManagerEnv;

    before(async () => {
      objects ??= await render(cp);
      env = managerEnv(objects);
      ns = await cp.createNamespace('install-op');
    });

    after(async function () {
      this.timeout(60_000);
      await op?.stop();
      if (ns) await cp.kubectl(['delete', 'namespace', ns, '--wait=false']);
    });

    it('a minted token authenticates as the service account, not as an admin', async () => {
      const kubeconfig = await serviceAccountKubeconfig(cp, dir);
      const whoami = await ok(cp, [
        'auth',
        'whoami',
        `--kubeconfig=${kubeconfig}`,
        '-o',
        'jsonpath={.status.userInfo.username}',
      ]);
      expect(whoami).to.equal(SA_USER);
      const secrets = await cp.kubectl(['get', 'secrets', '-n', NS, `--kubeconfig=${kubeconfig}`]);
      expect(secrets.code).to.equal(1);
      expect(secrets.stderr).to.match(/forbidden/);
    });

    const leaderLeaseTitle =
      'wins the leader Lease with the manifests env (LEADER_ELECTION=true, POD_NAMESPACE, SERVER_IMAGE) ' +
      'and syncs its caches cluster-wide';
    it(leaderLeaseTitle, async () => {
      const kubeconfig = join(dir, 'onnx-operator.kubeconfig');
      op = startOperator({
        KUBECONFIG: kubeconfig,
        LEADER_ELECTION: env.LEADER_ELECTION,
        POD_NAMESPACE: env.POD_NAMESPACE,
        POD_NAME: 'onnx-operator-install-test',
        SERVER_IMAGE: env.SERVER_IMAGE,
        // The manifests' PORT is 8081; any free port here, as several test processes may run.
        PORT: '0',
      });
      const leader = await op.waitFor((l) => l.msg === 'became leader', 60_000);
      expect(leader.lease).to.equal(`${NS}/${LEASE}`);
      const synced = await op.waitFor((l) => l.msg === 'caches synced; reconciling', 60_000);
      expect(synced.namespace).to.equal('(all)');
      const lease = await getJson<{ spec: { holderIdentity: string } }>(cp, ['lease', LEASE, '-n', NS]);
      expect(lease.spec.holderIdentity).to.equal(leader.identity);
    });

    const minimalSampleTitle =
      'reconciles config/samples/minimal.yaml: Deployment and Service appear, status and events are written';
    it(minimalSampleTitle, async () => {
      await ok(cp, ['apply', '-n', ns, '-f', join(ROOT, 'config', 'samples', 'minimal.yaml')]);
      const deployment = await eventually(() => getJson<Deployment>(cp, ['deployment', 'minimal', '-n', ns]), {
        timeoutMs: 30_000,
      });
      const server =
        deployment.spec.template.spec.containers.find((c) => c.name === 'server') ??
        deployment.spec.template.spec.containers[0]!;
      expect(server.image).to.equal(env.SERVER_IMAGE);
      await eventually(() => getJson(cp, ['service', 'minimal', '-n', ns]), { timeoutMs: 30_000 });
      const model = await eventually(
        async () => {
          const m = await getJson<Model>(cp, ['onnxmodel', 'minimal', '-n', ns]);
          expect(m.status?.observedGeneration, 'status.observedGeneration').to.equal(m.metadata.generation);
          expect(m.status?.conditions?.map((c) => c.type)).to.include('Ready');
          return m;
        },
        { timeoutMs: 30_000 },
      );
      expect(model.status!.selector).to.be.a('string').and.not.equal('');
      await eventually(
        async () => {
          const events = await ok(cp, [
            'get',
            'events',
            '-n',
            ns,
            '--field-selector',
            'involvedObject.name=minimal,reason=Created',
            '-o',
            'name',
          ]);
          expect(events.trim().split('\n').filter(Boolean).length).to.be.at.least(2); // Deployment and Service
        },
        { timeoutMs: 30_000 },
      );
    });

    it('creates and deletes a PodDisruptionBudget and an HPA as the spec gains and loses them', async () => {
      const patch = (p: unknown) =>
        ok(cp, ['patch', 'onnxmodel', 'minimal', '-n', ns, '--type=merge', '-p', JSON.stringify(p)]);
      const present = async (kind: string, want: boolean) => {
        const out = await ok(cp, ['get', kind, 'minimal', '-n', ns, '--ignore-not-found', '-o', 'name']);
        expect(out.trim() !== '', `${kind}/minimal ${want ? 'created' : 'deleted'}`).to.equal(want);
      };
      await patch({
        spec: { podDisruptionBudget: { minAvailable: 1 }, autoscaling: { minReplicas: 1, maxReplicas: 3 } },
      });
      await eventually(() => present('poddisruptionbudget', true), { timeoutMs: 30_000 });
      await eventually(() => present('horizontalpodautoscaler.autoscaling', true), { timeoutMs: 30_000 });
      await patch({ spec: { podDisruptionBudget: null, autoscaling: null } });
      await eventually(() => present('poddisruptionbudget', false), { timeoutMs: 30_000 });
      await eventually(() => present('horizontalpodautoscaler.autoscaling', false), { timeoutMs: 30_000 });
    });

    it('was refused nothing, and releases the Lease on SIGTERM', async () => {
      expect(op.logs.filter(forbidden), op.tail()).to.deep.equal([]);
      const mine = (l: LogLine) => typeof l.key === 'string' && l.key.startsWith(`${ns}/`);
      expect(
        op.logs.filter((l) => l.msg === 'reconcile failed; will retry' && mine(l)),
        op.tail(),
      ).to.deep.equal([]);
      expect(
        op.logs.filter((l) => l.msg === 'lease update failed'),
        op.tail(),
      ).to.deep.equal([]);
      const code = await op.stop();
      expect(code, op.tail()).to.equal(0);
      expect(
        op.logs.some((l) => l.msg === 'released leadership'),
        op.tail(),
      ).to.equal(true);
      const lease = await getJson<{ spec: { holderIdentity?: string } }>(cp, ['lease', LEASE, '-n', NS]);
      expect(lease.spec.holderIdentity ?? '').to.equal('');
    });
  });

  describe('with the OwnerReferencesPermissionEnforcement admission plugin (OpenShift, hardened clusters)', () => {
    let strict: ControlPlane | undefined;
    let op: Operator | undefined;

    before(async function () {
      this.timeout(900_000);
      strict = await startControlPlane({
        env: { CP_APISERVER_ARGS: '--enable-admission-plugins=OwnerReferencesPermissionEnforcement' },
      });
    });

    after(async function () {
      this.timeout(120_000);
      await op?.stop();
      await strict?.stop();
    });

    it('the operator may still set blockOwnerDeletion on the children it creates', async () => {
      const plane = strict!;
      await install(plane);
      const ns = await plane.createNamespace('install-orpe');
      const sub = await mkdtemp(join(dir, 'orpe-'));
      const kubeconfig = await serviceAccountKubeconfig(plane, sub);
      op = startOperator({
        KUBECONFIG: kubeconfig,
        LEADER_ELECTION: 'true',
        POD_NAMESPACE: NS,
        SERVER_IMAGE: managerEnv(objects ?? (await render(plane))).SERVER_IMAGE,
        PORT: '0',
      });
      await op.waitFor((l) => l.msg === 'caches synced; reconciling', 60_000);
      await ok(plane, ['apply', '-n', ns, '-f', join(ROOT, 'config', 'samples', 'minimal.yaml')]);
      const model = await eventually(
        async () => {
          const m = await getJson<Model>(plane, ['onnxmodel', 'minimal', '-n', ns]);
          expect(m.status?.conditions?.length, 'status written').to.be.greaterThan(0);
          return m;
        },
        { timeoutMs: 30_000 },
      );
      const ready = model.status!.conditions!.find((c) => c.type === 'Ready');
      expect(ready?.reason, `${JSON.stringify(ready)}\n${op.tail()}`).to.not.equal('ReconcileError');
      const deployment = await getJson<
        Deployment & { metadata: { ownerReferences?: { blockOwnerDeletion?: boolean }[] } }
      >(plane, ['deployment', 'minimal', '-n', ns]);
      expect(deployment.metadata.ownerReferences?.[0]?.blockOwnerDeletion).to.equal(true);
      expect(op.logs.filter(forbidden), op.tail()).to.deep.equal([]);
    });
  });
});
