import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { integer } from '../../crds/env-variable.js';

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

/** The operator's own numeric variables, read as the server's are (crds/env-variable.ts). */
const OPERATOR_ENV = {
  port: integer('PORT', 8081, {
    min: 0,
    max: 65535,
    doc: '`/healthz`, `/readyz` (ready when caches are synced, or while standing by), `/metrics`',
  }),
  workers: integer('WORKERS', 4, { min: 1, doc: 'models reconciled concurrently' }),
  resyncSeconds: integer('RESYNC_SECONDS', 600, { min: 1, doc: 'every model is reconciled at least this often' }),
  shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 10_000, {
    min: 0,
    doc: 'time to finish in-flight reconciles on SIGTERM',
  }),
};

export function loadOperatorConfig(env: NodeJS.ProcessEnv): OperatorConfig {
  const leaderElection = (env.LEADER_ELECTION ?? 'true').trim().toLowerCase();
  if (!['true', 'false'].includes(leaderElection))
    throw new Error(`LEADER_ELECTION=${env.LEADER_ELECTION}: expected true or false`);
  return {
    serverImage: env.SERVER_IMAGE?.trim() || DEFAULT_SERVER_IMAGE,
    watchNamespace: env.WATCH_NAMESPACE?.trim() || undefined,
    leaderElection: leaderElection === 'true',
    leaseNamespace: env.LEASE_NAMESPACE?.trim() || env.POD_NAMESPACE?.trim() || 'default',
    leaseName: env.LEASE_NAME?.trim() || 'onnx-operator-leader',
    // Unique per process: a restarted pod with the same name must not inherit a stale lease blindly.
    identity: `${env.POD_NAME?.trim() || hostname()}_${randomUUID().slice(0, 8)}`,
    port: OPERATOR_ENV.port.read(env),
    workers: OPERATOR_ENV.workers.read(env),
    resyncMs: OPERATOR_ENV.resyncSeconds.read(env) * 1000,
    shutdownGraceMs: OPERATOR_ENV.shutdownGraceMs.read(env),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
  };
}
