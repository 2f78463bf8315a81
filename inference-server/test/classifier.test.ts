import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { colorClassifier } from '../../scripts/models/color-classifier.js';
import { DEFAULT_PREPROCESSING } from '../../crds/preprocessing.js';
import { Classifier } from '../src/model/classifier.js';
import { Scheduler } from '../src/runtime/scheduler.js';
import { BLUE, GREEN, RED, halves } from './helpers/images.js';

/** A real model on real sessions behind the scheduler: each image's top label. */
async function labels(classifier: Classifier, scheduler: Scheduler, tops: (typeof RED)[]): Promise<string[]> {
  const results = await Promise.all(
    tops.map((top) => scheduler.submitImage(classifier.prepare(halves(32, 32, top, top)))),
  );
  return results.map((r) => classifier.predictions(classifier.probabilities(r.output), 1)[0]!.label);
}

describe('classifier with a fixed batch size', function () {
  this.timeout(30_000);

  it('runs any number of images in calls of the model batch, padding the last, answers in order', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'fixed-batch-')), 'model.onnx');
    await writeFile(
      path,
      colorClassifier({
        layout: 'NHWC',
        dtype: 'uint8',
        size: 32,
        dynamicBatch: false,
        batchSize: 2,
        output: 'logits',
        embedLabels: true,
        normalization: 'none',
      }),
    );
    const { classifier, sessions } = await Classifier.load(path, {
      preprocessing: { ...DEFAULT_PREPROCESSING },
      threads: 1,
      logger: pino({ level: 'silent' }),
    });
    const scheduler = new Scheduler(sessions, classifier.signature, { maxBatchSize: 8, maxQueueDelayMs: 0 });
    try {
      expect(classifier.signature.batch).to.equal(2);
      expect(await labels(classifier, scheduler, [RED, GREEN, BLUE])).to.deep.equal(['red', 'green', 'blue']);
    } finally {
      await scheduler.close();
    }
  });
});

describe('classifier with several sessions', function () {
  this.timeout(60_000);

  it('runs on different sessions at the same time, each answered correctly', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'sessions-')), 'model.onnx');
    await writeFile(
      path,
      colorClassifier({
        layout: 'NHWC',
        dtype: 'uint8',
        size: 32,
        dynamicBatch: true,
        output: 'logits',
        embedLabels: true,
        normalization: 'none',
      }),
    );
    const { classifier, sessions } = await Classifier.load(path, {
      preprocessing: { ...DEFAULT_PREPROCESSING },
      threads: 1,
      sessions: 2,
      logger: pino({ level: 'silent' }),
    });
    // Batching off: four images are four calls, two at a time.
    const scheduler = new Scheduler(sessions, classifier.signature, { maxBatchSize: 1, maxQueueDelayMs: 0 });
    try {
      expect(sessions).to.have.length(2);
      let bothBusy = false;
      let done = false;
      const answers = labels(classifier, scheduler, [RED, GREEN, BLUE, RED]).finally(() => (done = true));
      while (!done) {
        if (scheduler.runningImages === 2) bothBusy = true;
        await new Promise((r) => setImmediate(r));
      }
      expect(await answers).to.deep.equal(['red', 'green', 'blue', 'red']);
      expect(bothBusy, 'both sessions ran at once').to.equal(true);
      expect(scheduler.runningImages).to.equal(0);
    } finally {
      await scheduler.close();
    }
  });
});
