/**
 * A control plane with one real node (scripts/control-plane/start.sh with
 * CP_NODE=1: kube-scheduler, kubelet, kube-proxy and containerd on this machine),
 * with the project's images built by podman and imported into the node's
 * containerd under the names config/default installs, so `kubectl apply -k
 * config/default` runs them without a registry.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { IMAGE_BUILD_TIMEOUT_MS, parseExports, run, tail } from '../../../inference-server/test/helpers/podman.js';
import { repoRoot, startControlPlane, type ControlPlane } from './control-plane.js';

export interface NodeCluster extends ControlPlane {
  nodeName: string;
  /** The node's InternalIP: pods reach test services (fake GCS) here, and node ports answer here. */
  nodeIp: string;
  containerdSocket: string;
  /** What kubectl apply -k config/default names the images, now present on the node. */
  images: { operator: string; server: string };
  /** Runs ctr against the node's containerd (namespace k8s.io). */
  ctr(args: string[]): Promise<string>;
}

interface Kustomization {
  images?: { name: string; newName?: string; newTag?: string }[];
}

/** The image references config/default/kustomization.yaml sets, by the name the manifests use. */
export async function installImages(): Promise<{ operator: string; server: string }> {
  const k = parse(await readFile(join(repoRoot(), 'config', 'default', 'kustomization.yaml'), 'utf8')) as Kustomization;
  const ref = (name: string) => {
    const image = k.images?.find((i) => i.name === name);
    if (!image?.newName || !image.newTag)
      throw new Error(`config/default/kustomization.yaml sets no newName and newTag for ${name}`);
    return `${image.newName}:${image.newTag}`;
  };
  return { operator: ref('onnx-operator'), server: ref('onnx-inference-server') };
}

async function must(what: string, command: string, args: string[], timeoutMs = 10 * 60_000): Promise<string> {
  const r = await run(command, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${tail(r.stderr)}`);
  return r.stdout;
}

export async function startNodeCluster(): Promise<NodeCluster> {
  const root = repoRoot();
  const built = parseExports(
    await must(
      'building the images (scripts/containers/build-images.sh)',
      'bash',
      [join(root, 'scripts', 'containers', 'build-images.sh')],
      IMAGE_BUILD_TIMEOUT_MS,
    ),
  );
  const exported = (key: string) => {
    const value = built[key];
    if (!value) throw new Error(`build-images.sh printed no ${key}`);
    return value;
  };
  const plane = await startControlPlane({ env: { CP_NODE: '1' } });
  try {
    const { NODE_NAME, NODE_IP, CONTAINERD_SOCK, CP_STATE_FILE } = plane.state;
    if (!NODE_NAME || !NODE_IP || !CONTAINERD_SOCK || !CP_STATE_FILE)
      throw new Error(`start.sh reported no node: ${JSON.stringify(plane.state)}`);
    const images = await installImages();
    const importImage = join(root, 'scripts', 'control-plane', 'node-image.sh');
    await must('importing the operator image', 'bash', [
      importImage,
      CP_STATE_FILE,
      exported('OPERATOR_IMAGE'),
      images.operator,
    ]);
    await must('importing the server image', 'bash', [
      importImage,
      CP_STATE_FILE,
      exported('INFERENCE_SERVER_IMAGE'),
      images.server,
    ]);
    return Object.assign(plane, {
      nodeName: NODE_NAME,
      nodeIp: NODE_IP,
      containerdSocket: CONTAINERD_SOCK,
      images,
      ctr: (args: string[]) =>
        must(`ctr ${args.join(' ')}`, 'ctr', ['--address', CONTAINERD_SOCK, '--namespace', 'k8s.io', ...args], 60_000),
    });
  } catch (err) {
    await plane.stop().catch(() => undefined);
    throw err;
  }
}

/** The host PID of a running container, from its CRI id (`containerd://…` in the pod's status). */
export async function containerPid(cluster: NodeCluster, containerId: string): Promise<number> {
  const id = containerId.replace(/^containerd:\/\//, '');
  const out = await cluster.ctr(['tasks', 'ls']);
  const row = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[0] === id);
  if (!row || !/^\d+$/.test(row[1] ?? '')) throw new Error(`no running task ${id} in containerd:\n${out}`);
  return Number(row[1]);
}
