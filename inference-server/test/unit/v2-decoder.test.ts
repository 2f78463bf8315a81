import { expect } from 'chai';
import { InvalidRequest, NotReady, TooLarge } from '../../src/errors.js';
import { decodeInferBody, MAX_JSON_DEPTH, parseCostBytes, scanJson } from '../../src/http/v2-codec.js';
import { INLINE_JSON_BYTES, V2Decoder } from '../../src/http/v2-decoder.js';

/** A v2 JSON request for `n` FP32 elements (values i/n), as a client sends it. */
function jsonRequest(n: number): Buffer {
  const data = Array.from({ length: n }, (_, i) => i / n);
  return Buffer.from(
    JSON.stringify({
      id: 'r1',
      inputs: [{ name: 'x', shape: [1, n], datatype: 'FP32', data }],
      outputs: [{ name: 'y' }],
    }),
  );
}

const rejection = async (p: Promise<unknown>): Promise<Error> => {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
};

describe('v2 request depth check (before JSON.parse)', () => {
  it('refuses nesting past MAX_JSON_DEPTH and allows it up to there', () => {
    expect(() => scanJson(Buffer.from(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`))).to.not.throw();
    expect(() => scanJson(Buffer.from(`${'['.repeat(MAX_JSON_DEPTH + 1)}`))).to.throw(
      InvalidRequest,
      /nested deeper than 40 levels/,
    );
    expect(() => scanJson(Buffer.from(`{"a":${'{"b":'.repeat(MAX_JSON_DEPTH)}1`))).to.throw(InvalidRequest);
  });

  it('counts the values parsing will allocate, and wide text', () => {
    const scan = scanJson(Buffer.from('{"a":[1,2,3],"b":{"c":"x,y"}}'));
    expect(scan).to.deep.equal({ values: 7, wide: false });
    expect(scanJson(Buffer.from('{"a":"é"}')).wide).to.equal(true);
    expect(parseCostBytes({ values: 10, wide: true }, 100)).to.equal(360);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const inString = JSON.stringify({ s: `\\"${'['.repeat(1000)}` });
    expect(() => scanJson(Buffer.from(inString))).to.not.throw();
    expect(JSON.parse(inString)).to.have.property('s');
  });

  it('refuses 5 M levels before parsing them', () => {
    const body = Buffer.from(
      `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${'['.repeat(5_000_000)}${']'.repeat(5_000_000)}}]}`,
    );
    expect(() => decodeInferBody(body, undefined)).to.throw(InvalidRequest, /nested deeper than/);
  });
});

describe('v2 decoder: large bodies on a worker thread', function () {
  this.timeout(30_000);
  let decoder: V2Decoder;
  beforeEach(() => {
    decoder = new V2Decoder({ maxParseBytes: 64 * 2 ** 20, idleRecycleMs: 200 });
  });
  afterEach(() => decoder.close());

  it('decodes small bodies inline and large ones on the worker, to the same request', async () => {
    const small = jsonRequest(100);
    expect(V2Decoder.offloads(small, undefined)).to.equal(false);
    const inline = await decoder.decode(small, undefined);
    expect(decoder.workerRunning).to.equal(false);
    expect(inline.request.id).to.equal('r1');
    expect(Array.from(inline.inputs[0]!.data)).to.deep.equal(
      Array.from(Float32Array.from({ length: 100 }, (_, i) => i / 100)),
    );

    const n = 50_000;
    const large = jsonRequest(n);
    expect(large.length).to.be.greaterThan(INLINE_JSON_BYTES);
    const expected = decodeInferBody(Buffer.from(large), undefined);
    const decoded = await decoder.decode(large, undefined);
    expect(decoder.workerRunning).to.equal(true);
    expect(decoded.request).to.deep.equal(expected.request);
    // The parsed JSON arrays stay behind: only the header and the typed elements come back.
    expect(decoded.request.inputs[0]).to.not.have.property('data');
    const data = decoded.inputs[0]!.data;
    expect(data).to.be.instanceOf(Float32Array);
    expect(data.length).to.equal(n);
    expect(data[12_345]).to.equal(Math.fround(12_345 / n));
  });

  it('rebuilds domain errors by class, and decodes the next body after one failed', async () => {
    const bad = Buffer.from(`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[${'1,'.repeat(50_000)}1]}]}`);
    const err = await rejection(decoder.decode(bad, undefined));
    expect(err).to.be.instanceOf(InvalidRequest);
    expect(err.message).to.match(/more elements than its shape/);
    const notJson = Buffer.alloc(INLINE_JSON_BYTES + 1, 'x');
    expect(await rejection(decoder.decode(notJson, undefined))).to.be.instanceOf(InvalidRequest);
    expect((await decoder.decode(jsonRequest(20_000), undefined)).inputs[0]!.data.length).to.equal(20_000);
  });

  it('takes bodies one at a time, in order, all answered', async () => {
    const sizes = [20_000, 30_000, 40_000, 25_000];
    const results = await Promise.all(sizes.map((n) => decoder.decode(jsonRequest(n), undefined)));
    expect(results.map((r) => r.inputs[0]!.data.length)).to.deep.equal(sizes);
  });

  it('refuses, before parsing, a body whose parse would outgrow maxParseBytes; the worker stays', async () => {
    // 8 M one-digit elements: a 16 MB text that would hold about 128 MB once parsed.
    const huge = Buffer.from(
      `{"inputs":[{"name":"x","shape":[8000000],"datatype":"UINT8","data":[${'0,'.repeat(8_000_000 - 1)}0]}]}`,
    );
    const err = await rejection(decoder.decode(huge, undefined));
    expect(err).to.be.instanceOf(TooLarge);
    expect(err.message).to.match(
      /about 1[0-9]{2} MiB, over the 64 MiB allowed; send the tensor with the binary tensor extension/,
    );
    expect((await decoder.decode(jsonRequest(20_000), undefined)).inputs[0]!.data.length).to.equal(20_000);
  });

  it('refuses the bodies it holds or queues when closed, then decodes inline', async () => {
    const held = [decoder.decode(jsonRequest(200_000), undefined), decoder.decode(jsonRequest(20_000), undefined)].map(
      rejection,
    );
    await decoder.close();
    for (const err of await Promise.all(held)) expect(err).to.be.instanceOf(NotReady);
    expect((await decoder.decode(jsonRequest(20_000), undefined)).inputs[0]!.data.length).to.equal(20_000);
    expect(decoder.workerRunning).to.equal(false);
  });

  it('ends an idle worker (returning its heap) and starts one again when needed', async () => {
    await decoder.decode(jsonRequest(20_000), undefined);
    expect(decoder.workerRunning).to.equal(true);
    await new Promise((r) => setTimeout(r, 600));
    expect(decoder.workerRunning).to.equal(false);
    expect((await decoder.decode(jsonRequest(20_000), undefined)).inputs[0]!.data.length).to.equal(20_000);
  });
});
