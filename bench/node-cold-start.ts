/**
 * Cold start on a real node: from `kubectl apply` of an OnnxModel to its first
 * pod Ready, split into where the time goes, and the same for a restart of the
 * server container (the model is then in the pod's cache).
 *
 *   npm run bench:cold-start          # RUNS=3 by default
 *
 * A single node (scripts/control-plane/start.sh, CP_NODE=1) with the operator
 * installed by `kubectl apply -k config/default`; models come from the GCS
 * emulator on the node's address. Every timestamp is this machine's clock:
 *
 *   schedule        apply → the pod is bound to the node (pods polled every 100 ms)
 *   sandbox + image bound → the server container is created (containerd's events:
 *                   the pause sandbox, its network, and the image check: the
 *                   image is present on the node, nothing is pulled)
 *   container start created → the container's process runs (containerd)
 *   runtime start   process → the server listens (its first log lines)
 *   download        the model's fetch, as the server logs it
 *   load            fetched → sessions created
 *   warm-up         sessions → the warm-up inference done
 *   readiness       warmed up → the pod's Ready condition seen (the readiness probe's period)
 *
 * A restart is timed from the old process's exit (after its graceful drain,
 * reported apart as stopMs): the kubelet starts a new container in the same
 * sandbox, so schedule and sandbox are nil, and the model comes from the cache.
 *
 * Writes bench/results/node-cold-start.json and prints a Markdown table.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, GROUP, KIND } from '../crds/onnxmodel-types.js';
import { startFakeGcs } from '../inference-server/test/helpers/fake-gcs.js';
import { eventually, repoRoot } from '../operator/test/helpers/control-plane.js';
import { containerPid, startNodeCluster, type NodeCluster } from '../operator/test/helpers/node-cluster.js';
import { ensureModels } from '../scripts/models/generate.js';
import { describeMachine } from './machine.js';

const ROOT = repoRoot();
const RESULTS = fileURLToPath(new URL('../../bench/results/node-cold-start.json', import.meta.url));
const RUNS = Number(process.env.RUNS ?? 3);
const MODEL_LABEL = `${GROUP}/model`;
const PHASES = [
  'schedule',
  'sandbox + image',
  'container start',
  'runtime start',
  'download',
  'load',
  'warm-up',
  'readiness',
] as const;
type Phase = (typeof PHASES)[number];

interface Run {
  model: string;
  kind: 'cold' | 'restart';
  totalMs: number;
  phasesMs: Record<Phase, number>;
  fromCache: boolean;
  /** Restarts: SIGTERM → the old process's exit (the graceful drain), not part of totalMs. */
  stopMs?: number;
}

/** containerd's task and container events with their timestamps, as `ctr events` prints them. */
class ContainerdEvents {
  private readonly lines: { at: number; topic: string; body: Record<string, unknown> }[] = [];
  private readonly child;
  constructor(cluster: NodeCluster) {
    this.child = spawn('ctr', ['--address', cluster.containerdSocket, 'events'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let buf = '';
    this.child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // 2026-12-01 23:50:01.123456789 +0000 UTC k8s.io /tasks/start {"container_id":"…","pid":123}
        const m = /^(\S+ \S+) \+0000 UTC (\S+) (\S+) (.*)$/.exec(line);
        if (!m) continue;
        const at = Date.parse(`${m[1]!.replace(' ', 'T').slice(0, 23)}Z`);
        try {
          this.lines.push({ at, topic: m[3]!, body: JSON.parse(m[4]!) as Record<string, unknown> });
        } catch {
          this.lines.push({ at, topic: m[3]!, body: {} });
        }
      }
    });
  }
  /** The first `topic` event about `containerId` at or after `after`. */
  find(topic: string, containerId: string, after = 0): number | undefined {
    return this.lines.find(
      (l) => l.topic === topic && l.at >= after && (l.body.id === containerId || l.body.container_id === containerId),
    )?.at;
  }
  stop(): void {
    this.child.kill('SIGTERM');
  }
}

interface LogLine {
  time: number;
  msg: string;
  fromCache?: boolean;
  durationMs?: number;
  path?: string;
}

async function main(): Promise<void> {
  const machine = describeMachine();
  const models = await ensureModels(undefined, { only: ['resnet50'], log: () => undefined });
  const efficientnet = join(ROOT, 'inference-server', 'models', 'efficientnet-lite0');
  const cluster = await startNodeCluster();
  const gcs = await startFakeGcs({ host: cluster.nodeIp });
  const events = new ContainerdEvents(cluster);
  const runs: Run[] = [];
  try {
    const kubectl = async (args: string[], input?: string) => {
      const r = await cluster.kubectl(args, input === undefined ? {} : { input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await gcs.createBucket('models');
    await gcs.upload('models', 'efficientnet-lite0/model.onnx', await readFile(join(efficientnet, 'model.onnx')));
    await gcs.upload('models', 'efficientnet-lite0/labels.txt', await readFile(join(efficientnet, 'labels.txt')));
    await gcs.upload('models', 'resnet50/model.onnx', await readFile(models.resnet50));
    await kubectl(['apply', '-k', join(ROOT, 'config', 'default')]);
    await kubectl(['rollout', 'status', 'deployment/onnx-operator', '-n', 'onnx-operator-system', '--timeout=300s']);
    const ns = await cluster.createNamespace('bench');

    const cases = [
      {
        name: 'efficientnet-lite0',
        modelUri: 'gs://models/efficientnet-lite0/model.onnx',
        labelsUri: 'gs://models/efficientnet-lite0/labels.txt',
      },
      { name: 'resnet50', modelUri: 'gs://models/resnet50/model.onnx' },
    ];
    for (const c of cases) {
      for (let i = 0; i < RUNS; i++) {
        const name = `${c.name.replace(/[^a-z0-9-]/g, '')}-${i}`;
        const spec = {
          modelUri: c.modelUri,
          ...(c.labelsUri ? { labelsUri: c.labelsUri } : {}),
          replicas: 1,
          resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
          env: [{ name: 'STORAGE_EMULATOR_HOST', value: gcs.url }],
          service: { type: 'ClusterIP' },
        };
        const applied = Date.now();
        await kubectl(
          ['apply', '-n', ns, '-f', '-'],
          JSON.stringify({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec }),
        );
        const seen = await watchPod(cluster, ns, name, applied);
        runs.push(await measure(cluster, events, ns, name, c.name, 'cold', applied, seen));
        // A restart of the server container: same pod, the model in its emptyDir cache.
        // Timed from the old process's exit: its drain (readiness off, DRAIN_DELAY_MS) is the stop, not the start.
        const pid = await containerPid(cluster, seen.containerId);
        const killed = Date.now();
        process.kill(pid, 'SIGTERM');
        const again = await watchPod(cluster, ns, name, killed, seen.containerId);
        const oldId = seen.containerId.replace(/^containerd:\/\//, '');
        const exited = events.find('/tasks/exit', oldId, killed) ?? killed;
        runs.push({
          ...(await measure(cluster, events, ns, name, c.name, 'restart', exited, { ...again, scheduledAt: exited })),
          stopMs: exited - killed,
        });
        await kubectl(['delete', 'onnxmodel', name, '-n', ns, '--wait=true']);
        await eventually(
          async () => {
            const out = await kubectl(['get', 'pods', '-n', ns, '-l', `${MODEL_LABEL}=${name}`, '-o', 'name']);
            if (out.trim()) throw new Error('pods left');
          },
          { timeoutMs: 120_000 },
        );
        const last = runs.slice(-2);
        process.stderr.write(`${name}: cold ${last[0]!.totalMs} ms, restart ${last[1]!.totalMs} ms\n`);
      }
    }
  } finally {
    events.stop();
    await gcs.stop();
    await cluster.stop();
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = ['efficientnet-lite0', 'resnet50'].flatMap((model) =>
    (['cold', 'restart'] as const).map((kind) => {
      const rs = runs.filter((r) => r.model === model && r.kind === kind);
      return {
        model,
        kind,
        runs: rs.length,
        medianTotalMs: median(rs.map((r) => r.totalMs)),
        medianPhasesMs: Object.fromEntries(PHASES.map((p) => [p, median(rs.map((r) => r.phasesMs[p]))])) as Record<
          Phase,
          number
        >,
        fromCache: rs.every((r) => r.fromCache),
      };
    }),
  );
  const report = {
    benchmark: 'node-cold-start',
    date: new Date().toISOString(),
    machine,
    k8s: cluster.version,
    runsPerCase: RUNS,
    summary,
    runs,
  };
  await writeFile(RESULTS, `${JSON.stringify(report, null, 2)}\n`);
  const header = `| model | start | total | ${PHASES.join(' | ')} |`;
  const rows = summary.map(
    (s) =>
      `| ${s.model} | ${s.kind}${s.fromCache ? ' (cached)' : ''} | **${(s.medianTotalMs / 1000).toFixed(1)} s** ` +
      `| ${PHASES.map((p) => (s.medianPhasesMs[p] / 1000).toFixed(2)).join(' | ')} |`,
  );
  process.stdout.write(
    `${[header, `|${' --- |'.repeat(PHASES.length + 3)}`, ...rows].join('\n')}\n\n` +
      `medians of ${RUNS} runs, seconds; ${machine.cpuModel}, ${machine.cores} cores; wrote ${RESULTS}\n`,
  );
}

interface Seen {
  scheduledAt: number;
  readyAt: number;
  containerId: string;
}

/**
 * Polls the model's pod (kubectl, every 100 ms) until Ready (with a container other than `previousContainer`),
 * noting when it was bound and Ready.
 */
async function watchPod(
  cluster: NodeCluster,
  ns: string,
  model: string,
  since: number,
  previousContainer?: string,
): Promise<Seen> {
  let scheduledAt: number | undefined = previousContainer ? since : undefined;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const r = await cluster.kubectl(['get', 'pods', '-n', ns, '-l', `${MODEL_LABEL}=${model}`, '-o', 'json']);
    const now = Date.now();
    const pod = (JSON.parse(r.stdout || '{"items":[]}') as { items: V1Pod[] }).items.find(
      (p) => !p.metadata?.deletionTimestamp,
    );
    if (pod) {
      if (scheduledAt === undefined && pod.spec?.nodeName) scheduledAt = now;
      const server = pod.status?.containerStatuses?.[0];
      const id = server?.containerID?.replace(/^containerd:\/\//, '');
      if (server?.ready && id && id !== previousContainer?.replace(/^containerd:\/\//, ''))
        return { scheduledAt: scheduledAt ?? now, readyAt: now, containerId: server.containerID! };
    }
    if (now > deadline) throw new Error(`${ns}/${model}: no Ready pod after 10 minutes`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function measure(
  cluster: NodeCluster,
  events: ContainerdEvents,
  ns: string,
  model: string,
  label: string,
  kind: 'cold' | 'restart',
  t0: number,
  seen: Seen,
): Promise<Run> {
  const id = seen.containerId.replace(/^containerd:\/\//, '');
  const created = await eventually(
    async () =>
      events.find('/containers/create', id, t0 - 1000) ?? Promise.reject(new Error(`no /containers/create for ${id}`)),
    { timeoutMs: 10_000 },
  );
  const started = events.find('/tasks/start', id, t0 - 1000) ?? created;
  const podName = (
    await cluster.kubectl([
      'get',
      'pods',
      '-n',
      ns,
      '-l',
      `${MODEL_LABEL}=${model}`,
      '-o',
      'jsonpath={.items[0].metadata.name}',
    ])
  ).stdout.trim();
  const logs = (await cluster.kubectl(['logs', '-n', ns, podName])).stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
  const at = (msg: string, pick?: (l: LogLine) => boolean) => {
    const line = logs.find((l) => l.msg === msg && (pick ? pick(l) : true));
    if (!line) throw new Error(`${podName}: no "${msg}" log line in:\n${logs.map((l) => l.msg).join('\n')}`);
    return line;
  };
  const first = logs[0]!.time;
  const artifact = at('model artifact ready', (l) => l.path?.endsWith('.onnx') ?? false);
  const fileReady = at('model file ready').time;
  const loaded = at('model loaded').time;
  const warm = at('model warmed up; ready').time;
  const listening = at('listening').time;
  const phasesMs: Record<Phase, number> = {
    schedule: seen.scheduledAt - t0,
    'sandbox + image': created - seen.scheduledAt,
    'container start': started - created,
    'runtime start': Math.max(listening, first) - started,
    download: artifact.durationMs ?? 0,
    load: loaded - fileReady,
    'warm-up': warm - loaded,
    readiness: seen.readyAt - warm,
  };
  return { model: label, kind, totalMs: seen.readyAt - t0, phasesMs, fromCache: artifact.fromCache === true };
}

await main();
