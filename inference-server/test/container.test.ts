/**
 * The real container image, built from Dockerfile.server with podman and run
 * as Kubernetes runs it: read-only root, uid 1000, a writable model cache
 * volume, /tmp as tmpfs. scripts/containers/build-images.sh makes the local
 * base image on first use (Debian bookworm + this machine's Node 20) and builds
 * with podman's layer cache, so only the first run is slow (a few minutes).
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
import { readFile } from 'node:fs/promises';
import { DEFAULT_SAMPLE_IMAGE } from '../src/config/server-config.js';
import { postForm } from './helpers/server.js';
import { freePort } from '../../scripts/testkit/free-port.js';
import {
  IMAGE_BUILD_TIMEOUT_MS,
  parseExports,
  repoRoot,
  run,
  shareWithContainerUser,
  sleep,
  tail,
  type Run,
} from './helpers/podman.js';

/** About 205 MB (distroless root, the server's own production dependencies): the bound keeps it from creeping back. */
const IMAGE_SIZE_BOUND_MB = 250;
describe('container image: onnx-inference-server (Dockerfile.server, podman)', function () {
  this.timeout(120_000);

  let env: NodeJS.ProcessEnv;
  let image: string;
  let container: string | undefined;
  let cacheDir: string | undefined;
  let baseUrl: string;

  const podman = async (args: string[], timeoutMs = 60_000): Promise<Run> => run('podman', args, { env, timeoutMs });
  const podmanOk = async (args: string[], timeoutMs?: number): Promise<string> => {
    const r = await podman(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (exit ${r.code}):\n${tail(r.stderr)}`);
    return r.stdout.trim();
  };
  /** The image has no shell or coreutils: what a test inspects inside it, node reads. */
  const nodeInContainer = async (script: string) => podmanOk(['exec', container!, 'node', '-e', script]);
  const logs = async () => {
    if (!container) return '';
    const r = await podman(['logs', container]);
    return tail(`${r.stdout}${r.stderr}`);
  };
  // Never leave the container behind, even when mocha exits from under us.
  const removeSync = () => {
    if (container) spawnSync('podman', ['rm', '-f', '-t', '0', container], { env, stdio: 'ignore', timeout: 30_000 });
  };

  before('build the image (first run: base image + npm ci, several minutes)', async function () {
    this.timeout(IMAGE_BUILD_TIMEOUT_MS);
    const r = await run('bash', [join(repoRoot(), 'scripts', 'containers', 'build-images.sh'), 'server'], {
      timeoutMs: IMAGE_BUILD_TIMEOUT_MS - 10_000,
      echo: process.env.CONTAINER_TEST_VERBOSE === '1',
    });
    if (r.code !== 0)
      throw new Error(
        `scripts/containers/build-images.sh server failed (exit ${r.code}); last lines:\n${tail(r.stderr, 60)}`,
      );
    const vars = parseExports(r.stdout);
    if (!vars.CONTAINERS_CONF || !vars.INFERENCE_SERVER_IMAGE)
      throw new Error(`build-images.sh printed no image:\n${r.stdout}`);
    env = { ...process.env, ...vars };
    image = vars.INFERENCE_SERVER_IMAGE;
  });

  before('start the container: read-only root, uid 1000, cache volume, /tmp tmpfs', async function () {
    this.timeout(120_000);
    process.once('exit', removeSync);
    // The one writable path (the model cache); uid 1000 owns it as a pod's fsGroup would arrange.
    cacheDir = mkdtempSync(join(tmpdir(), 'onnx-container-cache-'));
    shareWithContainerUser(cacheDir, 0o777);
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const name = `onnx-server-test-${randomBytes(4).toString('hex')}`;
    await podmanOk([
      'run',
      '-d',
      '--name',
      name,
      '--read-only',
      '--user',
      '1000',
      '--tmpfs',
      '/tmp',
      '-v',
      `${cacheDir}:/var/cache/onnx-model`,
      '-p',
      `127.0.0.1:${port}:8080`,
      image,
    ]);
    container = name;
    // Ready once the built-in model is loaded and warmed up.
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        const res = await fetch(`${baseUrl}/v2/health/ready`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      const state = await podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', name]);
      if (!state.stdout.startsWith('running'))
        throw new Error(`the container stopped (${state.stdout.trim()}) before it was ready:\n${await logs()}`);
      if (Date.now() > deadline) throw new Error(`not ready after 90 s:\n${await logs()}`);
      await sleep(250);
    }
  });

  after(async function () {
    this.timeout(60_000);
    process.removeListener('exit', removeSync);
    if (container) await podman(['rm', '-f', '-t', '0', container]);
    if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });

  it('runs as uid/gid 1000 and carries the OCI labels', async () => {
    const inspect = JSON.parse(await podmanOk(['image', 'inspect', image])) as {
      Config: { User?: string; Labels?: Record<string, string>; Entrypoint?: string[] };
    }[];
    const config = inspect[0]!.Config;
    expect(config.User).to.equal('1000:1000');
    expect(config.Labels).to.include({
      'org.opencontainers.image.title': 'onnx-inference-server',
      'org.opencontainers.image.licenses': 'Apache-2.0',
    });
    expect(config.Labels?.['org.opencontainers.image.description']).to.be.a('string').with.length.greaterThan(0);
    expect(config.Entrypoint).to.deep.equal(['node', 'dist/inference-server/src/main.js']);
    // And the running process really is uid 1000, as PID 1.
    expect(await nodeInContainer('process.stdout.write(String(process.getuid()))')).to.equal('1000');
    expect(await nodeInContainer('process.stdout.write(fs.readFileSync("/proc/1/cmdline"))')).to.match(
      /^node\0dist\/inference-server\/src\/main\.js/,
    );
  });

  it(`stays under ${IMAGE_SIZE_BOUND_MB} MB uncompressed (onnxruntime's other platforms pruned)`, async () => {
    const bytes = Number((await podmanOk(['image', 'inspect', '--format', '{{.Size}}', image])).trim());
    expect(bytes / 1e6, 'image size, MB').to.be.below(IMAGE_SIZE_BOUND_MB);
    const bins = await nodeInContainer(
      'process.stdout.write(fs.readdirSync("node_modules/onnxruntime-node/bin/napi-v6").join(" "))',
    );
    expect(bins.trim().split(/\s+/)).to.deep.equal(['linux']);
  });

  it('carries only what the server runs: no shell, no operator dependencies, no dev tooling', async () => {
    const present = JSON.parse(
      await nodeInContainer(
        'process.stdout.write(JSON.stringify(["/bin/sh", "/usr/bin/apt-get", "/usr/local/bin/npm",' +
          ' "node_modules/@kubernetes/client-node", "node_modules/typescript", "node_modules/mocha"]' +
          '.filter((p) => fs.existsSync(p))))',
      ),
    ) as string[];
    expect(present).to.deep.equal([]);
    // …and the server's own dependencies resolve from where main.js imports them.
    await nodeInContainer(
      'for (const m of ["sharp", "onnxruntime-node", "express", "busboy", "@google-cloud/storage"]) require(m)',
    );
  });

  it('allocates with jemalloc (glibc malloc kept large refused bodies resident)', async () => {
    const maps = await nodeInContainer('process.stdout.write(fs.readFileSync("/proc/1/maps"))');
    expect(maps).to.match(/libjemalloc\.so\.2/);
    expect(
      await nodeInContainer(
        'process.stdout.write(fs.readFileSync("/proc/1/environ", "utf8").split("\\0")' +
          '.filter((v) => v.startsWith("MALLOC_CONF=")).join())',
      ),
    ).to.match(/background_thread:true/);
  });

  it('classifies a real photo with the built-in pretrained model (a cat)', async () => {
    const photo = await readFile(DEFAULT_SAMPLE_IMAGE);
    const res = await postForm(
      `${baseUrl}/predict/image`,
      { image_file: photo },
      { filename: 'chelsea.jpg', type: 'image/jpeg' },
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const body = res.body as { Label: string; Score: string };
    expect(['tabby', 'tiger cat', 'Egyptian cat']).to.include(body.Label);
    expect(Number(body.Score)).to.be.greaterThan(0.2);
  });

  it('keeps its root read-only: only the model cache volume and /tmp are writable', async () => {
    const root = await podman(['exec', container!, 'node', '-e', 'fs.writeFileSync("/app/x", "")']);
    expect(root.code, 'writing under /app should fail').to.not.equal(0);
    expect(root.stderr).to.match(/read-only file system/i);
    await nodeInContainer(
      'for (const p of ["/var/cache/onnx-model/probe", "/tmp/probe"]) { fs.writeFileSync(p, ""); fs.rmSync(p); }',
    );
  });

  it('exits 0 promptly on SIGTERM: node (PID 1) drains and stops, well inside the grace period', async function () {
    this.timeout(60_000);
    const started = Date.now();
    await podmanOk(['kill', '--signal', 'TERM', container!]);
    // podman stop's grace period would be 10 s (Kubernetes': 30 s): a process that ignores SIGTERM as PID 1
    // takes all of it.
    const code = await podmanOk(['wait', container!], 30_000);
    const elapsed = Date.now() - started;
    const out = await logs();
    expect(code, out).to.equal('0');
    expect(elapsed, `exit took ${elapsed} ms\n${out}`).to.be.lessThan(10_000);
    expect(out).to.match(/"reason":"SIGTERM"/);
    expect(out).to.match(/"msg":"stopped"/);
  });
});
