import type { Logger } from 'pino';
import { isConflict, isNotFound, paths, type KubeRest } from './kube/rest.js';

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  /** A leader that cannot renew for this long steps down. */
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** MicroTime as the API server writes it. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: take the
 * lease when it is free or expired, renew it while leading, and write with the
 * lease's resourceVersion so two candidates can never both win a round.
 */
export class LeaderElector {
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly duration: number;
  private readonly renewDeadline: number;
  private readonly retryPeriod: number;

  constructor(
    private readonly rest: KubeRest,
    private readonly opts: LeaseOptions,
    private readonly logger: Logger,
  ) {
    this.duration = opts.leaseDurationSeconds ?? 15;
    this.renewDeadline = opts.renewDeadlineSeconds ?? 10;
    this.retryPeriod = opts.retryPeriodSeconds ?? 2;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Calls onStarted once leadership is won and onStopped if it is lost (the caller should then exit). */
  run(onStarted: () => void, onStopped: () => void): void {
    // The deadline is watched on its own clock: a renewal stuck on a dead connection must not
    // keep a stale leader acting while a standby takes the expired lease.
    const stepDown = (why: string) => {
      this.leading = false;
      this.stopped = true; // a stepped-down candidate never campaigns again: the process is exiting
      clearInterval(this.watchdog);
      clearTimeout(this.timer);
      this.logger.error({ renewDeadlineSeconds: this.renewDeadline, reason: why }, 'lost leadership');
      onStopped();
    };
    this.watchdog = setInterval(() => {
      if (this.leading && Date.now() - this.lastRenew > this.renewDeadline * 1000)
        stepDown('could not renew the lease in time');
    }, 250);
    this.watchdog.unref();
    const tick = async () => {
      if (this.stopped) return;
      let held = false;
      let failed = false;
      try {
        held = await this.tryAcquireOrRenew();
      } catch (err) {
        failed = true;
        this.logger.warn({ err: (err as Error).message, lease: this.opts.name }, 'lease update failed');
      }
      if (this.stopped) return;
      if (this.leading && !held && !failed) {
        stepDown('another candidate holds the lease');
        return;
      }
      if (held) {
        this.lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.logger.info({ lease: `${this.opts.namespace}/${this.opts.name}` }, 'became leader');
          onStarted();
        }
      }
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.retryPeriod * 1000);
    };
    void tick();
  }

  /** A leader's call may take at most the time left before its renew deadline; a candidate has no hurry. */
  private requestTimeoutMs(): number {
    const left = this.leading ? this.renewDeadline * 1000 - (Date.now() - this.lastRenew) : this.renewDeadline * 1000;
    return Math.max(500, left);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = new Date();
    const path = `${paths.leases(namespace)}/${name}`;
    let lease: Lease;
    try {
      lease = await this.rest.get<Lease>(path, undefined, this.requestTimeoutMs());
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const fresh: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: this.duration,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        await this.rest.post(paths.leases(namespace), fresh, this.requestTimeoutMs());
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false; // someone else created it first
        throw createErr;
      }
    }
    const spec = lease.spec;
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.duration) * 1000 < now.getTime();
    if (holder !== identity && holder !== '' && !expired) return false;
    const takingOver = holder !== identity;
    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: this.duration,
        acquireTime: takingOver ? microTime(now) : spec.acquireTime,
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
      },
    };
    try {
      // carries metadata.resourceVersion: a concurrent writer makes this 409
      await this.rest.put(path, next, this.requestTimeoutMs());
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /** Stops campaigning; a leader gives the lease up so a standby takes over at once instead of after expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (!this.leading) return;
    this.leading = false;
    const path = `${paths.leases(this.opts.namespace)}/${this.opts.name}`;
    try {
      const lease = await this.rest.get<Lease>(path);
      if (lease.spec.holderIdentity !== this.opts.identity) return;
      await this.rest.put(path, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      });
      this.logger.info('released leadership');
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not release the lease');
    }
  }
}
