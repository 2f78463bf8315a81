import { cpus, totalmem, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { cgroupCpuQuota, effectiveCpus } from '../inference-server/src/runtime/cpu-limit.js';

/** What the benchmark ran on, committed beside its figures. */
export interface Machine {
  cpuModel: string;
  cores: number;
  cgroupCpuQuota: number | null;
  effectiveCpus: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  onnxruntime: string;
  sharp: string;
}

function packageVersion(name: string): string {
  const url = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

export function describeMachine(): Machine {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    cgroupCpuQuota: cgroupCpuQuota() ?? null,
    effectiveCpus: effectiveCpus(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    sharp: packageVersion('sharp'),
  };
}

/** Peak resident set size of a process, from /proc (VmHWM), in MiB. */
export function peakRssMiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}
