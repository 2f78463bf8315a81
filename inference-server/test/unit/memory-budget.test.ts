import { expect } from 'chai';
import { imageWorkingBytes, REQUEST_OVERHEAD_BYTES } from '../../src/runtime/data-plane.js';
import { autoQueueBytes, MemoryBudget, MIN_AUTO_QUEUE_BYTES } from '../../src/runtime/memory-budget.js';
import { cgroupMemoryLimit, effectiveMemory, parseMemoryLimit } from '../../src/runtime/memory-limit.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('memory bound on requests in progress', () => {
  it('reserves, grows and releases; refuses what does not fit and takes nothing then', () => {
    const budget = new MemoryBudget(1000);
    const a = budget.tryReserve(400)!;
    expect(a.grow(500)).to.equal(true);
    expect(budget.usedBytes).to.equal(900);
    expect(budget.tryReserve(200)).to.equal(undefined);
    expect(a.grow(101)).to.equal(false);
    expect(budget.usedBytes).to.equal(900);
    expect(budget.fits(100)).to.equal(true);
    a.release();
    a.release();
    expect(budget.usedBytes).to.equal(0);
    expect(a.grow(1)).to.equal(false);
  });

  it('auto: half of what the pod has left once the model is loaded, at least 64 MiB', () => {
    expect(autoQueueBytes(2 * GiB, 600 * MiB)).to.equal(724 * MiB);
    expect(autoQueueBytes(512 * MiB, 500 * MiB)).to.equal(MIN_AUTO_QUEUE_BYTES);
  });

  it('a 2-CPU / 2 GiB pod serving the ResNet-50-shaped model holds several hundred queued seed requests', () => {
    // The seed's Keras ResNet-50 input, float32 224×224×3, 1000 classes; ~600 MiB resident once loaded and warmed up.
    const perRequest =
      imageWorkingBytes({ height: 224, width: 224, dtype: 'float32', classes: 1000 }) + 15_000 + REQUEST_OVERHEAD_BYTES;
    const held = Math.floor(autoQueueBytes(2 * GiB, 600 * MiB) / perRequest);
    expect(held).to.be.at.least(500);
  });

  it('reads the container limit from cgroup v2 and v1, and treats "max" and v1\'s page-rounded 2^63 as none', () => {
    expect(parseMemoryLimit('max\n')).to.equal(undefined);
    expect(parseMemoryLimit('9223372036854771712\n')).to.equal(undefined);
    expect(parseMemoryLimit('2147483648\n')).to.equal(2 * GiB);
    const v2: Record<string, string> = { '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': '1073741824\n' };
    expect(cgroupMemoryLimit((p) => v2[p])).to.equal(GiB);
    const v1: Record<string, string> = {
      '/proc/self/cgroup': '5:memory:/kubepods/pod1/c1\n3:cpu,cpuacct:/kubepods/pod1/c1\n',
      '/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes': '2147483648\n',
    };
    expect(cgroupMemoryLimit((p) => v1[p])).to.equal(2 * GiB);
    expect(cgroupMemoryLimit(() => undefined)).to.equal(undefined);
    expect(effectiveMemory(undefined, 24 * GiB)).to.equal(24 * GiB);
    expect(effectiveMemory(2 * GiB, 24 * GiB)).to.equal(2 * GiB);
  });
});
