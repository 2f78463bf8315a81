import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { RED, picture } from './helpers/images.js';
import { testModels } from './helpers/models.js';
import { spawnServer } from './helpers/process.js';
import { postForm, startTestServer } from './helpers/server.js';

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
    const server = await startTestServer({ MODEL_URI: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/m.onnx`, MODEL_CACHE_DIR: cacheDir }, { waitReady: false });
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

  it('sheds load past MAX_IN_FLIGHT at once with 503 + Retry-After, then serves again', async () => {
    const { resnet50 } = await testModels();
    // The queue budget off: this is about the hard cap alone.
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_IN_FLIGHT: '3', MAX_QUEUE_MS: '0' });
    const { port } = new URL(server.url);
    try {
      // Three uploads that have sent their headers but not their body hold all three slots.
      const boundary = 'b0undary';
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="image_file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
      const tail = `\r\n--${boundary}--\r\n`;
      const slow = Array.from({ length: 3 }, () => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/predict/image', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
        const done = new Promise<number>((resolve, reject) => {
          req.on('response', (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
        });
        req.write(head);
        return { req, done };
      });
      await waitUntil(async () => /http_requests_in_flight 3/.test(await (await fetch(`${server.url}/metrics`)).text()));
      const shed = await postForm(`${server.url}/predict/image`, { image_file: image });
      expect(shed.status).to.equal(503);
      expect(shed.headers.get('retry-after')).to.equal('1');
      expect((shed.body as { error: string }).error).to.match(/limit of 3 requests in progress/);
      for (const { req } of slow) req.end(Buffer.concat([image, Buffer.from(tail)]));
      expect(await Promise.all(slow.map((s) => s.done))).to.deep.equal([200, 200, 200]);
      expect((await postForm(`${server.url}/predict/image`, { image_file: image })).status).to.equal(200);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).to.match(/requests_rejected_total\{reason="overloaded"\} 1/);
    } finally {
      await server.stop();
    }
  });

  it('admits only what fits in the queue budget at once, refuses the rest fast, and logs the refusals as one summary', async () => {
    const { resnet50 } = await testModels();
    // 1 ms: far less than one ResNet-50 inference, so the cap is its floor, one running and one decoding.
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_QUEUE_MS: '1', MAX_IN_FLIGHT: '32' });
    try {
      const limit = Number(/admission_limit (\d+)/.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
      expect(limit).to.equal(2);
      const results = await Promise.all(Array.from({ length: 8 }, () => postForm(`${server.url}/predict/image`, { image_file: image })));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200).length).to.be.within(2, 7);
      expect(statuses.every((s) => s === 200 || s === 503)).to.equal(true);
      const refused = results.filter((r) => r.status === 503);
      expect(refused.length).to.be.greaterThan(0);
      for (const r of refused) {
        expect(r.headers.get('retry-after')).to.equal('1');
        expect((r.body as { error: string }).error).to.match(/limit of 2 requests in progress \(the most that can be answered within the 1 ms queue budget\)/);
      }
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).to.include(`requests_rejected_total{reason="overloaded"} ${refused.length}`);
      // One warning for the episode, no access-log line per refusal.
      const summaries = server.logs.lines.filter((l) => l.msg === 'shedding load: requests refused with 503 at the admission limit');
      expect(summaries).to.have.length(1);
      expect(server.logs.lines.filter((l) => l.msg === 'request' && l.status === 503)).to.have.length(0);
      expect(server.logs.lines.filter((l) => l.msg === 'request' && l.status === 200)).to.have.length(8 - refused.length);
    } finally {
      await server.stop();
    }
  });

  it('with the auto queue budget, sizes the cap from the warm-up inference and reports it', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50 });
    try {
      const ready = server.logs.lines.find((l) => l.msg === 'model warmed up; ready')!;
      expect(ready.queueBudgetMs).to.be.a('number').and.at.least(50);
      const limit = Number(/admission_limit (\d+)/.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
      expect(limit).to.equal(ready.admissionLimit);
      expect(limit).to.be.within(2, 32);
      expect((await postForm(`${server.url}/predict/image`, { image_file: image })).status).to.equal(200);
    } finally {
      await server.stop();
    }
  });

  it('runs SESSIONS sessions side by side, each answering correctly', async () => {
    const { resnet50 } = await testModels();
    const server = await startTestServer({ MODEL_URI: resnet50, SESSIONS: '2', MAX_BATCH_SIZE: '1', MAX_QUEUE_MS: '0' });
    try {
      const loaded = server.logs.lines.find((l) => l.msg === 'model loaded')!;
      expect(loaded).to.include({ sessions: 2 });
      const results = await Promise.all(Array.from({ length: 6 }, () => postForm(`${server.url}/predict/image`, { image_file: image })));
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
    const server = await startTestServer({ MODEL_URI: resnet50, MAX_BATCH_SIZE: '8', MAX_QUEUE_DELAY_MS: '100', MAX_QUEUE_MS: '0' });
    try {
      const results = await Promise.all(Array.from({ length: 8 }, () => postForm(`${server.url}/predict/image`, { image_file: image })));
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
      const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [16, 3, 224, 224], datatype: 'FP32', parameters: { binary_data_size: batch.byteLength } }] }));
      const order: string[] = [];
      const infer = fetch(`${server.url}/v2/models/resnet50/infer`, { method: 'POST', body: Buffer.concat([json, Buffer.from(batch.buffer)]), headers: { 'inference-header-content-length': String(json.length) } })
        .then((r) => order.push(`infer:${r.status}`));
      await waitUntil(async () => /inference_queue_depth 0/.test(await (await fetch(`${server.url}/metrics`)).text()) && server.serving.admission.inFlight === 1);
      await fetch(`${server.url}/v2/health/live`).then((r) => order.push(`live:${r.status}`));
      await infer;
      expect(order).to.deep.equal(['live:200', 'infer:200']);
    } finally {
      await server.stop();
    }
  });

  it('on SIGTERM turns readiness off, finishes in-flight requests, refuses new connections and exits 0', async () => {
    const { resnet50 } = await testModels();
    const proc = spawnServer({ MODEL_URI: resnet50, DRAIN_DELAY_MS: '300', SHUTDOWN_GRACE_MS: '20000', MAX_QUEUE_MS: '0' });
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
      const after = await fetch(`${url}/v2/health/live`).then(() => 'connected', (err: Error) => (err.cause as { code?: string })?.code ?? err.message);
      expect(after).to.equal('ECONNREFUSED');
      expect(proc.logs.some((l) => l.msg === 'stopped')).to.equal(true);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('exits 1 with the cause in the log when the model cannot be loaded', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bad-model-'));
    const notOnnx = join(dir, 'model.onnx');
    await writeFile(notOnnx, 'this is not a protobuf');
    for (const [uri, cause] of [[join(dir, 'missing.onnx'), /missing\.onnx.*(no such file|not found|ENOENT)/i], [notOnnx, /not an ONNX model|protobuf|parse/i]] as const) {
      const proc = spawnServer({ MODEL_URI: uri });
      const { code } = await proc.exited;
      expect(code).to.equal(1);
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
