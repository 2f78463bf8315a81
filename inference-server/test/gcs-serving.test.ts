import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { EXIT_CODE } from '../../crds/exit-status.js';
import { startFakeGcs, startFaultProxy, type FakeGcs, type FaultProxy } from './helpers/fake-gcs.js';
import { GREEN, RED, picture } from './helpers/images.js';
import { testModels } from './helpers/models.js';
import { spawnServer } from './helpers/process.js';
import { postForm } from './helpers/server.js';

/** The whole user path for a model in a bucket: the server process pulls it through the real GCS client. */
describe('serving a model pulled from GCS (fake-gcs-server on loopback)', function () {
  this.timeout(300_000);
  let gcs: FakeGcs;
  let proxy: FaultProxy;

  before(async () => {
    const models = await testModels();
    gcs = await startFakeGcs();
    await gcs.createBucket('models');
    await gcs.upload('models', 'colors/model.onnx', await readFile(models.colorNchw));
    await gcs.upload('models', 'colors/labels.txt', await readFile(models.colorLabels));
    proxy = await startFaultProxy(gcs.url);
  });
  after(async () => {
    await proxy?.close();
    await gcs?.stop();
  });
  beforeEach(() => proxy.reset());

  const env = (cacheDir: string) => ({
    MODEL_URI: 'gs://models/colors/model.onnx',
    LABELS_URI: 'gs://models/colors/labels.txt',
    STORAGE_EMULATOR_HOST: proxy.url,
    MODEL_CACHE_DIR: cacheDir,
  });

  it('downloads, serves, and on restart reuses the verified cache', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'gcs-cache-'));
    const downloads: number[] = [];
    for (const [round, expectCached] of [
      [1, false],
      [2, true],
    ] as const) {
      const proc = spawnServer(env(cacheDir));
      try {
        const ready = await proc.waitFor((l) => l.msg === 'model file ready');
        expect(ready.fromCache, `round ${round}`).to.equal(expectCached);
        const { url } = await proc.waitFor((l) => l.msg === 'listening');
        await proc.waitFor((l) => typeof l.curl === 'string');
        const { body } = await postForm(`${url as string}/predict/image`, {
          image_file: await picture(64, 64, GREEN, RED).jpeg().toBuffer(),
        });
        expect(body).to.deep.include({ Label: 'green' });
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
      downloads.push(proxy.mediaRequests());
    }
    // Model and labels downloaded once; the restart only asked for metadata.
    expect(downloads).to.deep.equal([2, 2]);
  });

  it('retries transient 503s and becomes ready', async () => {
    proxy.fail503(3);
    const proc = spawnServer(env(await mkdtemp(join(tmpdir(), 'gcs-cache-'))));
    try {
      await proc.waitFor((l) => typeof l.curl === 'string');
      expect(proc.logs.filter((l) => l.level === 40 && /retry/i.test(String(l.msg))).length).to.be.at.least(1);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('never becomes ready on a corrupted object and says so', async () => {
    proxy.corruptMedia(100);
    const proc = spawnServer(env(await mkdtemp(join(tmpdir(), 'gcs-cache-'))));
    const { code } = await proc.exited;
    expect(code).to.equal(EXIT_CODE.modelLoadFailed);
    expect(proc.logs.some((l) => /warmed up; ready/.test(String(l.msg)))).to.equal(false);
    const fatal = proc.logs.find((l) => l.level === 60);
    expect(fatal?.msg).to.match(
      new RegExp(
        /gs:\/\/models\/colors\/(model\.onnx|labels\.txt): checksum mismatch /.source +
          /\(crc32c expected .+ got .+\) after 3 attempts/.source,
      ),
    );
  });

  it('fails clearly on a missing object', async () => {
    const proc = spawnServer({
      ...env(await mkdtemp(join(tmpdir(), 'gcs-cache-'))),
      MODEL_URI: 'gs://models/nope.onnx',
    });
    const { code } = await proc.exited;
    expect(code).to.equal(EXIT_CODE.modelLoadFailed);
    expect(proc.logs.find((l) => l.level === 60)?.msg).to.match(/gs:\/\/models\/nope\.onnx: object not found \(404\)/);
  });
});
