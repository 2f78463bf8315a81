import { expect } from 'chai';
import { ApiError } from '../../src/errors.js';
import { Batcher } from '../../src/model/batcher.js';

/** A fake session: records each batch, answers each input doubled after `ms`, fails on negative inputs. */
function fakeRun(ms: number) {
  const batches: number[][] = [];
  const run = async (inputs: number[]) => {
    batches.push(inputs);
    await new Promise((r) => setTimeout(r, ms));
    if (inputs.some((i) => i < 0)) throw new Error(`bad input in [${inputs.join(', ')}]`);
    return inputs.map((i) => i * 2);
  };
  return { batches, run };
}

describe('dynamic batcher', () => {
  it('runs a lone request at once and batches what queues while the session is busy', async () => {
    const { batches, run } = fakeRun(20);
    const b = new Batcher(run, { maxBatchSize: 8, maxQueueDelayMs: 0 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => b.submit(i)));
    expect(results.map((r) => r.result)).to.deep.equal([2, 4, 6, 8, 10]);
    expect(batches).to.deep.equal([[1], [2, 3, 4, 5]]);
    expect(results.map((r) => r.batchSize)).to.deep.equal([1, 4, 4, 4, 4]);
  });

  it('never exceeds maxBatchSize and keeps arrival order', async () => {
    const { batches, run } = fakeRun(5);
    const b = new Batcher(run, { maxBatchSize: 3, maxQueueDelayMs: 50 });
    await Promise.all(Array.from({ length: 7 }, (_, i) => b.submit(i)));
    expect(batches).to.deep.equal([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it('with a queue delay, waits for batch-mates while idle', async () => {
    const { batches, run } = fakeRun(1);
    const b = new Batcher(run, { maxBatchSize: 8, maxQueueDelayMs: 30 });
    const first = b.submit(1);
    await new Promise((r) => setTimeout(r, 5));
    const second = b.submit(2);
    await Promise.all([first, second]);
    expect(batches).to.deep.equal([[1, 2]]);
  });

  it("a failing input never fails its batch-mates", async () => {
    const { batches, run } = fakeRun(5);
    const b = new Batcher(run, { maxBatchSize: 8, maxQueueDelayMs: 20 });
    const settled = await Promise.allSettled([b.submit(1), b.submit(-1), b.submit(3)]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value.result : 'failed'))).to.deep.equal([2, 'failed', 6]);
    expect(batches[0]).to.deep.equal([1, -1, 3]);
  });

  it('answers 504 for a request whose deadline passed while it waited, without running it', async () => {
    const { batches, run } = fakeRun(30);
    const b = new Batcher(run, { maxBatchSize: 1, maxQueueDelayMs: 0 });
    const first = b.submit(1);
    const late = b.submit(2, performance.now() + 5);
    expect((await first).result).to.equal(2);
    const err = await late.then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ApiError);
    expect((err as ApiError).status).to.equal(504);
    expect(batches).to.deep.equal([[1]]);
  });

  it('with concurrency 2 runs two batches side by side and batches only when both are busy', async () => {
    const { batches, run } = fakeRun(20);
    let running = 0;
    let most = 0;
    const b = new Batcher(async (inputs: number[]) => {
      most = Math.max(most, ++running);
      try {
        return await run(inputs);
      } finally {
        running--;
      }
    }, { maxBatchSize: 8, maxQueueDelayMs: 0, concurrency: 2 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => b.submit(i)));
    expect(results.map((r) => r.result)).to.deep.equal([2, 4, 6, 8, 10]);
    expect(most).to.equal(2);
    expect(batches).to.deep.equal([[1], [2], [3, 4, 5]]);
  });

  it('refuses a concurrency below 1', () => {
    expect(() => new Batcher(fakeRun(1).run, { maxBatchSize: 1, maxQueueDelayMs: 0, concurrency: 0 })).to.throw(/concurrency must be at least 1/);
  });
});
