import { expect } from 'chai';
import { COLLECT_AFTER_BYTES, GarbageCollector, exposeGc } from '../../src/runtime/garbage-collector.js';
import { MemoryBudget } from '../../src/runtime/memory-budget.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('garbage collector after large requests', () => {
  it('collects once after COLLECT_AFTER_BYTES of requests ended, not for small ones', async () => {
    let runs = 0;
    const collector = new GarbageCollector(() => runs++, 20);
    const budget = new MemoryBudget(4 * COLLECT_AFTER_BYTES, (bytes) => collector.released(bytes));
    budget.tryReserve(1024)!.release();
    await sleep(50);
    expect(runs).to.equal(0);
    // A burst of large bodies: one collection after it, not one each.
    for (let i = 0; i < 4; i++) budget.tryReserve(COLLECT_AFTER_BYTES / 2)!.release();
    await sleep(50);
    expect(runs).to.equal(1);
    expect(budget.usedBytes).to.equal(0);
    collector.stop();
  });

  it("reaches V8's real collection without --expose-gc, and leaves no global gc behind", async () => {
    const gc = exposeGc();
    expect(typeof (globalThis as { gc?: unknown }).gc).to.equal('undefined');
    const ref = (() => new WeakRef({ payload: new Array(1000).fill(0) }))();
    // WeakRef targets are kept until the current job ends.
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
    expect(ref.deref()).to.equal(undefined);
  });
});
