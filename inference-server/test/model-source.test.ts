import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CRC32C } from '@google-cloud/storage';
import pino from 'pino';
import { emulatorEndpoint, fetchArtifact, FetchError, type FetchOptions } from '../src/model-source/fetch.js';
import {
  ChecksumMismatchError,
  classifyError,
  HttpStatusError,
  retry,
  RetryError,
  TransientError,
} from '../src/model-source/retry.js';
import { cacheIdentity, parseModelUri, redactText, redactUri } from '../src/model-source/uri.js';
import { startFakeGcs, startFaultProxy, type FakeGcs, type FaultProxy } from './helpers/fake-gcs.js';

// ---------------------------------------------------------------- helpers

function captureLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return {
    logger,
    text: () => lines.join(''),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const crc32cOf = (b: Buffer) => {
  const c = new CRC32C();
  c.update(b);
  return c.toString();
};
const md5Of = (b: Buffer) => createHash('md5').update(b).digest('base64');
const fastRetry = { baseDelayMs: 5, maxDelayMs: 20 };

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject');
}

let tmpRoot: string;
before(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'model-source-test-'));
});
after(async () => {
  await rm(tmpRoot, { recursive: true, force: true });
});
const newCacheDir = () => mkdtemp(join(tmpRoot, 'cache-'));

// ---------------------------------------------------------------- uri

describe('model-source/uri', () => {
  it('parses gs://, https://, loopback http://, file:// and plain paths', () => {
    expect(parseModelUri('gs://my-models/resnet/v1/model.onnx')).to.deep.equal({
      kind: 'gcs',
      bucket: 'my-models',
      object: 'resnet/v1/model.onnx',
    });
    const h = parseModelUri('https://example.com/m/model.onnx?x=1#frag');
    expect(h.kind).to.equal('http');
    if (h.kind === 'http') expect(h.url.toString()).to.equal('https://example.com/m/model.onnx?x=1');
    expect(parseModelUri('http://127.0.0.1:8080/m.onnx').kind).to.equal('http');
    expect(parseModelUri('http://localhost/m.onnx').kind).to.equal('http');
    expect(parseModelUri('file:///models/my%20model.onnx')).to.deep.equal({
      kind: 'file',
      path: '/models/my model.onnx',
    });
    expect(parseModelUri('/models/m.onnx')).to.deep.equal({ kind: 'file', path: '/models/m.onnx' });
    expect(parseModelUri('models/m.onnx', { cwd: '/srv' })).to.deep.equal({ kind: 'file', path: '/srv/models/m.onnx' });
  });

  it('rejects unsupported or malformed URIs with clear messages', () => {
    expect(() => parseModelUri('s3://bucket/model.onnx')).to.throw(/unsupported URI scheme "s3:"/);
    expect(() => parseModelUri('ftp://user:pw@host/m.onnx')).to.throw(
      /unsupported URI scheme "ftp:" in ftp:\/\/host\/m.onnx/,
    );
    expect(() => parseModelUri('gs://bucket-only')).to.throw(/must name an object/);
    expect(() => parseModelUri('gs://bucket/folder/')).to.throw(/must name an object/);
    expect(() => parseModelUri('gs://Bad_Bucket!/m.onnx')).to.throw(/bad bucket name/);
    expect(() => parseModelUri('http://example.com/m.onnx')).to.throw(/use https/);
    expect(parseModelUri('http://example.com/m.onnx', { allowInsecureHttp: true }).kind).to.equal('http');
    expect(() => parseModelUri('https://example.com/')).to.throw(/must name a file/);
    expect(() => parseModelUri('   ')).to.throw(/empty/);
  });

  it('redacts userinfo and signed-URL secrets', () => {
    const signed =
      'https://storage.googleapis.com/b/m.onnx?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam' +
      '&X-Goog-Date=20250101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=deadbeefcafe';
    const r = redactUri(signed);
    expect(r).to.not.include('deadbeefcafe');
    expect(r).to.include('X-Goog-Signature=REDACTED');
    expect(r).to.include('X-Goog-Date=20250101T000000Z');
    expect(redactUri('https://user:hunter2@host/m.onnx?token=abc&sig=def&v=2')).to.equal(
      'https://host/m.onnx?token=REDACTED&sig=REDACTED&v=2',
    );
    expect(redactUri('gs://bucket/path/m.onnx')).to.equal('gs://bucket/path/m.onnx');
    expect(redactUri('/plain/path?x')).to.equal('/plain/path?x');
    expect(redactUri('https://[bad/m?token=abc')).to.not.include('abc');
    expect(redactText('GET https://h/m?access_token=s3cr3t failed')).to.equal(
      'GET https://h/m?access_token=REDACTED failed',
    );
  });

  it('gives re-signed URLs of one file the same cache identity', () => {
    const a = parseModelUri('https://h/m.onnx?X-Goog-Date=1&X-Goog-Signature=aaa&v=1');
    const b = parseModelUri('https://h/m.onnx?v=1&X-Goog-Date=2&X-Goog-Signature=bbb');
    expect(cacheIdentity(a)).to.equal(cacheIdentity(b)).and.equal('https://h/m.onnx?v=1');
  });

  it('normalises STORAGE_EMULATOR_HOST values to an API endpoint', () => {
    expect(emulatorEndpoint('127.0.0.1:4443')).to.equal('http://127.0.0.1:4443');
    expect(emulatorEndpoint('http://h:1/')).to.equal('http://h:1');
    expect(emulatorEndpoint('http://h:1/storage/v1')).to.equal('http://h:1');
  });
});

// ---------------------------------------------------------------- retry

describe('model-source/retry', () => {
  it('retries transient errors with capped exponential backoff, then succeeds', async () => {
    const delays: number[] = [];
    let calls = 0;
    const out = await retry(
      () => {
        if (++calls < 4) throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        return 'ok';
      },
      { baseDelayMs: 4, maxDelayMs: 10, random: () => 1, onRetry: (i) => delays.push(i.delayMs) },
    );
    expect(out).to.equal('ok');
    expect(delays).to.deep.equal([4, 8, 10]); // random()=1 shows the jitter's upper bound
  });

  it('does not retry permanent errors', async () => {
    let calls = 0;
    const err = await rejection(
      retry(() => {
        calls++;
        throw new HttpStatusError(404, 'not found (404)');
      }),
    );
    expect(calls).to.equal(1);
    expect(err).to.be.instanceOf(RetryError);
    expect(err.message).to.equal('not found (404)');
  });

  it('gives a persisting checksum mismatch three attempts', async () => {
    let calls = 0;
    const err = await rejection(
      retry(
        () => {
          calls++;
          throw new ChecksumMismatchError('checksum mismatch (crc32c expected A got B)');
        },
        { ...fastRetry, maxAttempts: 10 },
      ),
    );
    expect(calls).to.equal(3);
    expect(err.message).to.equal('checksum mismatch (crc32c expected A got B) after 3 attempts');
  });

  it('stops at the deadline, aborting the running attempt', async () => {
    const t0 = Date.now();
    const err = await rejection(
      retry(
        (_n, signal) =>
          new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
        {
          deadlineMs: 100,
        },
      ),
    );
    expect(Date.now() - t0).to.be.below(1000);
    expect((err as RetryError).stop).to.equal('deadline');
    expect(err.message).to.match(/^deadline of 100ms exceeded after 1 attempt/);
  });

  it('classifies errors', () => {
    const sys = (code: string) => Object.assign(new Error(code), { code });
    expect(classifyError(new HttpStatusError(503, ''))).to.equal('retryable');
    expect(classifyError(new HttpStatusError(429, ''))).to.equal('retryable');
    expect(classifyError(new HttpStatusError(408, ''))).to.equal('retryable');
    expect(classifyError(new HttpStatusError(403, ''))).to.equal('permanent');
    expect(classifyError(new HttpStatusError(401, ''))).to.equal('permanent');
    expect(classifyError(Object.assign(new Error('x'), { code: 404 }))).to.equal('permanent'); // GCS ApiError shape
    for (const c of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN'])
      expect(classifyError(sys(c))).to.equal('retryable');
    expect(classifyError(new Error('socket hang up'))).to.equal('retryable');
    expect(classifyError(new TypeError('fetch failed', { cause: sys('ECONNREFUSED') }))).to.equal('retryable');
    expect(classifyError(new TransientError('truncated'))).to.equal('retryable');
    expect(classifyError(new ChecksumMismatchError('x'))).to.equal('integrity');
    expect(classifyError(sys('ENOSPC'))).to.equal('permanent');
  });
});

// ---------------------------------------------------------------- gs://

describe('model-source/fetch gs:// (fake-gcs-server)', function () {
  this.timeout(30_000);
  let gcs: FakeGcs;
  let proxy: FaultProxy;
  let savedEmulatorHost: string | undefined;
  const model = randomBytes(3 * 1024 * 1024 + 17); // several chunks
  const labels = Buffer.from('cat\ndog\n');

  before(async function () {
    this.timeout(300_000); // first run builds the emulator (~1 min)
    gcs = await startFakeGcs();
    proxy = await startFaultProxy(gcs.url);
    await gcs.createBucket('models');
    await gcs.upload('models', 'resnet/model.onnx', model);
    await gcs.upload('models', 'resnet/labels.txt', labels);
    // Production path: the client is configured from the environment, through the proxy.
    savedEmulatorHost = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = proxy.url;
  });
  after(async () => {
    if (savedEmulatorHost === undefined) delete process.env.STORAGE_EMULATOR_HOST;
    else process.env.STORAGE_EMULATOR_HOST = savedEmulatorHost;
    await proxy?.close();
    await gcs?.stop();
  });
  beforeEach(() => proxy.reset());

  const opts = async (extra: Partial<FetchOptions> = {}) => {
    const cap = captureLogger();
    return { cap, o: { cacheDir: await newCacheDir(), logger: cap.logger, retry: fastRetry, ...extra } };
  };

  it('downloads through STORAGE_EMULATOR_HOST with identical bytes and recorded checksums', async () => {
    const { o } = await opts();
    const r = await fetchArtifact('gs://models/resnet/model.onnx', o);
    expect(r.fromCache).to.equal(false);
    expect(r.source).to.equal('gs://models/resnet/model.onnx');
    expect(r.sizeBytes).to.equal(model.length);
    expect((await readFile(r.path)).equals(model)).to.equal(true);
    const [md] = await gcs.storage.bucket('models').file('resnet/model.onnx').getMetadata();
    expect(r.checksums).to.deep.equal({ crc32c: crc32cOf(model), md5: md5Of(model) });
    expect(r.checksums).to.deep.equal({ crc32c: md.crc32c, md5: md.md5Hash });
    const sidecar = JSON.parse(await readFile(`${r.path}.meta.json`, 'utf8')) as Record<string, unknown>;
    expect(sidecar).to.include({
      sizeBytes: model.length,
      crc32c: md.crc32c,
      md5: md.md5Hash,
      generation: String(md.generation),
    });
    expect((await readdir(o.cacheDir)).filter((f) => f.endsWith('.partial'))).to.deep.equal([]);
    expect(proxy.mediaRequests()).to.equal(1);

    // An injected client (here: straight to the emulator, bypassing the proxy) is used as given.
    proxy.reset();
    const l = await fetchArtifact('gs://models/resnet/labels.txt', { ...o, storage: () => gcs.storage });
    expect(await readFile(l.path, 'utf8')).to.equal('cat\ndog\n');
    expect(l.path).to.not.equal(r.path);
    expect(proxy.requests).to.deep.equal([]);
  });

  it('reuses a verified cache on restart without a media request, and redownloads a corrupted one', async () => {
    const { o } = await opts();
    const first = await fetchArtifact('gs://models/resnet/model.onnx', o);
    proxy.reset();
    const second = await fetchArtifact('gs://models/resnet/model.onnx', o);
    expect(second).to.deep.include({ fromCache: true, path: first.path, sizeBytes: model.length });
    expect(second.checksums).to.deep.equal(first.checksums);
    expect(proxy.mediaRequests()).to.equal(0);
    expect(proxy.requests.length).to.equal(1); // metadata only

    // Bit rot on disk: same size, different bytes -> detected and replaced.
    const bad = Buffer.from(model);
    bad[100] = (bad[100] ?? 0) ^ 1;
    await writeFile(first.path, bad);
    const third = await fetchArtifact('gs://models/resnet/model.onnx', o);
    expect(third.fromCache).to.equal(false);
    expect((await readFile(third.path)).equals(model)).to.equal(true);
  });

  it('redownloads when the object was replaced (new generation)', async () => {
    const { o } = await opts();
    await gcs.upload('models', 'tmp/replaced.onnx', Buffer.from('version one'));
    await fetchArtifact('gs://models/tmp/replaced.onnx', o);
    await gcs.upload('models', 'tmp/replaced.onnx', Buffer.from('version two!'));
    const r = await fetchArtifact('gs://models/tmp/replaced.onnx', o);
    expect(r.fromCache).to.equal(false);
    expect(await readFile(r.path, 'utf8')).to.equal('version two!');
  });

  it('rejects a persistently corrupted download with a checksum error and leaves no file', async () => {
    const { o, cap } = await opts();
    proxy.corruptMedia();
    const err = await rejection(fetchArtifact('gs://models/resnet/model.onnx', o));
    expect(err).to.be.instanceOf(FetchError);
    expect(err.message).to.match(
      /^gs:\/\/models\/resnet\/model\.onnx: checksum mismatch \(crc32c expected \S+ got \S+\) after 3 attempts$/,
    );
    expect(err.message).to.include(crc32cOf(model));
    expect(proxy.mediaRequests()).to.equal(3);
    expect(await readdir(o.cacheDir)).to.deep.equal([]);
    expect(cap.records().filter((l) => l.msg === 'model fetch attempt failed; retrying')).to.have.length(2);
  });

  it('recovers from a one-off corruption and from a connection cut mid-body', async () => {
    const { o } = await opts();
    proxy.corruptMedia(1);
    const r1 = await fetchArtifact('gs://models/resnet/model.onnx', o);
    expect((await readFile(r1.path)).equals(model)).to.equal(true);
    expect(proxy.mediaRequests()).to.equal(2);

    // The GCS client never notices this cut (node-fetch 2); the stall watchdog does.
    const { o: o2 } = await opts({ stallTimeoutMs: 300 });
    proxy.reset();
    proxy.dropMediaMidBody(1);
    const r2 = await fetchArtifact('gs://models/resnet/model.onnx', o2);
    expect((await readFile(r2.path)).equals(model)).to.equal(true);
    expect(proxy.mediaRequests()).to.equal(2);
  });

  it('retries transient 503s, logging each attempt', async () => {
    const { o, cap } = await opts();
    proxy.fail503(3);
    const r = await fetchArtifact('gs://models/resnet/model.onnx', o);
    expect((await readFile(r.path)).equals(model)).to.equal(true);
    const retries = cap.records().filter((l) => l.msg === 'model fetch attempt failed; retrying');
    expect(retries.map((l) => l.attempt)).to.deep.equal([1, 2, 3]);
    expect(retries[0]).to.include({ uri: 'gs://models/resnet/model.onnx' });
    expect(retries[0]?.delayMs).to.be.a('number');
    expect(retries[0]?.err).to.be.a('string');
  });

  it('fails fast and clearly on a missing object (404)', async () => {
    const { o } = await opts();
    const t0 = Date.now();
    const err = await rejection(fetchArtifact('gs://models/missing.onnx', o));
    expect(err.message).to.equal('gs://models/missing.onnx: object not found (404)');
    expect((err as FetchError).status).to.equal(404);
    expect((err as FetchError).attempts).to.equal(1);
    expect(proxy.requests.length).to.equal(1);
    expect(Date.now() - t0).to.be.below(2000);
  });
});

// ---------------------------------------------------------------- https:// (loopback http)

describe('model-source/fetch http(s)://', function () {
  this.timeout(20_000);
  const body = randomBytes(256 * 1024);
  const etag = '"v1"';
  let server: http.Server;
  let base: string;
  const hits: Record<string, number> = {};
  let fail503 = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      hits[u.pathname] = (hits[u.pathname] ?? 0) + 1;
      if (fail503 > 0) {
        fail503--;
        res.writeHead(503).end();
        return;
      }
      switch (u.pathname) {
        case '/model.onnx':
          if (req.headers['if-none-match'] === etag) {
            res.writeHead(304, { etag }).end();
            return;
          }
          res.writeHead(200, {
            'content-length': body.length,
            etag,
            'x-goog-hash': `crc32c=${crc32cOf(body)},md5=${md5Of(body)}`,
          });
          res.end(body);
          return;
        case '/bad-hash.onnx':
          res.writeHead(200, { 'content-md5': md5Of(Buffer.from('something else')) }).end(body);
          return;
        case '/cut.onnx':
          res.writeHead(200, { 'content-length': body.length });
          if (hits[u.pathname] === 1) {
            res.write(body.subarray(0, 1000), () => res.socket?.destroy());
            return;
          }
          res.end(body);
          return;
        case '/hang.onnx':
          return; // never answers
        default:
          res.writeHead(404).end('nope');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  beforeEach(() => {
    fail503 = 0;
    for (const k of Object.keys(hits)) delete hits[k];
  });

  it('downloads with verified hashes and revalidates the cache by ETag', async () => {
    const { logger } = captureLogger();
    const o = { cacheDir: await newCacheDir(), logger, retry: fastRetry };
    const r = await fetchArtifact(`${base}/model.onnx`, o);
    expect(r.fromCache).to.equal(false);
    expect((await readFile(r.path)).equals(body)).to.equal(true);
    expect(r.checksums).to.deep.equal({ crc32c: crc32cOf(body), md5: md5Of(body) });
    const again = await fetchArtifact(`${base}/model.onnx`, o);
    expect(again).to.deep.include({ fromCache: true, path: r.path });
    expect(hits['/model.onnx']).to.equal(2); // the second one was a 304
  });

  it('retries a body cut mid-way', async () => {
    const { logger } = captureLogger();
    const r = await fetchArtifact(`${base}/cut.onnx`, { cacheDir: await newCacheDir(), logger, retry: fastRetry });
    expect((await readFile(r.path)).equals(body)).to.equal(true);
    expect(hits['/cut.onnx']).to.equal(2);
  });

  it('rejects a body that does not match Content-MD5', async () => {
    const { logger } = captureLogger();
    const cacheDir = await newCacheDir();
    const err = await rejection(fetchArtifact(`${base}/bad-hash.onnx`, { cacheDir, logger, retry: fastRetry }));
    expect(err.message).to.match(
      /^http:\/\/127\.0\.0\.1:\d+\/bad-hash\.onnx: checksum mismatch \(md5 expected .* after 3 attempts$/,
    );
    expect(await readdir(cacheDir)).to.deep.equal([]);
  });

  it('reports a missing file (404) without retrying', async () => {
    const { logger } = captureLogger();
    const err = await rejection(fetchArtifact(`${base}/missing.onnx`, { cacheDir: await newCacheDir(), logger }));
    expect(err.message).to.equal(`${base}/missing.onnx: not found (404)`);
    expect(hits['/missing.onnx']).to.equal(1);
  });

  it('gives up at the deadline', async () => {
    const { logger } = captureLogger();
    const t0 = Date.now();
    const err = await rejection(
      fetchArtifact(`${base}/hang.onnx`, { cacheDir: await newCacheDir(), logger, deadlineMs: 300 }),
    );
    expect(Date.now() - t0).to.be.below(2000);
    expect(err.message).to.match(/^http:\/\/127\.0\.0\.1:\d+\/hang\.onnx: deadline of 300ms exceeded after 1 attempt/);
  });

  it('never logs or throws a signed URL secret', async () => {
    const cap = captureLogger();
    const secret = 'c0ffee5ecretS1gnature';
    const qs =
      'X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40proj.iam.gserviceaccount.com' +
      `&X-Goog-Signature=${secret}`;
    const o = { cacheDir: await newCacheDir(), logger: cap.logger, retry: fastRetry };
    fail503 = 2;
    const r = await fetchArtifact(`http://tok:pw123@127.0.0.1:${new URL(base).port}/model.onnx?${qs}`, o);
    expect((await readFile(r.path)).equals(body)).to.equal(true);
    expect(r.source).to.include('X-Goog-Signature=REDACTED').and.not.include(secret);
    const err = await rejection(fetchArtifact(`${base}/missing.onnx?${qs}`, o));
    const logs = cap.text();
    expect(cap.records().filter((l) => l.msg === 'model fetch attempt failed; retrying')).to.have.length(2);
    for (const text of [logs, err.message, JSON.stringify(err), r.path]) {
      expect(text).to.not.include(secret);
      expect(text).to.not.include('pw123');
    }
    expect(logs).to.include('X-Goog-Signature=REDACTED');
  });
});

// ---------------------------------------------------------------- file:// and plain paths

describe('model-source/fetch local files', () => {
  it('uses file:// and plain paths in place', async () => {
    const { logger } = captureLogger();
    const dir = await mkdtemp(join(tmpRoot, 'local-'));
    const p = join(dir, 'model.onnx');
    await writeFile(p, 'onnx-bytes');
    const o = { cacheDir: join(dir, 'cache'), logger };
    const a = await fetchArtifact(`file://${p}`, o);
    expect(a).to.deep.equal({ path: p, sizeBytes: 10, fromCache: false, source: `file://${p}`, checksums: {} });
    const b = await fetchArtifact(p, o);
    expect(b.path).to.equal(p);
    const rel = await fetchArtifact('model.onnx', { ...o, cacheDir: o.cacheDir }).catch((e: Error) => e);
    expect(rel).to.be.instanceOf(FetchError); // relative to process.cwd(), which has no model.onnx
    expect(await readdir(dir)).to.deep.equal(['model.onnx']); // nothing copied, no cache dir created
  });

  it('reports missing files and directories clearly', async () => {
    const { logger } = captureLogger();
    const dir = await mkdtemp(join(tmpRoot, 'local-'));
    await mkdir(join(dir, 'sub'));
    const o = { cacheDir: join(dir, 'cache'), logger };
    expect((await rejection(fetchArtifact(join(dir, 'nope.onnx'), o))).message).to.equal(
      `${join(dir, 'nope.onnx')}: file not found`,
    );
    expect((await rejection(fetchArtifact(`file://${dir}/sub`, o))).message).to.equal(
      `file://${dir}/sub: not a regular file`,
    );
    expect((await rejection(fetchArtifact('s3://b/m.onnx', o))).message).to.match(/unsupported URI scheme "s3:"/);
  });
});
