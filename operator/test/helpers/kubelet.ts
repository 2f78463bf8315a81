/**
 * The parts of a cluster the test control plane lacks, played by the tests:
 * a "kubelet" that reports pods Running and Ready (the ReplicaSet and
 * Deployment controllers then update the Deployment's status), and a "cloud
 * load balancer" that gives a LoadBalancer Service its ingress address.
 */
import type { ControlPlane } from './control-plane.js';

interface PodList {
  items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
}

async function ok(cp: ControlPlane, args: string[]): Promise<string> {
  const r = await cp.kubectl(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const isReady = (pod: PodList['items'][number]) =>
  pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/**
 * Reports every pod in `namespace` (matching `selector`, if given) that is not Ready yet as Running and Ready; returns
 * how many.
 */
export async function markPodsReady(cp: ControlPlane, namespace: string, selector?: string): Promise<number> {
  const pods = JSON.parse(
    await ok(cp, ['get', 'pods', '-n', namespace, '-o', 'json', ...(selector ? ['-l', selector] : [])]),
  ) as PodList;
  const pending = pods.items.filter((p) => !isReady(p));
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const patch = JSON.stringify({
    status: {
      phase: 'Running',
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
        { type: 'Ready', status: 'True', lastTransitionTime: now },
      ],
    },
  });
  let patched = 0;
  for (const pod of pending) {
    const r = await cp.kubectl([
      'patch',
      'pod',
      pod.metadata.name,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      patch,
    ]);
    if (r.code === 0) patched++;
    else if (!/NotFound|not found/.test(r.stderr))
      throw new Error(`cannot mark pod ${namespace}/${pod.metadata.name} ready: ${r.stderr.trim()}`);
    // NotFound: the ReplicaSet controller deleted it meanwhile (scale-down, rollout); nothing to report.
  }
  return patched;
}

export interface FakeKubelet {
  /** Pods marked ready so far. */
  readonly marked: number;
  stop(): Promise<void>;
}

/** Keeps marking the namespace's pods Ready as the ReplicaSet controller creates them, until stopped. */
export function startFakeKubelet(cp: ControlPlane, namespace: string, intervalMs = 500): FakeKubelet {
  let stopped = false;
  let marked = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        marked += await markPodsReady(cp, namespace);
      } catch {
        // The namespace may be going away at the end of a test; keep trying until stopped.
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    get marked() {
      return marked;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** What the cloud controller would do for a LoadBalancer Service: publish its external address. */
export async function setLoadBalancerIngress(
  cp: ControlPlane,
  namespace: string,
  service: string,
  ip: string,
): Promise<void> {
  const patch = JSON.stringify({ status: { loadBalancer: { ingress: [{ ip }] } } });
  await ok(cp, ['patch', 'service', service, '-n', namespace, '--subresource=status', '--type=merge', '-p', patch]);
}
