import { expect } from 'chai';
import type { InferenceSession } from 'onnxruntime-node';
import { DEFAULT_PREPROCESSING } from '../../../crds/preprocessing.js';
import { describeModel, pixelTransform, writeImage } from '../../src/model/signature.js';

type Meta = InferenceSession.ValueMetadata;
const tensor = (name: string, type: 'float32' | 'uint8' | 'int64', shape: (number | string)[]): Meta => ({
  name,
  isTensor: true,
  type,
  shape,
});
const out = [tensor('probs', 'float32', ['batch', 1000])];

describe('model signature', () => {
  it('reads a PyTorch-style NCHW model with a dynamic batch', () => {
    const sig = describeModel([tensor('input', 'float32', ['batch', 3, 224, 224])], out, {});
    expect(sig).to.deep.include({
      inputName: 'input',
      dtype: 'float32',
      layout: 'NCHW',
      height: 224,
      width: 224,
      batch: 'dynamic',
      classes: 1000,
      inputShape: [-1, 3, 224, 224],
    });
  });

  it('reads a Keras-style NHWC model with a fixed batch', () => {
    const sig = describeModel([tensor('image_input', 'float32', [1, 224, 224, 3])], out, {});
    expect(sig).to.deep.include({ layout: 'NHWC', batch: 1, height: 224, width: 224 });
  });

  it('takes the size from configuration when the model leaves it symbolic', () => {
    const inputs = [tensor('x', 'uint8', ['n', 'h', 'w', 3])];
    expect(() => describeModel(inputs, out, {})).to.throw(/set INPUT_SIZE/);
    expect(describeModel(inputs, out, {}, { inputSize: { width: 320, height: 240 } })).to.deep.include({
      width: 320,
      height: 240,
      layout: 'NHWC',
    });
  });

  it('asks for INPUT_LAYOUT when the shape is ambiguous', () => {
    expect(() => describeModel([tensor('x', 'float32', [1, 3, 8, 3])], out, {})).to.throw(/set INPUT_LAYOUT/);
    expect(describeModel([tensor('x', 'float32', [1, 3, 8, 3])], out, { layout: 'NHWC' })).to.deep.include({
      height: 3,
      width: 8,
    });
  });

  it('refuses what is not a one-image classifier, saying why', () => {
    expect(() => describeModel([tensor('a', 'float32', [1, 3, 2, 2]), tensor('b', 'float32', [1])], out, {})).to.throw(
      /2 inputs/,
    );
    expect(() => describeModel([tensor('x', 'int64', [1, 3, 2, 2])], out, {})).to.throw(/float32 and uint8/);
    expect(() => describeModel([tensor('x', 'float32', [1, 1, 28, 28])], out, {})).to.throw(/cannot tell the layout/);
    expect(() =>
      describeModel([tensor('x', 'float32', [1, 3, 2, 2])], [tensor('y', 'float32', ['n', 'c'])], {}),
    ).to.throw(/fixed class count/);
    expect(() => describeModel([tensor('x', 'float32', [1, 3, 2, 2])], out, {}, { outputName: 'nope' })).to.throw(
      /output nope not found/,
    );
  });
});

describe('pixel transform and tensor layout', () => {
  const pixels = Uint8Array.from([255, 0, 10, 0, 128, 20]); // two pixels, 1×2
  const sig = { height: 1, width: 2 } as const;

  it('auto normalization follows the framework conventions', () => {
    const nchw = pixelTransform({ dtype: 'float32', layout: 'NCHW' }, DEFAULT_PREPROCESSING);
    expect(nchw.gain[0]).to.be.closeTo(1 / 255 / 0.229, 1e-9);
    expect(nchw.bias[0]).to.be.closeTo(-0.485 / 0.229, 1e-9);
    expect(pixelTransform({ dtype: 'float32', layout: 'NHWC' }, DEFAULT_PREPROCESSING)).to.deep.equal({
      gain: [1, 1, 1],
      bias: [-0, -0, -0],
    });
    expect(() =>
      pixelTransform({ dtype: 'uint8', layout: 'NHWC' }, { ...DEFAULT_PREPROCESSING, normalization: 'imagenet' }),
    ).to.throw(/uint8/);
  });

  it('writes NCHW planes with normalization in one pass', () => {
    const target = new Float32Array(12);
    const t: { gain: [number, number, number]; bias: [number, number, number] } = { gain: [1, 2, 3], bias: [0, 1, 2] };
    writeImage(pixels, { ...sig, layout: 'NCHW', dtype: 'float32' }, t, false, target, 1);
    expect(Array.from(target.subarray(6))).to.deep.equal([255, 0, 1, 257, 32, 62]);
  });

  it('writes NHWC BGR', () => {
    const target = new Float32Array(6);
    writeImage(
      pixels,
      { ...sig, layout: 'NHWC', dtype: 'float32' },
      { gain: [1, 1, 1], bias: [0, 0, 0] },
      true,
      target,
      0,
    );
    expect(Array.from(target)).to.deep.equal([10, 0, 255, 20, 128, 0]);
  });

  it('copies raw bytes for uint8 models, reordering for NCHW', () => {
    const nhwc = new Uint8Array(6);
    writeImage(
      pixels,
      { ...sig, layout: 'NHWC', dtype: 'uint8' },
      { gain: [1, 1, 1], bias: [0, 0, 0] },
      false,
      nhwc,
      0,
    );
    expect(Array.from(nhwc)).to.deep.equal(Array.from(pixels));
    const nchw = new Uint8Array(6);
    writeImage(
      pixels,
      { ...sig, layout: 'NCHW', dtype: 'uint8' },
      { gain: [1, 1, 1], bias: [0, 0, 0] },
      false,
      nchw,
      0,
    );
    expect(Array.from(nchw)).to.deep.equal([255, 0, 0, 128, 10, 20]);
  });
});
