import { expect } from 'chai';
import { MIN_AUTO_BUDGET_MS, QueueBudget } from '../../src/runtime/queue-budget.js';

describe('queue budget (SLO mode: admission sized from a latency budget)', () => {
  it('sets no limit until something is measured', () => {
    const q = new QueueBudget({ budgetMs: 'auto', sessions: 1 });
    expect(q.budgetMs).to.equal(undefined);
    expect(q.limit).to.equal(Infinity);
    q.observe(30, 1); // a batch alone does not set the auto budget: that comes from the warm-up
    expect(q.limit).to.equal(Infinity);
  });

  it('auto: a wait of one lone inference, shared out over the sessions', () => {
    const one = new QueueBudget({ budgetMs: 'auto', sessions: 1 });
    one.calibrate(80);
    expect(one.budgetMs).to.equal(80);
    // The one running, and one more waiting.
    expect(one.limit).to.equal(2);
    const four = new QueueBudget({ budgetMs: 'auto', sessions: 4 });
    four.calibrate(80);
    expect(four.limit).to.equal(5);
  });

  it('auto: never a budget below MIN_AUTO_BUDGET_MS, however fast the model', () => {
    const q = new QueueBudget({ budgetMs: 'auto', sessions: 1 });
    q.calibrate(5);
    expect(q.budgetMs).to.equal(MIN_AUTO_BUDGET_MS);
    expect(q.limit).to.equal(1 + Math.floor(MIN_AUTO_BUDGET_MS / 5));
  });

  it('follows the measured time per image: cheaper batches admit more, slower runs fewer', () => {
    const q = new QueueBudget({ budgetMs: 210, sessions: 1 });
    q.calibrate(40);
    expect(q.limit).to.equal(1 + 5);
    for (let i = 0; i < 30; i++) q.observe(100, 5); // 20 ms per image in batches of 5
    expect(q.limit).to.equal(1 + 10);
    for (let i = 0; i < 30; i++) q.observe(70, 1);
    expect(q.limit).to.equal(1 + 3);
  });

  it('never holds fewer than one image per session plus one', () => {
    const slow = new QueueBudget({ budgetMs: 10, sessions: 3 });
    slow.calibrate(1000);
    expect(slow.limit).to.equal(4);
  });

  it('refuses a budget that is neither auto nor positive (0 means no budget at all, upstream)', () => {
    expect(() => new QueueBudget({ budgetMs: 0, sessions: 1 })).to.throw(/positive number of ms/);
    expect(() => new QueueBudget({ budgetMs: 10, sessions: 0 })).to.throw(/sessions must be at least 1/);
  });
});
