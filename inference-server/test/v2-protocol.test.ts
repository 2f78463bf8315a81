import { expect } from 'chai';
import { testModels } from './helpers/models.js';
import { startTestServer, type TestServer } from './helpers/server.js';

/** The model input for an image whose top half is `top` (0–255 RGB), NCHW with ImageNet normalisation. */
function nchwImage(size: number, top: [number, number, number], bottom: [number, number, number]): Float32Array {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const data = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      const v = (y < size / 2 ? top : bottom)[c]! / 255;
      data.fill((v - mean[c]!) / std[c]!, c * size * size + y * size, c * size * size + (y + 1) * size);
    }
  }
  return data;
}

/** Sends a request the way tritonclient.http does: binary inputs, binary outputs, no Content-Type. */
async function tritonStyle(
  url: string,
  header: object,
  tensors: Buffer[],
): Promise<{ status: number; json: Record<string, unknown>; tail: Buffer; headers: Headers }> {
  const json = Buffer.from(JSON.stringify(header));
  const res = await fetch(url, {
    method: 'POST',
    body: Buffer.concat([json, ...tensors]),
    headers: { 'Inference-Header-Content-Length': String(json.length), 'content-type': '' },
  });
  const body = Buffer.from(await res.arrayBuffer());
  const headerLength = Number(res.headers.get('inference-header-content-length') ?? body.length);
  return {
    status: res.status,
    json: JSON.parse(body.subarray(0, headerLength).toString()) as Record<string, unknown>,
    tail: body.subarray(headerLength),
    headers: res.headers,
  };
}

describe('Open Inference Protocol (KServe v2)', function () {
  this.timeout(60_000);
  let server: TestServer;
  let base: string;
  const red = nchwImage(32, [230, 20, 20], [0, 0, 255]);
  const blue = nchwImage(32, [0, 0, 250], [255, 0, 0]);

  before(async () => {
    const models = await testModels();
    server = await startTestServer({
      MODEL_URI: models.colorNchw,
      LABELS_URI: models.colorLabels,
      MODEL_NAME: 'colors',
    });
    base = `${server.url}/v2/models/colors`;
  });
  after(() => server?.stop());

  it('serves server metadata, health and model metadata', async () => {
    expect(await (await fetch(`${server.url}/v2`)).json()).to.deep.include({
      extensions: ['binary_tensor_data', 'classification'],
    });
    expect((await fetch(`${server.url}/v2/health/live`)).status).to.equal(200);
    expect((await fetch(`${server.url}/v2/health/ready`)).status).to.equal(200);
    expect((await fetch(`${base}/ready`)).status).to.equal(200);
    expect((await fetch(`${base}/versions/1/ready`)).status).to.equal(200);
    const meta = await (await fetch(base)).json();
    expect(meta).to.deep.include({
      name: 'colors',
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 32, 32] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3] }],
    });
    const missing = await fetch(`${server.url}/v2/models/other`);
    expect(missing.status).to.equal(404);
    expect(((await missing.json()) as { error: string }).error).to.match(/serves colors/);
  });

  it('infers from JSON tensors, batch of two', async () => {
    const res = await fetch(`${base}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'r1',
        inputs: [{ name: 'input', shape: [2, 3, 32, 32], datatype: 'FP32', data: [...red, ...blue] }],
      }),
    });
    expect(res.status).to.equal(200);
    const body = (await res.json()) as {
      id: string;
      model_name: string;
      outputs: { name: string; shape: number[]; data: number[] }[];
    };
    expect(body).to.deep.include({ id: 'r1', model_name: 'colors', model_version: '1' });
    const [out] = body.outputs;
    expect(out!.shape).to.deep.equal([2, 3]);
    const row = (i: number) => out!.data.slice(i * 3, i * 3 + 3);
    expect(row(0).indexOf(Math.max(...row(0)))).to.equal(0);
    expect(row(1).indexOf(Math.max(...row(1)))).to.equal(2);
  });

  it('speaks the binary tensor extension without a Content-Type, with classification', async () => {
    const input = Buffer.from(red.buffer);
    const send = (output: object) =>
      tritonStyle(
        `${base}/infer`,
        {
          inputs: [
            { name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', parameters: { binary_data_size: input.length } },
          ],
          outputs: [output],
        },
        [input],
      );
    const plain = await send({ name: 'logits', parameters: { binary_data: true } });
    expect(plain.status).to.equal(200);
    expect(plain.headers.get('content-type')).to.match(/octet-stream/);
    const [out] = plain.json.outputs as {
      datatype: string;
      shape: number[];
      parameters: { binary_data_size: number };
    }[];
    expect(out).to.deep.include({ datatype: 'FP32', shape: [1, 3] });
    expect(out!.parameters.binary_data_size).to.equal(12);
    const logits = [plain.tail.readFloatLE(0), plain.tail.readFloatLE(4), plain.tail.readFloatLE(8)];
    expect(logits[0]).to.be.greaterThan(logits[2]!);

    const classified = await send({ name: 'logits', parameters: { binary_data: true, classification: 2 } });
    const [cls] = classified.json.outputs as { datatype: string; shape: number[] }[];
    expect(cls).to.deep.include({ datatype: 'BYTES', shape: [1, 2] });
    const first = classified.tail.subarray(4, 4 + classified.tail.readUInt32LE(0)).toString();
    expect(first).to.match(/^[\d.e+-]+:0:red$/);
    expect(Number(first.split(':')[0])).to.be.closeTo(logits[0]!, 1e-4);
  });

  it('refuses wrong shapes, dtypes and names with 400 and a message', async () => {
    const send = async (inputs: object[], outputs?: object[]) => {
      const res = await fetch(`${base}/infer`, { method: 'POST', body: JSON.stringify({ inputs, outputs }) });
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    const ok = { name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: [...red] };
    expect(await send([{ ...ok, shape: [1, 3, 16, 64] }])).to.deep.equal({
      status: 400,
      error: 'input input must have shape [1..256, 3, 32, 32], got [1, 3, 16, 64]',
    });
    expect(await send([{ ...ok, datatype: 'UINT8', data: Array.from(red, () => 1) }])).to.deep.equal({
      status: 400,
      error: 'input input must be FP32, got UINT8',
    });
    expect((await send([{ ...ok, name: 'pixels' }])).error).to.match(/one input named input/);
    expect((await send([{ ...ok, data: [1, 2, 3] }])).error).to.match(/3 elements but shape needs 3072/);
    expect((await send([ok], [{ name: 'embeddings' }])).error).to.match(/no output embeddings/);
    expect((await send([ok], [{ name: 'logits', parameters: { classification: 7 } }])).error).to.match(/from 1 to 3/);
    expect(
      (await send([ok], [{ name: 'logits' }, { name: 'logits', parameters: { classification: 2 } }])).error,
    ).to.match(/requested more than once/);
    const notJson = await fetch(`${base}/infer`, { method: 'POST', body: 'nope' });
    expect(notJson.status).to.equal(400);
  });

  it('exports Prometheus metrics', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const series of [
      'http_requests_total',
      'http_request_duration_seconds_bucket',
      'inference_duration_seconds_count',
      'inference_queue_depth',
      'http_requests_in_flight',
      'model_load_duration_seconds',
      'model_size_bytes',
      'model_ready 1',
    ]) {
      expect(text).to.contain(series);
    }
    expect(text).to.match(
      new RegExp(
        /http_requests_total\{method="POST",/.source +
          /route="\/v2\/models\/:name\{\/versions\/:version\}\/infer",status="400"\} \d+/.source,
      ),
    );
  });
});
