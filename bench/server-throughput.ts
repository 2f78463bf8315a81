/**
 * npm run bench: the raw in-process pipeline (the limit) beside the HTTP server
 * under real load generators, for the ResNet-50-shaped model and the built-in
 * default model. Every request is the seed's: a 224×224 JPEG
 * (bench/fixtures/seed-224.jpg) posted to /predict/image with with_resize=False.
 *
 *  1. The limit: decode + preprocess + session.run in-process at batch sizes 1, 2, 4, 8,
 *     with one session on every CPU and with one session per CPU.
 *  2. The server as shipped (it queues, nothing is shed) under autocannon at 1,
 *     4, 16, 64 connections, batching off (MAX_BATCH_SIZE=1) and on (the
 *     default, 8), and batching on with SESSIONS=2.
 *  3. The server under an open-loop client at 80 % of the saturation throughput
 *     and at 4× it: as shipped, with SESSIONS=2, and in SLO mode
 *     (MAX_QUEUE_MS=auto); then SLO mode under a retry storm (autocannon at 64
 *     connections resends at once, ignoring Retry-After), for what a refusal costs.
 *  4. Locust (bench/locustfile.py) headless against a local server.
 *  5. bench/results/throughput.svg (bench/chart.ts).
 *
 * Writes bench/results/server-throughput.json and prints Markdown tables.
 * BENCH_SECONDS (default 8) sets each server measurement's length,
 * BENCH_RAW_SECONDS (default BENCH_SECONDS/2) each raw-pipeline point's,
 * BENCH_LOCUST_SECONDS (default 15) the Locust run's; BENCH_SKIP_LOCUST=1 skips it.
 * BENCH_SERVER_MAIN points it at another build's main.js. What it shares with
 * bench/serving-core.ts (server start, autocannon, Locust, /proc) is in bench/harness.ts.
 */
import http from 'node:http';
import { basename, dirname, join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { ensureModels } from '../scripts/models/generate.js';
import { DEFAULT_MODEL_PATH } from '../inference-server/src/config/server-config.js';
import { effectiveCpus } from '../inference-server/src/runtime/cpu-limit.js';
import { scrape } from '../scripts/testkit/prometheus.js';
import { writeChart } from './chart.js';
import {
  closedLoop,
  multipart,
  ROOT,
  runLocust,
  sleep,
  startServer,
  type LoadPoint,
  type LocustResult,
  type Payload,
  type Server,
} from './harness.js';
import { describeMachine, peakRssMiB, type Machine } from './machine.js';
import { rawPipeline, seedImage, type RawPoint, type RawResult } from './pipeline.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const RAW_SECONDS = Number(process.env.BENCH_RAW_SECONDS ?? Math.max(2, SECONDS / 2));
const LOCUST_SECONDS = Number(process.env.BENCH_LOCUST_SECONDS ?? 15);
const LOCUST_USERS = 16;
const CONNECTIONS = [1, 4, 16, 64];
const BATCH_ON = 8;
const OVERLOAD_FACTOR = 4;
/** Connections the open-loop client may open: enough that it never throttles itself at 4× overload. */
const OPEN_LOOP_SOCKETS = 256;
/** The retry storm: closed-loop connections that resend as soon as they are answered, 503 or not. */
const STORM_CONNECTIONS = 64;
/** The SLO-mode configuration the storm runs against. */
const SLO_LABEL = 'SLO mode (MAX_QUEUE_MS=auto)';
const RESULTS = join(ROOT, 'bench/results/server-throughput.json');
const CHART = join(ROOT, 'bench/results/throughput.svg');

/** A server metric's value (one without labels) from /metrics. */
async function metric(server: Server, name: string): Promise<number> {
  const value = (await scrape(`${server.url}/metrics`)).get(name);
  if (value === undefined) throw new Error(`${name} not in /metrics`);
  return value;
}

/**
 * Waits until the server has nothing in flight. A load generator stopping at its
 * deadline abandons requests the server still runs; the next measurement must
 * not start behind that backlog.
 */
async function waitIdle(server: Server): Promise<void> {
  const deadline = performance.now() + 60_000;
  while ((await metric(server, 'http_requests_in_flight')) > 0) {
    if (performance.now() > deadline) throw new Error('the server did not become idle within 60 s');
    await sleep(50);
  }
  await sleep(250);
}

// ---------------------------------------------------------------- open loop: own client

interface StatusStats {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface OpenLoopResult {
  /** Requests started per second, on a fixed schedule whatever the answers. */
  offeredPerSecond: number;
  seconds: number;
  sent: number;
  /** 2xx answered within the sending window, per second. */
  acceptedPerSecond: number;
  byStatus: Record<string, StatusStats>;
  /** Socket errors and timeouts. */
  errors: number;
  /** 200s whose body had no Label. */
  badBodies: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function stats(latencies: number[]): StatusStats {
  const s = [...latencies].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: s.length,
    p50Ms: r(percentile(s, 50)),
    p90Ms: r(percentile(s, 90)),
    p99Ms: r(percentile(s, 99)),
    maxMs: r(s[s.length - 1] ?? NaN),
  };
}

/**
 * Starts requests at a constant rate (evenly spaced, like wrk2 or k6's
 * constant-arrival-rate) whatever the answers, over keep-alive connections (at
 * most `maxSockets`), and records each answer's latency by status, so accepted
 * and refused requests can be told apart. autocannon cannot: it keeps only 2xx
 * latencies, and its rate limit releases each second's quota in one burst.
 */
async function openLoop(
  url: string,
  rate: number,
  seconds: number,
  maxSockets: number,
  payload: Payload,
): Promise<OpenLoopResult> {
  const target = new URL('/predict/image', url);
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const latencies = new Map<number, number[]>();
  let errors = 0;
  let badBodies = 0;
  let acceptedInWindow = 0;
  const total = Math.max(1, Math.round(rate * seconds));
  const started = performance.now();
  const windowEnd = started + seconds * 1000;
  const send = () =>
    new Promise<void>((resolve) => {
      const t = performance.now();
      const req = http.request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          headers: { 'content-type': payload.contentType, 'content-length': payload.body.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const now = performance.now();
            const status = res.statusCode ?? 0;
            if (!latencies.has(status)) latencies.set(status, []);
            latencies.get(status)!.push(now - t);
            if (status >= 200 && status < 300) {
              if (now <= windowEnd) acceptedInWindow++;
              if (!Buffer.concat(chunks).toString('utf8').includes('"Label"')) badBodies++;
            }
            resolve();
          });
          res.on('error', () => {
            errors++;
            resolve();
          });
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(payload.body);
    });
  const requests: Promise<void>[] = [];
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
      while (requests.length < due) requests.push(send());
      if (requests.length >= total) done();
      else setTimeout(tick, Math.max(0, (requests.length / rate) * 1000 - (performance.now() - started)));
    };
    tick();
  });
  await Promise.all(requests);
  agent.destroy();
  const byStatus: Record<string, StatusStats> = {};
  for (const [status, l] of [...latencies].sort((a, b) => a[0] - b[0])) byStatus[String(status)] = stats(l);
  return {
    offeredPerSecond: rate,
    seconds,
    sent: requests.length,
    acceptedPerSecond: acceptedInWindow / seconds,
    byStatus,
    errors,
    badBodies,
  };
}

// ---------------------------------------------------------------- Locust

/** bench/locustfile.py as README shows it: LOCUST_USERS users without think time, honouring Retry-After. */
function seedLocust(url: string): Promise<LocustResult | { skipped: string }> {
  if (process.env.BENCH_SKIP_LOCUST === '1') return Promise.resolve({ skipped: 'BENCH_SKIP_LOCUST=1' });
  return runLocust(url, { users: LOCUST_USERS, spawnRate: LOCUST_USERS, seconds: LOCUST_SECONDS });
}

// ---------------------------------------------------------------- one model

interface Sweep {
  batching: 'off' | 'on';
  sessions: number;
  env: Record<string, string>;
  points: LoadPoint[];
  serverPeakRssMiB: number | null;
}

interface Limit {
  imagesPerSecond: number;
  batchSize: number;
  inFlight: number;
  sessions: number;
  threads: number;
}

/** One server configuration under the open-loop client. */
interface OpenLoopConfig {
  label: string;
  env: Record<string, string>;
  /** p50 at one connection (closed loop): what a lone request costs in this configuration. */
  singleRequestMs: number;
  /** Images the opt-in limits allow after the warm-up (the admission_limit metric; Infinity when none is set). */
  admissionLimit: number;
  /** The queue budget in force, in ms (SLO mode), else null. */
  queueBudgetMs: number | null;
  at80: OpenLoopResult;
  overload: OpenLoopResult;
  /** SLO mode only: clients that resend at once whatever the answer. */
  storm?: Storm;
}

/** SLO mode under clients that ignore Retry-After. */
interface Storm {
  point: LoadPoint;
  refusedPerSecond: number;
  /** Server CPU per answered request in the same configuration without refusals (the 16-connection sweep point), ms. */
  cpuPerAnswerMs: number | null;
  /** (CPU of the storm − answers × cpuPerAnswerMs) / refusals, ms: what one refusal costs. */
  cpuPerRefusalMs: number | null;
}

interface ModelReport {
  model: string;
  short: string;
  path: string;
  raw: RawResult[];
  limit: Limit;
  sweeps: Sweep[];
  /** The best answered req/s of the batching-on, one-session sweep: the rate the open-loop runs are scaled from. */
  saturationPerSecond: number;
  /** The best answered req/s of any sweep over the limit. */
  saturationRatio: number;
  openLoop: OpenLoopConfig[];
  locust?: LocustResult | { skipped: string };
}

const RAW_POINTS: RawPoint[] = [1, 2, 4, 8].flatMap((batchSize) => [
  { batchSize, inFlight: 1 },
  { batchSize, inFlight: 2 },
]);

/** The sweeps: batching off and on with one session, and on with one session per CPU. */
const SWEEPS: { batching: 'off' | 'on'; sessions: number }[] = [
  { batching: 'off', sessions: 1 },
  { batching: 'on', sessions: 1 },
  { batching: 'on', sessions: 2 },
];

/** The open-loop configurations: as shipped (queue), one session per CPU, and SLO mode. */
const OPEN_LOOP_CONFIGS: { label: string; env: Record<string, string> }[] = [
  { label: 'as shipped (queue)', env: {} },
  { label: 'SESSIONS=2', env: { SESSIONS: '2' } },
  { label: SLO_LABEL, env: { MAX_QUEUE_MS: 'auto' } },
];

/**
 * The sweeps, one configuration after another (each server alone on the
 * machine: with all three alive and measured in turn, the measured one lost up
 * to a quarter of its CPU at 64 connections). Every measurement starts once the
 * server has nothing in flight.
 */
async function sweeps(
  path: string,
  configs: { batching: 'off' | 'on'; sessions: number }[],
  payload: Payload,
  label: string,
): Promise<Sweep[]> {
  const out: Sweep[] = [];
  for (const { batching, sessions } of configs) {
    const env = { MAX_BATCH_SIZE: String(batching === 'on' ? BATCH_ON : 1), SESSIONS: String(sessions) };
    const server = await startServer(path, env);
    const points: LoadPoint[] = [];
    try {
      await closedLoop(server, 4, payload, 2); // warm-up, discarded
      for (const c of CONNECTIONS) {
        await waitIdle(server);
        process.stderr.write(`${label}: batching ${batching}, ${sessions} session(s), ${c} connections...\n`);
        points.push(await closedLoop(server, c, payload, SECONDS));
      }
      out.push({ batching, sessions, env, points, serverPeakRssMiB: peakRssMiB(server.pid) });
    } finally {
      await server.stop();
    }
  }
  return out;
}

async function openLoopConfig(
  path: string,
  config: { label: string; env: Record<string, string> },
  saturation: number,
  payload: Payload,
  label: string,
  withLocust: boolean,
  cpuPerAnswerMs: number | null,
): Promise<{ run: OpenLoopConfig; locust?: LocustResult | { skipped: string } }> {
  const server = await startServer(path, config.env);
  try {
    await closedLoop(server, 4, payload, 2); // warm-up
    await waitIdle(server);
    const single = await closedLoop(server, 1, payload, Math.max(2, SECONDS / 2));
    const admissionLimit = await metric(server, 'admission_limit');
    const budgetSeconds = await metric(server, 'queue_budget_seconds');
    await waitIdle(server);
    process.stderr.write(
      `${label}, ${config.label}: open loop at 80 % of saturation (${(0.8 * saturation).toFixed(1)} req/s)...\n`,
    );
    const at80 = await openLoop(server.url, 0.8 * saturation, SECONDS, OPEN_LOOP_SOCKETS, payload);
    await waitIdle(server);
    process.stderr.write(
      `${label}, ${config.label}: overload at ${OVERLOAD_FACTOR}× ` +
        `(${(OVERLOAD_FACTOR * saturation).toFixed(1)} req/s)...\n`,
    );
    const overload = await openLoop(server.url, OVERLOAD_FACTOR * saturation, SECONDS, OPEN_LOOP_SOCKETS, payload);
    let storm: Storm | undefined;
    if (config.label === SLO_LABEL) {
      await waitIdle(server);
      process.stderr.write(
        `${label}, ${config.label}: retry storm, ${STORM_CONNECTIONS} connections ignoring Retry-After...\n`,
      );
      const point = await closedLoop(server, STORM_CONNECTIONS, payload, SECONDS);
      const cpuMs = point.serverCpuPercent === null ? null : point.serverCpuPercent * 10 * point.seconds;
      const refusals = point.non2xx;
      const cpuPerRefusalMs =
        cpuMs === null || cpuPerAnswerMs === null || refusals === 0
          ? null
          : Math.max(0, cpuMs - point.ok * cpuPerAnswerMs) / refusals;
      storm = { point, refusedPerSecond: refusals / point.seconds, cpuPerAnswerMs, cpuPerRefusalMs };
    }
    let locust: LocustResult | { skipped: string } | undefined;
    if (withLocust) {
      await waitIdle(server);
      process.stderr.write(`${label}: locust, ${LOCUST_USERS} users for ${LOCUST_SECONDS}s...\n`);
      locust = await seedLocust(server.url);
    }
    const run: OpenLoopConfig = {
      label: config.label,
      env: config.env,
      singleRequestMs: single.p50Ms,
      admissionLimit,
      queueBudgetMs: budgetSeconds > 0 ? budgetSeconds * 1000 : null,
      at80,
      overload,
      ...(storm ? { storm } : {}),
    };
    return { run, ...(locust ? { locust } : {}) };
  } finally {
    await server.stop();
  }
}

async function benchModel(
  model: string,
  short: string,
  path: string,
  image: Buffer,
  withLocust: boolean,
): Promise<ModelReport> {
  const cpus = effectiveCpus();
  process.stderr.write(`${model}: raw pipeline (${RAW_SECONDS}s per point)...\n`);
  const raw = [
    ...(await rawPipeline(path, image, cpus, RAW_POINTS, RAW_SECONDS)),
    // One session per CPU, each on one thread: two steps per session keep decoding overlapped.
    ...(cpus > 1
      ? await rawPipeline(
          path,
          image,
          1,
          [1, 2, 4, 8].map((batchSize) => ({ batchSize, inFlight: 2 * cpus })),
          RAW_SECONDS,
          cpus,
        )
      : []),
  ];
  const best = raw.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
  const limit: Limit = {
    imagesPerSecond: best.imagesPerSecond,
    batchSize: best.batchSize,
    inFlight: best.inFlight,
    sessions: best.sessions,
    threads: best.threads,
  };
  const payload = multipart(image);
  const sweepResults = await sweeps(
    path,
    SWEEPS.filter((s) => s.sessions <= cpus),
    payload,
    model,
  );
  const shipped = sweepResults.find((s) => s.batching === 'on' && s.sessions === 1)!;
  const saturationPerSecond = Math.max(...shipped.points.map((p) => p.requestsPerSecond));
  const bestServed = Math.max(...sweepResults.flatMap((s) => s.points.map((p) => p.requestsPerSecond)));
  // What an answered request costs the server when nothing is refused: the base of the storm's per-refusal cost.
  const at16 = shipped.points.find((p) => p.connections === 16);
  const cpuPerAnswerMs =
    at16?.serverCpuPercent == null || at16.ok === 0 ? null : (at16.serverCpuPercent * 10 * at16.seconds) / at16.ok;
  const openLoopRuns: OpenLoopConfig[] = [];
  let locust: ModelReport['locust'];
  for (const [i, config] of OPEN_LOOP_CONFIGS.entries()) {
    const r = await openLoopConfig(
      path,
      config,
      saturationPerSecond,
      payload,
      model,
      withLocust && i === 0,
      cpuPerAnswerMs,
    );
    openLoopRuns.push(r.run);
    locust ??= r.locust;
  }
  return {
    model,
    short,
    path,
    raw,
    limit,
    sweeps: sweepResults,
    saturationPerSecond,
    saturationRatio: bestServed / limit.imagesPerSecond,
    openLoop: openLoopRuns,
    ...(locust ? { locust } : {}),
  };
}

// ---------------------------------------------------------------- report

interface Target {
  target: string;
  model: string;
  measured: string;
  met: boolean;
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const pct = (n: number) => `${(100 * n).toFixed(0)} %`;
const accepted = (r: OpenLoopResult) =>
  r.byStatus['200'] ?? { count: 0, p50Ms: NaN, p90Ms: NaN, p99Ms: NaN, maxMs: NaN };
const refused = (r: OpenLoopResult) => r.byStatus['503'];
const sweepName = (s: Sweep) => `batching ${s.batching}${s.sessions > 1 ? `, SESSIONS=${s.sessions}` : ''}`;

function targets(models: ModelReport[]): Target[] {
  const out: Target[] = [];
  for (const m of models) {
    const name = m.short;
    const best = Math.max(...m.sweeps.flatMap((s) => s.points.map((p) => p.requestsPerSecond)));
    out.push({
      target: 'saturation ≥ 95 % of the raw pipeline',
      model: name,
      measured: `${f1(best)} / ${f1(m.limit.imagesPerSecond)} = ${pct(m.saturationRatio)}`,
      met: m.saturationRatio >= 0.95,
    });
    const at16 = (b: 'off' | 'on') =>
      m.sweeps.find((s) => s.batching === b && s.sessions === 1)!.points.find((p) => p.connections === 16)!
        .requestsPerSecond;
    const gain = at16('on') / at16('off');
    out.push({
      target: 'batching at 16 connections ≥ +10 %',
      model: name,
      measured:
        `${f1(at16('on'))} vs ${f1(at16('off'))} req/s = ` +
        `${gain >= 1 ? '+' : ''}${((gain - 1) * 100).toFixed(0)} %`,
      met: gain >= 1.1,
    });
    const failed = (p: LoadPoint) => p.non2xx + p.errors;
    const shippedPoints = m.sweeps.flatMap((s) => s.points);
    const sweepFailures = shippedPoints.reduce((n, p) => n + failed(p), 0);
    out.push({
      target: 'as shipped: 0 failed requests at 1–64 connections, every sweep',
      model: name,
      measured: `${sweepFailures} failed of ${shippedPoints.reduce((n, p) => n + p.ok + failed(p), 0)}`,
      met: sweepFailures === 0,
    });
    const oneBatchMs =
      m.raw.find((r) => r.sessions === 1 && r.batchSize === BATCH_ON && r.inFlight === 1)?.meanBatchLatencyMs ?? NaN;
    for (const run of m.openLoop) {
      const p80 = accepted(run.at80);
      const notOk = (r: OpenLoopResult) => r.sent - accepted(r).count;
      if (run.queueBudgetMs === null) {
        out.push({
          target: `${run.label}: open loop at 80 % and 4×, 0 failed requests`,
          model: name,
          measured:
            `${notOk(run.at80)} of ${run.at80.sent} and ${notOk(run.overload)} of ${run.overload.sent} ` +
            `not answered 200 (4× p99 ${f1(accepted(run.overload).p99Ms)} ms: the backlog)`,
          met: notOk(run.at80) === 0 && notOk(run.overload) === 0,
        });
        const bound = 3 * run.singleRequestMs;
        out.push({
          target: `${run.label}: p99 at 80 % of saturation ≤ 3× single request`,
          model: name,
          measured: `${f1(p80.p99Ms)} ms vs 3 × ${run.singleRequestMs} = ${bound} ms`,
          met: p80.p99Ms <= bound && run.at80.errors === 0,
        });
        continue;
      }
      const a = accepted(run.overload);
      const r = refused(run.overload);
      const bound = run.queueBudgetMs + oneBatchMs;
      out.push({
        target: `${run.label}: 4× overload, answered ≥ 0.9 × saturation`,
        model: name,
        measured:
          `${f1(run.overload.acceptedPerSecond)} vs ${f1(m.saturationPerSecond)} req/s = ` +
          `${pct(run.overload.acceptedPerSecond / m.saturationPerSecond)}`,
        met: run.overload.acceptedPerSecond >= 0.9 * m.saturationPerSecond,
      });
      out.push({
        target: `${run.label}: 4× overload, accepted p99 ≤ budget + one batch`,
        model: name,
        measured: `${f1(a.p99Ms)} ms vs ${f1(run.queueBudgetMs)} + ${f1(oneBatchMs)} = ${f1(bound)} ms`,
        met: a.p99Ms <= bound,
      });
      out.push({
        target: `${run.label}: 4× overload, refusals p99 < 20 ms`,
        model: name,
        measured: r
          ? `${f1(r.p99Ms)} ms (${r.count} × 503${run.overload.errors ? `, ${run.overload.errors} errors` : ''})`
          : 'none refused',
        met: r ? r.p99Ms < 20 && run.overload.errors === 0 : run.overload.errors === 0,
      });
      if (run.storm) {
        const st = run.storm;
        out.push({
          target:
            `${run.label}: retry storm (${STORM_CONNECTIONS} connections ignoring Retry-After), ` +
            'answered ≥ 0.9 × saturation',
          model: name,
          measured:
            `${f1(st.point.requestsPerSecond)} vs ${f1(m.saturationPerSecond)} req/s = ` +
            `${pct(st.point.requestsPerSecond / m.saturationPerSecond)}, ${f1(st.refusedPerSecond)} refusals/s`,
          met: st.point.requestsPerSecond >= 0.9 * m.saturationPerSecond,
        });
        out.push({
          target: `${run.label}: CPU per refusal ≤ 5 % of an answered request's`,
          model: name,
          measured:
            st.cpuPerRefusalMs === null || st.cpuPerAnswerMs === null
              ? 'not measured'
              : `${st.cpuPerRefusalMs.toFixed(3)} ms vs ${st.cpuPerAnswerMs.toFixed(1)} ms = ` +
                `${((100 * st.cpuPerRefusalMs) / st.cpuPerAnswerMs).toFixed(1)} %`,
          met:
            st.cpuPerRefusalMs !== null && st.cpuPerAnswerMs !== null && st.cpuPerRefusalMs <= 0.05 * st.cpuPerAnswerMs,
        });
      }
    }
  }
  return out;
}

function markdown(machine: Machine, models: ModelReport[], goals: Target[]): string {
  const out = [
    `Machine: ${machine.cpuModel}, ${machine.cores} cores (${machine.effectiveCpus} usable), ` +
      `${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, ` +
      `onnxruntime-node ${machine.onnxruntime}, sharp ${machine.sharp}`,
    '',
  ];
  for (const m of models) {
    out.push(`**${m.model}**`, '');
    out.push(
      '| raw pipeline: sessions × threads | batch | batches in flight | images/s | ms per batch |',
      '|---|---|---|---|---|',
    );
    for (const r of m.raw)
      out.push(
        `| ${r.sessions} × ${r.threads} | ${r.batchSize} | ${r.inFlight} | ${f1(r.imagesPerSecond)}` +
          `${r.imagesPerSecond === m.limit.imagesPerSecond ? ' (limit)' : ''} | ${f1(r.meanBatchLatencyMs)} |`,
      );
    out.push(
      '',
      '| server | connections | req/s | p50 ms | p90 ms | p99 ms | error rate | of limit | CPU server / autocannon |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const s of m.sweeps) {
      for (const p of s.points)
        out.push(
          `| ${sweepName(s)} | ${p.connections} | ${f1(p.requestsPerSecond)} | ${p.p50Ms} | ${p.p90Ms} | ` +
            `${p.p99Ms} | ${(100 * p.errorRate).toFixed(1)} % | ` +
            `${pct(p.requestsPerSecond / m.limit.imagesPerSecond)} | ` +
            `${p.serverCpuPercent ?? '?'} % / ${p.clientCpuPercent} % |`,
        );
    }
    out.push(
      '',
      `Server peak RSS: ${m.sweeps.map((s) => `${s.serverPeakRssMiB ?? '?'} MiB ${sweepName(s)}`).join(', ')}.`,
      '',
    );
    out.push(
      '| open loop (batching on) | single ms | budget ms | admission limit (images) | load | offered req/s ' +
        '| accepted req/s | accepted p50 / p99 ms | 503s | 503 p99 ms | errors |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
    );
    const row = (c: OpenLoopConfig, what: string, r: OpenLoopResult) => {
      const a = accepted(r);
      const x = refused(r);
      const other = Object.entries(r.byStatus)
        .filter(([s]) => s !== '200' && s !== '503')
        .reduce((n, [, v]) => n + v.count, 0);
      return (
        `| ${c.label} | ${c.singleRequestMs} | ${c.queueBudgetMs === null ? '–' : f1(c.queueBudgetMs)} | ` +
        `${Number.isFinite(c.admissionLimit) ? c.admissionLimit : 'none'} | ${what} | ${f1(r.offeredPerSecond)} | ` +
        `${f1(r.acceptedPerSecond)} | ${f1(a.p50Ms)} / ${f1(a.p99Ms)} | ${x?.count ?? 0} | ` +
        `${x ? f1(x.p99Ms) : '–'} | ${r.errors + other} |`
      );
    };
    for (const c of m.openLoop) out.push(row(c, '80 %', c.at80), row(c, `${OVERLOAD_FACTOR}×`, c.overload));
    out.push('');
    for (const c of m.openLoop) {
      if (!c.storm) continue;
      const p = c.storm.point;
      const perRefusal =
        c.storm.cpuPerRefusalMs === null
          ? 'CPU per refusal not measured'
          : `about ${c.storm.cpuPerRefusalMs.toFixed(3)} ms of CPU per refusal ` +
            `against ${c.storm.cpuPerAnswerMs?.toFixed(1)} ms per answered request`;
      out.push(
        `Retry storm, ${c.label}, ${p.connections} connections resending at once: ` +
          `${f1(p.requestsPerSecond)} answered/s, ${f1(c.storm.refusedPerSecond)} refused/s, ` +
          `server CPU ${p.serverCpuPercent ?? '?'} %, ` +
          `${perRefusal}.`,
        '',
      );
    }
    if (m.locust) {
      out.push(
        'skipped' in m.locust
          ? `Locust: skipped (${m.locust.skipped}).`
          : `Locust (${m.locust.users} users, ${m.locust.seconds} s, \`${m.locust.command}\`): ` +
              `${m.locust.requests} requests, ${m.locust.failures} failures, ` +
              `${f1(m.locust.requestsPerSecond)} req/s, p50 ${m.locust.p50Ms} ms, p99 ${m.locust.p99Ms} ms.`,
        '',
      );
    }
  }
  out.push('| target | model | measured | met |', '|---|---|---|---|');
  for (const g of goals) out.push(`| ${g.target} | ${g.model} | ${g.measured} | ${g.met ? 'yes' : '**no**'} |`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const { resnet50 } = await ensureModels(undefined, { only: ['resnet50'] });
  const image = await seedImage();
  process.stderr.write(`machine: ${JSON.stringify(machine)}\n`);
  const started = Date.now();
  const models = [
    await benchModel('resnet50-shaped (25.5 M parameters, generated)', 'ResNet-50-shaped', resnet50, image, false),
    await benchModel(
      `the built-in default (${basename(dirname(DEFAULT_MODEL_PATH))})`,
      basename(dirname(DEFAULT_MODEL_PATH)),
      DEFAULT_MODEL_PATH,
      image,
      true,
    ),
  ];
  const goals = targets(models);
  const report = {
    date: new Date().toISOString(),
    request:
      'bench/fixtures/seed-224.jpg (224×224 JPEG) as multipart image_file, with_resize=False, with_post_process=True',
    machine,
    secondsPerPoint: SECONDS,
    rawSecondsPerPoint: RAW_SECONDS,
    stormConnections: STORM_CONNECTIONS,
    batchSizeOn: BATCH_ON,
    overloadFactor: OVERLOAD_FACTOR,
    wallSeconds: Math.round((Date.now() - started) / 1000),
    models,
    targets: goals,
  };
  await writeFile(RESULTS, `${JSON.stringify(report, null, 2)}\n`);
  await writeChart(report, CHART);
  process.stdout.write(`${markdown(machine, models, goals)}\n`);
}

await main();
