import { expect } from 'chai';
import { RefusalPacer } from '../../src/http/refusal-pacer.js';

describe('refusal pacer (503s under a retry storm)', () => {
  it('sends a burst of up to perSecond at once, then each in its turn, in order', async () => {
    const pacer = new RefusalPacer(50);
    const sent: number[] = [];
    for (let i = 0; i < 60; i++)
      pacer.pace(
        () => sent.push(i),
        () => expect.fail('nothing is dropped'),
      );
    // The burst went out synchronously; the rest wait.
    expect(sent).to.have.length(50);
    expect(pacer.queued).to.equal(10);
    while (pacer.queued > 0) await new Promise((r) => setTimeout(r, 20));
    expect(sent).to.deep.equal(Array.from({ length: 60 }, (_, i) => i));
  });

  it('drops what comes past maxWaiting instead of queueing it', () => {
    const pacer = new RefusalPacer(1, 2);
    let sent = 0;
    let dropped = 0;
    for (let i = 0; i < 5; i++)
      pacer.pace(
        () => sent++,
        () => dropped++,
      );
    expect({ sent, queued: pacer.queued, dropped }).to.deep.equal({ sent: 1, queued: 2, dropped: 2 });
  });
});
