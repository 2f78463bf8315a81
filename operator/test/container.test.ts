/**
 * The real operator image, built from Dockerfile.operator with podman, run as
 * its Deployment runs it (read-only root, uid 1000) against the test control
 * plane (a real kube-apiserver on 127.0.0.1, hence --network=host): it must
 * start, sync its caches, turn an OnnxModel into a Deployment and stop
 * promptly on SIGTERM. scripts/containers/build-images.sh makes the local base
 * image on first use and builds with podman's layer cache.
 *
 * When podman cannot build or run the image here the tests fail, never skip.
 * CONTAINER_TEST_VERBOSE=1 streams the scripts' and podman's progress to stderr.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DEFAULT_SERVER_IMAGE } from '../src/config.js';
import { eventually, repoRoot, sharedControlPlane, type ControlPlane } from './helpers/control-plane.js';
import { containerKubeconfig, operatorRunArgs } from './helpers/operator-container.js';
import {
  IMAGE_BUILD_TIMEOUT_MS,
  parseExports,
  run,
  sleep,
  tail,
  type Run,
} from '../../inference-server/test/helpers/podman.js';
import { freePort } from '../../scripts/testkit/free-port.js';

const CRD_NAME = 'onnxmodels.serving.onnxoperator.dev';
/** About 107 MB (distroless root, one bundled file): the bound keeps it from creeping back. */
const IMAGE_SIZE_BOUND_MB = 120;

type LogLine = Record<string, unknown> & { msg?: string };

describe('container image: onnx-operator (Dockerfile.operator, podman, real control plane)', function () {
  this.timeout(120_000);

  let env: NodeJS.ProcessEnv;
  let image: string;
  let cp: ControlPlane;
  let namespace: string;
  let workDir: string | undefined;
  let container: string | undefined;
  let port: number;

  const podman = async (args: string[], timeoutMs = 60_000): Promise<Run> => run('podman', args, { env, timeoutMs });
  const podmanOk = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await podman(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (exit ${r.code}):\n${tail(r.stderr)}`);
    return r.stdout.trim();
  };
  const kubectl = async (args: string[]): Promise<string> => {
    const r = await cp.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  };
  const rawLogs = async () => {
    if (!container) return '';
    const r = await podman(['logs', container]);
    return `${r.stdout}${r.stderr}`;
  };
  const logLines = async (): Promise<LogLine[]> =>
    (await rawLogs())
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return { msg: l };
        }
      });
  /** Polls the container's log (pino JSON lines) for a line; fails at once if the container stops. */
  const waitForLog = async (predicate: (l: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = (await logLines()).find(predicate);
      if (hit) return hit;
      const state = (
        await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', container!])
      ).stdout.trim();
      if (!state.startsWith('running'))
        throw new Error(`the operator container stopped (${state}):\n${tail(await rawLogs())}`);
      if (Date.now() > deadline) throw new Error(`no such log line after ${timeoutMs} ms:\n${tail(await rawLogs())}`);
      await sleep(250);
    }
  };
  // Never leave the container behind, even when mocha exits from under us.
  const removeSync = () => {
    if (container) spawnSync('podman', ['rm', '-f', '-t', '0', container], { env, stdio: 'ignore', timeout: 30_000 });
  };

  before('build the image and start the control plane (first run: several minutes)', async function () {
    this.timeout(IMAGE_BUILD_TIMEOUT_MS);
    const [build, plane] = await Promise.all([
      run('bash', [join(repoRoot(), 'scripts', 'containers', 'build-images.sh'), 'operator'], {
        timeoutMs: IMAGE_BUILD_TIMEOUT_MS - 10_000,
        echo: process.env.CONTAINER_TEST_VERBOSE === '1',
      }),
      sharedControlPlane(),
    ]);
    if (build.code !== 0)
      throw new Error(
        `scripts/containers/build-images.sh operator failed (exit ${build.code}); ` +
          `last lines:\n${tail(build.stderr, 60)}`,
      );
    const vars = parseExports(build.stdout);
    if (!vars.CONTAINERS_CONF || !vars.OPERATOR_IMAGE)
      throw new Error(`build-images.sh printed no image:\n${build.stdout}`);
    env = { ...process.env, ...vars };
    image = vars.OPERATOR_IMAGE;
    cp = plane;

    await kubectl(['apply', '-f', join(repoRoot(), 'crds', 'onnxmodel.yaml')]);
    await kubectl(['wait', '--for=condition=Established', `crd/${CRD_NAME}`, '--timeout=60s']);
    await eventually(() => kubectl(['get', 'onnxmodels', '-A']), { timeoutMs: 30_000 }); // discovery lags Established
  });

  before('start the container: host network, read-only root, uid 1000, kubeconfig mounted', async function () {
    this.timeout(120_000);
    process.once('exit', removeSync);
    namespace = await cp.createNamespace('container');
    // The plane's kubeconfig (inline CA and token) is root's, mode 600: hand uid 1000 its own copy.
    workDir = mkdtempSync(join(tmpdir(), 'onnx-operator-container-'));
    const kubeconfig = containerKubeconfig(cp.kubeconfigPath, workDir);
    port = await freePort();
    const name = `onnx-operator-test-${randomBytes(4).toString('hex')}`;
    await podmanOk([
      'run',
      '-d',
      '--name',
      name,
      '--read-only',
      '--user',
      '1000',
      ...operatorRunArgs(kubeconfig, port),
      // Only this test's namespace: other test files' models in the shared plane are not its business.
      '-e',
      `WATCH_NAMESPACE=${namespace}`,
      image,
    ]);
    container = name;
  });

  after(async function () {
    this.timeout(60_000);
    process.removeListener('exit', removeSync);
    if (container) await podman(['rm', '-f', '-t', '0', container]);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    if (namespace) await cp.kubectl(['delete', 'namespace', namespace, '--wait=false']);
  });

  it('runs as uid/gid 1000 and carries the OCI labels', async () => {
    const inspect = JSON.parse(await podmanOk(['image', 'inspect', image])) as {
      Config: { User?: string; Labels?: Record<string, string>; Entrypoint?: string[] };
    }[];
    const config = inspect[0]!.Config;
    expect(config.User).to.equal('1000:1000');
    expect(config.Labels).to.include({
      'org.opencontainers.image.title': 'onnx-operator',
      'org.opencontainers.image.licenses': 'Apache-2.0',
    });
    expect(config.Labels?.['org.opencontainers.image.description']).to.be.a('string').with.length.greaterThan(0);
    expect(config.Entrypoint).to.deep.equal(['node', 'dist/operator/src/main.js']);
  });

  it('starts, reaches the API server and syncs its caches', async () => {
    const started = await waitForLog((l) => l.msg === 'operator started', 60_000);
    expect(started.port).to.equal(port);
    const synced = await waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('caches synced'), 60_000);
    expect(synced.namespace).to.equal(namespace);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).to.equal(200);
    // No shell in the image: node reads its own uid.
    expect(
      await podmanOk(['exec', container!, 'node', '-e', 'process.stdout.write(String(process.getuid()))']),
    ).to.equal('1000');
  });

  it(`stays under ${IMAGE_SIZE_BOUND_MB} MB uncompressed: node, its libraries and one bundled file`, async () => {
    const bytes = Number(await podmanOk(['image', 'inspect', '--format', '{{.Size}}', image]));
    expect(bytes / 1e6, 'image size, MB').to.be.below(IMAGE_SIZE_BOUND_MB);
    const present = JSON.parse(
      await podmanOk([
        'exec',
        container!,
        'node',
        '-e',
        'process.stdout.write(JSON.stringify(["/bin/sh", "/usr/local/bin/npm", "node_modules", "dist/crds"]' +
          '.filter((p) => fs.existsSync(p))))',
      ]),
    ) as string[];
    expect(present, "the server's packages, npm or a shell in the operator image").to.deep.equal([]);
    // Bundling drops the packages' LICENSE files: their texts travel in one file instead.
    const licences = await podmanOk([
      'exec',
      container!,
      'node',
      '-e',
      'process.stdout.write(fs.readFileSync("THIRD_PARTY_LICENSES"))',
    ]);
    expect(licences).to.include('@kubernetes/client-node@').and.include('Apache License');
  });

  it('turns an OnnxModel (config/samples/minimal.yaml) into a Deployment of the server image', async function () {
    this.timeout(90_000);
    await kubectl(['apply', '-n', namespace, '-f', join(repoRoot(), 'config', 'samples', 'minimal.yaml')]);
    const deployment = await eventually(
      async () =>
        JSON.parse(await kubectl(['get', 'deployment', 'minimal', '-n', namespace, '-o', 'json'])) as {
          metadata: { ownerReferences?: { kind: string; name: string; controller?: boolean }[] };
          spec: { template: { spec: { containers: { image: string }[] } } };
        },
      { timeoutMs: 60_000, intervalMs: 500 },
    ).catch(async (err: unknown) => {
      throw new Error(`no Deployment: ${(err as Error).message}\noperator log:\n${tail(await rawLogs())}`);
    });
    const owner = deployment.metadata.ownerReferences?.find((r) => r.kind === 'OnnxModel');
    expect(owner, JSON.stringify(deployment.metadata.ownerReferences)).to.include({
      name: 'minimal',
      controller: true,
    });
    expect(deployment.spec.template.spec.containers[0]!.image).to.equal(DEFAULT_SERVER_IMAGE);
  });

  it('exits 0 promptly on SIGTERM: node (PID 1) stops its informers and exits', async function () {
    this.timeout(60_000);
    const started = Date.now();
    await podmanOk(['kill', '--signal', 'TERM', container!]);
    const code = await podmanOk(['wait', container!], 30_000);
    const elapsed = Date.now() - started;
    const out = tail(await rawLogs());
    expect(code, out).to.equal('0');
    expect(elapsed, `exit took ${elapsed} ms\n${out}`).to.be.lessThan(10_000);
    expect(out).to.match(/"signal":"SIGTERM"/);
    expect(out).to.match(/"msg":"stopped"/);
  });
});
