import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { colorClassifier } from '../../scripts/models/color-classifier.js';
import { loadConfig } from '../src/config/server-config.js';
import { ClientGone, InvalidImage, InvalidRequest, NotReady, Overloaded, UnsupportedMedia } from '../src/errors.js';
import { Metrics } from '../src/metrics.js';
import { Classifier } from '../src/model/classifier.js';
import { DataPlane } from '../src/runtime/data-plane.js';
import { MemoryBudget } from '../src/runtime/memory-budget.js';
import { BLUE, GREEN, RED, picture } from './helpers/images.js';

const failure = (p: Promise<unknown>) =>
  p.then(
    () => new Error('resolved'),
    (e: unknown) => e as Error,
  );
const metrics = () =>
  new Metrics({
    inFlight: () => 0,
    queuedImages: () => 0,
    runningImages: () => 0,
    admissionLimit: () => Infinity,
    memoryReserved: () => 0,
    memoryBound: () => 0,
    queueBudgetSeconds: () => 0,
  });

/** The data plane without HTTP: request → tensor → scheduler → answer, on a real 32×32 colour model. */
describe('data plane', function () {
  this.timeout(60_000);
  let plane: DataPlane;
  let modelPath: string;

  before(async () => {
    modelPath = join(await mkdtemp(join(tmpdir(), 'data-plane-')), 'model.onnx');
    await writeFile(
      modelPath,
      colorClassifier({
        layout: 'NCHW',
        dtype: 'float32',
        size: 32,
        dynamicBatch: true,
        output: 'logits',
        embedLabels: true,
        normalization: 'imagenet',
      }),
    );
    const config = loadConfig({ MODEL_URI: modelPath }, 2);
    plane = new DataPlane(config, metrics());
    expect(() => plane.requireReady()).to.throw(NotReady, /still loading/);
    expect(() => plane.precheck(1000)).to.throw(NotReady);
    const loaded = await Classifier.load(modelPath, {
      preprocessing: config.preprocessing,
      threads: 1,
      logger: pino({ level: 'silent' }),
    });
    for (const session of loaded.sessions) {
      const run = session.run.bind(session);
      session.run = (...args) => ((warmUpRuns += 1), run(...args));
    }
    await plane.attach(loaded, 64 * 2 ** 20);
  });
  let warmUpRuns = 0;

  it('warms every session up before it is ready, with the latency budget off (the default)', () => {
    expect(plane.queueBudget).to.equal(undefined);
    expect(warmUpRuns).to.be.at.least(1);
  });
  after(() => plane?.close());

  const reservation = () => new MemoryBudget(64 * 2 ** 20).tryReserve(0)!;
  const ask = async (image: Buffer, more: Partial<Parameters<DataPlane['predictImage']>[0]> = {}) =>
    plane.predictImage({
      image,
      resize: true,
      topK: 1,
      postProcess: true,
      deadline: Infinity,
      reservation: reservation(),
      ...more,
    });

  it('classifies encoded images, batched, each with its own answer', async () => {
    const images = await Promise.all([RED, GREEN, BLUE, RED].map((c) => picture(64, 48, c, c).png().toBuffer()));
    const answers = await Promise.all(images.map((image) => ask(image)));
    expect(answers.map((a) => a.predictions[0]!.label)).to.deep.equal(['red', 'green', 'blue', 'red']);
    expect(answers[0]!.decodeMs).to.be.a('number');
    const top3 = await ask(images[1]!, { topK: 3 });
    expect(top3.predictions.map((p) => p.label)).to.have.length(3);
    expect((await ask(images[1]!, { postProcess: false })).predictions).to.deep.equal([]);
  });

  it('spends no decode on a client that has already gone', async () => {
    const image = await picture(64, 48, RED, RED).png().toBuffer();
    const decodesBefore =
      (await plane.metrics.decodeDuration.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const gone = new AbortController();
    gone.abort();
    expect(await failure(ask(image, { signal: gone.signal }))).to.be.instanceOf(ClientGone);
    const decodesAfter =
      (await plane.metrics.decodeDuration.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    expect(decodesAfter).to.equal(decodesBefore);
  });

  it('refuses bad input with domain errors, never with an HTTP status', async () => {
    const red = await picture(64, 48, RED, RED).png().toBuffer();
    expect(await failure(ask(Buffer.from('not an image')))).to.be.instanceOf(UnsupportedMedia);
    expect(await failure(ask(red, { resize: false }))).to.be.instanceOf(InvalidImage);
    expect(await failure(ask(red, { topK: 0 }))).to.be.instanceOf(InvalidRequest);
    expect((await failure(ask(red, { topK: NaN }))).message).to.match(/top_k must be an integer from 1 to 3/);
  });

  it('runs whole preprocessed batches and checks them against the model', async () => {
    const answer = await plane.inferTensor({
      inputName: 'input',
      data: new Float32Array(2 * 3 * 32 * 32),
      shape: [2, 3, 32, 32],
      deadline: Infinity,
      reservation: reservation(),
    });
    expect(answer.dims).to.deep.equal([2, 3]);
    expect(answer.scores).to.have.length(6);
    const wrong = (shape: number[], inputName = 'input') =>
      failure(
        plane.inferTensor({
          inputName,
          data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
          shape,
          deadline: Infinity,
          reservation: reservation(),
        }),
      );
    const small = await wrong([1, 3, 16, 16]);
    expect(small).to.be.instanceOf(InvalidRequest);
    expect(small.message).to.match(/must have shape \[1..256, 3, 32, 32\]/);
    expect((await wrong([1, 3, 32, 32], 'pixels')).message).to.match(/one input named input; got pixels/);
  });

  it('refuses what does not fit in the memory bound, before and after the body is in', async () => {
    const red = await picture(64, 48, RED, RED).png().toBuffer();
    const tiny = new MemoryBudget(100 * 1024).tryReserve(90 * 1024)!;
    const full = await failure(ask(red, { reservation: tiny }));
    expect(full).to.be.instanceOf(Overloaded);
    expect(full.message).to.match(/memory bound/);
    expect(() => plane.precheck(128 * 2 ** 20)).to.throw(Overloaded, /MAX_QUEUE_BYTES/);
    expect(() => plane.precheck(10_000)).to.not.throw();
  });
});
