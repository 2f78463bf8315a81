import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import {
  COLOR_LABELS,
  IMAGENET_MEAN,
  IMAGENET_STD,
  colorClassifier,
  type ColorClassifierOptions,
} from '../color-classifier.js';
import { ensureModels, type ModelPaths } from '../generate.js';
import { countParameters, decodeModel, encodeModel } from '../onnx-builder.js';
import { resnet50Model } from '../resnet50.js';

type RGB = readonly [number, number, number];
const RED: RGB = [200, 10, 20];
const GREEN: RGB = [15, 180, 5];
const BLUE: RGB = [0, 30, 220];
const PURE_BLUE: RGB = [0, 0, 255];
const PURE_RED: RGB = [255, 0, 0];
const SIZE = 32;

/** HWC 0..255 image whose first floor(size/2) rows are `top` and the rest `bottom`. */
function halves(top: RGB, bottom: RGB, size = SIZE): Uint8Array {
  const img = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const c = y < Math.floor(size / 2) ? top : bottom;
    for (let x = 0; x < size; x++) img.set(c, (y * size + x) * 3);
  }
  return img;
}

type Encoding = Pick<ColorClassifierOptions, 'layout' | 'dtype' | 'normalization'>;

/** Encode HWC images as the model's input tensor, the way a real preprocessor would. */
function toTensor(images: Uint8Array[], enc: Encoding, size = SIZE): ort.Tensor {
  const n = images.length;
  const plane = size * size;
  const dims = enc.layout === 'NCHW' ? [n, 3, size, size] : [n, size, size, 3];
  const value = (p: number, c: number): number =>
    enc.normalization === 'imagenet' ? (p / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]! : p;
  const out = enc.dtype === 'uint8' ? new Uint8Array(n * 3 * plane) : new Float32Array(n * 3 * plane);
  images.forEach((img, b) => {
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        const idx = enc.layout === 'NCHW' ? b * 3 * plane + c * plane + i : (b * plane + i) * 3 + c;
        out[idx] = value(img[i * 3 + c]!, c);
      }
    }
  });
  return out instanceof Uint8Array ? new ort.Tensor('uint8', out, dims) : new ort.Tensor('float32', out, dims);
}

function argmaxRows(data: Float32Array, cols: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < data.length / cols; r++) {
    const row = Array.from(data.subarray(r * cols, (r + 1) * cols));
    rows.push(row.indexOf(Math.max(...row)));
  }
  return rows;
}

async function run(
  bytes: Uint8Array,
  input: ort.Tensor,
): Promise<{ name: string; data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const [inName] = session.inputNames;
    const [outName] = session.outputNames;
    const result = await session.run({ [inName!]: input });
    const out = result[outName!]!;
    return { name: outName!, data: out.data as Float32Array, dims: out.dims };
  } finally {
    await session.release();
  }
}

interface ColorCase {
  file: keyof ModelPaths;
  enc: Encoding;
  inputName: string;
  outputName: 'logits' | 'probabilities';
  dynamicBatch: boolean;
  labelsEmbedded: boolean;
}

const CASES: ColorCase[] = [
  {
    file: 'colorNchwImagenet',
    enc: { layout: 'NCHW', dtype: 'float32', normalization: 'imagenet' },
    inputName: 'input',
    outputName: 'logits',
    dynamicBatch: true,
    labelsEmbedded: false,
  },
  {
    file: 'colorNhwcKeras',
    enc: { layout: 'NHWC', dtype: 'float32', normalization: 'none' },
    inputName: 'image_input',
    outputName: 'probabilities',
    dynamicBatch: false,
    labelsEmbedded: true,
  },
  {
    file: 'colorNhwcUint8',
    enc: { layout: 'NHWC', dtype: 'uint8', normalization: 'none' },
    inputName: 'image_input',
    outputName: 'logits',
    dynamicBatch: true,
    labelsEmbedded: true,
  },
];

describe('generated models', function () {
  let dir: string;
  let paths: ModelPaths;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'onnx-op-models-'));
    paths = await ensureModels(dir, {
      only: ['colorNchwImagenet', 'colorNhwcKeras', 'colorNhwcUint8', 'colorLabels'],
      log: () => undefined,
    });
  });

  after(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  describe('ensureModels', function () {
    it('writes the requested files, no temp leftovers, and the labels file', async function () {
      const files = (await readdir(dir)).sort();
      expect(files).to.deep.equal([
        'color-labels.txt',
        'color-nchw-imagenet.onnx',
        'color-nhwc-keras.onnx',
        'color-nhwc-uint8.onnx',
      ]);
      expect(await readFile(paths.colorLabels, 'utf8')).to.equal('red\ngreen\nblue\n');
      expect(paths.resnet50).to.equal(join(dir, 'resnet50.onnx'));
    });

    it('skips files already present', async function () {
      const before = (await stat(paths.colorNhwcKeras)).mtimeMs;
      const logs: string[] = [];
      await new Promise((r) => setTimeout(r, 20));
      await ensureModels(dir, { only: ['colorNhwcKeras'], log: (m) => logs.push(m) });
      expect((await stat(paths.colorNhwcKeras)).mtimeMs).to.equal(before);
      expect(logs).to.deep.equal([]);
    });

    it('is deterministic', async function () {
      const again = colorClassifier({
        layout: 'NHWC',
        dtype: 'uint8',
        dynamicBatch: true,
        output: 'logits',
        embedLabels: true,
        normalization: 'none',
      });
      expect(Buffer.compare(Buffer.from(again), await readFile(paths.colorNhwcUint8))).to.equal(0);
    });
  });

  for (const c of CASES) {
    describe(`color model ${c.file}`, function () {
      let bytes: Uint8Array;
      before(async function () {
        bytes = await readFile(paths[c.file]);
      });

      it('has the expected signature, batch dim and metadata', function () {
        const model = decodeModel(bytes);
        expect(Number(model.irVersion)).to.equal(8);
        expect(Number(model.opsetImport[0]?.version)).to.equal(17);
        const input = model.graph!.input![0]!;
        expect(input.name).to.equal(c.inputName);
        const batchDim = input.type!.tensorType!.shape!.dim![0]!;
        if (c.dynamicBatch) expect(batchDim.dimParam).to.equal('batch');
        else expect(Number(batchDim.dimValue)).to.equal(1);
        expect(model.graph!.output![0]!.name).to.equal(c.outputName);
        const labels = model.metadataProps.find((p) => p.key === 'labels');
        if (c.labelsEmbedded) expect(JSON.parse(labels!.value!)).to.deep.equal([...COLOR_LABELS]);
        else expect(labels).to.equal(undefined);
      });

      it('classifies the top half and ignores the bottom half', async function () {
        // Bottom halves are chosen so that averaging the WHOLE image would give a different answer.
        const cases: Array<[RGB, RGB, number]> = [
          [RED, PURE_BLUE, 0],
          [GREEN, PURE_RED, 1],
          [BLUE, PURE_RED, 2],
        ];
        for (const [top, bottom, expected] of cases) {
          const out = await run(bytes, toTensor([halves(top, bottom)], c.enc));
          expect(out.name).to.equal(c.outputName);
          expect(out.dims).to.deep.equal([1, 3]);
          expect(argmaxRows(out.data, 3)).to.deep.equal([expected]);
          if (c.outputName === 'logits') {
            // logits = 20 * top-half mean / 255, exactly.
            top.forEach((p, i) => expect(out.data[i]).to.be.closeTo((20 * p) / 255, 1e-3));
          } else {
            expect(out.data.reduce((s, v) => s + v, 0)).to.be.closeTo(1, 1e-5);
            expect(out.data[expected]).to.be.greaterThan(0.99);
          }
        }
      });

      if (c.dynamicBatch) {
        it('handles batch > 1', async function () {
          const imgs = [
            halves(BLUE, PURE_RED),
            halves(RED, PURE_BLUE),
            halves(GREEN, PURE_BLUE),
            halves(RED, PURE_BLUE),
          ];
          const out = await run(bytes, toTensor(imgs, c.enc));
          expect(out.dims).to.deep.equal([4, 3]);
          expect(argmaxRows(out.data, 3)).to.deep.equal([2, 0, 1, 0]);
        });
      }
    });
  }

  describe('colorClassifier options', function () {
    const combos: Encoding[] = [
      { layout: 'NCHW', dtype: 'float32', normalization: 'none' },
      { layout: 'NCHW', dtype: 'uint8', normalization: 'none' },
      { layout: 'NHWC', dtype: 'float32', normalization: 'imagenet' },
    ];
    for (const enc of combos) {
      it(`${enc.layout}/${enc.dtype}/${enc.normalization}, odd size 9, softmax, batch 2`, async function () {
        const bytes = colorClassifier({ ...enc, size: 9, dynamicBatch: true, output: 'softmax', embedLabels: false });
        const out = await run(bytes, toTensor([halves(GREEN, PURE_RED, 9), halves(BLUE, PURE_RED, 9)], enc, 9));
        expect(out.name).to.equal('probabilities');
        expect(argmaxRows(out.data, 3)).to.deep.equal([1, 2]);
      });
    }

    it('rejects imagenet normalization on uint8', function () {
      expect(() =>
        colorClassifier({
          layout: 'NCHW',
          dtype: 'uint8',
          dynamicBatch: true,
          output: 'logits',
          embedLabels: false,
          normalization: 'imagenet',
        }),
      ).to.throw(/float32/);
    });
  });

  describe('resnet50', function () {
    this.timeout(120_000);

    it('has ~25.5M parameters and runs one inference with finite [1,1000] logits', async function () {
      const { resnet50 } = await ensureModels(dir, { only: ['resnet50'], log: () => undefined });
      const bytes = await readFile(resnet50);
      const model = decodeModel(bytes);
      const params = countParameters(model);
      expect(params).to.be.within(25_400_000, 25_700_000);

      const session = await ort.InferenceSession.create(bytes);
      try {
        expect(session.inputNames).to.deep.equal(['input']);
        expect(session.outputNames).to.deep.equal(['logits']);
        const x = new Float32Array(3 * 224 * 224);
        for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.01);
        const result = await session.run({ input: new ort.Tensor('float32', x, [1, 3, 224, 224]) });
        const logits = result['logits']!;
        expect(logits.dims).to.deep.equal([1, 1000]);
        const data = logits.data as Float32Array;
        expect(data.every((v) => Number.isFinite(v))).to.equal(true);
        // Random weights, but the output must not be degenerate (all equal / all zero).
        expect(Math.max(...data) - Math.min(...data)).to.be.greaterThan(1e-3);
      } finally {
        await session.release();
      }
    });

    it('keras: image_input NHWC 0–255 in, the same weights, softmax of the default model out', async function () {
      const plain = resnet50Model({ seed: 7, dynamicBatch: true });
      const keras = resnet50Model({ seed: 7, dynamicBatch: true, keras: true });
      // The network's weights are byte-identical; the Keras one only adds the preprocessing constants.
      const weights = (m: typeof plain) =>
        new Map((m.graph?.initializer ?? []).map((t) => [t.name!, Buffer.from(t.rawData!).toString('base64')]));
      const kerasWeights = weights(keras);
      for (const [name, data] of weights(plain)) expect(kerasWeights.get(name), name).to.equal(data);
      expect([...kerasWeights.keys()].filter((k) => !weights(plain).has(k)).sort()).to.deep.equal([
        'preprocess.mean',
        'preprocess.scale',
      ]);

      const [a, b] = await Promise.all([plain, keras].map((m) => ort.InferenceSession.create(encodeModel(m))));
      try {
        expect(b!.inputNames).to.deep.equal(['image_input']);
        expect(b!.outputNames).to.deep.equal(['predictions']);
        const batch = 2;
        const side = 224;
        const plane = side * side;
        const hwc = new Float32Array(batch * plane * 3);
        for (let i = 0; i < hwc.length; i++) hwc[i] = Math.round(127.5 + 127.5 * Math.sin(i * 0.37));
        // The same pixels as the default model wants them: NCHW, ImageNet mean/std.
        const chw = new Float32Array(hwc.length);
        for (let n = 0; n < batch; n++) {
          for (let i = 0; i < plane; i++) {
            for (let c = 0; c < 3; c++)
              chw[n * 3 * plane + c * plane + i] =
                (hwc[(n * plane + i) * 3 + c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
          }
        }
        const logits = (await a!.run({ input: new ort.Tensor('float32', chw, [batch, 3, side, side]) }))['logits']!
          .data as Float32Array;
        const probs = (await b!.run({ image_input: new ort.Tensor('float32', hwc, [batch, side, side, 3]) }))[
          'predictions'
        ]!;
        expect(probs.dims).to.deep.equal([batch, 1000]);
        const p = probs.data as Float32Array;
        for (let n = 0; n < batch; n++) {
          const row = logits.subarray(n * 1000, (n + 1) * 1000);
          const max = Math.max(...row);
          const exp = Array.from(row, (v) => Math.exp(v - max));
          const sum = exp.reduce((x, y) => x + y, 0);
          const pRow = p.subarray(n * 1000, (n + 1) * 1000);
          expect(pRow.reduce((x, y) => x + y, 0)).to.be.closeTo(1, 1e-4);
          const worst = Math.max(...exp.map((e, k) => Math.abs(pRow[k]! - e / sum)));
          expect(worst, `row ${n}: largest difference from softmax(logits)`).to.be.below(1e-4);
        }
      } finally {
        await Promise.all([a!.release(), b!.release()]);
      }
    });
  });
});
