/**
 * npm run bench:peers: our inference server beside the Python servers users run
 * instead, on the same model and the same requests, under the loads users run.
 *
 * The model is the Keras-layout ResNet-50 (scripts/models, resnet50Keras:
 * image_input NHWC float 0–255, preprocessing in the graph, softmax), the
 * layout of the seed's model. The servers, one at a time (never two alive), each
 * waited for until it answers a prediction, warmed up, and left to go idle
 * (its process tree's CPU near zero) before every measurement:
 *
 *   ours         node dist/inference-server/src/main.js as shipped: MODEL_URI,
 *                PORT, HOST and no other setting (no admission or batching knob
 *                is inherited); BENCH_SERVER_MAIN points at another build.
 *   seed-fastapi bench/peers/seed_fastapi.py under uvicorn --workers 2.
 *   litserve     bench/peers/litserve_server.py (batching 8, 5 ms).
 *   kserve       bench/peers/kserve_server.py, KServe's defaults, the seed's
 *                multipart /predict/image declared on KServe's FastAPI app.
 *   kserve-v1    the same server through KServe's v1 protocol, as KServe users
 *                send images: base64 in JSON to /v1/models/seed:predict.
 *
 * Loads:
 *   a. The seed's Locust scenario: 150 users, constant(1) wait, spawn rate 10/s,
 *      the 224×224 JPEG, with_resize=False, with_post_process=False, no
 *      Retry-After handling, BENCH_LOCUST_SECONDS (default 60).
 *   b. Closed loop (autocannon, no back-off) at 16, 64 and 256 connections,
 *      BENCH_SECONDS each (default 20), with_post_process=True.
 * Per load and server: answered (2xx) req/s, failed % (non-2xx, socket errors
 * and timeouts over all), p50/p99 of answered requests, the server's process
 * tree CPU and peak memory. Plus the raw in-process limit (bench/pipeline.ts,
 * best of batch 1/2/4/8, BENCH_RAW_SECONDS per point, default 5).
 *
 * BENCH_SERVERS (comma list, default all five) picks servers; BENCH_SKIP_LOCUST=1
 * and BENCH_SKIP_RAW=1 skip those parts. Requests time out after 60 s.
 * Writes bench/results/serving-core.json and prints Markdown.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ensureModels } from '../scripts/models/generate.js';
import { effectiveCpus } from '../inference-server/src/runtime/cpu-limit.js';
import { freePort } from '../scripts/testkit/free-port.js';
import {
  closedLoop,
  cpuBetween,
  memorySampler,
  multipart,
  neutralEnv,
  processTree,
  ROOT,
  runLocust,
  serverMain,
  sleep,
  startServer,
  treeCpu,
  type LoadPoint,
  type LocustResult,
  type Payload,
  type TreeMemory,
} from './harness.js';
import { describeMachine } from './machine.js';
import { rawPipeline, seedImage, type RawResult } from './pipeline.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const LOCUST_SECONDS = Number(process.env.BENCH_LOCUST_SECONDS ?? 60);
const RAW_SECONDS = Number(process.env.BENCH_RAW_SECONDS ?? 5);
const CONNECTIONS = [16, 64, 256];
const LOCUST_USERS = 150;
const LOCUST_SPAWN_RATE = 10;
const KSERVE_MODEL = 'seed';
/** A server must answer its first prediction within this (model load, worker start). */
const START_TIMEOUT_MS = 180_000;
/**
 * Idle: the server's process tree under this much CPU (% of one core) over two
 * 0.5 s windows in a row, or its own idle level plus IDLE_MARGIN_PERCENT when
 * that is higher (LitServe's workers poll their queues: ~20 % doing nothing).
 * Any inference keeps at least one core busy, so a backlog still shows.
 */
const IDLE_CPU_PERCENT = 35;
const IDLE_MARGIN_PERCENT = 15;
const IDLE_TIMEOUT_MS = 120_000;
const RESULTS = join(ROOT, 'bench/results/serving-core.json');

// ---------------------------------------------------------------- servers

type ServerId = 'ours' | 'seed-fastapi' | 'litserve' | 'kserve' | 'kserve-v1';
const ALL_SERVERS: ServerId[] = ['ours', 'seed-fastapi', 'litserve', 'kserve', 'kserve-v1'];

interface Running {
  url: string;
  pid: number;
  stop: () => Promise<void>;
  /** Where a peer's output went (kept when something went wrong). */
  log?: string;
}

interface ServerSpec {
  id: ServerId;
  label: string;
  /** What is started, for the report (paths relative to the repository). */
  command: string[];
  env: Record<string, string>;
  /** The request's path and body for the closed loop (with_post_process=True). */
  path: string;
  payload: Payload;
  /** bench/locustfile.py's environment for this server, on top of the scenario's. */
  locustEnv: Record<string, string>;
  /** The Locust row of this request. */
  locustName: string;
  start: () => Promise<Running>;
}

/** The body of a KServe v1 request: the image base64 in JSON. */
function kserveV1(image: Buffer, postProcess: boolean): Payload {
  const body = JSON.stringify({
    instances: [{ image: { b64: image.toString('base64') }, with_resize: false, with_post_process: postProcess }],
  });
  return { body: Buffer.from(body), contentType: 'application/json' };
}

/**
 * Starts a Python peer with the neutral environment plus `env`, its output to a
 * log file, and resolves once `probe` answers 200 (a prediction: uvicorn and
 * LitServe accept connections before their workers have loaded the model).
 */
async function startPeer(
  id: string,
  argv: string[],
  env: Record<string, string>,
  url: string,
  probe: { path: string; payload: Payload },
): Promise<Running> {
  const log = join(tmpdir(), `serving-core-${id}-${process.pid}.log`);
  const fd = openSync(log, 'w');
  let child: ChildProcess;
  try {
    // No __pycache__ in the work tree (uvicorn imports bench/peers/seed_fastapi.py as a module).
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT,
      env: { ...neutralEnv(), PYTHONDONTWRITEBYTECODE: '1', ...env },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      resolve();
    }),
  );
  child.on('error', (err) => {
    exited = err.message;
  });
  const running: Running = { url, pid: child.pid!, stop: () => stopTree(child, exit), log };
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (;;) {
    const status = await post(url + probe.path, probe.payload).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return running;
    if (exited !== undefined || performance.now() > deadline) {
      await running.stop();
      const tail = readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n');
      throw new Error(
        `${id} ${exited ?? `did not answer a prediction within ${START_TIMEOUT_MS / 1000} s`} ` +
          `(last lines of ${log}):\n${tail}`,
      );
    }
    await sleep(500);
  }
}

/** SIGTERM to the root, then waits for the whole tree to be gone (SIGKILL, by PID, to what is left after 30 s). */
async function stopTree(child: ChildProcess, exit: Promise<void>): Promise<void> {
  const pid = child.pid!;
  const tree = processTree(pid);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const alive = () =>
    tree.filter((p) => {
      try {
        // A zombie's stat says Z; it holds no resources.
        return !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
  const deadline = performance.now() + 30_000;
  while (alive().length > 0 && performance.now() < deadline) await sleep(100);
  for (const p of alive()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await Promise.race([exit, sleep(5000)]);
}

function post(url: string, payload: Payload): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    body: new Uint8Array(payload.body),
    headers: { 'content-type': payload.contentType },
    signal: AbortSignal.timeout(60_000),
  });
}

function specs(modelPath: string, python: string, image: Buffer): ServerSpec[] {
  const seed = multipart(image, { postProcess: true });
  const probe = { path: '/predict/image', payload: seed };
  const rel = (p: string) => relative(ROOT, p) || p;
  const main = serverMain();
  const seedLocust = { env: {}, name: '/predict/image' };
  /** A Python peer serving the seed's multipart route, started by `args(port)` on a free port. */
  const seedPeer = (
    id: ServerId,
    label: string,
    env: Record<string, string>,
    args: (port: string) => string[],
  ): ServerSpec => ({
    id,
    label,
    command: args('PORT'),
    env,
    path: '/predict/image',
    payload: seed,
    locustEnv: seedLocust.env,
    locustName: seedLocust.name,
    start: async () => {
      const port = await freePort();
      return startPeer(id, args(String(port)), env, `http://127.0.0.1:${port}`, probe);
    },
  });
  return [
    {
      id: 'ours',
      label: 'ours (as shipped)',
      command: [process.execPath, rel(main)],
      env: { MODEL_URI: modelPath, PORT: '0', HOST: '127.0.0.1' },
      path: '/predict/image',
      payload: seed,
      locustEnv: seedLocust.env,
      locustName: seedLocust.name,
      start: () => startServer(modelPath, {}, neutralEnv(), main),
    },
    seedPeer('seed-fastapi', 'seed FastAPI (uvicorn --workers 2)', { MODEL_PATH: modelPath }, (port) => [
      python,
      '-m',
      'uvicorn',
      'seed_fastapi:app',
      '--app-dir',
      'bench/peers',
      '--host',
      '127.0.0.1',
      '--port',
      port,
      '--workers',
      '2',
    ]),
    seedPeer('litserve', 'LitServe (batch 8, 5 ms)', {}, (port) => [
      python,
      'bench/peers/litserve_server.py',
      modelPath,
      port,
    ]),
    ...(['kserve', 'kserve-v1'] as const).map((id): ServerSpec => {
      const args = (port: string) => [
        python,
        'bench/peers/kserve_server.py',
        modelPath,
        port,
        '--model_name',
        KSERVE_MODEL,
      ];
      const v1 = id === 'kserve-v1';
      return {
        id,
        label: v1 ? 'KServe (v1 JSON, base64)' : 'KServe (multipart route)',
        command: args('PORT'),
        env: {},
        path: v1 ? `/v1/models/${KSERVE_MODEL}:predict` : '/predict/image',
        payload: v1 ? kserveV1(image, true) : seed,
        locustEnv: v1 ? { LOCUST_REQUEST: 'kserve-v1', LOCUST_KSERVE_MODEL: KSERVE_MODEL } : {},
        locustName: v1 ? `/v1/models/${KSERVE_MODEL}:predict` : '/predict/image',
        start: async () => {
          const port = await freePort();
          return startPeer(id, args(String(port)), {}, `http://127.0.0.1:${port}`, probe);
        },
      };
    }),
  ];
}

// ---------------------------------------------------------------- measuring

/** Waits until the server's process tree is (nearly) idle: the last load's abandoned requests are done. */
async function waitIdle(pid: number, idleLevelPercent = 0): Promise<{ waitedMs: number; idle: boolean }> {
  const threshold = Math.max(IDLE_CPU_PERCENT, idleLevelPercent + IDLE_MARGIN_PERCENT);
  const started = performance.now();
  let quiet = 0;
  while (performance.now() - started < IDLE_TIMEOUT_MS) {
    const before = treeCpu(pid);
    const t = performance.now();
    await sleep(500);
    const percent = (100 * cpuBetween(before, treeCpu(pid))) / ((performance.now() - t) / 1000);
    quiet = percent < threshold ? quiet + 1 : 0;
    if (quiet >= 2) return { waitedMs: Math.round(performance.now() - started), idle: true };
  }
  return { waitedMs: Math.round(performance.now() - started), idle: false };
}

interface Measured {
  load: string;
  /** Answered (2xx) per second. */
  okPerSecond: number;
  /** Non-2xx, socket errors and timeouts over all requests. */
  failedRate: number;
  /** Of answered requests. */
  p50Ms: number;
  p99Ms: number;
  serverCpuPercent: number | null;
  peakMemory: TreeMemory;
  /** How long the server took to go idle before this load started. */
  idleWaitMs: number;
  idleBefore: boolean;
  detail: LoadPoint | LocustResult | { skipped: string };
}

interface ServerResult {
  id: ServerId;
  label: string;
  command: string;
  env: Record<string, string>;
  request: string;
  sampleBody?: string;
  startSeconds?: number;
  idleCpuPercent?: number;
  peakMemory?: TreeMemory;
  loads: Measured[];
  error?: string;
  /** The server's output, kept when it failed. */
  log?: string;
}

async function measureServer(spec: ServerSpec): Promise<ServerResult> {
  const result: ServerResult = {
    id: spec.id,
    label: spec.label,
    command: spec.command.map((a) => a.replace(ROOT, '')).join(' '),
    env: Object.fromEntries(Object.entries(spec.env).map(([k, v]) => [k, v])),
    request: `POST ${spec.path} (${spec.payload.contentType.split(';')[0]}, ${spec.payload.body.length} bytes)`,
    loads: [],
  };
  process.stderr.write(`${spec.label}: starting...\n`);
  const t0 = performance.now();
  let server: Running;
  try {
    server = await spec.start();
  } catch (err) {
    result.error = `failed to start: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`${spec.label}: ${result.error}\n`);
    return result;
  }
  result.startSeconds = Math.round((performance.now() - t0) / 100) / 10;
  const memory = memorySampler(server.pid);
  try {
    const sample = await post(server.url + spec.path, spec.payload);
    result.sampleBody = `${sample.status} ${(await sample.text()).slice(0, 200)}`;
    if (sample.status !== 200 || !result.sampleBody.includes('"Label"'))
      throw new Error(`the sample answer has no Label: ${result.sampleBody}`);
    await waitIdle(server.pid); // the other workers may still be loading
    await closedLoop(server, 4, spec.payload, 3, spec.path); // warm-up, discarded
    let idle = await waitIdle(server.pid);
    {
      const before = treeCpu(server.pid);
      await sleep(2000);
      result.idleCpuPercent = Math.round((100 * cpuBetween(before, treeCpu(server.pid))) / 2);
    }
    const idleLevel = result.idleCpuPercent;
    memory.reset();

    if (process.env.BENCH_SKIP_LOCUST !== '1') {
      process.stderr.write(`${spec.label}: Locust, ${LOCUST_USERS} users, ${LOCUST_SECONDS} s...\n`);
      const before = treeCpu(server.pid);
      const t = performance.now();
      const r = await runLocust(server.url, {
        users: LOCUST_USERS,
        spawnRate: LOCUST_SPAWN_RATE,
        seconds: LOCUST_SECONDS,
        name: spec.locustName,
        env: {
          LOCUST_WAIT_SECONDS: '1',
          LOCUST_HONOUR_RETRY_AFTER: '0',
          LOCUST_POST_PROCESS: 'False',
          LOCUST_SPLIT_FAILURES: '1',
          LOCUST_TIMEOUT_SECONDS: '60',
          ...spec.locustEnv,
        },
      });
      const wall = (performance.now() - t) / 1000;
      const cpu = (100 * cpuBetween(before, treeCpu(server.pid))) / wall;
      const peak = memory.reset();
      if ('skipped' in r) {
        result.loads.push({
          load: 'locust',
          okPerSecond: NaN,
          failedRate: NaN,
          p50Ms: NaN,
          p99Ms: NaN,
          serverCpuPercent: null,
          peakMemory: peak,
          idleWaitMs: idle.waitedMs,
          idleBefore: idle.idle,
          detail: r,
        });
      } else {
        const answered = r.answered!;
        result.loads.push({
          load: 'locust',
          okPerSecond: answered.requestsPerSecond,
          failedRate: r.requests > 0 ? r.failures / r.requests : 0,
          p50Ms: answered.p50Ms,
          p99Ms: answered.p99Ms,
          serverCpuPercent: Math.round(cpu),
          peakMemory: peak,
          idleWaitMs: idle.waitedMs,
          idleBefore: idle.idle,
          detail: r,
        });
      }
      idle = await waitIdle(server.pid, idleLevel);
    }

    for (const c of CONNECTIONS) {
      memory.reset();
      process.stderr.write(`${spec.label}: closed loop, ${c} connections, ${SECONDS} s...\n`);
      const p = await closedLoop(server, c, spec.payload, SECONDS, spec.path);
      result.loads.push({
        load: `closed-${c}`,
        okPerSecond: p.requestsPerSecond,
        failedRate: p.errorRate,
        p50Ms: p.p50Ms,
        p99Ms: p.p99Ms,
        serverCpuPercent: p.serverCpuPercent,
        peakMemory: memory.reset(),
        idleWaitMs: idle.waitedMs,
        idleBefore: idle.idle,
        detail: p,
      });
      idle = await waitIdle(server.pid, idleLevel);
    }
  } catch (err) {
    result.error = `failed while measuring: ${err instanceof Error ? err.message : String(err)}`;
    process.stderr.write(`${spec.label}: ${result.error}\n`);
  } finally {
    result.peakMemory = memory.stop();
    await server.stop();
    if (server.log && result.error) result.log = server.log;
    else if (server.log) await rm(server.log, { force: true });
  }
  return result;
}

// ---------------------------------------------------------------- report

const LOADS: { id: string; label: string }[] = [
  { id: 'locust', label: `Locust: ${LOCUST_USERS} users, 1 s wait, post-process off` },
  ...CONNECTIONS.map((c) => ({ id: `closed-${c}`, label: `closed loop, ${c} connections` })),
];

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const ms = (n: number) => (Number.isFinite(n) ? String(Math.round(n)) : '–');
const pct = (n: number) => (Number.isFinite(n) ? `${(100 * n).toFixed(n > 0 && n < 0.001 ? 2 : 1)} %` : '–');

interface Limit {
  imagesPerSecond: number;
  batchSize: number;
  inFlight: number;
}

function markdown(results: ServerResult[], limit: Limit | null): string {
  const out: string[] = [];
  const m = describeMachine();
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores (${m.effectiveCpus} usable), ${m.memoryGiB} GiB, ` +
      `Linux ${m.kernel}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}. ` +
      'Model: ResNet-50-shaped, Keras layout (resnet50-keras.onnx). ' +
      'Each cell: answered req/s · failed % · p99 ms of answered.',
    '',
  );
  out.push(`| load | ${results.map((r) => r.label).join(' | ')} |`, `|---|${results.map(() => '---').join('|')}|`);
  for (const load of LOADS) {
    const cells = results.map((r) => {
      if (r.error && r.loads.length === 0) return r.error.startsWith('failed to start') ? 'failed to start' : 'failed';
      const x = r.loads.find((l) => l.load === load.id);
      if (!x) return '–';
      if ('skipped' in x.detail) return 'skipped';
      return `${f1(x.okPerSecond)} · ${pct(x.failedRate)} · ${ms(x.p99Ms)}`;
    });
    out.push(`| ${load.label} | ${cells.join(' | ')} |`);
  }
  out.push('');
  out.push(
    '| server | load | ok/s | failed | p50 ms | p99 ms | server CPU | peak RSS (PSS) MiB |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const r of results) {
    for (const x of r.loads) {
      if ('skipped' in x.detail) continue;
      out.push(
        `| ${r.label} | ${x.load} | ${f1(x.okPerSecond)} | ${pct(x.failedRate)} | ${ms(x.p50Ms)} | ${ms(x.p99Ms)} | ` +
          `${x.serverCpuPercent ?? '?'} % | ${x.peakMemory.rssMiB} (${x.peakMemory.pssMiB}) |`,
      );
    }
  }
  out.push('');
  const samples = results.filter((r) => r.sampleBody).map((r) => `${r.id} \`${r.sampleBody}\``);
  if (samples.length > 0) out.push(`Sample answers (with_post_process=True): ${samples.join('; ')}.`, '');
  for (const line of ratioLines(results, limit)) out.push(`- ${line}`);
  const problems = results.filter((r) => r.error).map((r) => `${r.label}: ${r.error!.split('\n')[0]}`);
  const notIdle = results.flatMap((r) =>
    r.loads.filter((l) => !l.idleBefore).map((l) => `${r.label} was not idle before ${l.load}`),
  );
  if (problems.length + notIdle.length > 0) out.push('', ...[...problems, ...notIdle].map((p) => `**${p}**`));
  return out.join('\n');
}

function ratioLines(results: ServerResult[], limit: Limit | null): string[] {
  const ours = results.find((r) => r.id === 'ours');
  const lines: string[] = [];
  if (!ours || ours.loads.length === 0) return ['ratios: our server was not measured'];
  const get = (r: ServerResult, load: string) => r.loads.find((l) => l.load === load && !('skipped' in l.detail));
  for (const peer of results.filter((r) => r.id !== 'ours')) {
    const parts = LOADS.map((load) => {
      const a = get(ours, load.id);
      const b = get(peer, load.id);
      if (!a || !b) return `${load.id} –`;
      return `${load.id} ${b.okPerSecond > 0 ? `${(a.okPerSecond / b.okPerSecond).toFixed(2)}×` : '∞'}`;
    });
    lines.push(`ours ÷ ${peer.label} (answered req/s): ${parts.join(', ')}`);
  }
  if (limit) {
    const best = Math.max(...ours.loads.map((l) => l.okPerSecond).filter(Number.isFinite));
    const perLoad = ours.loads.map((l) => `${l.load} ${(l.okPerSecond / limit.imagesPerSecond).toFixed(2)}`).join(', ');
    lines.push(
      `ours ÷ raw in-process limit: ${f1(best)} / ${f1(limit.imagesPerSecond)} img/s ` +
        `(batch ${limit.batchSize}, ${limit.inFlight} in flight) = ${(best / limit.imagesPerSecond).toFixed(2)}; ` +
        `per load: ${perLoad}`,
    );
  }
  return lines;
}

// ---------------------------------------------------------------- main

function peersPython(): string {
  const r = spawnSync('bash', [join(ROOT, 'bench/peers/venv.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const python = r.stdout?.trim().split('\n').pop();
  if (r.status !== 0 || !python) throw new Error(`bench/peers/venv.sh failed (exit ${r.status})`);
  return python;
}

function pipVersions(python: string): Record<string, string> {
  const r = spawnSync(
    python,
    [
      '-c',
      'import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in ' +
        '["fastapi", "uvicorn", "litserve", "kserve", "onnxruntime", "pillow", "numpy"]}))',
    ],
    { encoding: 'utf8' },
  );
  try {
    return JSON.parse(r.stdout) as Record<string, string>;
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const wanted = (process.env.BENCH_SERVERS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean) ?? ALL_SERVERS) as ServerId[];
  for (const w of wanted)
    if (!ALL_SERVERS.includes(w))
      throw new Error(`BENCH_SERVERS: unknown server ${w} (known: ${ALL_SERVERS.join(', ')})`);
  const { resnet50Keras: modelPath } = await ensureModels(undefined, { only: ['resnet50Keras'] });
  const image = await seedImage();
  const started = Date.now();
  process.stderr.write(`machine: ${JSON.stringify(machine)}\n`);

  let raw: RawResult[] = [];
  let limit: Limit | null = null;
  if (process.env.BENCH_SKIP_RAW !== '1') {
    process.stderr.write(`raw in-process pipeline, batch 1/2/4/8, ${RAW_SECONDS} s per point...\n`);
    raw = await rawPipeline(
      modelPath,
      image,
      effectiveCpus(),
      [1, 2, 4, 8].flatMap((batchSize) => [
        { batchSize, inFlight: 1 },
        { batchSize, inFlight: 2 },
      ]),
      RAW_SECONDS,
    );
    const best = raw.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
    limit = { imagesPerSecond: best.imagesPerSecond, batchSize: best.batchSize, inFlight: best.inFlight };
  }

  const needsPython = wanted.some((w) => w !== 'ours');
  const python = needsPython ? peersPython() : '';
  const results: ServerResult[] = [];
  for (const spec of specs(modelPath, python, image).filter((s) => wanted.includes(s.id)))
    results.push(await measureServer(spec));

  const report = {
    date: new Date().toISOString(),
    machine,
    note: 'A shared 2-core machine: the servers, autocannon (in this process) and Locust share the same cores.',
    model: {
      file: 'resnet50-keras.onnx',
      path: modelPath,
      layout: 'image_input [batch,224,224,3] float32 0–255, preprocessing in the graph, softmax output `predictions`',
    },
    image: 'bench/fixtures/seed-224.jpg (224×224 JPEG), with_resize=False',
    loads: {
      locust: {
        users: LOCUST_USERS,
        spawnRate: LOCUST_SPAWN_RATE,
        seconds: LOCUST_SECONDS,
        wait: 'constant(1)',
        postProcess: false,
        honourRetryAfter: false,
        requestTimeoutSeconds: 60,
      },
      closedLoop: {
        tool: 'autocannon',
        connections: CONNECTIONS,
        seconds: SECONDS,
        postProcess: true,
        requestTimeoutSeconds: 60,
      },
      raw: { secondsPerPoint: RAW_SECONDS, threads: effectiveCpus() },
    },
    /**
     * Our server inherits only these variables of the bench's environment (plus MODEL_URI, PORT, HOST); the peers the
     * same plus their own.
     */
    inheritedEnv: Object.keys(neutralEnv()),
    env: {
      BENCH_SECONDS: SECONDS,
      BENCH_LOCUST_SECONDS: LOCUST_SECONDS,
      BENCH_RAW_SECONDS: RAW_SECONDS,
      BENCH_SERVERS: wanted.join(','),
      BENCH_SERVER_MAIN: process.env.BENCH_SERVER_MAIN ?? null,
    },
    pythonPackages: needsPython ? pipVersions(python) : {},
    raw,
    limit,
    servers: results,
    ratios: ratioLines(results, limit),
    wallSeconds: Math.round((Date.now() - started) / 1000),
    markdown: '',
  };
  report.markdown = markdown(results, limit);
  await writeFile(RESULTS, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${report.markdown}\n`);
}

await main();
