/**
 * The node scripts leave the machine as they found it: after a clean stop, and
 * after a crashed run whose kubelet, kube-proxy, scheduler and containerd were
 * SIGKILLed with a pod still running (the next start undoes what the ledger
 * recorded). Compared: the sysctls the kubelet changes, network links and
 * namespaces, iptables chains, mounts under the plane's temp dirs, and the
 * node's cgroups.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { eventually, startControlPlane, type ControlPlane } from '../helpers/control-plane.js';

const sh = promisify(execFile);
const SYSCTLS = ['net/ipv4/ip_forward', 'vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes', 'net/ipv4/conf/all/route_localnet'];

interface MachineState {
  sysctls: Record<string, string>;
  links: string[];
  netns: string[];
  kubeChains: string[];
  mounts: string[];
  cgroups: string[];
}

async function machineState(): Promise<MachineState> {
  const sysctls = Object.fromEntries(await Promise.all(SYSCTLS.map(async (k) => [k, (await readFile(`/proc/sys/${k}`, 'utf8')).trim()] as const)));
  const links = (await sh('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean).sort();
  const netns = (await readdir('/run/netns').catch(() => [] as string[])).sort();
  const kubeChains: string[] = [];
  for (const table of ['filter', 'nat', 'mangle']) {
    const rules = (await sh('iptables', ['-t', table, '-S'])).stdout;
    kubeChains.push(...rules.split('\n').filter((l) => /^-N KUBE-/.test(l)).map((l) => `${table} ${l}`));
  }
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes('/onnx-cp.')).sort();
  const cgroups: string[] = [];
  for (const hierarchy of await readdir('/sys/fs/cgroup')) {
    const entries = await readdir(`/sys/fs/cgroup/${hierarchy}`).catch(() => [] as string[]);
    cgroups.push(...entries.filter((e) => e.startsWith('onnx-node-')).map((e) => `${hierarchy}/${e}`));
  }
  return { sysctls, links, netns, kubeChains, mounts, cgroups: cgroups.sort() };
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
        containers: [{ name: 'c', image: pause, imagePullPolicy: 'Never', volumeMounts: [{ name: 'mem', mountPath: '/mem' }] }],
        volumes: [{ name: 'mem', emptyDir: { medium: 'Memory' } }],
      },
    };
    const applied = await crashed.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    expect(applied.code, applied.stderr).to.equal(0);
    await eventually(async () => {
      const r = await crashed.kubectl(['get', 'pod', 'sleeper', '-o', 'jsonpath={.status.containerStatuses[0].state.running.startedAt}']);
      if (!r.stdout.trim()) throw new Error('not running yet');
    }, { timeoutMs: 120_000, intervalMs: 500 });
    const during = await machineState();
    expect(during.links).to.include('onnxbr0');
    expect(during.kubeChains).to.not.deep.equal([]);
    expect(during.mounts.length).to.be.greaterThan(0);

    // The crash: every node daemon SIGKILLed; the shim and the pod's process live on.
    for (const key of ['KUBELET_PID', 'KUBE_PROXY_PID', 'SCHEDULER_PID', 'CONTAINERD_PID']) process.kill(Number(crashed.state[key]), 'SIGKILL');

    // The next start finds the ledger and undoes it before starting its own node.
    const next = await startControlPlane({ env: { CP_NODE: '1' } });
    planes.push(next);
    const r = await next.kubectl(['get', 'node', next.state.NODE_NAME!, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
    expect(r.stdout).to.equal('True');
    await next.stop();
    await crashed.stop();

    const after = await machineState();
    expect(after).to.deep.equal(before);
  });
});
