import { expect } from 'chai';
import { DEFAULT_PREPROCESSING, preprocessingFromEnv, preprocessingToEnv } from '../../../crds/preprocessing.js';
import { loadConfig, modelNameFromUri } from '../../src/config/server-config.js';

describe('preprocessing options in the environment', () => {
  it('defaults when nothing is set', () => {
    expect(preprocessingFromEnv({})).to.deep.equal(DEFAULT_PREPROCESSING);
  });

  it('round-trips through the operator encoding', () => {
    const options = {
      resizeMode: 'letterbox',
      channelOrder: 'BGR',
      layout: 'NHWC',
      normalization: 'custom',
      scale: 1,
      mean: [103.9, 116.8, 123.7],
      std: [1, 1, 1],
      padColor: [114, 114, 114],
      softmax: 'never',
    } as const;
    const env = preprocessingToEnv({
      ...options,
      mean: [...options.mean],
      std: [...options.std],
      padColor: [...options.padColor],
    });
    expect(env.PIXEL_MEAN).to.equal('103.9,116.8,123.7');
    expect(preprocessingFromEnv(env)).to.deep.equal(options);
  });

  it('accepts values case-insensitively', () => {
    expect(preprocessingFromEnv({ RESIZE_MODE: 'Stretch', CHANNEL_ORDER: 'bgr' })).to.include({
      resizeMode: 'stretch',
      channelOrder: 'BGR',
    });
  });

  it('switches to custom normalization when a mean or std is given', () => {
    expect(preprocessingFromEnv({ PIXEL_MEAN: '0.5,0.5,0.5', PIXEL_STD: '0.5,0.5,0.5' }).normalization).to.equal(
      'custom',
    );
    expect(preprocessingFromEnv({ PIXEL_MEAN: '0.5,0.5,0.5', NORMALIZATION: 'none' }).normalization).to.equal('none');
  });

  it('lists every bad variable in one error', () => {
    expect(() => preprocessingFromEnv({ RESIZE_MODE: 'zoom', PIXEL_STD: '1,0,1', PAD_COLOR: '300,0,0' })).to.throw(
      /RESIZE_MODE=zoom: expected one of stretch, center-crop, letterbox.*PIXEL_STD=1,0,1.*PAD_COLOR=300,0,0/,
    );
  });
});

describe('server configuration', () => {
  it('has documented defaults', () => {
    const c = loadConfig({}, 2);
    expect(c).to.include({
      port: 8080,
      host: '0.0.0.0',
      sessions: 1,
      threads: 2,
      decodeConcurrency: 2,
      maxInFlight: undefined,
      maxQueueMs: 0,
      maxQueueBytes: 'auto',
      modelName: 'efficientnet-lite0',
    });
    // Queue, do not shed: the only refusals by default are the memory bound, the deadline and slow uploads.
    expect(c).to.include({
      requestDeadlineMs: 60_000,
      uploadIdleTimeoutMs: 5_000,
      uploadMinBytesPerSecond: 1024,
      refusalsPerSecond: 250,
    });
    expect(c.modelUri).to.match(/inference-server\/models\/efficientnet-lite0\/model\.onnx$/);
  });

  it('sizes threads from the CPUs it is given and honours overrides', () => {
    expect(loadConfig({}, 16)).to.include({ threads: 16, decodeConcurrency: 16 });
    expect(loadConfig({ INTRA_OP_THREADS: '3', PORT: '0' }, 16)).to.include({ threads: 3, port: 0 });
  });

  it('takes the opt-in bounds: MAX_IN_FLIGHT (images), MAX_QUEUE_BYTES (auto or bytes)', () => {
    expect(loadConfig({ MAX_IN_FLIGHT: '64' }, 2).maxInFlight).to.equal(64);
    expect(() => loadConfig({ MAX_IN_FLIGHT: '0' }, 2)).to.throw(/MAX_IN_FLIGHT=0/);
    expect(loadConfig({ MAX_QUEUE_BYTES: String(256 * 2 ** 20) }, 2).maxQueueBytes).to.equal(256 * 2 ** 20);
    expect(loadConfig({ MAX_QUEUE_BYTES: 'auto' }, 2).maxQueueBytes).to.equal('auto');
    expect(() => loadConfig({ MAX_QUEUE_BYTES: '1000' }, 2)).to.throw(
      /MAX_QUEUE_BYTES=1000: expected auto or a number of bytes, at least 1048576/,
    );
    expect(() => loadConfig({ UPLOAD_IDLE_TIMEOUT_MS: '10' }, 2)).to.throw(/UPLOAD_IDLE_TIMEOUT_MS=10/);
  });

  it('shares the CPUs out between sessions, at least one thread each', () => {
    expect(loadConfig({ SESSIONS: '2' }, 2)).to.include({ sessions: 2, threads: 1 });
    expect(loadConfig({ SESSIONS: '4' }, 16)).to.include({ sessions: 4, threads: 4 });
    expect(loadConfig({ SESSIONS: '3' }, 2)).to.include({ sessions: 3, threads: 1 });
    expect(loadConfig({ SESSIONS: '2', INTRA_OP_THREADS: '2' }, 2)).to.include({ sessions: 2, threads: 2 });
    expect(() => loadConfig({ SESSIONS: '0' }, 2)).to.throw(/SESSIONS=0/);
  });

  it('takes MAX_QUEUE_MS as 0 (off), auto or milliseconds', () => {
    expect(loadConfig({ MAX_QUEUE_MS: 'auto' }, 2).maxQueueMs).to.equal('auto');
    expect(loadConfig({ MAX_QUEUE_MS: '0' }, 2).maxQueueMs).to.equal(0);
    expect(loadConfig({ MAX_QUEUE_MS: '250' }, 2).maxQueueMs).to.equal(250);
    expect(() => loadConfig({ MAX_QUEUE_MS: 'soon' }, 2)).to.throw(
      /MAX_QUEUE_MS=soon: expected 0 \(off\), auto or milliseconds/,
    );
    expect(() => loadConfig({ MAX_QUEUE_MS: '-5' }, 2)).to.throw(/MAX_QUEUE_MS=-5/);
  });

  it('names the model after its file', () => {
    expect(modelNameFromUri('gs://bucket/models/resnet50.onnx')).to.equal('resnet50');
    expect(modelNameFromUri('https://h/x/efficientnet-lite0.onnx?X-Goog-Signature=abc')).to.equal('efficientnet-lite0');
    expect(modelNameFromUri('gs://bucket/resnet50/model.onnx')).to.equal('resnet50');
    expect(modelNameFromUri('gs://bucket/model.onnx')).to.equal('bucket');
    expect(modelNameFromUri('model.onnx')).to.equal('model');
  });

  it('refuses bad values with the variable named', () => {
    expect(() => loadConfig({ PORT: 'eighty', INPUT_SIZE: '224x', LOG_LEVEL: 'loud', MODEL_NAME: 'a b' }, 2)).to.throw(
      /PORT=eighty.*INPUT_SIZE=224x.*MODEL_NAME=a b.*LOG_LEVEL=loud/,
    );
    expect(loadConfig({ INPUT_SIZE: '320x240' }, 2).inputSize).to.deep.equal({ width: 320, height: 240 });
  });
});
