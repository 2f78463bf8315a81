/**
 * A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager,
 * no nodes) for tests, from scripts/control-plane/{build,start,stop}.sh.
 *
 *   import { sharedControlPlane } from '../../operator/test/helpers/control-plane.js';
 *   let cp: ControlPlane;
 *   before(async function () { this.timeout(900_000); cp = await sharedControlPlane(); });
 *   it('…', async () => { const { stdout } = await cp.kubectl(['get', 'ns']); … });
 *
 * `sharedControlPlane()` starts one plane per mocha process (on first use) and a
 * root `after` hook registered by this module stops it; a process `exit` /
 * SIGINT / SIGTERM handler stops whatever is still running. Each plane has its
 * own CP_STATE_FILE in os.tmpdir(), so it never touches a plane someone started
 * by hand with the default state file. If a plane cannot start, the promise
 * rejects with the tail of the scripts' logs: tests fail, they are never skipped.
 *
 * The first run compiles the binaries (several minutes; cached afterwards under
 * ~/.cache/onnx-operator), hence the long `before` timeout above. Set
 * CP_VERBOSE=1 to stream the scripts' progress to stderr.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Types only: the library is imported on demand (see loadKubeConfig), so that a
// client-node that cannot load on this Node.js fails the tests that use it, not
// every test file that imports this helper.
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubectlResult {
  stdout: string;
  stderr: string;
  /** The exit code; -1 when kubectl was killed (timeout or signal). */
  code: number;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Kill kubectl after this long (default 120 s); the result then has code -1. */
  timeoutMs?: number;
}

export interface ControlPlane {
  kubeconfigPath: string;
  /**
   * A @kubernetes/client-node KubeConfig for the plane's admin user. Reading it
   * throws (with the reason) when client-node cannot be loaded on this Node.js.
   */
  readonly kubeConfig: KubeConfig;
  kubectlPath: string;
  /** e.g. v1.35.4 */
  version: string;
  /** Every KEY=VALUE line start.sh reported (KUBE_APISERVER_URL, CP_LOG_DIR, pids, …). */
  state: Readonly<Record<string, string>>;
  /** When start.sh reported the plane up. */
  startedAt: Date;
  /** Runs kubectl against this plane. Resolves with the exit code: never throws on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Creates a namespace with a unique name (`prefix-xxxxxx`) and returns the name. */
  createNamespace(prefix?: string): Promise<string>;
  /** Stops the plane and removes its files; idempotent. */
  stop(): Promise<void>;
}

/** The repository root: the nearest ancestor of this file with scripts/control-plane/start.sh. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'scripts', 'control-plane', 'start.sh'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no scripts/control-plane/start.sh above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

interface RunResult extends KubectlResult {
  signal: NodeJS.Signals | null;
}

function run(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; echo?: boolean; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => {
      err.push(b);
      if (opts.echo) process.stderr.write(b);
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n[killed after ${opts.timeoutMs} ms]`;
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr, code: code ?? -1, signal });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}); // kubectl may exit before reading everything; the exit code says why
      child.stdin!.end(opts.input);
    }
  });
}

function tail(text: string, lines = 60): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

/** Undoes bash's `printf %q` for the values start.sh writes (plain, backslash-escaped, '…' or $'…'). */
export function unquoteShell(raw: string): string {
  if (raw.startsWith("$'") && raw.endsWith("'")) {
    const named: Record<string, string> = {
      n: '\n',
      t: '\t',
      r: '\r',
      e: '\x1b',
      a: '\x07',
      b: '\b',
      f: '\f',
      v: '\v',
      "'": "'",
      '"': '"',
      '\\': '\\',
    };
    return raw.slice(2, -1).replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, esc: string) => {
      if (esc.startsWith('x')) return String.fromCharCode(parseInt(esc.slice(1), 16));
      if (/^[0-7]+$/.test(esc)) return String.fromCharCode(parseInt(esc, 8));
      return named[esc] ?? esc;
    });
  }
  if (raw.startsWith("'") && raw.endsWith("'") && raw.length >= 2) return raw.slice(1, -1);
  return raw.replace(/\\(.)/g, '$1');
}

export function parseState(text: string): Record<string, string> {
  const state: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) state[m[1]!] = unquoteShell(m[2]!);
  }
  return state;
}

// ------------------------------------------------------------------ client-node

/**
 * A KubeConfig loaded from `kubeconfigPath`. @kubernetes/client-node 2.x is ESM
 * and fetches through undici 8, which needs Node.js >= 22.19: on an older Node
 * the import itself throws, and this says so.
 */
export async function loadKubeConfig(kubeconfigPath: string): Promise<KubeConfig> {
  const mod = await clientNode();
  const kc = new mod.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc;
}

let clientNodeModule: Promise<typeof import('@kubernetes/client-node')> | undefined;

/**
 * The client-node module, after probing in a child process that it loads at all:
 * on Node 20 a failed import of undici 8 also raises an uncaughtException later,
 * which mocha would pin on whatever test happens to be running.
 */
function clientNode(): Promise<typeof import('@kubernetes/client-node')> {
  clientNodeModule ??= (async () => {
    const probe = await run(
      process.execPath,
      ['--input-type=module', '-e', "await import('@kubernetes/client-node')"],
      {
        cwd: repoRoot(),
        timeoutMs: 60_000,
      },
    );
    if (probe.code !== 0) {
      const reason = /^\w*Error: .*$/m.exec(probe.stderr)?.[0] ?? tail(probe.stderr, 3);
      throw new Error(
        `cannot load @kubernetes/client-node on Node.js ${process.version}: ${reason} ` +
          '(client-node 2.x uses undici 8, which needs Node.js >= 22.19: use Node 22.19+ or client-node 1.x)',
      );
    }
    return import('@kubernetes/client-node');
  })();
  return clientNodeModule;
}

// ------------------------------------------------------------------ cleanup of live planes

/** stop.sh with a node: up to 10 s for each of four daemons, the node lock, then the plane. */
const STOP_TIMEOUT_MS = 180_000;

/** State files of planes this process started and has not stopped yet. */
const live = new Set<string>();
let exitHooksInstalled = false;

function stopSync(stateFile: string): void {
  spawnSync('bash', [join(repoRoot(), 'scripts', 'control-plane', 'stop.sh'), stateFile], {
    stdio: 'ignore',
    timeout: STOP_TIMEOUT_MS,
  });
  live.delete(stateFile);
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const f of [...live]) stopSync(f);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      for (const f of [...live]) stopSync(f);
      // Alone, we replace Node's default handler: restore it and die of the same signal.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

// ------------------------------------------------------------------ start / stop

export interface StartOptions {
  /** Stream build.sh and start.sh progress to stderr (default: CP_VERBOSE=1). */
  verbose?: boolean;
  /** Extra environment for build.sh / start.sh (e.g. CP_CONTROLLERS, K8S_VERSION). */
  env?: NodeJS.ProcessEnv;
}

/** Builds (if needed) and starts a fresh control plane with its own state file. */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const root = repoRoot();
  const scripts = join(root, 'scripts', 'control-plane');
  const echo = opts.verbose ?? process.env.CP_VERBOSE === '1';
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };

  const build = await run('bash', [join(scripts, 'build.sh')], { env, echo });
  const binDir = build.stdout.trim().split('\n').pop()?.trim() ?? '';
  if (build.code !== 0 || binDir === '') {
    throw new Error(
      `scripts/control-plane/build.sh failed (exit ${build.code}); last lines of its log:\n${tail(build.stderr)}`,
    );
  }

  const stateFile = join(tmpdir(), `onnx-operator-cp-test-${process.pid}-${randomBytes(4).toString('hex')}.env`);
  installExitHooks();
  live.add(stateFile); // before start.sh returns: a signal during start-up still cleans up
  const start = await run('bash', [join(scripts, 'start.sh')], {
    env: { ...env, CP_STATE_FILE: stateFile, CP_BIN: binDir },
    echo,
  });
  if (start.code !== 0) {
    stopSync(stateFile);
    throw new Error(
      `scripts/control-plane/start.sh failed (exit ${start.code}${start.signal ? `, ${start.signal}` : ''}); ` +
        `last lines of its log:\n${tail(start.stderr)}`,
    );
  }
  const startedAt = new Date();

  let state: Record<string, string>;
  try {
    state = parseState(existsSync(stateFile) ? readFileSync(stateFile, 'utf8') : start.stdout);
    for (const key of ['KUBECONFIG', 'CP_BIN', 'CP_DIR']) {
      if (!state[key]) throw new Error(`start.sh reported no ${key}; its output:\n${tail(start.stdout)}`);
    }
  } catch (err) {
    stopSync(stateFile);
    throw new Error(
      `control plane started but its state is unusable: ${(err as Error).message}\n${tail(start.stderr, 20)}`,
      { cause: err },
    );
  }
  // Loaded now, reported when used: tests that only run kubectl work even where client-node cannot load.
  let kubeConfig: KubeConfig | undefined;
  let kubeConfigError: Error | undefined;
  try {
    kubeConfig = await loadKubeConfig(state.KUBECONFIG!);
  } catch (err) {
    kubeConfigError = err as Error;
  }

  const kubeconfigPath = state.KUBECONFIG!;
  const kubectlPath = join(state.CP_BIN!, 'kubectl');
  // A discovery cache per plane: ports are reused across planes, and a stale cache hides new CRDs.
  const kubectlEnv: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: kubeconfigPath,
    KUBECACHEDIR: join(state.CP_DIR!, 'kubectl-cache'),
  };

  let stopping: Promise<void> | undefined;
  const plane: ControlPlane = {
    kubeconfigPath,
    get kubeConfig(): KubeConfig {
      if (kubeConfig === undefined) throw kubeConfigError ?? new Error('no KubeConfig');
      return kubeConfig;
    },
    kubectlPath,
    version: state.K8S_VERSION ?? 'unknown',
    state: Object.freeze({ ...state }),
    startedAt,
    async kubectl(args, kopts = {}) {
      const r = await run(kubectlPath, [`--kubeconfig=${kubeconfigPath}`, ...args], {
        env: kubectlEnv,
        ...(kopts.input === undefined ? {} : { input: kopts.input }),
        timeoutMs: kopts.timeoutMs ?? 120_000,
      });
      return { stdout: r.stdout, stderr: r.stderr, code: r.code };
    },
    async createNamespace(prefix = 'test') {
      const name = `${prefix}-${randomBytes(3).toString('hex')}`;
      const r = await plane.kubectl(['create', 'namespace', name]);
      if (r.code !== 0) throw new Error(`kubectl create namespace ${name} failed (exit ${r.code}): ${r.stderr}`);
      return name;
    },
    stop() {
      stopping ??= (async () => {
        const r = await run('bash', [join(scripts, 'stop.sh'), stateFile], { env, echo, timeoutMs: STOP_TIMEOUT_MS });
        live.delete(stateFile);
        if (r.code !== 0) throw new Error(`scripts/control-plane/stop.sh exited ${r.code}:\n${tail(r.stderr)}`);
      })();
      return stopping;
    },
  };
  return plane;
}

// ------------------------------------------------------------------ the shared plane

let shared: Promise<ControlPlane> | undefined;

/**
 * The control plane shared by every test file of this mocha process, started on
 * first call. A failed start is remembered: every caller gets the same error.
 */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= startControlPlane();
  return shared;
}

/** Stops the shared plane if one was started (the root `after` hook below calls it). */
export async function stopSharedControlPlane(): Promise<void> {
  const pending = shared;
  shared = undefined;
  if (!pending) return;
  const plane = await pending.catch(() => undefined);
  await plane?.stop();
}

// Registered while mocha loads the spec files, so it lands on the root suite and
// runs once after every test of the process. Outside mocha `after` is undefined.
if (typeof after === 'function') {
  after('stop the shared control plane', async function () {
    this.timeout(120_000);
    await stopSharedControlPlane();
  });
}

/** Retries `fn` until it resolves (returning its value) or `timeoutMs` passes (rethrowing its last error). */
/** Retries `fn` (an assertion, sync or async) until it passes or the time is up. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
    }
  }
}
