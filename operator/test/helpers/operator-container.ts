/**
 * The operator image run against the test control plane, as its container test
 * and bench/image-startup.ts run it: host network (the API server is on
 * 127.0.0.1), the plane's kubeconfig mounted, no leader election.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { shareWithContainerUser } from '../../../inference-server/test/helpers/podman.js';

/** A copy of the plane's kubeconfig (root's, mode 600) in `dir` that the image's uid 1000 can read. */
export function containerKubeconfig(kubeconfigPath: string, dir: string): string {
  const kubeconfig = join(dir, 'kubeconfig');
  copyFileSync(kubeconfigPath, kubeconfig);
  shareWithContainerUser(kubeconfig, 0o644);
  return kubeconfig;
}

/** `podman run` arguments before the image: the operator serving /readyz and /metrics on `port`. */
export function operatorRunArgs(kubeconfig: string, port: number): string[] {
  return [
    '--network=host',
    '-v',
    `${kubeconfig}:/kubeconfig:ro`,
    '-e',
    'KUBECONFIG=/kubeconfig',
    '-e',
    'LEADER_ELECTION=false',
    '-e',
    `PORT=${port}`,
  ];
}
