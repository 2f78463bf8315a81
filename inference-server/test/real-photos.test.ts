import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import type { OnnxModel } from '../../crds/onnxmodel-types.js';
import { desiredObjects } from '../../operator/src/desired-state.js';
import { DEFAULT_PREPROCESSING } from '../../crds/preprocessing.js';
import { DEFAULT_MODEL_PATH } from '../src/config/server-config.js';
import { decodeImage } from '../src/imaging/decode.js';
import { pixelTransform, writeImage } from '../src/model/signature.js';
import { startFakeGcs, type FakeGcs } from './helpers/fake-gcs.js';
import { spawnServer } from './helpers/process.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const PHOTOS = new URL('../../../inference-server/test/fixtures/photos/', import.meta.url);
const expected = JSON.parse(await readFile(new URL('expected.json', PHOTOS), 'utf8')) as Record<
  string,
  { accept: string[] }
>;
const photo = (name: string) => readFile(new URL(name, PHOTOS));

interface Seed {
  Label: string;
  Score: string;
}

/**
 * Real photographs through the real pretrained default model (EfficientNet-Lite0,
 * ImageNet), on each path a user takes: the seed's route, the v2 protocol with a
 * tensor preprocessed exactly as the server does, and an OnnxModel's pod spec.
 */
describe('real photos through the built-in pretrained model', function () {
  this.timeout(120_000);
  let server: TestServer;

  before(async () => {
    server = await startTestServer({});
  });
  after(() => server?.stop());

  for (const [name, { accept }] of Object.entries(expected)) {
    it(`POST /predict/image calls ${name} one of ${accept.join(' / ')}`, async () => {
      const { status, body } = await postForm(`${server.url}/predict/image`, { image_file: await photo(name) });
      expect(status).to.equal(200);
      expect(accept).to.include((body as Seed).Label);
      expect(Number((body as Seed).Score)).to.be.within(0.2, 1);
    });
  }

  it('the v2 endpoint gives the same answer for a tensor preprocessed as the server does', async () => {
    const meta = (await (await fetch(`${server.url}/v2/models/${server.config.modelName}`)).json()) as {
      inputs: { name: string; shape: number[] }[];
    };
    const [, , height, width] = meta.inputs[0]!.shape as [number, number, number, number];
    const names = Object.keys(expected);
    const tensor = new Float32Array(names.length * 3 * height * width);
    const transform = pixelTransform({ dtype: 'float32', layout: 'NCHW' }, DEFAULT_PREPROCESSING);
    for (const [i, name] of names.entries()) {
      const decoded = await decodeImage(await photo(name), {
        width,
        height,
        resize: true,
        resizeMode: 'center-crop',
        padColor: [0, 0, 0],
        maxPixels: 40e6,
      });
      writeImage(decoded.pixels, { height, width, layout: 'NCHW', dtype: 'float32' }, transform, false, tensor, i);
    }
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: meta.inputs[0]!.name,
            shape: [names.length, 3, height, width],
            datatype: 'FP32',
            parameters: { binary_data_size: tensor.byteLength },
          },
        ],
        outputs: [{ name: 'logits', parameters: { classification: 1 } }],
      }),
    );
    const res = await fetch(`${server.url}/v2/models/${server.config.modelName}/infer`, {
      method: 'POST',
      body: Buffer.concat([header, Buffer.from(tensor.buffer)]),
      headers: { 'inference-header-content-length': String(header.length) },
    });
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { outputs: { data: string[] }[] };
    const labels = body.outputs[0]!.data.map((s) => s.split(':').slice(2).join(':'));
    names.forEach((name, i) => expect(expected[name]!.accept, name).to.include(labels[i]));
  });

  describe('through an OnnxModel: the operator-generated pod spec serves the model from a bucket', () => {
    let gcs: FakeGcs;

    before(async () => {
      gcs = await startFakeGcs();
      await gcs.createBucket('models');
      await gcs.upload('models', 'efficientnet-lite0/model.onnx', await readFile(DEFAULT_MODEL_PATH));
    });
    after(() => gcs?.stop());

    it('curl of a cat photo answers a cat label', async () => {
      const model: OnnxModel = {
        apiVersion: 'serving.onnxoperator.dev/v1alpha1',
        kind: 'OnnxModel',
        metadata: { name: 'efficientnet', namespace: 'ml', uid: 'u1', generation: 1 },
        spec: { modelUri: 'gs://models/efficientnet-lite0/model.onnx' },
      };
      const container = desiredObjects(model, { serverImage: 'unused' }).deployment.spec!.template.spec!.containers[0]!;
      const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value!]));
      // The pod's environment, plus only what stands in for the cluster: credentials (the emulator), loopback, the
      // emptyDir.
      const proc = spawnServer({
        ...env,
        STORAGE_EMULATOR_HOST: gcs.url,
        PORT: '0',
        HOST: '127.0.0.1',
        MODEL_CACHE_DIR: await mkdtemp(join(tmpdir(), 'pod-cache-')),
      });
      try {
        const { url } = await proc.waitFor((l) => l.msg === 'listening');
        await proc.waitFor((l) => typeof l.curl === 'string');
        const { stdout } = await run('curl', [
          '-sS',
          '-F',
          `image_file=@${new URL('chelsea.jpg', PHOTOS).pathname}`,
          `${url as string}/predict/image`,
        ]);
        expect(expected['chelsea.jpg']!.accept).to.include((JSON.parse(stdout) as Seed).Label);
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
    });
  });
});
