import { expect } from 'chai';
import { AUTO_FACTOR, MIN_AUTO_BUDGET_MS, QueueBudget } from '../../src/runtime/queue-budget.js';

describe('queue budget (admission sized from a latency budget)', () => {
  it('admits up to MAX_IN_FLIGHT until something is measured', () => {
    const q = new QueueBudget({ budgetMs: 'auto', sessions: 1, maxInFlight: 32 });
    expect(q.budgetMs).to.equal(undefined);
    expect(q.limit).to.equal(32);
    q.observe(30, 1); // a batch alone does not set the auto budget: that comes from the warm-up
    expect(q.limit).to.equal(32);
  });

  it('auto: a wait of AUTO_FACTOR lone inferences, shared out over the sessions', () => {
    const one = new QueueBudget({ budgetMs: 'auto', sessions: 1, maxInFlight: 32 });
    one.calibrate(80);
    expect(one.budgetMs).to.equal(AUTO_FACTOR * 80);
    // The one running, and AUTO_FACTOR more waiting.
    expect(one.limit).to.equal(1 + AUTO_FACTOR);
    const four = new QueueBudget({ budgetMs: 'auto', sessions: 4, maxInFlight: 32 });
    four.calibrate(80);
    expect(four.limit).to.equal(1 + 4 * AUTO_FACTOR);
  });

  it('auto: never a budget below MIN_AUTO_BUDGET_MS, however fast the model', () => {
    const q = new QueueBudget({ budgetMs: 'auto', sessions: 1, maxInFlight: 32 });
    q.calibrate(5);
    expect(q.budgetMs).to.equal(MIN_AUTO_BUDGET_MS);
    expect(q.limit).to.equal(1 + Math.floor(MIN_AUTO_BUDGET_MS / 5));
  });

  it('follows the measured time per image: cheaper batches admit more, slower runs fewer', () => {
    const q = new QueueBudget({ budgetMs: 210, sessions: 1, maxInFlight: 32 });
    q.calibrate(40);
    expect(q.limit).to.equal(1 + 5);
    for (let i = 0; i < 30; i++) q.observe(100, 5); // 20 ms per image in batches of 5
    expect(q.limit).to.equal(1 + 10);
    for (let i = 0; i < 30; i++) q.observe(70, 1);
    expect(q.limit).to.equal(1 + 3);
  });

  it('never admits fewer than one per session plus one, nor more than MAX_IN_FLIGHT', () => {
    const slow = new QueueBudget({ budgetMs: 10, sessions: 3, maxInFlight: 32 });
    slow.calibrate(1000);
    expect(slow.limit).to.equal(4);
    const fast = new QueueBudget({ budgetMs: 10_000, sessions: 1, maxInFlight: 16 });
    fast.calibrate(1);
    expect(fast.limit).to.equal(16);
  });

  it('0 turns the budget off: MAX_IN_FLIGHT alone', () => {
    const q = new QueueBudget({ budgetMs: 0, sessions: 1, maxInFlight: 8 });
    q.calibrate(100);
    expect(q.budgetMs).to.equal(undefined);
    expect(q.limit).to.equal(8);
  });
});
