import { expect } from 'chai';
import { ClientGone, DeadlineExceeded, NotReady, Overloaded } from '../../src/errors.js';
import type { TensorData } from '../../src/model/session-protocol.js';
import type { ModelSignature } from '../../src/model/signature.js';
import { QueueBudget } from '../../src/runtime/queue-budget.js';
import { Scheduler, type Session } from '../../src/runtime/scheduler.js';

/** A 1×1-pixel "image" model: three elements an image, one output per image (the first element doubled). */
function signature(batch: number | 'dynamic' = 'dynamic'): ModelSignature {
  return {
    inputName: 'x',
    dtype: 'float32',
    layout: 'NHWC',
    height: 1,
    width: 1,
    batch,
    inputShape: [-1, 1, 1, 3],
    outputName: 'y',
    outputShape: [-1, 1],
    classes: 1,
  };
}

const image = (v: number) => Float32Array.of(v, 0, 0);

/** A fake session: records each call's first elements, answers after `ms`, fails when an input is negative. */
class FakeSession implements Session {
  readonly calls: number[][] = [];
  running = 0;
  released = false;

  constructor(private readonly ms: number) {}

  async run(feeds: Record<string, TensorData>): Promise<{ outputs: Record<string, TensorData>; seconds: number }> {
    const { data, dims } = feeds.x!;
    const firsts = Array.from({ length: dims[0]! }, (_, i) => data[i * 3]!);
    this.calls.push(firsts);
    this.running++;
    await new Promise((r) => setTimeout(r, this.ms));
    this.running--;
    if (firsts.some((v) => v < 0)) throw new Error(`bad input in [${firsts.join(', ')}]`);
    return {
      outputs: { y: { type: 'float32', data: Float32Array.from(firsts, (v) => v * 2), dims: [dims[0]!, 1] } },
      seconds: this.ms / 1000,
    };
  }

  release(): Promise<void> {
    this.released = true;
    return Promise.resolve();
  }
}

const values = (results: { output: Float32Array }[]) => results.map((r) => Array.from(r.output));
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('scheduler (the one owner of the sessions)', () => {
  it('runs a lone image at once and batches what queues while the session is busy, in order', async () => {
    const s = new FakeSession(20);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((v) => sched.submitImage(image(v))));
    expect(values(results)).to.deep.equal([[2], [4], [6], [8], [10]]);
    expect(s.calls).to.deep.equal([[1], [2, 3, 4, 5]]);
    expect(results.map((r) => r.batchSize)).to.deep.equal([1, 4, 4, 4, 4]);
  });

  it('never exceeds the batch size', async () => {
    const s = new FakeSession(5);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 3, maxQueueDelayMs: 50 });
    await Promise.all(Array.from({ length: 7 }, (_, i) => sched.submitImage(image(i))));
    expect(s.calls).to.deep.equal([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it('with a queue delay, waits for batch-mates while idle', async () => {
    const s = new FakeSession(1);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 30 });
    const first = sched.submitImage(image(1));
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all([first, sched.submitImage(image(2))]);
    expect(s.calls).to.deep.equal([[1, 2]]);
  });

  it('takes whole batches in the same FIFO queue: a batch runs alone, images around it batch together', async () => {
    const s = new FakeSession(20);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    const first = sched.submitImage(image(1));
    const before = [2, 3].map((v) => sched.submitImage(image(v)));
    const batch = sched.submitBatch(Float32Array.of(7, 0, 0, 8, 0, 0, 9, 0, 0), 3);
    const after = [4, 5].map((v) => sched.submitImage(image(v)));
    expect(sched.queuedImages).to.equal(7);
    const [b] = await Promise.all([batch, first, ...before, ...after]);
    expect(s.calls).to.deep.equal([[1], [2, 3], [7, 8, 9], [4, 5]]);
    expect(Array.from(b.output)).to.deep.equal([14, 16, 18]);
    expect(b.dims).to.deep.equal([3, 1]);
    expect(sched.queuedImages + sched.runningImages).to.equal(0);
  });

  it('a failing image never fails its batch-mates', async () => {
    const s = new FakeSession(5);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 20 });
    const settled = await Promise.allSettled([1, -1, 3].map((v) => sched.submitImage(image(v))));
    expect(settled.map((r) => (r.status === 'fulfilled' ? Array.from(r.value.output) : 'failed'))).to.deep.equal([
      [2],
      'failed',
      [6],
    ]);
    expect(s.calls[0]).to.deep.equal([1, -1, 3]);
  });

  it('refuses a job whose deadline passed while it waited, without running it', async () => {
    const s = new FakeSession(30);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 1, maxQueueDelayMs: 0 });
    const first = sched.submitImage(image(1));
    const late = sched.submitImage(image(2), { deadline: performance.now() + 5 });
    expect(values([await first])).to.deep.equal([[2]]);
    expect(await failure(late)).to.be.instanceOf(DeadlineExceeded);
    expect(s.calls).to.deep.equal([[1]]);
  });

  it('drops a queued job whose client went away', async () => {
    const s = new FakeSession(30);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    const runningGone = new AbortController();
    const first = sched.submitImage(image(1), { signal: runningGone.signal });
    const gone = new AbortController();
    const dropped = sched.submitImage(image(2), { signal: gone.signal });
    const kept = sched.submitImage(image(3));
    gone.abort();
    // Already in a session call: it finishes, and the accounting stays right.
    runningGone.abort();
    expect(await failure(dropped)).to.be.instanceOf(ClientGone);
    expect(sched.queuedImages).to.equal(1);
    await Promise.all([first, kept]);
    expect(s.calls).to.deep.equal([[1], [3]]);
    expect(sched.queuedImages + sched.runningImages).to.equal(0);
  });

  it('runs one batch per session side by side and batches only when all are busy', async () => {
    const a = new FakeSession(20);
    const b = new FakeSession(20);
    const sched = new Scheduler([a, b], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    let most = 0;
    const runs = [1, 2, 3, 4, 5].map((v) => sched.submitImage(image(v)));
    const watch = setInterval(() => (most = Math.max(most, a.running + b.running)), 1);
    const results = await Promise.all(runs);
    clearInterval(watch);
    expect(values(results)).to.deep.equal([[2], [4], [6], [8], [10]]);
    expect(most).to.equal(2);
    expect([...a.calls, ...b.calls].sort((x, y) => x[0]! - y[0]!)).to.deep.equal([[1], [2], [3, 4, 5]]);
  });

  it('fills a fixed batch with single images, padded when fewer, and returns only the real rows', async () => {
    const s = new FakeSession(5);
    const sched = new Scheduler([s], signature(2), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    const results = await Promise.all([1, 2, 3].map((v) => sched.submitImage(image(v))));
    expect(values(results)).to.deep.equal([[2], [4], [6]]);
    expect(s.calls).to.deep.equal([
      [1, 0],
      [2, 3],
    ]);
    expect(() => sched.submitBatch(new Float32Array(9), 3)).to.throw(/batches of exactly 2/);
  });

  const inFlightCapTitle =
    'counts images, not requests, against an opt-in cap (MAX_IN_FLIGHT), and takes an oversized batch when idle';
  it(inFlightCapTitle, async () => {
    const s = new FakeSession(20);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0, maxImages: 4 });
    const big = sched.submitBatch(new Float32Array(6 * 3), 6);
    const refused = await failure(sched.submitImage(image(1)));
    expect(refused).to.be.instanceOf(Overloaded);
    expect((refused as Overloaded).bound).to.equal('max_in_flight');
    expect((refused as Error).message).to.match(/holds 6 images, its MAX_IN_FLIGHT limit is 4/);
    await big;
    await Promise.all([1, 2, 3, 4].map((v) => sched.submitImage(image(v))));
    expect(() => sched.checkAdmission(1, 4)).to.throw(Overloaded);
  });

  it('in SLO mode, holds what the queue budget allows at the measured speed', async () => {
    const budget = new QueueBudget({ budgetMs: 40, sessions: 1 });
    budget.calibrate(20);
    const s = new FakeSession(20);
    const sched = new Scheduler([s], signature(), { maxBatchSize: 1, maxQueueDelayMs: 0, budget });
    expect(sched.limit).to.equal(3);
    const held = [1, 2, 3].map((v) => sched.submitImage(image(v)));
    const refused = await failure(sched.submitImage(image(4)));
    expect((refused as Overloaded).bound).to.equal('queue_budget');
    expect((refused as Error).message).to.match(/within the 40 ms queue budget \(MAX_QUEUE_MS\) is 3/);
    await Promise.all(held);
  });

  const warmUpCloseTitle =
    'warms up every session without touching the queue, and close refuses what is left then releases the sessions';
  it(warmUpCloseTitle, async () => {
    const a = new FakeSession(5);
    const b = new FakeSession(5);
    const sched = new Scheduler([a, b], signature(), { maxBatchSize: 8, maxQueueDelayMs: 0 });
    expect(await sched.warmUp(image(1))).to.equal(5);
    expect(a.calls.length + b.calls.length).to.equal(3);
    const running = sched.submitImage(image(1));
    const queued = [2, 3, 4].map((v) =>
      sched.submitImage(image(v)).then(
        () => 'ran',
        (e: unknown) => e,
      ),
    );
    const closing = sched.close();
    expect(await running.then((r) => Array.from(r.output))).to.deep.equal([2]);
    const settled = await Promise.all(queued);
    await closing;
    // The two sessions took the first two; what still waited is refused.
    const refused = settled.filter((r) => r !== 'ran');
    expect(refused).to.have.length(2);
    expect(refused.every((r) => r instanceof NotReady)).to.equal(true);
    expect(a.released && b.released).to.equal(true);
    expect(await failure(sched.submitImage(image(5)))).to.be.instanceOf(NotReady);
  });
});
