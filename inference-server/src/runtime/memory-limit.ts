import { totalmem } from 'node:os';
import { cgroupPath, readIfExists, type ReadFile } from './cpu-limit.js';

/** cgroup v1 writes "no limit" as a page-rounded 2^63 − 1; anything this large is no limit. */
const UNLIMITED = 2 ** 60;

/** Parses cgroup v2 `memory.max` or v1 `memory.limit_in_bytes` into bytes, or undefined when unlimited. */
export function parseMemoryLimit(text: string): number | undefined {
  const raw = text.trim();
  if (raw === '' || raw === 'max') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n > 0 && n < UNLIMITED ? n : undefined;
}

/** The container's memory limit in bytes from its cgroup (v2 or v1), or undefined when none is set. */
export function cgroupMemoryLimit(read: ReadFile = readIfExists, root = '/sys/fs/cgroup'): number | undefined {
  const self = read('/proc/self/cgroup') ?? '';
  const v2Path = cgroupPath(self, '');
  if (v2Path !== undefined) {
    for (const dir of [`${root}${v2Path}`, root]) {
      const max = read(`${dir.replace(/\/$/, '')}/memory.max`);
      if (max !== undefined) return parseMemoryLimit(max);
    }
  }
  const v1Path = cgroupPath(self, 'memory') ?? '/';
  for (const dir of [`${root}/memory${v1Path}`, `${root}/memory`]) {
    const limit = read(`${dir.replace(/\/$/, '')}/memory.limit_in_bytes`);
    if (limit !== undefined) return parseMemoryLimit(limit);
  }
  return undefined;
}

/** The memory this process may use: the cgroup limit, else the machine's memory. */
export function effectiveMemory(limit = cgroupMemoryLimit(), machine = totalmem()): number {
  return Math.min(limit ?? machine, machine);
}
