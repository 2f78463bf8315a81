/**
 * npm run bench:hostile: the server as shipped against clients that misbehave,
 * on loopback, every phase bounded in time and count.
 *
 *  1. Memory after abuse, three allocators side by side (glibc's malloc as
 *     `npm start` runs, glibc with MALLOC_ARENA_MAX=2, and jemalloc as the
 *     image runs): 64 MiB-class v2 bodies (JSON of 5 M numbers, 5 M levels of
 *     nesting, binary tails no input claims, eight JSON bodies at once); RSS
 *     before, at its peak, and after 10 s idle.
 *  2. Slowloris: 256 connections trickling their headers, then 256 trickling
 *     a body, while a well-behaved client runs beside them.
 *  3. A disconnect storm: 32 loops that send a request (or half of one) and
 *     drop the connection; file descriptors and requests in flight after it.
 *  4. Overload with SIGTERM in the middle: an open loop at 4× the measured
 *     capacity over 64 keep-alive connections; SIGTERM half-way; what was
 *     answered, refused or cut, and what the server says it left unanswered.
 *
 * A separate process probes /v2/health/live every 50 ms throughout each
 * phase (the load generator's own event loop would otherwise be measured).
 * Writes bench/results/hostile-clients.json and prints Markdown tables;
 * HOSTILE_PHASES (memory, slowloris, storm, drain; default all) picks phases.
 * The model is the ResNet-50-shaped one (bench's slow model), the request the
 * seed's (a 224×224 JPEG to /predict/image).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { ensureModels } from '../scripts/models/generate.js';
import {
  closedLoop,
  multipart,
  neutralEnv,
  sleep,
  startServer,
  treeMemory,
  type Payload,
  type Server,
} from './harness.js';
import { describeMachine } from './machine.js';
import { seedImage } from './pipeline.js';

const RESULTS = fileURLToPath(new URL('../../bench/results/hostile-clients.json', import.meta.url));
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
/** As Dockerfile.server sets it. */
const IMAGE_MALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0';
const ALL_PHASES = ['memory', 'slowloris', 'storm', 'drain'] as const;
/** HOSTILE_PHASES=storm,drain runs only those (results are then printed, not written). */
const PHASES = new Set((process.env.HOSTILE_PHASES ?? ALL_PHASES.join(',')).split(',').map((p) => p.trim()));

// ---------------------------------------------------------------- the server

/** The server as shipped (only the neutral environment, then `env`), with its lifecycle log. */
const start = (modelPath: string, env: Record<string, string>): Promise<Server> =>
  startServer(modelPath, env, neutralEnv());

/** The server's resident memory (its workers are threads: one process). */
const rssMiB = (pid: number): number => treeMemory(pid).rssMiB;
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

// ---------------------------------------------------------------- the health probe, in its own process

interface ProbeResult {
  probes: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  worstMs: number;
  /** The server's own worst event-loop delay over the phase (prom-client's nodejs_eventloop_lag_max_seconds). */
  eventLoopMaxMs: number;
  /** Connections the kernel dropped on a full listen queue meanwhile (any listener on this machine). */
  listenDrops: number;
}

/** The server's worst event-loop delay since the last scrape (prom-client resets it on each). */
async function eventLoopMaxMs(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Math.round(1000 * Number(/^nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1] ?? NaN));
}

/** As the kubelet probes: a new connection each time (it sends Connection: close), every 50 ms. */
const PROBE_SCRIPT = `
import http from 'node:http';
const url = new URL(process.env.PROBE_URL);
const times = [];
let failed = 0, stopping = false;
process.stdin.on('data', () => { stopping = true; });
const once = () => new Promise((resolve) => {
  const req = http.get({ host: url.hostname, port: url.port, path: url.pathname, agent: false, \
headers: { connection: 'close' }, timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode === 200));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => resolve(false));
});
while (!stopping) {
  const t = performance.now();
  if (!(await once())) failed++;
  times.push(performance.now() - t);
  await new Promise((r) => setTimeout(r, 50));
}
times.sort((a, b) => a - b);
const p = (q) => times.length ? Math.round(times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)]) : 0;
process.stdout.write(JSON.stringify({ probes: times.length, failed, p50Ms: p(0.5), p99Ms: p(0.99), \
worstMs: Math.round(times.at(-1) ?? 0) }));
process.exit(0);
`;

/** The kernel's counts of connections refused by a full listen queue (TcpExt ListenOverflows, ListenDrops). */
function listenDrops(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('ListenDrops')] ?? 0);
}

/** Starts a probe of url's liveness in a child process; the returned function stops it and gives its figures. */
async function probe(base: string): Promise<() => Promise<ProbeResult>> {
  await eventLoopMaxMs(base);
  const dropsBefore = listenDrops();
  const child = spawn(process.execPath, ['--input-type=module', '-e', PROBE_SCRIPT], {
    env: { ...neutralEnv(), PROBE_URL: `${base}/v2/health/live` },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return async () => {
    child.stdin.end('stop');
    await done;
    return {
      ...(JSON.parse(out) as Omit<ProbeResult, 'eventLoopMaxMs' | 'listenDrops'>),
      eventLoopMaxMs: await eventLoopMaxMs(base),
      listenDrops: listenDrops() - dropsBefore,
    };
  };
}

// ---------------------------------------------------------------- 1. memory after v2 abuse

interface MemoryRun {
  allocator: string;
  startMiB: number;
  peakMiB: number;
  afterIdleMiB: number;
  statuses: Record<string, number>;
  probe: ProbeResult;
}

async function memoryAfterAbuse(modelPath: string, allocator: string, env: Record<string, string>): Promise<MemoryRun> {
  const server = await start(modelPath, env);
  const meta = (await (
    await fetch(`${server.url}/v2/models/${String(server.logs.find((l) => l.model)?.model)}`)
  ).json()) as { name: string; inputs: { name: string }[] };
  const url = `${server.url}/v2/models/${meta.name}/infer`;
  const input = meta.inputs[0]!.name;
  const statuses: Record<string, number> = {};
  let peak = rssMiB(server.pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(server.pid))), 100);
  const startMiB = rssMiB(server.pid);
  const stopProbe = await probe(server.url);
  const post = async (body: Buffer, headers: Record<string, string> = {}) => {
    const r = await fetch(url, { method: 'POST', body, headers }).catch(() => undefined);
    const key = r === undefined ? 'error' : String(r.status);
    await r?.arrayBuffer();
    statuses[key] = (statuses[key] ?? 0) + 1;
  };
  const numbers = Buffer.from(
    `{"inputs":[{"name":"${input}","shape":[1,3,224,224],"datatype":"FP32",` +
      `"data":[${Array.from({ length: 5_000_000 }, () => '0.123456789').join(',')}]}]}`,
  );
  const nested = Buffer.from(
    `{"inputs":[{"name":"${input}","shape":[1],"datatype":"FP32",` +
      `"data":${'['.repeat(5_000_000)}${']'.repeat(5_000_000)}}]}`,
  );
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: input, shape: [1, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: 3 * 224 * 224 * 4 } },
      ],
    }),
  );
  const binary = Buffer.concat([header, Buffer.alloc(60 * 2 ** 20)]);
  for (let i = 0; i < 5; i++) await post(numbers);
  for (let i = 0; i < 3; i++) await post(nested);
  for (let i = 0; i < 5; i++) await post(binary, { 'inference-header-content-length': String(header.length) });
  await Promise.all(Array.from({ length: 8 }, () => post(numbers)));
  const probeResult = await stopProbe();
  await sleep(10_000);
  clearInterval(sampler);
  const run = { allocator, startMiB, peakMiB: peak, afterIdleMiB: rssMiB(server.pid), statuses, probe: probeResult };
  await server.stop();
  return run;
}

// ---------------------------------------------------------------- 2. slowloris

interface SlowResult {
  kind: 'headers' | 'body';
  connections: number;
  /** What the slow connections received, by status line (or "closed" with no answer). */
  answers: Record<string, number>;
  /** From the first byte sent to the server's answer or close, the slowest connection. */
  cutAfterS: number;
  /** The well-behaved client's throughput beside them, and alone. */
  goodRps: number;
  goodAloneRps: number;
  probe: ProbeResult;
}

/** Opens `n` connections that send `head` then one byte of `drip` per `everyMs`, until the server answers or closes. */
function trickle(
  port: number,
  n: number,
  head: string,
  drip: string,
  everyMs: number,
  maxMs: number,
): Promise<{ answers: Record<string, number>; slowestMs: number }> {
  const answers: Record<string, number> = {};
  let slowestMs = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const socket = net.connect(port, '127.0.0.1');
      let received = '';
      let i = 0;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(timer);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 'closed';
        answers[status] = (answers[status] ?? 0) + 1;
        slowestMs = Math.max(slowestMs, performance.now() - started);
        socket.destroy();
        resolve();
      };
      socket.on('connect', () => {
        socket.write(head);
        timer = setInterval(() => {
          if (performance.now() - started > maxMs) finish();
          else if (!socket.destroyed) socket.write(drip[i++ % drip.length]!);
        }, everyMs);
      });
      socket.on('data', (c: Buffer) => {
        received += c.toString('latin1');
        if (received.includes('\r\n\r\n')) finish();
      });
      socket.on('error', () => undefined);
      socket.on('close', finish);
    });
  return Promise.all(Array.from({ length: n }, one)).then(() => ({ answers, slowestMs }));
}

async function slowloris(server: Server, payload: Payload, goodAloneRps: number): Promise<SlowResult[]> {
  const port = Number(new URL(server.url).port);
  const results: SlowResult[] = [];
  const n = 256;
  const variants = [
    {
      kind: 'headers' as const,
      head: 'POST /predict/image HTTP/1.1\r\nHost: x\r\n',
      drip: 'X-Slow: abcdefghijklmnopqrstuvwxyz\r\n',
      everyMs: 1000,
    },
    {
      kind: 'body' as const,
      head:
        `POST /predict/image HTTP/1.1\r\nHost: x\r\nContent-Type: ${payload.contentType}\r\n` +
        `Content-Length: ${payload.body.length}\r\n\r\n`,
      drip: payload.body.toString('latin1'),
      everyMs: 500,
    },
  ];
  for (const v of variants) {
    const stopProbe = await probe(server.url);
    const slow = trickle(port, n, v.head, v.drip, v.everyMs, 60_000);
    await sleep(500);
    const good = await closedLoop({ url: server.url, pid: server.pid }, 4, payload, 8);
    const { answers, slowestMs } = await slow;
    results.push({
      kind: v.kind,
      connections: n,
      answers,
      cutAfterS: Math.round(slowestMs / 100) / 10,
      goodRps: Math.round(good.requestsPerSecond * 10) / 10,
      goodAloneRps,
      probe: await stopProbe(),
    });
  }
  return results;
}

// ---------------------------------------------------------------- 3. disconnect storm

interface StormResult {
  seconds: number;
  dropped: number;
  fdsBefore: number;
  fdsAfter: number;
  inFlightAfter: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  goodRps: number;
  probe: ProbeResult;
}

async function disconnectStorm(server: Server, payload: Payload): Promise<StormResult> {
  const port = Number(new URL(server.url).port);
  const seconds = 10;
  const fdsBefore = fds(server.pid);
  const rssBeforeMiB = rssMiB(server.pid);
  const request = Buffer.concat([
    Buffer.from(
      `POST /predict/image HTTP/1.1\r\nHost: x\r\nContent-Type: ${payload.contentType}\r\n` +
        `Content-Length: ${payload.body.length}\r\n\r\n`,
    ),
    payload.body,
  ]);
  let dropped = 0;
  const until = performance.now() + seconds * 1000;
  const loop = async (i: number) => {
    while (performance.now() < until) {
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          // Half the loops drop mid-body, half after the whole request (mid-inference).
          socket.write(i % 2 === 0 ? request.subarray(0, request.length >> 1) : request);
          setTimeout(() => {
            socket.destroy();
            dropped++;
            resolve();
          }, i % 4);
        });
        socket.on('error', () => resolve());
      });
    }
  };
  const stopProbe = await probe(server.url);
  const storm = Promise.all(Array.from({ length: 32 }, (_, i) => loop(i)));
  const good = await closedLoop({ url: server.url, pid: server.pid }, 4, payload, seconds - 1);
  await storm;
  const probeResult = await stopProbe();
  // Let the dropped requests that had reached the queue run out (they are dropped unrun or finish unsent).
  let inFlightAfter = -1;
  for (let i = 0; i < 100; i++) {
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    inFlightAfter = Number(/^http_requests_in_flight (\S+)/m.exec(metrics)?.[1] ?? -1);
    if (inFlightAfter === 0) break;
    await sleep(100);
  }
  await sleep(1000);
  return {
    seconds,
    dropped,
    fdsBefore,
    fdsAfter: fds(server.pid),
    inFlightAfter,
    rssBeforeMiB,
    rssAfterMiB: rssMiB(server.pid),
    goodRps: Math.round(good.requestsPerSecond * 10) / 10,
    probe: probeResult,
  };
}

// ---------------------------------------------------------------- 4. overload with SIGTERM

interface DrainResult {
  rate: number;
  connections: number;
  sent: number;
  statuses: Record<string, number>;
  /** Connection errors by code: ECONNREFUSED is a request sent after the listener closed (never accepted). */
  errors: Record<string, number>;
  /** A response that began and broke off. */
  cut: number;
  /** The server's own count, from its "stopped" line: requests read and never answered. */
  unanswered: number;
  exitCode: number | null;
  drainS: number;
}

async function overloadWithSigterm(modelPath: string, payload: Payload, capacityRps: number): Promise<DrainResult> {
  const server = await start(modelPath, {});
  const rate = 4 * capacityRps;
  const connections = 64;
  const seconds = 12;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const target = new URL('/predict/image', server.url);
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let cut = 0;
  const send = () =>
    new Promise<void>((resolve) => {
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
          res.on('data', () => undefined);
          res.on('end', () => {
            statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1;
            resolve();
          });
          res.on('aborted', () => cut++);
          res.on('error', () => resolve());
        },
      );
      req.setTimeout(60_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (err: Error & { code?: string }) => {
        errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1;
        resolve();
      });
      req.end(payload.body);
    });
  const total = Math.round(rate * seconds);
  const requests: Promise<void>[] = [];
  const started = performance.now();
  let sigtermAt = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const elapsed = (performance.now() - started) / 1000;
      if (sigtermAt === 0 && elapsed >= seconds / 2) {
        sigtermAt = performance.now();
        server.child.kill('SIGTERM');
      }
      const due = Math.min(total, Math.floor(elapsed * rate) + 1);
      while (requests.length < due) requests.push(send());
      if (requests.length >= total) done();
      else setTimeout(tick, Math.max(0, (requests.length / rate) * 1000 - (performance.now() - started)));
    };
    tick();
  });
  const exitCode = await server.exited;
  const drainS = Math.round((performance.now() - sigtermAt) / 100) / 10;
  await Promise.all(requests);
  agent.destroy();
  const stopped = server.logs.find((l) => l.msg === 'stopped');
  return {
    rate: Math.round(rate),
    connections,
    sent: total,
    statuses,
    errors,
    cut,
    unanswered: Number(stopped?.unanswered ?? NaN),
    exitCode,
    drainS,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { resnet50 } = await ensureModels(undefined, { only: ['resnet50'] });
  const payload = multipart(await seedImage());
  const machine = describeMachine();
  process.stderr.write(`bench:hostile on ${machine.cpuModel} (${machine.cores} cores)\n`);

  const allocators: [string, Record<string, string>][] = [
    ['glibc malloc (npm start)', {}],
    ['glibc, MALLOC_ARENA_MAX=2', { MALLOC_ARENA_MAX: '2' }],
    ['jemalloc (the image)', { LD_PRELOAD: JEMALLOC, MALLOC_CONF: IMAGE_MALLOC_CONF }],
  ];
  const memory: MemoryRun[] = [];
  if (PHASES.has('memory')) {
    for (const [name, env] of allocators) {
      process.stderr.write(`  memory after v2 abuse: ${name}\n`);
      memory.push(await memoryAfterAbuse(resnet50, name, env));
    }
  }

  process.stderr.write('  slowloris and disconnect storm\n');
  const server = await start(resnet50, { LD_PRELOAD: JEMALLOC, MALLOC_CONF: IMAGE_MALLOC_CONF });
  const alone = await closedLoop({ url: server.url, pid: server.pid }, 4, payload, 8);
  const aloneRps = Math.round(alone.requestsPerSecond * 10) / 10;
  const slow = PHASES.has('slowloris') ? await slowloris(server, payload, aloneRps) : [];
  const storm = PHASES.has('storm') ? await disconnectStorm(server, payload) : undefined;
  await server.stop();

  let drain: DrainResult | undefined;
  if (PHASES.has('drain')) {
    process.stderr.write('  overload with SIGTERM\n');
    drain = await overloadWithSigterm(resnet50, payload, alone.requestsPerSecond);
  }

  if (PHASES.size < ALL_PHASES.length) {
    process.stderr.write(`  HOSTILE_PHASES=${[...PHASES].join(',')}: results not written\n`);
  } else {
    await writeFile(
      RESULTS,
      `${JSON.stringify(
        {
          machine,
          generatedAt: new Date().toISOString(),
          model: 'resnet50 (ResNet-50-shaped)',
          memory,
          slowloris: slow,
          storm,
          drain,
        },
        null,
        2,
      )}\n`,
    );
  }

  const lines = [
    '| allocator | RSS start | peak | after 10 s idle | answers | probe p99 / worst | event loop worst |',
    '|---|---|---|---|---|---|---|',
    ...memory.map(
      (m) =>
        `| ${m.allocator} | ${m.startMiB} MiB | ${m.peakMiB} MiB | ${m.afterIdleMiB} MiB ` +
        `| ${JSON.stringify(m.statuses)} | ${m.probe.p99Ms} / ${m.probe.worstMs} ms | ${m.probe.eventLoopMaxMs} ms |`,
    ),
    '',
    '| slowloris | connections | their answers | slowest cut after | good client beside / alone ' +
      '| probe p99 / worst | event loop worst |',
    '|---|---|---|---|---|---|---|',
    ...slow.map(
      (s) =>
        `| ${s.kind} | ${s.connections} | ${JSON.stringify(s.answers)} | ${s.cutAfterS} s ` +
        `| ${s.goodRps} / ${s.goodAloneRps} req/s | ${s.probe.p99Ms} / ${s.probe.worstMs} ms ` +
        `| ${s.probe.eventLoopMaxMs} ms |`,
    ),
    '',
    storm &&
      `disconnect storm: ${storm.dropped} dropped connections in ${storm.seconds} s; ` +
        `fds ${storm.fdsBefore} → ${storm.fdsAfter}; in flight after: ${storm.inFlightAfter}; ` +
        `RSS ${storm.rssBeforeMiB} → ${storm.rssAfterMiB} MiB; good client ${storm.goodRps} req/s; ` +
        `${storm.probe.probes} probes, p50 ${storm.probe.p50Ms} ms, p99 ${storm.probe.p99Ms} ms, ` +
        `worst ${storm.probe.worstMs} ms; event loop worst ${storm.probe.eventLoopMaxMs} ms; ` +
        `listen drops ${storm.probe.listenDrops}`,
    drain &&
      `overload + SIGTERM: ${drain.sent} requests at ${drain.rate}/s over ${drain.connections} connections; ` +
        `answers ${JSON.stringify(drain.statuses)}; connection errors ${JSON.stringify(drain.errors)}; ` +
        `cut responses ${drain.cut}; unanswered (server) ${drain.unanswered}; ` +
        `exit ${drain.exitCode} after ${drain.drainS} s`,
  ];
  process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
