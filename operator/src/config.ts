import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';

export interface OperatorConfig {
  serverImage: string;
  /** Empty: all namespaces. */
  watchNamespace?: string;
  leaderElection: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  /** /healthz, /readyz and /metrics. */
  port: number;
  workers: number;
  resyncMs: number;
  shutdownGraceMs: number;
  logLevel: string;
}

/** The server image of this release; the release workflow rewrites it with the pushed tag. */
export const DEFAULT_SERVER_IMAGE = 'ghcr.io/onnx-operator/inference-server:0.1.0';

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${raw}: expected an integer ≥ ${min}`);
  return n;
}

export function loadOperatorConfig(env: NodeJS.ProcessEnv): OperatorConfig {
  const leaderElection = (env.LEADER_ELECTION ?? 'true').trim().toLowerCase();
  if (!['true', 'false'].includes(leaderElection)) throw new Error(`LEADER_ELECTION=${env.LEADER_ELECTION}: expected true or false`);
  return {
    serverImage: env.SERVER_IMAGE?.trim() || DEFAULT_SERVER_IMAGE,
    watchNamespace: env.WATCH_NAMESPACE?.trim() || undefined,
    leaderElection: leaderElection === 'true',
    leaseNamespace: env.LEASE_NAMESPACE?.trim() || env.POD_NAMESPACE?.trim() || 'default',
    leaseName: env.LEASE_NAME?.trim() || 'onnx-operator-leader',
    // Unique per process: a restarted pod with the same name must not inherit a stale lease blindly.
    identity: `${env.POD_NAME?.trim() || hostname()}_${randomUUID().slice(0, 8)}`,
    port: int(env, 'PORT', 8081, 0),
    workers: int(env, 'WORKERS', 4, 1),
    resyncMs: int(env, 'RESYNC_SECONDS', 600, 1) * 1000,
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10_000, 0),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
  };
}
