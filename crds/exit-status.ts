import { writeFileSync } from 'node:fs';

/**
 * How the server ends, as Kubernetes records it in the pod's last termination
 * state: the operator turns these codes into the OnnxModel's Ready reason.
 */
export const EXIT_CODE = {
  /** Drained and stopped on SIGTERM. */
  stopped: 0,
  /** Anything unplanned (a second signal, an uncaught error). */
  crashed: 1,
  /** The environment does not describe a server (a bad variable): restarting will not help. */
  invalidConfig: 2,
  /** The model or its labels could not be fetched or loaded; a restart retries. */
  modelLoadFailed: 3,
} as const;

/** Where the kubelet reads a container's last words (the pod spec's terminationMessagePath). */
export const TERMINATION_LOG = '/dev/termination-log';

/** Leaves `message` where Kubernetes shows it (kubectl describe, the OnnxModel's status); a no-op outside a pod. */
export function writeTerminationMessage(message: string, path: string = TERMINATION_LOG): void {
  try {
    // The kubelet keeps at most 4 KiB of it.
    writeFileSync(path, message.slice(0, 4000));
  } catch {
    // Not in a pod (no such file), or a read-only /dev: the log line says the same.
  }
}
