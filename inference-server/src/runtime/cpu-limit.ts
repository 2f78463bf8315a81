import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * How many CPUs this process may really use. onnxruntime and libvips size their
 * thread pools from the host's core count; in a 2-CPU pod on a 64-core node that
 * means 64 threads fighting over 2 CPUs of CFS quota, so we read the cgroup limit.
 */
export type ReadFile = (path: string) => string | undefined;

export const readIfExists: ReadFile = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** Parses cgroup v2 `cpu.max` ("max 100000" or "200000 100000") into CPUs, or undefined when unlimited. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period ?? 100000);
  return q > 0 && p > 0 ? q / p : undefined;
}

/** Parses cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1 means unlimited). */
export function parseCfs(quotaText: string, periodText: string): number | undefined {
  const q = Number(quotaText.trim());
  const p = Number(periodText.trim());
  return q > 0 && p > 0 ? q / p : undefined;
}

/** The cgroup path of a controller ("" for v2's unified hierarchy) from /proc/self/cgroup. */
export function cgroupPath(procSelfCgroup: string, controller: string): string | undefined {
  for (const line of procSelfCgroup.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined || controllers === undefined) continue;
    if (controller === '' ? controllers === '' : controllers.split(',').includes(controller)) return path;
  }
  return undefined;
}

/** The CPU quota in (possibly fractional) CPUs, or undefined when no limit is set. */
export function cgroupCpuQuota(read: ReadFile = readIfExists, root = '/sys/fs/cgroup'): number | undefined {
  const self = read('/proc/self/cgroup') ?? '';
  const v2Path = cgroupPath(self, '');
  if (v2Path !== undefined) {
    // Inside a container the namespace root is the pod's cgroup; on a host it is the process's own path.
    for (const dir of [`${root}${v2Path}`, root]) {
      const max = read(`${dir.replace(/\/$/, '')}/cpu.max`);
      if (max !== undefined) return parseCpuMax(max);
    }
  }
  const v1Path = cgroupPath(self, 'cpu') ?? '/';
  for (const dir of [`${root}/cpu${v1Path}`, `${root}/cpu`, `${root}/cpu,cpuacct${v1Path}`, `${root}/cpu,cpuacct`]) {
    const quota = read(`${dir.replace(/\/$/, '')}/cpu.cfs_quota_us`);
    const period = read(`${dir.replace(/\/$/, '')}/cpu.cfs_period_us`);
    if (quota !== undefined && period !== undefined) return parseCfs(quota, period);
  }
  return undefined;
}

/** Whole CPUs to size thread pools with: the quota rounded up, never above what the scheduler offers, at least 1. */
export function effectiveCpus(quota = cgroupCpuQuota(), offered = availableParallelism()): number {
  const limit = quota === undefined ? offered : Math.ceil(quota - 1e-9);
  return Math.max(1, Math.min(limit, offered));
}
