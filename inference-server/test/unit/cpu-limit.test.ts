import { expect } from 'chai';
import { cgroupCpuQuota, cgroupPath, effectiveCpus, parseCfs, parseCpuMax } from '../../src/runtime/cpu-limit.js';

describe('CPU limit from the cgroup', () => {
  it('parses cgroup v2 cpu.max', () => {
    expect(parseCpuMax('max 100000\n')).to.equal(undefined);
    expect(parseCpuMax('200000 100000\n')).to.equal(2);
    expect(parseCpuMax('50000 100000')).to.equal(0.5);
  });

  it('parses cgroup v1 CFS quota', () => {
    expect(parseCfs('-1', '100000')).to.equal(undefined);
    expect(parseCfs('150000\n', '100000\n')).to.equal(1.5);
  });

  it('finds controller paths in /proc/self/cgroup', () => {
    const v1 = '4:memory:/pod\n2:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n';
    expect(cgroupPath(v1, 'cpu')).to.equal('/kubepods/pod1/c1');
    expect(cgroupPath(v1, '')).to.equal('/');
  });

  it('reads a v2 pod limit', () => {
    const files: Record<string, string> = {
      '/proc/self/cgroup': '0::/\n',
      '/sys/fs/cgroup/cpu.max': '200000 100000\n',
    };
    expect(cgroupCpuQuota((p) => files[p])).to.equal(2);
  });

  it('reads a v1 pod limit', () => {
    const files: Record<string, string> = {
      '/proc/self/cgroup': '3:cpu,cpuacct:/kubepods/burstable/pod1/c1\n',
      '/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/c1/cpu.cfs_quota_us': '300000',
      '/sys/fs/cgroup/cpu,cpuacct/kubepods/burstable/pod1/c1/cpu.cfs_period_us': '100000',
    };
    expect(cgroupCpuQuota((p) => files[p])).to.equal(3);
  });

  it('rounds fractional quotas up and never exceeds the cores offered', () => {
    expect(effectiveCpus(0.5, 64)).to.equal(1);
    expect(effectiveCpus(2, 64)).to.equal(2);
    expect(effectiveCpus(2.5, 64)).to.equal(3);
    expect(effectiveCpus(8, 2)).to.equal(2);
    expect(effectiveCpus(undefined, 4)).to.equal(4);
  });
});
