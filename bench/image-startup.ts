/**
 * npm run bench:images — what the images cost a user: their size uncompressed,
 * and the time from `podman run` to ready, the way Kubernetes runs them
 * (read-only root, uid 1000, /tmp as tmpfs).
 *
 *  - server: `podman run` until GET /v2/health/ready answers 200 (the built-in
 *    model loaded and warmed up; nothing to download), and until the first
 *    answer of any kind (the process listening);
 *  - operator: `podman run` against a real control plane on loopback until
 *    GET /readyz answers 200 (informers synced).
 *
 * Each is started BENCH_RUNS times (default 5) from a warm page cache; the
 * figures are min / median / max. For comparison in the same run, the server is
 * also started the same number of times as a plain process on the host
 * (node dist/inference-server/src/main.js): the difference is what the
 * container costs. BENCH_BASELINE_REF=<git ref> also builds and measures that
 * commit's images (tag :baseline), e.g. the last commit before a change to the
 * Dockerfiles.
 *
 * Writes bench/results/image-startup.json and prints a Markdown table.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseExports, run, shareWithContainerUser, tail } from '../inference-server/test/helpers/podman.js';
import { containerKubeconfig, operatorRunArgs } from '../operator/test/helpers/operator-container.js';
import { startControlPlane } from '../operator/test/helpers/control-plane.js';
import { freePort } from '../scripts/testkit/free-port.js';
import { ROOT, neutralEnv, serverMain, sleep } from './harness.js';
import { describeMachine } from './machine.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
if (!Number.isInteger(RUNS) || RUNS < 1)
  throw new Error(`BENCH_RUNS=${process.env.BENCH_RUNS}: expected a positive integer`);
const BASELINE_REF = process.env.BENCH_BASELINE_REF?.trim() || undefined;
const READY_TIMEOUT_MS = 120_000;
const POLL_MS = 10;
const RESULTS = join(ROOT, 'bench', 'results', 'image-startup.json');

interface Images {
  env: NodeJS.ProcessEnv;
  server: string;
  operator: string;
}

interface Spread {
  min: number;
  median: number;
  max: number;
}

interface ImageFigures {
  image: string;
  sizeMB: number;
  /** ms from spawning `podman run` (or node) to the first HTTP answer. */
  listeningMs?: Spread;
  /** ms from spawning `podman run` (or node) to ready. */
  readyMs: Spread;
}

const spread = (values: number[]): Spread => {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0]!, median: sorted[Math.floor(sorted.length / 2)]!, max: sorted[sorted.length - 1]! };
};

async function buildImages(root: string, tag: string): Promise<Images> {
  const r = await run('bash', [join(root, 'scripts', 'containers', 'build-images.sh')], {
    env: { ...process.env, IMAGE_TAG: tag },
    timeoutMs: 30 * 60_000,
  });
  if (r.code !== 0) throw new Error(`build-images.sh in ${root} failed (exit ${r.code}):\n${tail(r.stderr, 40)}`);
  const vars = parseExports(r.stdout);
  if (!vars.INFERENCE_SERVER_IMAGE || !vars.OPERATOR_IMAGE) throw new Error(`build-images.sh printed no images`);
  return { env: { ...process.env, ...vars }, server: vars.INFERENCE_SERVER_IMAGE, operator: vars.OPERATOR_IMAGE };
}

function imageSizeMB(env: NodeJS.ProcessEnv, image: string): number {
  const bytes = Number(
    execFileSync('podman', ['image', 'inspect', '--format', '{{.Size}}', image], { env }).toString(),
  );
  return Math.round(bytes / 1e6);
}

/** Polls url until it answers; returns ms since `since` at the first answer and at the first 200. */
async function waitUntilReady(
  url: string,
  since: number,
  alive: () => boolean,
): Promise<{ listening: number; ready: number }> {
  let listening: number | undefined;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      listening ??= performance.now() - since;
      if (res.status === 200) return { listening, ready: performance.now() - since };
    } catch {
      // not listening yet
    }
    if (!alive()) throw new Error(`${url}: the process stopped before it was ready`);
    if (performance.now() - since > READY_TIMEOUT_MS) throw new Error(`${url}: not ready after ${READY_TIMEOUT_MS} ms`);
    await sleep(POLL_MS);
  }
}

/** Starts a detached container (podman run -d returns once it is created), measures, removes it. */
async function timeContainer(
  env: NodeJS.ProcessEnv,
  runArgs: string[],
  url: string,
): Promise<{ listening: number; ready: number }> {
  const name = `onnx-bench-${randomBytes(4).toString('hex')}`;
  const started = performance.now();
  const child = spawn('podman', ['run', '--rm', '--name', name, '--read-only', '--user', '1000', ...runArgs], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  try {
    return await waitUntilReady(url, started, () => !exited);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${tail(stderr)}`, { cause: err });
  } finally {
    await run('podman', ['rm', '-f', '-t', '0', name], { env, timeoutMs: 60_000 });
    if (!exited) await new Promise((r) => child.once('exit', r));
  }
}

async function measureServer(images: Images): Promise<ImageFigures> {
  const cache = mkdtempSync(join(tmpdir(), 'onnx-bench-cache-'));
  shareWithContainerUser(cache, 0o777);
  const listening: number[] = [];
  const ready: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const port = await freePort();
      const t = await timeContainer(
        images.env,
        ['--tmpfs', '/tmp', '-v', `${cache}:/var/cache/onnx-model`, '-p', `127.0.0.1:${port}:8080`, images.server],
        `http://127.0.0.1:${port}/v2/health/ready`,
      );
      listening.push(t.listening);
      ready.push(t.ready);
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  return {
    image: images.server,
    sizeMB: imageSizeMB(images.env, images.server),
    listeningMs: spread(listening),
    readyMs: spread(ready),
  };
}

async function measureOperator(images: Images, kubeconfigPath: string): Promise<ImageFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-bench-operator-'));
  const kubeconfig = containerKubeconfig(kubeconfigPath, dir);
  const ready: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const port = await freePort();
      const t = await timeContainer(
        images.env,
        [...operatorRunArgs(kubeconfig, port), images.operator],
        `http://127.0.0.1:${port}/readyz`,
      );
      ready.push(t.ready);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { image: images.operator, sizeMB: imageSizeMB(images.env, images.operator), readyMs: spread(ready) };
}

/** The same server as a plain process on the host: what the container adds to the start. */
async function measureHostProcess(): Promise<Omit<ImageFigures, 'image' | 'sizeMB'>> {
  const listening: number[] = [];
  const ready: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const port = await freePort();
    const cache = mkdtempSync(join(tmpdir(), 'onnx-bench-cache-'));
    const started = performance.now();
    const child = spawn(process.execPath, [serverMain()], {
      env: { ...neutralEnv(), PORT: String(port), MODEL_CACHE_DIR: cache, LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    let exited = false;
    child.once('exit', () => (exited = true));
    try {
      const t = await waitUntilReady(`http://127.0.0.1:${port}/v2/health/ready`, started, () => !exited);
      listening.push(t.listening);
      ready.push(t.ready);
    } finally {
      if (!exited) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(cache, { recursive: true, force: true });
    }
  }
  return { listeningMs: spread(listening), readyMs: spread(ready) };
}

async function baselineImages(ref: string): Promise<Images> {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-bench-baseline-'));
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, ref], { stdio: 'ignore' });
  try {
    return await buildImages(dir, 'baseline');
  } finally {
    execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
  }
}

const fmt = (s: Spread | undefined) =>
  s ? `${(s.median / 1000).toFixed(2)} s (${(s.min / 1000).toFixed(2)}–${(s.max / 1000).toFixed(2)})` : '–';

async function main(): Promise<void> {
  const images = await buildImages(ROOT, 'test');
  const baseline = BASELINE_REF ? await baselineImages(BASELINE_REF) : undefined;
  const plane = await startControlPlane();
  // The operator is ready once its informers have synced, which needs the OnnxModel API.
  const crd = await plane.kubectl(['apply', '-f', join(ROOT, 'crds', 'onnxmodel.yaml')]);
  if (crd.code !== 0) throw new Error(`kubectl apply of the CRD failed: ${crd.stderr}`);
  await plane.kubectl([
    'wait',
    '--for=condition=Established',
    'crd/onnxmodels.serving.onnxoperator.dev',
    '--timeout=60s',
  ]);
  const rows: { name: string; figures: ImageFigures }[] = [];
  try {
    console.error(`timing ${RUNS} starts of each image`);
    rows.push({ name: 'inference server', figures: await measureServer(images) });
    rows.push({ name: 'operator', figures: await measureOperator(images, plane.kubeconfigPath) });
    if (baseline) {
      rows.push({ name: `inference server @ ${BASELINE_REF}`, figures: await measureServer(baseline) });
      rows.push({ name: `operator @ ${BASELINE_REF}`, figures: await measureOperator(baseline, plane.kubeconfigPath) });
    }
  } finally {
    await plane.stop();
  }
  const host = await measureHostProcess();
  const results = {
    date: new Date().toISOString(),
    machine: describeMachine(),
    runs: RUNS,
    baselineRef: BASELINE_REF ?? null,
    images: rows,
    hostProcess: host,
  };
  await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  console.log('| image | size (uncompressed) | `podman run` → listening | `podman run` → ready |');
  console.log('|---|---|---|---|');
  for (const { name, figures } of rows)
    console.log(`| ${name} | ${figures.sizeMB} MB | ${fmt(figures.listeningMs)} | ${fmt(figures.readyMs)} |`);
  console.log(`| server as a host process (no container) | – | ${fmt(host.listeningMs)} | ${fmt(host.readyMs)} |`);
  console.log(`\nmedian (min–max) of ${RUNS} starts; wrote ${RESULTS}`);
}

await main();
