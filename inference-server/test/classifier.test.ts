import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { colorClassifier } from '../../scripts/models/color-classifier.js';
import { DEFAULT_PREPROCESSING } from '../src/config/preprocessing.js';
import { Classifier } from '../src/model/classifier.js';
import { BLUE, GREEN, RED, halves } from './helpers/images.js';

describe('classifier with a fixed batch size', function () {
  this.timeout(30_000);

  it('runs any number of images in chunks of the model batch, padding the last, answers in order', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'fixed-batch-')), 'model.onnx');
    await writeFile(path, colorClassifier({ layout: 'NHWC', dtype: 'uint8', size: 32, dynamicBatch: false, batchSize: 2, output: 'logits', embedLabels: true, normalization: 'none' }));
    const classifier = await Classifier.load(path, { preprocessing: { ...DEFAULT_PREPROCESSING }, threads: 1, logger: pino({ level: 'silent' }) });
    try {
      expect(classifier.signature.batch).to.equal(2);
      const images = [RED, GREEN, BLUE].map((top) => halves(32, 32, top, top));
      const { rows } = await classifier.classify(images);
      expect(rows.map((r) => classifier.predictions(r, 1)[0]!.label)).to.deep.equal(['red', 'green', 'blue']);
    } finally {
      await classifier.close();
    }
  });
});

describe('classifier with several sessions', function () {
  this.timeout(60_000);

  it('runs batches on different sessions at the same time, each answered correctly', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'sessions-')), 'model.onnx');
    await writeFile(path, colorClassifier({ layout: 'NHWC', dtype: 'uint8', size: 32, dynamicBatch: true, output: 'logits', embedLabels: true, normalization: 'none' }));
    const classifier = await Classifier.load(path, { preprocessing: { ...DEFAULT_PREPROCESSING }, threads: 1, sessions: 2, logger: pino({ level: 'silent' }) });
    try {
      expect(classifier.concurrency).to.equal(2);
      let bothBusy = false;
      let done = 0;
      const runs = [RED, GREEN, BLUE, RED].map((top) => classifier.classify([halves(32, 32, top, top)]).finally(() => done++));
      while (done < runs.length) {
        if (classifier.idleSessions === 0) bothBusy = true;
        await new Promise((r) => setImmediate(r));
      }
      const rows = (await Promise.all(runs)).map(({ rows: [row] }) => classifier.predictions(row!, 1)[0]!.label);
      expect(rows).to.deep.equal(['red', 'green', 'blue', 'red']);
      expect(bothBusy, 'both sessions ran at once').to.equal(true);
      expect(classifier.idleSessions).to.equal(2);
    } finally {
      await classifier.close();
    }
  });
});
