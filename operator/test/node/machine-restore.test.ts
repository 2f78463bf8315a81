/**
 * The node scripts leave the machine as they found it: after a clean stop, and
 * after a crashed run whose kubelet, kube-proxy, scheduler and containerd were
 * SIGKILLed with a pod still running (the next start undoes what the ledger
 * recorded). Compared: the sysctls the kubelet changes, network links and
 * namespaces, iptables chains, mounts under the plane's temp dirs, and the
 * node's cgroups.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { eventually, startControlPlane, type ControlPlane } from '../helpers/control-plane.js';

const sh = promisify(execFile);
const SYSCTLS = [
  'net/ipv4/ip_forward',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/conf/all/route_localnet',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
];

interface MachineState {
  sysctls: Record<string, string>;
  links: string[];
  netns: string[];
  kubeChains: string[];
  mounts: string[];
  cgroups: string[];
  /** libcni's cache of results, /var/lib/cni/results. */
  cniResults: string[];
  /** runc's default state root for the k8s.io namespace (the node's runc has its own). */
  runcState: string[];
  /** containerd 1.6's shim sockets. */
  shimSockets: string[];
}

async function machineState(): Promise<MachineState> {
  const sysctls = Object.fromEntries(
    await Promise.all(SYSCTLS.map(async (k) => [k, (await readFile(`/proc/sys/${k}`, 'utf8')).trim()] as const)),
  );
  const links = (await sh('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter(Boolean)
    .sort();
  const netns = (await readdir('/run/netns').catch(() => [] as string[])).sort();
  const kubeChains: string[] = [];
  for (const ipt of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const rules = (await sh(ipt, ['-t', table, '-S'])).stdout;
      kubeChains.push(
        ...rules
          .split('\n')
          .filter((l) => /^-N KUBE-/.test(l))
          .map((l) => `${ipt} ${table} ${l}`),
      );
    }
  }
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .filter((l) => l.includes('/onnx-cp.'))
    .sort();
  const cgroups: string[] = [];
  for (const hierarchy of await readdir('/sys/fs/cgroup')) {
    const entries = await readdir(`/sys/fs/cgroup/${hierarchy}`).catch(() => [] as string[]);
    cgroups.push(...entries.filter((e) => e.startsWith('onnx-node-')).map((e) => `${hierarchy}/${e}`));
  }
  const cniResults = (await readdir('/var/lib/cni/results').catch(() => [] as string[])).sort();
  const runcState = (await readdir('/run/containerd/runc/k8s.io').catch(() => [] as string[])).sort();
  const shimSockets = (await readdir('/run/containerd/s').catch(() => [] as string[])).sort();
  return { sysctls, links, netns, kubeChains, mounts, cgroups: cgroups.sort(), cniResults, runcState, shimSockets };
}

/** Pids whose command line names both strings (read from /proc; nothing is signalled by name). */
async function processesNaming(dir: string, program: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir) && cmdline.includes(program)) pids.push(Number(entry));
  }
  return pids;
}

describe('on a real node: the node scripts restore the machine', function () {
  this.timeout(10 * 60_000);
  const planes: ControlPlane[] = [];
  after(async function () {
    this.timeout(180_000);
    for (const p of planes) await p.stop().catch(() => undefined);
  });

  it('after a clean stop, and after a crashed run undone by the next start', async () => {
    const before = await machineState();

    // A node with a running pod (the sandbox image as the container: no other image needed).
    const crashed = await startControlPlane({ env: { CP_NODE: '1' } });
    planes.push(crashed);
    const pause = crashed.state.PAUSE_IMAGE!;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'sleeper' },
      spec: {
        containers: [
          { name: 'c', image: pause, imagePullPolicy: 'Never', volumeMounts: [{ name: 'mem', mountPath: '/mem' }] },
        ],
        volumes: [{ name: 'mem', emptyDir: { medium: 'Memory' } }],
      },
    };
    const applied = await crashed.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    expect(applied.code, applied.stderr).to.equal(0);
    await eventually(
      async () => {
        const r = await crashed.kubectl([
          'get',
          'pod',
          'sleeper',
          '-o',
          'jsonpath={.status.containerStatuses[0].state.running.startedAt}',
        ]);
        if (!r.stdout.trim()) throw new Error('not running yet');
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const during = await machineState();
    expect(during.links).to.include('onnxbr0');
    expect(during.kubeChains).to.not.deep.equal([]);
    expect(during.mounts.length).to.be.greaterThan(0);

    // The crash: every node daemon SIGKILLed; the shim and the pod's process live on.
    const crashedDir = crashed.state.CP_DIR!;
    const shims = await processesNaming(crashedDir, 'containerd-shim');
    expect(shims, 'the pod has a shim').to.not.deep.equal([]);
    for (const key of ['KUBELET_PID', 'KUBE_PROXY_PID', 'SCHEDULER_PID', 'CONTAINERD_PID'])
      process.kill(Number(crashed.state[key]), 'SIGKILL');

    // The next start finds the ledger and undoes it before starting its own node: checked now,
    // before its own stop (which cleans the machine-wide things again) can hide what it missed.
    const next = await startControlPlane({ env: { CP_NODE: '1' } });
    planes.push(next);
    const r = await next.kubectl([
      'get',
      'node',
      next.state.NODE_NAME!,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    ]);
    expect(r.stdout).to.equal('True');
    const undone = await machineState();
    expect(
      undone.mounts.filter((m) => m.includes(crashedDir)),
      'mounts of the crashed node',
    ).to.deep.equal([]);
    expect(
      undone.cgroups.filter((c) => c.endsWith(crashedDir.split('/').pop()!)),
      'cgroups of the crashed node',
    ).to.deep.equal([]);
    expect(
      shims.filter((pid) => existsSync(`/proc/${pid}`)),
      'shims of the crashed node still running',
    ).to.deep.equal([]);
    // The new node makes its bridge with its first pod: none yet, so the crashed one's must be gone.
    expect(undone.links, "the crashed node's bridge").to.not.include('onnxbr0');
    // The new kube-proxy's rules send the kubernetes Service to the new API server only, not the crashed one's.
    const crashedApi = new URL(crashed.state.KUBE_APISERVER_URL!).host;
    expect((await sh('iptables-save', ['-t', 'nat'])).stdout, 'rules of the crashed node').to.not.include(
      `--to-destination ${crashedApi}`,
    );
    await next.stop();
    await crashed.stop();

    const after = await machineState();
    expect(after).to.deep.equal(before);
  });
});
