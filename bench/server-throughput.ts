/**
 * npm run bench: the raw in-process pipeline (the limit) beside the HTTP server
 * under a real load generator, for the ResNet-50-shaped model and the built-in default model. Writes
 * bench/results/server-throughput.json and prints a Markdown table.
 *
 * BENCH_SECONDS (default 15) sets each measurement's length.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ensureModels } from '../scripts/models/generate.js';
import { DEFAULT_MODEL_PATH } from '../inference-server/src/config/server-config.js';
import { effectiveCpus } from '../inference-server/src/runtime/cpu-limit.js';
import { describeMachine, peakRssMiB } from './machine.js';
import { benchImage, rawPipeline } from './pipeline.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONNECTIONS = [1, 4, 16, 32];
const RESULTS = fileURLToPath(new URL('../../bench/results/server-throughput.json', import.meta.url));

interface LoadResult {
  connections: number;
  requestsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  non2xx: number;
}

function multipart(image: Buffer): { body: Buffer; contentType: string } {
  const boundary = 'benchboundary7MA4YWxkTrZu0gW';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image_file"; filename="bench.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
    image,
    Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="with_resize"\r\n\r\nFalse\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The server as users run it (its default configuration, access log included), on a free port. */
async function startServer(modelPath: string): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const main = fileURLToPath(new URL('../inference-server/src/main.js', import.meta.url));
  const child = spawn(process.execPath, [main], { env: { ...process.env, MODEL_URI: modelPath, PORT: '0', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'listening' && entry.url) resolve(entry.url);
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  while ((await fetch(`${url}/v2/health/ready`).then((r) => r.status, () => 0)) !== 200) await new Promise((r) => setTimeout(r, 100));
  return {
    url,
    pid: child.pid!,
    stop: () => new Promise((resolve) => {
      child.on('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

async function load(url: string, connections: number, body: Buffer, contentType: string, seconds: number): Promise<LoadResult> {
  const r = await autocannon({ url: `${url}/predict/image`, method: 'POST', connections, duration: seconds, body, headers: { 'content-type': contentType } });
  return {
    connections,
    // Only answered requests count: a fast 503 is not throughput.
    requestsPerSecond: (r['2xx'] ?? 0) / r.duration,
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

interface ModelBench {
  model: string;
  path: string;
  raw: Awaited<ReturnType<typeof rawPipeline>>;
  served: LoadResult[];
  serverPeakRssMiB: number | null;
  saturationRatio: number;
}

/** The limit (raw pipeline) and the server under load for one model. */
async function benchModel(model: string, path: string, image: Buffer, threads: number): Promise<ModelBench> {
  process.stderr.write(`${model}: raw pipeline (${SECONDS}s per point)...\n`);
  const raw = await rawPipeline(path, image, threads, [1, 2, 4], SECONDS);
  const limit = Math.max(...raw.map((r) => r.imagesPerSecond));
  const server = await startServer(path);
  const { body, contentType } = multipart(image);
  const served: LoadResult[] = [];
  let rss: number | null = null;
  try {
    await load(server.url, 4, body, contentType, 3); // warm-up, discarded
    for (const c of CONNECTIONS) {
      process.stderr.write(`${model}: server at ${c} connections...\n`);
      served.push(await load(server.url, c, body, contentType, SECONDS));
    }
  } finally {
    rss = peakRssMiB(server.pid);
    await server.stop();
  }
  const best = Math.max(...served.map((s) => s.requestsPerSecond));
  return { model, path, raw, served, serverPeakRssMiB: rss, saturationRatio: best / limit };
}

function table(b: ModelBench): string[] {
  const limit = Math.max(...b.raw.map((r) => r.imagesPerSecond));
  const out = [`**${b.model}**`, '', '| raw pipeline, images in flight | images/s | mean latency ms |', '|---|---|---|'];
  for (const r of b.raw) out.push(`| ${r.concurrency} | ${r.imagesPerSecond.toFixed(1)} | ${r.meanLatencyMs.toFixed(1)} |`);
  out.push('', '| server, connections | req/s | p50 ms | p90 ms | p99 ms | errors | % of raw limit |', '|---|---|---|---|---|---|---|');
  for (const s of b.served) out.push(`| ${s.connections} | ${s.requestsPerSecond.toFixed(1)} | ${s.p50Ms} | ${s.p90Ms} | ${s.p99Ms} | ${s.errors + s.non2xx} | ${((100 * s.requestsPerSecond) / limit).toFixed(0)}% |`);
  out.push('', `Server peak RSS: ${b.serverPeakRssMiB ?? '?'} MiB. Saturation: ${(100 * b.saturationRatio).toFixed(1)}% of the raw pipeline.`, '');
  return out;
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const { resnet50 } = await ensureModels(undefined, { only: ['resnet50'] });
  const image = await benchImage();
  const threads = effectiveCpus();
  process.stderr.write(`machine: ${JSON.stringify(machine)}\n`);
  const models = [
    await benchModel('resnet50-shaped (25.5 M parameters, generated)', resnet50, image, threads),
    await benchModel(`the built-in default (${basename(dirname(DEFAULT_MODEL_PATH))})`, DEFAULT_MODEL_PATH, image, threads),
  ];
  const report = { date: new Date().toISOString(), request: '224×224 JPEG, with_resize=False', machine, threads, secondsPerPoint: SECONDS, models };
  await writeFile(RESULTS, `${JSON.stringify(report, null, 2)}\n`);
  const out = [`Machine: ${machine.cpuModel}, ${machine.cores} cores (${machine.effectiveCpus} usable), ${machine.memoryGiB} GiB, Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, sharp ${machine.sharp}`, ''];
  for (const m of models) out.push(...table(m));
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
