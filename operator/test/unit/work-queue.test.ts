import { expect } from 'chai';
import { WorkQueue } from '../../src/work-queue.js';

describe('work queue', () => {
  it('deduplicates keys and hands them out in order', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).to.equal(2);
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
  });

  it('never gives one key to two workers; an event during processing re-queues it after', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a');
    expect(q.length).to.equal(0);
    q.done(key!);
    expect(q.length).to.equal(1);
  });

  it('backs off exponentially per key and resets on forget', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).to.deep.equal([
      10, 20, 40, 50,
    ]);
    expect(q.addRateLimited('b')).to.equal(10);
    q.forget('a');
    expect(q.addRateLimited('a')).to.equal(10);
    q.shutDown();
  });

  it('wakes a waiting worker and ends waiters on shutdown', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.add('x');
    expect(await waiting).to.equal('x');
    const ended = q.get();
    q.shutDown();
    expect(await ended).to.equal(undefined);
  });
});
