/**
 * What the benchmarks share (bench/server-throughput.ts, bench/serving-core.ts):
 * the seed's request, starting our server, a process tree's CPU and memory from
 * /proc, the autocannon closed loop and the Locust runner.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { SEED_IMAGE_PATH } from './pipeline.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- request

export interface Payload {
  body: Buffer;
  contentType: string;
}

/** The seed's request: multipart image_file, with_resize=False, with_post_process (default True). */
export function multipart(image: Buffer, opts: { postProcess?: boolean } = {}): Payload {
  const boundary = 'benchboundary7MA4YWxkTrZu0gW';
  const field = (name: string, value: string) =>
    `\r\n--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image_file"; filename="seed-224.jpg"\r\n` +
        'Content-Type: image/jpeg\r\n\r\n',
    ),
    image,
    Buffer.from(
      `${field('with_resize', 'False')}${field('with_post_process', (opts.postProcess ?? true) ? 'True' : 'False')}` +
        `\r\n--${boundary}--\r\n`,
    ),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

// ---------------------------------------------------------------- our server

export interface Server {
  url: string;
  pid: number;
  child: ChildProcess;
  /** The server's log less its access log (one line per request): the lifecycle lines, parsed. */
  logs: Record<string, unknown>[];
  /** The exit code (null after a signal), once the process has exited. */
  exited: Promise<number | null>;
  stop: () => Promise<void>;
}

/** Variables server-throughput.ts sets itself; inherited values would make runs incomparable. */
export const SERVER_KNOBS = [
  'MAX_BATCH_SIZE',
  'MAX_IN_FLIGHT',
  'MAX_QUEUE_MS',
  'MAX_QUEUE_DELAY_MS',
  'REQUEST_DEADLINE_MS',
  'SESSIONS',
  'INTRA_OP_THREADS',
  'DECODE_CONCURRENCY',
  'LOG_LEVEL',
];

/** The compiled server's entry point; BENCH_SERVER_MAIN points the benchmarks at another build. */
export function serverMain(): string {
  return process.env.BENCH_SERVER_MAIN || fileURLToPath(new URL('../inference-server/src/main.js', import.meta.url));
}

/** The inherited environment less SERVER_KNOBS: what server-throughput.ts starts from. */
export function envWithoutKnobs(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of SERVER_KNOBS) delete env[k];
  return env;
}

/** Variables a process may inherit when it must run with its own defaults and nothing else. */
const NEUTRAL_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'XDG_CACHE_HOME'];

/**
 * Only the neutral variables of the environment (PATH, HOME, locale, TMPDIR...): a
 * server started with it plus its own settings runs as shipped, whatever knobs
 * (today's or a future build's) the caller's environment holds.
 */
export function neutralEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of NEUTRAL_ENV) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

/**
 * Our server as users run it (access log included) on a free port: `baseEnv`
 * with MODEL_URI, PORT=0, HOST=127.0.0.1 and `knobs` on top, from serverMain().
 * Resolves once /v2/health/ready answers 200; rejects if the server exits first.
 */
export async function startServer(
  modelPath: string,
  knobs: Record<string, string>,
  baseEnv: NodeJS.ProcessEnv = envWithoutKnobs(),
  main = serverMain(),
): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...baseEnv, MODEL_URI: modelPath, PORT: '0', HOST: '127.0.0.1', ...knobs };
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      done = true;
      resolve(code);
    }),
  );
  const logs: Record<string, unknown>[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let pending = '';
    // Read the whole log (a full pipe would block the server), but parse only what is not the access log.
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.includes('"msg":"request"')) continue;
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(entry);
        if (entry.msg === 'listening' && typeof entry.url === 'string') resolve(entry.url);
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => reject(new Error(`server exited with ${code ?? signal} before listening`)));
  });
  while (
    (await fetch(`${url}/v2/health/ready`).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (done) throw new Error('server exited before it was ready');
    await sleep(100);
  }
  return {
    url,
    pid: child.pid!,
    child,
    logs,
    exited,
    stop: async () => {
      if (!done) child.kill('SIGTERM');
      await exited;
    },
  };
}

// ---------------------------------------------------------------- /proc

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

/** The fields of /proc/PID/stat after the command name (field 3, state, is [0]). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number | null {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLOCK_TICKS : null;
}

/** A process and all its descendants alive now (uvicorn's and LitServe's workers are child processes). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)!.push(Number(name));
  }
  if (statFields(root) === null) return [];
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds of every process in a tree, by PID. */
export function treeCpu(root: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of processTree(root)) {
    const s = cpuSeconds(pid);
    if (s !== null) out.set(pid, s);
  }
  return out;
}

/** CPU seconds the tree used between two treeCpu() readings (a process born in between counts whole). */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, s] of after) sum += s - (before.get(pid) ?? 0);
  return sum;
}

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function pssKiB(pid: number): number {
  try {
    const m = /Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface TreeMemory {
  /** Sum of the processes' resident set sizes (pages shared between them count once per process). */
  rssMiB: number;
  /** Sum of their proportional set sizes (each shared page split between its sharers). */
  pssMiB: number;
  processes: number;
}

/** A process tree's memory now. */
export function treeMemory(root: number): TreeMemory {
  const pids = processTree(root);
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    rss += statusKiB(pid, 'VmRSS');
    pss += pssKiB(pid);
  }
  return { rssMiB: Math.round(rss / 1024), pssMiB: Math.round(pss / 1024), processes: pids.length };
}

/**
 * Samples a process tree's memory every `everyMs` until stopped, keeping the peaks
 * (of the tree's sums: the processes' own peaks, VmHWM, need not coincide).
 * `reset()` starts a new window and returns the last one's peaks.
 */
export function memorySampler(
  root: number,
  everyMs = 250,
): { reset: () => TreeMemory; overall: () => TreeMemory; stop: () => TreeMemory } {
  const zero = (): TreeMemory => ({ rssMiB: 0, pssMiB: 0, processes: 0 });
  let window = zero();
  const overall = zero();
  const take = () => {
    const m = treeMemory(root);
    for (const peak of [window, overall]) {
      peak.rssMiB = Math.max(peak.rssMiB, m.rssMiB);
      peak.pssMiB = Math.max(peak.pssMiB, m.pssMiB);
      peak.processes = Math.max(peak.processes, m.processes);
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  timer.unref();
  return {
    reset: () => {
      take();
      const last = window;
      window = zero();
      return last;
    },
    overall: () => ({ ...overall }),
    stop: () => {
      clearInterval(timer);
      take();
      return { ...overall };
    },
  };
}

// ---------------------------------------------------------------- closed loop: autocannon

export interface LoadPoint {
  connections: number;
  seconds: number;
  /** Answered (2xx) requests per second: a fast 503 is not throughput. */
  requestsPerSecond: number;
  /** Of 2xx responses (autocannon records only those by default). */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  ok: number;
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  timeouts: number;
  /** (non-2xx + errors) / all. */
  errorRate: number;
  /** CPU the server's process tree used, in % of one core (200 % = both of 2 cores busy). */
  serverCpuPercent: number | null;
  /** CPU the load generator (this process) used, in % of one core. */
  clientCpuPercent: number;
}

export interface Target {
  url: string;
  /** The root of the server's process tree. */
  pid: number;
}

/**
 * autocannon against `target.url + path`: each of `connections` sends its next
 * request as soon as the last is answered (no back-off), for `seconds`, with a
 * 60 s per-request timeout.
 */
export async function closedLoop(
  target: Target,
  connections: number,
  payload: Payload,
  seconds: number,
  path = '/predict/image',
): Promise<LoadPoint> {
  const serverBefore = treeCpu(target.pid);
  const clientBefore = process.cpuUsage();
  const r = await autocannon({
    url: `${target.url}${path}`,
    method: 'POST',
    connections,
    duration: seconds,
    timeout: 60,
    body: payload.body,
    headers: { 'content-type': payload.contentType },
  });
  const client = process.cpuUsage(clientBefore);
  const serverAfter = treeCpu(target.pid);
  const ok = r['2xx'] ?? 0;
  const failed = r.non2xx + r.errors;
  return {
    connections,
    seconds: r.duration,
    requestsPerSecond: ok / r.duration,
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    ok,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    errorRate: ok + failed > 0 ? failed / (ok + failed) : 0,
    serverCpuPercent:
      serverAfter.size === 0 ? null : Math.round((100 * cpuBetween(serverBefore, serverAfter)) / r.duration),
    clientCpuPercent: Math.round((client.user + client.system) / 1e4 / r.duration),
  };
}

// ---------------------------------------------------------------- Locust

export interface LocustOptions {
  users: number;
  spawnRate: number;
  seconds: number;
  /** Extra environment for bench/locustfile.py (LOCUST_WAIT_SECONDS, LOCUST_POST_PROCESS...). */
  env?: Record<string, string>;
  /** The row of answered requests: the request's name in the Locust file. */
  name?: string;
}

export interface LocustResult {
  users: number;
  spawnRate: number;
  seconds: number;
  requests: number;
  failures: number;
  /** All requests per second, answered or not (Locust's Requests/s). */
  requestsPerSecond: number;
  /** Of all requests. */
  p50Ms: number;
  p99Ms: number;
  /**
   * Answered requests only, when the Locust file reported failures apart
   * (LOCUST_SPLIT_FAILURES=1): their rate and latency percentiles.
   */
  answered?: { requests: number; requestsPerSecond: number; p50Ms: number; p90Ms: number; p99Ms: number };
  command: string;
  env: Record<string, string>;
  /** CPU the Locust process used, in % of one core. */
  clientCpuPercent: number | null;
}

/** One CSV line (Locust quotes only fields that need it). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Builds (once) and returns the Locust venv's python, or why it could not. */
export function locustPython(): string | { skipped: string } {
  const venv = spawnSync('bash', [join(ROOT, 'bench/locust-venv.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const python = venv.stdout?.trim().split('\n').pop();
  if (venv.status !== 0 || !python) return { skipped: `bench/locust-venv.sh failed (exit ${venv.status})` };
  return python;
}

/**
 * Runs bench/locustfile.py headless against `url` (its venv built by
 * bench/locust-venv.sh) and reads its --csv stats. Locust stops itself after
 * `seconds`; it is killed (by PID) if it is still running a minute later.
 */
export async function runLocust(url: string, opts: LocustOptions): Promise<LocustResult | { skipped: string }> {
  const python = locustPython();
  if (typeof python !== 'string') return python;
  const prefix = join(tmpdir(), `bench-locust-${process.pid}-${Date.now()}`);
  const args = [
    '-f',
    'bench/locustfile.py',
    '--headless',
    '-u',
    String(opts.users),
    '-r',
    String(opts.spawnRate),
    '-t',
    `${opts.seconds}s`,
    '--host',
    url,
    '--csv',
    prefix,
    '--only-summary',
    '--loglevel',
    'WARNING',
  ];
  const env = { LOCUST_IMAGE: SEED_IMAGE_PATH, ...opts.env };
  let cpu: number | null = null;
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(python, ['-m', 'locust', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...env },
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), (opts.seconds + 60) * 1000);
    // Sampled just before it exits: the last reading of its CPU.
    const sampler = setInterval(() => {
      cpu = cpuSeconds(child.pid!) ?? cpu;
    }, 500);
    child.on('exit', (c) => {
      clearTimeout(guard);
      clearInterval(sampler);
      resolve(c);
    });
  });
  const csvPath = `${prefix}_stats.csv`;
  try {
    if (!existsSync(csvPath)) return { skipped: `locust exited with ${code} and wrote no stats` };
    const [header, ...rows] = (await readFile(csvPath, 'utf8')).trim().split('\n').map(csvFields);
    const row = (name: string) => rows.find((r) => r[1] === name);
    const col = (r: string[] | undefined, name: string) => (r ? Number(r[header!.indexOf(name)]) : 0);
    const aggregated = row('Aggregated');
    const answered = opts.name ? row(opts.name) : undefined;
    const result: LocustResult = {
      users: opts.users,
      spawnRate: opts.spawnRate,
      seconds: opts.seconds,
      requests: col(aggregated, 'Request Count'),
      failures: col(aggregated, 'Failure Count'),
      requestsPerSecond: col(aggregated, 'Requests/s'),
      p50Ms: col(aggregated, '50%'),
      p99Ms: col(aggregated, '99%'),
      command: `locust ${args.join(' ').replace(prefix, 'PREFIX')}`,
      env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(ROOT, '')])),
      clientCpuPercent: cpu === null ? null : Math.round((100 * cpu) / opts.seconds),
    };
    if (opts.env?.LOCUST_SPLIT_FAILURES === '1' && opts.name) {
      result.answered = answered
        ? {
            requests: col(answered, 'Request Count') - col(answered, 'Failure Count'),
            requestsPerSecond: col(answered, 'Requests/s') - col(answered, 'Failures/s'),
            p50Ms: col(answered, '50%'),
            p90Ms: col(answered, '90%'),
            p99Ms: col(answered, '99%'),
          }
        : { requests: 0, requestsPerSecond: 0, p50Ms: NaN, p90Ms: NaN, p99Ms: NaN };
    }
    return result;
  } finally {
    for (const suffix of ['_stats.csv', '_stats_history.csv', '_failures.csv', '_exceptions.csv'])
      await rm(`${prefix}${suffix}`, { force: true });
  }
}
