/**
 * npm run bench:operator — the operator under a burst of OnnxModels, against a
 * real control plane (etcd + kube-apiserver + kube-controller-manager on
 * loopback, no kubelet: pods stay Pending, which is all the operator needs).
 *
 *  1. create: BENCH_MODELS (default 200) OnnxModels at once; time until every
 *     model has its Deployment and Service, and until the operator has written
 *     every model's status (observedGeneration == generation, 4 conditions);
 *  2. update: a bulk spec change of all of them (spec.preprocessing.resizeMode);
 *     time until every Deployment's pod template carries it, and the statuses
 *     caught up with the new generation.
 * After each phase it waits until the operator is quiet (work queue empty, no
 * reconcile for BENCH_QUIET_SECONDS) and reports reconciles, retries, the
 * operator's CPU time and RSS, and the API requests the operator made (from the
 * apiserver's audit log, told apart by user agent).
 *
 * Writes bench/results/operator-scale.json and prints a Markdown table.
 *
 * BENCH_MODELS          models (default 200)
 * BENCH_CREATE          api (default: concurrent POSTs / merge patches) or kubectl
 *                       (one `kubectl apply -f -` of an N-document YAML per phase)
 * BENCH_TIMEOUT_SECONDS per-phase limit for convergence (default 300)
 * BENCH_QUIET_SECONDS   how long the operator must be idle to call a phase done (default 3)
 * BENCH_AUDIT=0         no apiserver audit log (and no API request counts)
 * BENCH_AUDIT_COPY=PATH keep a copy of the apiserver's audit log (JSON lines) there
 * WORKERS, RESYNC_SECONDS, SERVER_IMAGE, LOG_LEVEL (default warn) reach the operator.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Deployment } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND, PLURAL, type OnnxModel } from '../crds/onnxmodel-types.js';
import { paths, KubeRest } from '../operator/src/kube/rest.js';
import { FIELD_MANAGER } from '../operator/src/ownership.js';
import { startControlPlane, type ControlPlane } from '../operator/test/helpers/control-plane.js';
import { startOperator, type LogLine, type OperatorProcess } from '../operator/test/helpers/operator-process.js';
import { freePort } from '../scripts/testkit/free-port.js';
import { scrape } from '../scripts/testkit/prometheus.js';
import { describeMachine, peakRssMiB } from './machine.js';

const BENCH_START = performance.now();
const MODELS = positiveInt('BENCH_MODELS', 200);
const CREATE_MODE = (process.env.BENCH_CREATE ?? 'api').trim();
if (CREATE_MODE !== 'api' && CREATE_MODE !== 'kubectl')
  throw new Error(`BENCH_CREATE=${CREATE_MODE}: expected api or kubectl`);
const TIMEOUT_MS = positiveInt('BENCH_TIMEOUT_SECONDS', 300) * 1000;
const QUIET_MS = positiveInt('BENCH_QUIET_SECONDS', 3) * 1000;
const AUDIT = process.env.BENCH_AUDIT !== '0';
const POLL_MS = 200;
const NEW_RESIZE_MODE = 'letterbox';
const BENCH_USER_AGENT = 'onnx-operator-bench/operator-scale';
const MANAGED = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;

const RESULTS = fileURLToPath(new URL('../../bench/results/operator-scale.json', import.meta.url));
const CRD = fileURLToPath(new URL('../../crds/onnxmodel.yaml', import.meta.url));

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}=${raw}: expected a positive integer`);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t0: number) => performance.now() - t0;
const log = (msg: string) => process.stderr.write(`[${(since(BENCH_START) / 1000).toFixed(1)}s] ${msg}\n`);

// ------------------------------------------------------------------ /proc

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of a process, in seconds (null once it is gone). */
function cpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

const round = (n: number | null, digits = 2) => (n === null ? null : Number(n.toFixed(digits)));

// ------------------------------------------------------------------ API client

/**
 * Lists `path` with the operator's own client; only the metadata when counting (a tenth of the bytes, so polling
 * weighs little on the apiserver).
 */
async function list<T>(
  api: KubeRest,
  path: string,
  opts: { labelSelector?: string; metadataOnly?: boolean } = {},
): Promise<{ items: T[] }> {
  const result = await api.request<{ items?: T[] | null }>('GET', path, {
    query: { labelSelector: opts.labelSelector },
    accept: opts.metadataOnly
      ? 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json'
      : undefined,
    timeoutMs: 60_000,
  });
  // An empty PartialObjectMetadataList comes back with items: null.
  return { items: result.items ?? [] };
}

// ------------------------------------------------------------------ the operator process

interface LogSummary {
  /** `level msg` → count, for every line at warn or above (and every non-JSON line). */
  counts: Record<string, number>;
  /** The first lines at warn or above, verbatim. */
  samples: string[];
  lines: number;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** The operator's log lines at warn or above, counted by level and message. */
function summarizeLog(lines: readonly LogLine[]): LogSummary {
  const summary: LogSummary = { counts: {}, samples: [], lines: lines.length };
  for (const line of lines) {
    if (line.level !== undefined && line.level < 40) continue;
    const key =
      line.level === undefined
        ? `stdout ${String(line.msg).slice(0, 120)}`
        : `${LEVELS[line.level] ?? line.level} ${line.msg}`;
    summary.counts[key] = (summary.counts[key] ?? 0) + 1;
    if (summary.samples.length < 20) summary.samples.push(JSON.stringify(line));
  }
  return summary;
}

/** The operator as the tests run it (operator/test/helpers/operator-process.ts), once /readyz answers. */
async function startScaleOperator(cp: ControlPlane, namespace: string): Promise<OperatorProcess> {
  const passed = Object.fromEntries(
    ['WORKERS', 'RESYNC_SECONDS', 'SERVER_IMAGE'].flatMap((k) => (process.env[k] ? [[k, process.env[k]]] : [])),
  );
  // warn by default: an info line per reconcile would be part of what is measured.
  const op = await startOperator(
    {
      KUBECONFIG: cp.kubeconfigPath,
      PORT: String(await freePort()),
      LEADER_ELECTION: 'false',
      WATCH_NAMESPACE: namespace,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      ...passed,
    },
    { name: 'operator', quiet: true },
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = await fetch(`${op.url}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return op;
    if (!op.running) throw new Error(`the operator exited during start-up:\n${op.tail()}`);
    if (Date.now() > deadline) throw new Error(`the operator was not ready within 60 s (last /readyz: ${status})`);
    await sleep(100);
  }
}

async function stopOperator(
  op: OperatorProcess,
): Promise<{ shutdownMs: number; code: number | null; signal: NodeJS.Signals | null }> {
  const t = performance.now();
  const res = await op.stop('SIGTERM', 15_000);
  return { shutdownMs: Math.round(since(t)), ...res };
}

/** The operator's Prometheus text, as name{labels} → value. */
const scrapeOperator = (op: OperatorProcess) => scrape(`${op.url}/metrics`);

interface OperatorCounters {
  success: number;
  error: number;
  retries: number;
  durationSum: number;
  durationCount: number;
  queueDepth: number;
  heapUsedMiB: number;
}

function counters(m: Map<string, number>): OperatorCounters {
  return {
    success: m.get('onnx_operator_reconcile_total{result="success"}') ?? 0,
    error: m.get('onnx_operator_reconcile_total{result="error"}') ?? 0,
    retries: m.get('onnx_operator_workqueue_retries_total') ?? 0,
    durationSum: m.get('onnx_operator_reconcile_duration_seconds_sum') ?? 0,
    durationCount: m.get('onnx_operator_reconcile_duration_seconds_count') ?? 0,
    queueDepth: m.get('onnx_operator_workqueue_depth') ?? 0,
    heapUsedMiB: Math.round((m.get('nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20),
  };
}

// ------------------------------------------------------------------ the models

function model(namespace: string, i: number, resizeMode?: string): OnnxModel {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: `scale-${String(i).padStart(4, '0')}`, namespace },
    spec: {
      modelUri: `gs://onnx-operator-bench/models/model-${i}.onnx`,
      ...(resizeMode ? { preprocessing: { resizeMode: resizeMode as 'letterbox' } } : {}),
    },
  };
}

const yamlStream = (objects: unknown[]) => objects.map((o) => JSON.stringify(o)).join('\n---\n');

/** Every model created (api: all POSTs in flight together; kubectl: one apply of an N-document YAML). */
async function createAll(api: KubeRest, cp: ControlPlane, namespace: string): Promise<string[]> {
  const models = Array.from({ length: MODELS }, (_, i) => model(namespace, i));
  if (CREATE_MODE === 'kubectl') {
    const r = await cp.kubectl(['apply', '-n', namespace, '-f', '-'], {
      input: yamlStream(models),
      timeoutMs: TIMEOUT_MS,
    });
    return r.code === 0 ? [] : [`kubectl apply exited ${r.code}: ${r.stderr.slice(0, 500)}`];
  }
  const results = await Promise.allSettled(models.map((m) => api.post(paths.onnxModels(namespace), m, 60_000)));
  return results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
}

async function changeAll(api: KubeRest, cp: ControlPlane, namespace: string): Promise<string[]> {
  if (CREATE_MODE === 'kubectl') {
    const models = Array.from({ length: MODELS }, (_, i) => model(namespace, i, NEW_RESIZE_MODE));
    const r = await cp.kubectl(['apply', '-n', namespace, '-f', '-'], {
      input: yamlStream(models),
      timeoutMs: TIMEOUT_MS,
    });
    return r.code === 0 ? [] : [`kubectl apply exited ${r.code}: ${r.stderr.slice(0, 500)}`];
  }
  const patch = { spec: { preprocessing: { resizeMode: NEW_RESIZE_MODE } } };
  const results = await Promise.allSettled(
    Array.from({ length: MODELS }, (_, i) =>
      api.request('PATCH', `${paths.onnxModels(namespace)}/${model(namespace, i).metadata.name}`, {
        body: patch,
        contentType: 'application/merge-patch+json',
        timeoutMs: 60_000,
      }),
    ),
  );
  return results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
}

const statusWritten = (m: OnnxModel, minGeneration: number) =>
  (m.metadata.generation ?? 0) >= minGeneration &&
  m.status?.observedGeneration === m.metadata.generation &&
  m.status?.conditions?.length === 4;

const templateHas = (d: V1Deployment, value: string) =>
  d.spec?.template?.spec?.containers?.[0]?.env?.some((e) => e.name === 'RESIZE_MODE' && e.value === value) ?? false;

// ------------------------------------------------------------------ phases

interface Sample {
  tMs: number;
  /** The operator's reconciles (ok + error) since the phase began. */
  reconciles: number;
  deployments?: number;
  services?: number;
  statuses?: number;
  templates?: number;
}

interface Usage {
  operatorCpuSeconds: number | null;
  apiserverCpuSeconds: number | null;
  etcdCpuSeconds: number | null;
  controllerManagerCpuSeconds: number | null;
  benchCpuSeconds: number;
}

interface PhaseResult {
  phase: 'create' | 'update';
  models: number;
  mode: string;
  startedAt: string;
  endedAt: string;
  /** Until every create / patch returned. */
  issueMs: number;
  issueErrors: string[];
  firstDeploymentMs: number | null;
  allDeploymentsMs: number | null;
  allServicesMs: number | null;
  /** update: every Deployment's pod template has the new RESIZE_MODE. */
  allTemplatesMs: number | null;
  /** Every model: status.observedGeneration == metadata.generation (the new one for update) and 4 conditions. */
  allStatusesMs: number | null;
  converged: boolean;
  /** The last reconcile seen before the operator went quiet (queue empty, no reconcile for BENCH_QUIET_SECONDS). */
  lastReconcileMs: number | null;
  quiet: boolean;
  /**
   * Reconciles done when every status had been written (the rest follow the controller-manager's updates of the
   * children).
   */
  reconcilesAtConvergence: number | null;
  reconciles: { success: number; error: number };
  retries: number;
  meanReconcileMs: number | null;
  usage: Usage;
  operatorRssEndMiB: number | null;
  final: Sample;
  progress: Sample[];
  apiRequests?: AuditSummary;
  /**
   * kube-controller-manager's requests in the same window (ReplicaSets, pods, Deployment status: what re-triggers the
   * operator).
   */
  controllerManagerRequests?: AuditSummary;
}

function usageNow(cp: ControlPlane, op: OperatorProcess): Usage {
  const pid = (key: string) => Number(cp.state[key]) || undefined;
  const cpu = process.cpuUsage();
  return {
    operatorCpuSeconds: cpuSeconds(op.child.pid),
    apiserverCpuSeconds: cpuSeconds(pid('APISERVER_PID')),
    etcdCpuSeconds: cpuSeconds(pid('ETCD_PID')),
    controllerManagerCpuSeconds: cpuSeconds(pid('CONTROLLER_MANAGER_PID')),
    benchCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

function usageDelta(a: Usage, b: Usage): Usage {
  const d = (x: number | null, y: number | null) => (x === null || y === null ? null : round(y - x));
  return {
    operatorCpuSeconds: d(a.operatorCpuSeconds, b.operatorCpuSeconds),
    apiserverCpuSeconds: d(a.apiserverCpuSeconds, b.apiserverCpuSeconds),
    etcdCpuSeconds: d(a.etcdCpuSeconds, b.etcdCpuSeconds),
    controllerManagerCpuSeconds: d(a.controllerManagerCpuSeconds, b.controllerManagerCpuSeconds),
    benchCpuSeconds: round(b.benchCpuSeconds - a.benchCpuSeconds) ?? 0,
  };
}

/** Polls every POLL_MS until the operator has been idle for QUIET_MS; returns when it last saw a reconcile. */
async function waitQuiet(
  op: OperatorProcess,
  t0: number,
  deadline: number,
  base: number,
  progress: Sample[],
): Promise<{ lastReconcileMs: number; quiet: boolean }> {
  let last = -1;
  let lastChange = performance.now();
  for (;;) {
    const c = counters(await scrapeOperator(op));
    const total = c.success + c.error;
    if (total !== last) {
      progress.push({ tMs: Math.round(since(t0)), reconciles: total - base });
      last = total;
      lastChange = performance.now();
    } else if (c.queueDepth === 0 && performance.now() - lastChange >= QUIET_MS) {
      return { lastReconcileMs: Math.round(lastChange - t0), quiet: true };
    }
    if (Date.now() > deadline) return { lastReconcileMs: Math.round(lastChange - t0), quiet: false };
    await sleep(POLL_MS);
  }
}

async function runPhase(
  phase: 'create' | 'update',
  ctx: { api: KubeRest; cp: ControlPlane; op: OperatorProcess; namespace: string },
): Promise<PhaseResult> {
  const { api, cp, op, namespace } = ctx;
  const before = counters(await scrapeOperator(op));
  const usage0 = usageNow(cp, op);
  const startedAt = new Date();
  const deadline = Date.now() + TIMEOUT_MS;
  log(`${phase}: ${MODELS} models (${CREATE_MODE})...`);
  const t0 = performance.now();
  let issueMs = -1;
  const issuing = (phase === 'create' ? createAll(api, cp, namespace) : changeAll(api, cp, namespace)).then(
    (errors) => {
      issueMs = Math.round(since(t0));
      return errors;
    },
  );

  const progress: Sample[] = [];
  let firstDeploymentMs: number | null = null;
  let allDeploymentsMs: number | null = null;
  let allServicesMs: number | null = null;
  let allTemplatesMs: number | null = null;
  let allStatusesMs: number | null = null;
  const minGeneration = phase === 'create' ? 1 : 2;
  let sample: Sample | undefined;
  const base = before.success + before.error;
  let reconcilesAtConvergence: number | null = null;
  let lastLog = 0;
  for (;;) {
    const pollStart = performance.now();
    const [deployments, services, models, metrics] = await Promise.all([
      list<V1Deployment>(api, paths.deployments(namespace), {
        labelSelector: MANAGED,
        metadataOnly: phase === 'create',
      }),
      list<unknown>(api, paths.services(namespace), { labelSelector: MANAGED, metadataOnly: true }),
      list<OnnxModel>(api, paths.onnxModels(namespace)),
      scrapeOperator(op).then(counters),
    ]);
    const tMs = Math.round(since(t0));
    sample = {
      tMs,
      reconciles: metrics.success + metrics.error - base,
      deployments: deployments.items.length,
      services: services.items.length,
      statuses: models.items.filter((m) => statusWritten(m, minGeneration)).length,
      ...(phase === 'update'
        ? { templates: deployments.items.filter((d) => templateHas(d, NEW_RESIZE_MODE)).length }
        : {}),
    };
    progress.push(sample);
    if (firstDeploymentMs === null && deployments.items.length > 0) firstDeploymentMs = tMs;
    if (allDeploymentsMs === null && deployments.items.length >= MODELS) allDeploymentsMs = tMs;
    if (allServicesMs === null && services.items.length >= MODELS) allServicesMs = tMs;
    if (allTemplatesMs === null && (sample.templates ?? 0) >= MODELS) allTemplatesMs = tMs;
    // Only once every model exists with the generation we are waiting for (a patch not yet issued leaves it at 1).
    if (allStatusesMs === null && models.items.length >= MODELS && (sample.statuses ?? 0) >= MODELS) {
      allStatusesMs = tMs;
      reconcilesAtConvergence = sample.reconciles;
    }
    if (tMs - lastLog >= 2000) {
      lastLog = tMs;
      log(
        `${phase} t=${(tMs / 1000).toFixed(1)}s reconciles=${sample.reconciles} deployments=${sample.deployments} ` +
          `services=${sample.services} statuses=${sample.statuses}` +
          `${sample.templates === undefined ? '' : ` templates=${sample.templates}`}`,
      );
    }
    const done =
      allDeploymentsMs !== null &&
      allServicesMs !== null &&
      allStatusesMs !== null &&
      (phase === 'create' || allTemplatesMs !== null);
    if (done || Date.now() > deadline) break;
    await sleep(Math.max(0, POLL_MS - (performance.now() - pollStart)));
  }
  const issueErrors = await issuing;
  const converged =
    allStatusesMs !== null &&
    allDeploymentsMs !== null &&
    allServicesMs !== null &&
    (phase === 'create' || allTemplatesMs !== null);
  log(
    `${phase}: ${converged ? 'converged' : 'NOT converged'} at ${(sample.tMs / 1000).toFixed(1)}s; ` +
      'waiting for the operator to go quiet...',
  );
  const { lastReconcileMs, quiet } = await waitQuiet(op, t0, Math.max(deadline, Date.now() + 60_000), base, progress);
  const after = counters(await scrapeOperator(op));
  const usage1 = usageNow(cp, op);
  const count = after.durationCount - before.durationCount;
  return {
    phase,
    models: MODELS,
    mode: CREATE_MODE,
    startedAt: startedAt.toISOString(),
    endedAt: new Date().toISOString(),
    issueMs,
    issueErrors: issueErrors.slice(0, 20),
    firstDeploymentMs,
    allDeploymentsMs,
    allServicesMs,
    allTemplatesMs,
    allStatusesMs,
    converged,
    lastReconcileMs,
    quiet,
    reconcilesAtConvergence,
    reconciles: { success: after.success - before.success, error: after.error - before.error },
    retries: after.retries - before.retries,
    meanReconcileMs: count > 0 ? round((1000 * (after.durationSum - before.durationSum)) / count, 1) : null,
    usage: usageDelta(usage0, usage1),
    operatorRssEndMiB: rssMiB(op.child.pid!),
    final: sample,
    progress,
  };
}

// ------------------------------------------------------------------ audit log

interface AuditSummary {
  total: number;
  /** `verb resource[/subresource]` → count. */
  byVerb: Record<string, number>;
  /** HTTP status → count, for answers other than 2xx. */
  failures: Record<string, number>;
}

interface AuditEvent {
  verb?: string;
  userAgent?: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp?: string;
}

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
`;

/** The operator is the admin user with neither kubectl's nor the bench's user agent. */
const isOperator = (e: AuditEvent) =>
  e.user?.username === 'admin' && !(e.userAgent ?? '').startsWith('kubectl') && e.userAgent !== BENCH_USER_AGENT;
const isControllerManager = (e: AuditEvent) => e.user?.username === 'system:kube-controller-manager';

function summarizeAudit(
  events: AuditEvent[],
  from: number,
  to: number,
  who: (e: AuditEvent) => boolean = isOperator,
): AuditSummary {
  const s: AuditSummary = { total: 0, byVerb: {}, failures: {} };
  for (const e of events) {
    const t = Date.parse(e.requestReceivedTimestamp ?? '');
    if (!(t >= from && t < to) || !who(e)) continue;
    s.total++;
    const what =
      `${e.verb} ${e.objectRef?.resource ?? '?'}` + `${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;
    s.byVerb[what] = (s.byVerb[what] ?? 0) + 1;
    const code = e.responseStatus?.code ?? 0;
    if (code < 200 || code >= 300) s.failures[String(code)] = (s.failures[String(code)] ?? 0) + 1;
  }
  s.byVerb = Object.fromEntries(Object.entries(s.byVerb).sort((a, b) => b[1] - a[1]));
  return s;
}

function readAudit(path: string): AuditEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as AuditEvent];
      } catch {
        return [];
      }
    });
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const machine = describeMachine();
  // Other work on the machine skews every figure here: say how busy it was.
  const loadAtStart = loadavg().map((l) => round(l));
  log(`machine: ${JSON.stringify(machine)}`);
  const tmp = mkdtempSync(join(tmpdir(), 'onnx-operator-scale-'));
  const auditLog = join(tmp, 'audit.log');
  let cp: ControlPlane | undefined;
  let op: OperatorProcess | undefined;
  let api: KubeRest | undefined;
  // A signal: kill the operator; process.exit runs the control-plane helper's exit hook, which stops the plane.
  const onSignal = (sig: NodeJS.Signals) => {
    op?.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // The default service CIDR (/24) holds ~250 cluster IPs: widen it for larger runs.
    const wide = MODELS > 240 ? ' --service-cluster-ip-range=10.0.0.0/16' : '';
    if (AUDIT) writeFileSync(join(tmp, 'audit-policy.yaml'), AUDIT_POLICY);
    const auditArgs = AUDIT
      ? ` --audit-policy-file=${join(tmp, 'audit-policy.yaml')} --audit-log-path=${auditLog} --audit-log-format=json`
      : '';
    const apiserverArgs = `${process.env.CP_APISERVER_ARGS ?? ''}${wide}${auditArgs}`;
    const kcmArgs = `${process.env.CP_KCM_ARGS ?? ''}${wide}`;
    log('starting the control plane...');
    const tCp = performance.now();
    cp = await startControlPlane({ env: { CP_APISERVER_ARGS: apiserverArgs, CP_KCM_ARGS: kcmArgs } });
    const controlPlaneStartSeconds = round(since(tCp) / 1000, 1);
    log(`control plane ${cp.version} up in ${controlPlaneStartSeconds}s`);

    const crd = await cp.kubectl(['apply', '-f', CRD]);
    if (crd.code !== 0) throw new Error(`kubectl apply -f crds/onnxmodel.yaml: ${crd.stderr}`);
    const est = await cp.kubectl(['wait', '--for=condition=Established', `crd/${PLURAL}.${GROUP}`, '--timeout=60s']);
    if (est.code !== 0) throw new Error(`CRD not established: ${est.stderr}`);
    const namespace = await cp.createNamespace('scale');
    api = new KubeRest(cp.kubeConfig, BENCH_USER_AGENT);
    for (let i = 0; ; i++) {
      // The CRD's endpoint can lag its Established condition by a moment.
      const ok = await list(api, paths.onnxModels(namespace)).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new Error('the OnnxModel endpoint is not served');
      await sleep(100);
    }

    log('starting the operator...');
    const operatorSpawned = Date.now();
    const tOp = performance.now();
    op = await startScaleOperator(cp, namespace);
    const operatorReadyMs = Math.round(since(tOp));
    await sleep(1000);
    const idle = {
      rssMiB: rssMiB(op.child.pid!),
      peakRssMiB: peakRssMiB(op.child.pid!),
      cpuSeconds: round(cpuSeconds(op.child.pid)),
    };
    log(`operator ready in ${operatorReadyMs} ms (pid ${op.child.pid!}, RSS ${idle.rssMiB} MiB)`);

    const ctx = { api, cp, op, namespace };
    const create = await runPhase('create', ctx);
    const update = await runPhase('update', ctx);

    const finalCounters = counters(await scrapeOperator(op));
    const operatorEnd = {
      peakRssMiB: peakRssMiB(op.child.pid!),
      rssMiB: rssMiB(op.child.pid!),
      cpuSeconds: round(cpuSeconds(op.child.pid)),
      heapUsedMiB: finalCounters.heapUsedMiB,
      reconciles: { success: finalCounters.success, error: finalCounters.error },
      retries: finalCounters.retries,
    };
    const shutdown = await stopOperator(op);
    const operatorStopped = Date.now();
    log(`operator stopped in ${shutdown.shutdownMs} ms (exit ${shutdown.code ?? shutdown.signal})`);

    let operatorUserAgents: Record<string, number> | undefined;
    if (AUDIT) {
      await sleep(500); // the audit backend writes as requests complete
      const events = readAudit(auditLog);
      if (process.env.BENCH_AUDIT_COPY) copyFileSync(auditLog, process.env.BENCH_AUDIT_COPY);
      const phaseEnd = (p: PhaseResult) => Date.parse(p.endedAt);
      create.apiRequests = summarizeAudit(events, Date.parse(create.startedAt), phaseEnd(create));
      update.apiRequests = summarizeAudit(events, Date.parse(update.startedAt), phaseEnd(update));
      for (const p of [create, update])
        p.controllerManagerRequests = summarizeAudit(events, Date.parse(p.startedAt), phaseEnd(p), isControllerManager);
      operatorUserAgents = {};
      for (const e of events)
        if (isOperator(e)) operatorUserAgents[e.userAgent ?? ''] = (operatorUserAgents[e.userAgent ?? ''] ?? 0) + 1;
      // Everything the operator sent, start-up and shutdown included (watches are logged when they end).
      (operatorEnd as Record<string, unknown>).apiRequests = summarizeAudit(
        events,
        operatorSpawned,
        operatorStopped + 1000,
      );
    }

    const report = {
      date: new Date().toISOString(),
      machine,
      kubernetes: cp.version,
      models: MODELS,
      mode: CREATE_MODE,
      operator: {
        workers: Number(process.env.WORKERS ?? 4),
        logLevel: process.env.LOG_LEVEL ?? 'warn',
        leaderElection: false,
      },
      pollMs: POLL_MS,
      quietMs: QUIET_MS,
      controlPlaneStartSeconds,
      operatorReadyMs,
      operatorIdle: idle,
      phases: [create, update],
      operatorEnd,
      operatorShutdown: shutdown,
      operatorLog: summarizeLog(op.logs),
      operatorUserAgents,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((l) => round(l)) },
      benchSeconds: round(since(BENCH_START) / 1000, 1),
    };
    await writeFile(RESULTS, `${JSON.stringify(report, null, 2)}\n`);

    const s = (ms: number | null) => (ms === null ? 'never' : (ms / 1000).toFixed(1));
    const createMode =
      CREATE_MODE === 'api'
        ? 'all creates / merge patches in flight at once'
        : 'one kubectl apply of an N-document YAML';
    const out: string[] = [];
    out.push(
      `Machine: ${machine.cpuModel}, ${machine.cores} cores (${machine.effectiveCpus} usable), ` +
        `${machine.memoryGiB} GiB, Node ${machine.node}; ` +
        `Kubernetes ${cp.version} (etcd + apiserver + controller-manager on the same machine), ` +
        `operator WORKERS=${report.operator.workers}. ` +
        `Load average (1/5/15 min) at start ${loadAtStart.join(' / ')}, ` +
        `at end ${report.loadAverage.atEnd.join(' / ')}.`,
      '',
      `${MODELS} OnnxModels, ${createMode}; polled every ${POLL_MS} ms; times in seconds from the first request.`,
      '',
      '| phase | requests returned | first Deployment | all Deployments | all Services | all pod templates ' +
        '| all statuses | operator quiet after | reconciles ok / error (by all statuses) | retries ' +
        '| mean reconcile ms | operator CPU s | apiserver CPU s ' +
        '| operator API requests | controller-manager API requests |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const p of [create, update]) {
      out.push(
        `| ${p.phase} | ${s(p.issueMs)} | ${s(p.firstDeploymentMs)} | ${s(p.allDeploymentsMs)} | ` +
          `${s(p.allServicesMs)} | ${p.phase === 'create' ? '–' : s(p.allTemplatesMs)} | ${s(p.allStatusesMs)} | ` +
          `${s(p.lastReconcileMs)}${p.quiet ? '' : ' (not quiet)'} | ` +
          `${p.reconciles.success} / ${p.reconciles.error} (${p.reconcilesAtConvergence ?? '–'}) | ` +
          `${p.retries} | ${p.meanReconcileMs ?? '–'} | ` +
          `${p.usage.operatorCpuSeconds ?? '?'} | ${p.usage.apiserverCpuSeconds ?? '?'} | ` +
          `${p.apiRequests?.total ?? '–'} | ${p.controllerManagerRequests?.total ?? '–'} |`,
      );
    }
    out.push(
      '',
      `Operator RSS: ${idle.rssMiB} MiB idle with 0 models, ${operatorEnd.rssMiB} MiB at the end, ` +
        `peak ${operatorEnd.peakRssMiB} MiB (VmHWM); heap used ${operatorEnd.heapUsedMiB} MiB. ` +
        `CPU time: ${operatorEnd.cpuSeconds} s in all. ` +
        `Reconciles in all: ${operatorEnd.reconciles.success} ok, ${operatorEnd.reconciles.error} failed, ` +
        `${operatorEnd.retries} retries.`,
    );
    for (const p of [create, update]) {
      if (p.apiRequests) {
        const top = Object.entries(p.apiRequests.byVerb)
          .slice(0, 6)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
        const fails = Object.entries(p.apiRequests.failures)
          .map(([k, v]) => `${v}×${k}`)
          .join(', ');
        out.push(`Operator API requests, ${p.phase}: ${top}${fails ? `; non-2xx: ${fails}` : ''}.`);
      }
      if (p.controllerManagerRequests) {
        const top = Object.entries(p.controllerManagerRequests.byVerb)
          .slice(0, 6)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
        out.push(`Controller-manager API requests, ${p.phase}: ${top}.`);
      }
    }
    const warnings = Object.entries(summarizeLog(op.logs).counts);
    out.push(
      warnings.length
        ? `Operator log at warn+: ${warnings.map(([k, v]) => `${v}× "${k}"`).join('; ')}.`
        : 'Operator log: no line at warn or above.',
    );
    out.push(`Control plane start ${controlPlaneStartSeconds} s; bench ${report.benchSeconds} s in all.`);
    process.stdout.write(`${out.join('\n')}\n`);
    return create.converged && update.converged && create.issueErrors.length === 0 && update.issueErrors.length === 0
      ? 0
      : 1;
  } finally {
    api?.close();
    if (op?.running) await stopOperator(op).catch(() => undefined);
    if (cp) {
      log('stopping the control plane...');
      await cp.stop().catch((err: unknown) => log(`stopping the control plane: ${(err as Error).message}`));
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = await main();
