import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { EXIT_CODE } from '../../crds/exit-status.js';
import { RED, picture } from './helpers/images.js';
import { testModels } from './helpers/models.js';
import { spawnServer } from './helpers/process.js';
import { metricSum, scrape } from '../../scripts/testkit/prometheus.js';
import { postForm, startTestServer } from './helpers/server.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error: string; requestId?: string };
}

/** A POST to /predict/image whose body the test writes itself (or never), for slow and stalled uploads. */
function rawRequest(url: string, headers: Record<string, string>) {
  const { port } = new URL(url);
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/predict/image', headers });
  const response = new Promise<RawAnswer>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as RawAnswer['json'],
        }),
      );
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  return { req, response };
}

/** A v2 binary request of `n` ResNet-50 inputs. */
function v2Batch(n: number): { body: Buffer; headers: Record<string, string> } {
  const data = new Float32Array(n * 3 * 224 * 224).fill(0.1);
  const json = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'input', shape: [n, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: data.byteLength } },
      ],
    }),
  );
  return {
    body: Buffer.concat([json, Buffer.from(data.buffer)]),
    headers: { 'inference-header-content-length': String(json.length) },
  };
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('server lifecycle and load', function () {
  this.timeout(180_000);
  let image: Buffer;

  before(async () => {
    image = await picture(224, 224, RED, RED).jpeg().toBuffer();
  });

  it('is live but not ready until the model is downloaded, loaded and warmed up', async () => {
    const models = await testModels();
    const bytes = await readFile(models.colorNhwc);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const origin: Server = createServer((_req, res) => void gate.then(() => res.end(bytes)));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const cacheDir = await mkdtemp(join(tmpdir(), 'onnx-cache-'));
    const server = await startTestServer(
      { MODEL_URI: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/m.onnx`, MODEL_CACHE_DIR: cacheDir },
      { waitReady: false },
    );
    try {
      expect((await fetch(`${server.url}/v2/health/live`)).status).to.equal(200);
      expect((await fetch(`${server.url}/v2/health/ready`)).status).to.equal(503);
      const early = await postForm(`${server.url}/predict/image`, { image_file: image });
      expect(early.status).to.equal(503);
      expect(early.headers.get('retry-after')).to.equal('5');
      expect((early.body as { error: string }).error).to.match(/still loading/);
      release();
      await server.modelReady;
      expect((await fetch(`${server.url}/v2/health/ready`)).status).to.equal(200);
      expect(server.logs.lines.some((l) => l.msg === 'model warmed up; ready')).to.equal(true);
    } finally {
      release();
      await server.stop();
      origin.close();
    }
  });

  it('with the defaults, queues a burst far beyond the sessions and answers every request (no 503)', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50 });
    try {
      const ready = server.logs.lines.find((l) => l.msg === 'model warmed up; ready')!;
      expect(ready.maxQueueBytes)
        .to.be.a('number')
        .and.at.least(64 * 2 ** 20);
      expect(ready).to.not.have.property('queueBudgetMs');
      const results = await Promise.all(
        Array.from({ length: 48 }, () =>
          postForm(`${server.url}/predict/image`, { image_file: image, with_resize: 'False' }),
        ),
      );
      expect(results.map((r) => r.status)).to.deep.equal(Array(48).fill(200));
      expect(new Set(results.map((r) => JSON.stringify(r.body))).size).to.equal(1);
      const metrics = await scrape(`${server.url}/metrics`);
      expect(metricSum(metrics, 'requests_rejected_total')).to.equal(0);
      expect(metrics.get('admission_limit')).to.equal(Infinity);
      expect(metrics.get('memory_bound_bytes')).to.equal(ready.maxQueueBytes);
      expect(metrics.get('memory_reserved_bytes')).to.equal(0);
    } finally {
      await server.stop();
    }
  });

  const memoryBoundTitle =
    'refuses past the memory bound from the headers alone (503 + Retry-After, JSON), ' +
    'cuts idle uploads with 408, then serves again';
  it(memoryBoundTitle, async () => {
    const { resnet50 } = await testModels();
    // 3 MiB: two 1 MB uploads that stall at 950 kB hold 1.9 MB of it, and a third 1 MB request would not fit with the
    // 0.77 MB its decoded ResNet-50 input takes.
    const server = await startTestServer({
      MODEL_URI: resnet50,
      MAX_QUEUE_BYTES: String(3 * 2 ** 20),
      UPLOAD_IDLE_TIMEOUT_MS: '1500',
    });
    try {
      const stalled = [0, 1].map(() => {
        const upload = rawRequest(server.url, { 'content-type': 'image/jpeg', 'content-length': String(1_000_000) });
        upload.req.write(Buffer.alloc(950_000, 1));
        return upload;
      });
      await waitUntil(
        async () => ((await scrape(`${server.url}/metrics`)).get('memory_reserved_bytes') ?? 0) >= 1_900_000,
      );
      // Headers only: its body is never sent, so a 503 proves the refusal came before reading it.
      const refused = rawRequest(server.url, { 'content-type': 'image/jpeg', 'content-length': String(1_000_000) });
      const answer = await refused.response;
      expect(answer.status).to.equal(503);
      expect(answer.headers['retry-after']).to.equal('1');
      expect(answer.headers['content-type']).to.match(/application\/json/);
      expect(answer.json.error).to.match(/memory bound allows \(3 MiB, MAX_QUEUE_BYTES\)/);
      expect(answer.json.requestId).to.be.a('string');
      refused.req.destroy();
      for (const { response } of stalled) {
        const cut = await response;
        expect(cut.status).to.equal(408);
        expect(cut.json.error).to.match(/no byte of the body arrived .*UPLOAD_IDLE_TIMEOUT_MS/);
      }
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('memory_reserved_bytes') === 0);
      expect((await postForm(`${server.url}/predict/image`, { image_file: image })).status).to.equal(200);
      const metrics = await scrape(`${server.url}/metrics`);
      expect(metrics.get('requests_rejected_total{reason="memory"}')).to.equal(1);
      expect(metrics.get('requests_rejected_total{reason="upload_timeout"}')).to.equal(2);
    } finally {
      await server.stop();
    }
  });

  const slowUploadersTitle =
    'answers normal requests while many slow uploaders trickle, and cuts the trickles with 408 below the minimum rate';
  it(slowUploadersTitle, async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50, UPLOAD_IDLE_TIMEOUT_MS: '2000' });
    const trickles: { stop: () => void; response: Promise<RawAnswer> }[] = [];
    try {
      // Sixteen slowloris bodies: a byte every 200 ms each, far below 1 kB/s.
      for (let i = 0; i < 16; i++) {
        const upload = rawRequest(server.url, { 'content-type': 'image/jpeg', 'content-length': String(image.length) });
        const timer = setInterval(() => upload.req.write(Buffer.of(0xff)), 200);
        trickles.push({
          stop: () => clearInterval(timer),
          response: upload.response.finally(() => clearInterval(timer)),
        });
      }
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('http_requests_in_flight') === 16);
      const normal = await Promise.all(
        Array.from({ length: 4 }, () => postForm(`${server.url}/predict/image`, { image_file: image })),
      );
      expect(normal.map((r) => r.status)).to.deep.equal([200, 200, 200, 200]);
      for (const { response } of trickles) {
        const cut = await response;
        expect(cut.status).to.equal(408);
        expect(cut.json.error).to.match(/below the minimum of 1024 \(UPLOAD_MIN_BYTES_PER_SECOND\)/);
      }
    } finally {
      for (const t of trickles) t.stop();
      await server.stop();
    }
  });

  const sloModeTitle =
    'in SLO mode (MAX_QUEUE_MS) holds only what fits in the budget, refuses the rest fast, ' +
    'and logs the refusals as one summary';
  it(sloModeTitle, async () => {
    const { resnet50 } = await testModels();
    // 1 ms: far less than one ResNet-50 inference, so the limit is its floor, one running and one waiting.
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_QUEUE_MS: '1' });
    try {
      expect((await scrape(`${server.url}/metrics`)).get('admission_limit')).to.equal(2);
      const results = await Promise.all(
        Array.from({ length: 8 }, () => postForm(`${server.url}/predict/image`, { image_file: image })),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200).length).to.be.within(2, 7);
      expect(statuses.every((s) => s === 200 || s === 503)).to.equal(true);
      const refused = results.filter((r) => r.status === 503);
      expect(refused.length).to.be.greaterThan(0);
      for (const r of refused) {
        expect(r.headers.get('retry-after')).to.equal('1');
        expect((r.body as { error: string }).error).to.match(
          /the most that can start within the 1 ms queue budget \(MAX_QUEUE_MS\) is 2/,
        );
      }
      const metrics = await scrape(`${server.url}/metrics`);
      expect(metrics.get('requests_rejected_total{reason="queue_budget"}')).to.equal(refused.length);
      // One warning for the episode, no access-log line per refusal.
      const summaries = server.logs.lines.filter((l) => l.msg === 'shedding load: requests refused with 503');
      expect(summaries).to.have.length(1);
      expect(server.logs.lines.filter((l) => l.msg === 'request' && l.status === 503)).to.have.length(0);
      expect(server.logs.lines.filter((l) => l.msg === 'request' && l.status === 200)).to.have.length(
        8 - refused.length,
      );
    } finally {
      await server.stop();
    }
  });

  it('with MAX_QUEUE_MS=auto, sizes the limit from the warm-up inference and reports it', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_QUEUE_MS: 'auto' });
    try {
      const ready = server.logs.lines.find((l) => l.msg === 'model warmed up; ready')!;
      expect(ready.queueBudgetMs).to.be.a('number').and.at.least(50);
      const limit = (await scrape(`${server.url}/metrics`)).get('admission_limit');
      expect(limit).to.equal(ready.admissionLimit);
      expect(limit).to.be.at.least(2);
      expect((await postForm(`${server.url}/predict/image`, { image_file: image })).status).to.equal(200);
    } finally {
      await server.stop();
    }
  });

  it('counts a v2 batch as its number of images, in the same queue as single images', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_IN_FLIGHT: '4' });
    try {
      const batch = v2Batch(6);
      const big = fetch(`${server.url}/v2/models/resnet50/infer`, {
        method: 'POST',
        body: batch.body,
        headers: batch.headers,
      });
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('inference_running_images') === 6);
      const refused = await postForm(`${server.url}/predict/image`, { image_file: image });
      expect(refused.status).to.equal(503);
      expect((refused.body as { error: string }).error).to.match(/holds 6 images, its MAX_IN_FLIGHT limit is 4/);
      expect((await big).status).to.equal(200);
      const metrics = await scrape(`${server.url}/metrics`);
      expect(metrics.get('inference_batch_size_sum')).to.equal(6);
      expect(metrics.get('requests_rejected_total{reason="max_in_flight"}')).to.equal(1);
    } finally {
      await server.stop();
    }
  });

  it('drops a queued request whose client went away instead of running it', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50 });
    try {
      const batch = v2Batch(16);
      const big = fetch(`${server.url}/v2/models/resnet50/infer`, {
        method: 'POST',
        body: batch.body,
        headers: batch.headers,
      });
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('inference_running_images') === 16);
      const gone = Array.from({ length: 4 }, () => {
        const controller = new AbortController();
        const sent = fetch(`${server.url}/predict/image`, {
          method: 'POST',
          body: image,
          headers: { 'content-type': 'image/jpeg' },
          signal: controller.signal,
        }).catch(() => 'aborted');
        return { controller, sent };
      });
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('inference_queue_depth') === 4);
      for (const g of gone) g.controller.abort();
      expect(await Promise.all(gone.map((g) => g.sent))).to.deep.equal(Array(4).fill('aborted'));
      expect((await big).status).to.equal(200);
      await waitUntil(async () => (await scrape(`${server.url}/metrics`)).get('inference_queue_depth') === 0);
      expect((await postForm(`${server.url}/predict/image`, { image_file: image })).status).to.equal(200);
      // The batch and the last request ran; the four abandoned ones never did.
      expect((await scrape(`${server.url}/metrics`)).get('inference_batch_size_sum')).to.equal(17);
    } finally {
      await server.stop();
    }
  });

  it('runs SESSIONS sessions side by side, each answering correctly', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({
      MODEL_URI: resnet50,
      SESSIONS: '2',
      MAX_BATCH_SIZE: '1',
      MAX_QUEUE_MS: '0',
    });
    try {
      const loaded = server.logs.lines.find((l) => l.msg === 'model loaded')!;
      expect(loaded).to.include({ sessions: 2 });
      const results = await Promise.all(
        Array.from({ length: 6 }, () => postForm(`${server.url}/predict/image`, { image_file: image })),
      );
      expect(results.map((r) => r.status)).to.deep.equal(Array(6).fill(200));
      expect(new Set(results.map((r) => JSON.stringify(r.body))).size).to.equal(1);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(Number(/inference_batch_size_count (\d+)/.exec(metrics)?.[1])).to.equal(6);
    } finally {
      await server.stop();
    }
  });

  it('batches concurrent requests into one session.run for a dynamic-batch model', async () => {
    const { resnet50 } = await testModels();
    // The queue budget off, or it would refuse most of eight at once from a 2-CPU ResNet-50.
    const server = await startTestServer({
      MODEL_URI: resnet50,
      MAX_BATCH_SIZE: '8',
      MAX_QUEUE_DELAY_MS: '100',
      MAX_QUEUE_MS: '0',
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => postForm(`${server.url}/predict/image`, { image_file: image })),
      );
      expect(results.map((r) => r.status)).to.deep.equal(Array(8).fill(200));
      // Every answer is the same image's: batching must not mix rows up.
      expect(new Set(results.map((r) => JSON.stringify(r.body))).size).to.equal(1);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const count = Number(/inference_batch_size_count (\d+)/.exec(metrics)?.[1]);
      const sum = Number(/inference_batch_size_sum (\d+)/.exec(metrics)?.[1]);
      expect(sum).to.equal(8);
      expect(count).to.be.lessThan(8);
    } finally {
      await server.stop();
    }
  });

  it('keeps the event loop free while the model runs', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50 });
    try {
      // A batch of 16 ResNet-50 images takes hundreds of milliseconds in session.run; a health
      // check sent after it starts must not wait for it, as it would if inference ran on the loop.
      const batch = new Float32Array(16 * 3 * 224 * 224).fill(0.1);
      const json = Buffer.from(
        JSON.stringify({
          inputs: [
            {
              name: 'input',
              shape: [16, 3, 224, 224],
              datatype: 'FP32',
              parameters: { binary_data_size: batch.byteLength },
            },
          ],
        }),
      );
      const order: string[] = [];
      const infer = fetch(`${server.url}/v2/models/resnet50/infer`, {
        method: 'POST',
        body: Buffer.concat([json, Buffer.from(batch.buffer)]),
        headers: { 'inference-header-content-length': String(json.length) },
      }).then((r) => order.push(`infer:${r.status}`));
      await waitUntil(
        async () =>
          /inference_queue_depth 0/.test(await (await fetch(`${server.url}/metrics`)).text()) && server.inFlight === 1,
      );
      await fetch(`${server.url}/v2/health/live`).then((r) => order.push(`live:${r.status}`));
      await infer;
      expect(order).to.deep.equal(['live:200', 'infer:200']);
    } finally {
      await server.stop();
    }
  });

  it('on SIGTERM turns readiness off, finishes in-flight requests, refuses new connections and exits 0', async () => {
    const { resnet50 } = await testModels();
    const proc = spawnServer({
      MODEL_URI: resnet50,
      DRAIN_DELAY_MS: '300',
      SHUTDOWN_GRACE_MS: '20000',
      MAX_QUEUE_MS: '0',
    });
    try {
      const listening = await proc.waitFor((l) => l.msg === 'listening');
      const url = listening.url as string;
      await proc.waitFor((l) => l.msg === 'model warmed up; ready');
      const inFlight = Array.from({ length: 4 }, () => postForm(`${url}/predict/image`, { image_file: image }));
      await new Promise((r) => setTimeout(r, 30));
      proc.child.kill('SIGTERM');
      await proc.waitFor((l) => l.msg === 'shutting down: readiness off');
      expect((await fetch(`${url}/v2/health/ready`)).status).to.equal(503);
      const results = await Promise.all(inFlight);
      expect(results.map((r) => r.status)).to.deep.equal([200, 200, 200, 200]);
      const { code } = await proc.exited;
      expect(code).to.equal(0);
      const after = await fetch(`${url}/v2/health/live`).then(
        () => 'connected',
        (err: Error) => (err.cause as { code?: string })?.code ?? err.message,
      );
      expect(after).to.equal('ECONNREFUSED');
      expect(proc.logs.some((l) => l.msg === 'stopped')).to.equal(true);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('exits with the model-load code and the cause in the log when the model cannot be loaded', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bad-model-'));
    const notOnnx = join(dir, 'model.onnx');
    await writeFile(notOnnx, 'this is not a protobuf');
    for (const [uri, cause] of [
      [join(dir, 'missing.onnx'), /missing\.onnx.*(no such file|not found|ENOENT)/i],
      [notOnnx, /not an ONNX model|protobuf|parse/i],
    ] as const) {
      const proc = spawnServer({ MODEL_URI: uri });
      const { code } = await proc.exited;
      expect(code).to.equal(EXIT_CODE.modelLoadFailed);
      const fatal = proc.logs.find((l) => l.level === 60);
      expect(fatal?.msg, JSON.stringify(proc.logs)).to.match(cause);
    }
  });

  it('exits 2 with every configuration error listed', async () => {
    const proc = spawnServer({ PORT: 'http', RESIZE_MODE: 'zoom' });
    const stderr: string[] = [];
    proc.child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
    expect((await proc.exited).code).to.equal(2);
    expect(stderr.join('')).to.match(/PORT=http.*RESIZE_MODE=zoom/);
  });
});
