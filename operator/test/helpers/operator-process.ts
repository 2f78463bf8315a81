/**
 * The operator's real entry point (dist/operator/src/main.js) as a child
 * process, with its JSON log (pino) parsed line by line.
 *
 *   const op = await startOperator({ KUBECONFIG: cp.kubeconfigPath, WATCH_NAMESPACE: ns });
 *   await op.waitFor((l) => l.msg === 'caches synced; reconciling');
 *   …
 *   await op.stop();            // SIGTERM, waits for the exit
 *
 * Every operator started here is also SIGKILLed when the test process exits,
 * and `stopAllOperators()` (for `after` hooks) stops whatever is still running.
 * A process that exits before its first log line makes `startOperator` reject
 * with its stderr: tests fail, never skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { metricSum, scrape } from '../../../scripts/testkit/prometheus.js';

export const OPERATOR_MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface OperatorEnv {
  KUBECONFIG: string;
  SERVER_IMAGE?: string;
  WATCH_NAMESPACE?: string;
  LEADER_ELECTION?: 'true' | 'false';
  LEASE_NAMESPACE?: string;
  LEASE_NAME?: string;
  RESYNC_SECONDS?: string;
  WORKERS?: string;
  LOG_LEVEL?: string;
  PORT?: string;
  SHUTDOWN_GRACE_MS?: string;
  POD_NAME?: string;
}

export interface OperatorProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** The `identity` every log line carries (POD_NAME or hostname, plus a random suffix): the Lease holder. */
  readonly identity: string;
  /** Where /healthz, /readyz and /metrics answer. */
  readonly url: string;
  readonly exited: Promise<Exit>;
  readonly running: boolean;
  /** The first log line matching (past or future); rejects on timeout or if the process exits first. */
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Whether a line matching has been logged yet. */
  logged(predicate: (line: LogLine) => boolean): boolean;
  /** SIGTERM (or the given signal) and wait for the exit; SIGKILL if it takes longer than `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
  /** SIGKILL and wait: a crash, no clean-up (the lease, if held, is not released). */
  kill(): Promise<Exit>;
  /** The last lines of stdout and stderr, for assertion messages. */
  tail(lines?: number): string;
}

const live = new Set<OperatorProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const op of live) op.child.kill('SIGKILL');
  });
}

let counter = 0;

/**
 * Spawns the operator and resolves once it logged 'operator started' (its HTTP
 * port is then known). `quiet`: resolve at once, for a LOG_LEVEL above info
 * (the benchmark's); the caller then sets PORT and polls /readyz itself.
 */
export async function startOperator(
  env: OperatorEnv,
  opts: { name?: string; startTimeoutMs?: number; quiet?: boolean } = {},
): Promise<OperatorProcess> {
  installExitHook();
  const name = opts.name ?? `operator-${++counter}`;
  // A minimal environment: nothing of the developer's own kubeconfig, namespace or log settings leaks in.
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    LEADER_ELECTION: 'false',
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '10000',
    ...env,
  };
  const child = spawn(process.execPath, [OPERATOR_MAIN], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const raw: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ predicate: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  createInterface({ input: child.stdout }).on('line', (text) => {
    raw.push(text);
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    for (const w of [...waiters]) {
      if (w.predicate(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  // 'exit' can fire before the last stdout lines are read: wait for the stream too.
  const closed = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));

  const cut = (line: string) => (line.length > 400 ? `${line.slice(0, 400)}…` : line);
  const tail = (n = 30) =>
    `--- ${name} stdout (last ${n}) ---\n${raw.slice(-n).map(cut).join('\n')}\n` +
    `--- stderr ---\n${stderr.join('').slice(-4000)}`;

  const waitFor = (predicate: (l: LogLine) => boolean, timeoutMs = 60_000): Promise<LogLine> => {
    const seen = logs.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`${name}: timed out after ${timeoutMs} ms waiting for a log line\n${tail()}`));
      }, timeoutMs);
      waiters.add(waiter);
      void closed.then((e) => {
        if (!waiters.has(waiter)) return;
        waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${name} exited (code ${e.code}, signal ${e.signal}) before the awaited log line\n${tail()}`));
      });
    });
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<Exit> => {
    if (exit) return exit;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const result = await closed;
    clearTimeout(timer);
    live.delete(op);
    return exit ?? result;
  };

  let started: LogLine | undefined;
  const op: OperatorProcess = {
    name,
    child,
    logs,
    get identity() {
      return typeof started?.identity === 'string' ? started.identity : '';
    },
    get url() {
      return `http://127.0.0.1:${typeof started?.port === 'number' ? started.port : String(childEnv.PORT)}`;
    },
    exited,
    get running() {
      return exit === undefined;
    },
    waitFor,
    logged: (predicate) => logs.some(predicate),
    stop,
    kill: () => stop('SIGKILL'),
    tail,
  };
  live.add(op);
  void exited.then(() => live.delete(op));
  if (opts.quiet) return op;
  try {
    started = await waitFor((l) => l.msg === 'operator started', opts.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
  return op;
}

/** Stops every operator started by this process that is still running (for `after`/`afterEach` hooks). */
export async function stopAllOperators(): Promise<void> {
  await Promise.all([...live].map((op) => op.stop()));
}

/** The value of one Prometheus series from the operator's /metrics (summed over label sets), or 0. */
export async function metricValue(
  op: OperatorProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return metricSum(await scrape(`${op.url}/metrics`), name, labels);
}
