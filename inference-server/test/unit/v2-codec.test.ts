import { expect } from 'chai';
import { toHttpError } from '../../src/http/errors.js';
import {
  decodeInputs,
  encodeInferResponse,
  parseInferRequest,
  splitBody,
  wantsBinary,
} from '../../src/http/v2-codec.js';

const status = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    return toHttpError(err).status;
  }
  return 0;
};

describe('v2 protocol codec', () => {
  it('splits a binary body at Inference-Header-Content-Length', () => {
    const json = Buffer.from('{"inputs":[]}');
    const { json: parsed, binary } = splitBody(Buffer.concat([json, Buffer.from([1, 2, 3])]), String(json.length));
    expect(parsed).to.deep.equal({ inputs: [] });
    expect([...binary]).to.deep.equal([1, 2, 3]);
    expect(status(() => splitBody(json, '999'))).to.equal(400);
    expect(status(() => splitBody(Buffer.from('{nope'), undefined))).to.equal(400);
  });

  it('decodes JSON data, flat or nested, and binary data at any alignment', () => {
    const request = parseInferRequest({
      inputs: [
        {
          name: 'a',
          shape: [1, 2, 2],
          datatype: 'FP32',
          data: [
            [
              [1, 2],
              [3, 4],
            ],
          ],
        },
        { name: 'b', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
        { name: 'c', shape: [3], datatype: 'UINT8', parameters: { binary_data_size: 3 } },
      ],
    });
    const tail = Buffer.alloc(12);
    tail.writeFloatLE(0.5, 1);
    tail.writeFloatLE(-2, 5);
    tail.set([7, 8, 9], 9);
    const [a, b, c] = decodeInputs(request, tail.subarray(1));
    expect(Array.from(a!.data)).to.deep.equal([1, 2, 3, 4]);
    expect(Array.from(b!.data)).to.deep.equal([0.5, -2]);
    expect(Array.from(c!.data)).to.deep.equal([7, 8, 9]);
  });

  it('refuses inconsistent inputs with 400', () => {
    const one =
      (input: object, binary = Buffer.alloc(0)) =>
      () =>
        decodeInputs(parseInferRequest({ inputs: [input] }), binary);
    expect(status(one({ name: 'x', shape: [2], datatype: 'FP32', data: [1] }))).to.equal(400);
    expect(status(one({ name: 'x', shape: [1], datatype: 'FP32', data: ['1'] }))).to.equal(400);
    expect(status(one({ name: 'x', shape: [1], datatype: 'INT64', data: [1] }))).to.equal(400);
    expect(status(one({ name: 'x', shape: [1], datatype: 'UINT8', data: [256] }))).to.equal(400);
    expect(
      status(one({ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 4 } }, Buffer.alloc(4))),
    ).to.equal(400);
    expect(
      status(one({ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }, Buffer.alloc(8))),
    ).to.equal(400);
    expect(status(() => parseInferRequest({ inputs: 'x' }))).to.equal(400);
    expect(status(() => parseInferRequest({ inputs: [{ name: 'x', shape: [-1], datatype: 'FP32' }] }))).to.equal(400);
  });

  it('refuses data nested 10,000 levels deep with 400, without a stack overflow; keeps rank-deep nesting', () => {
    // As the body arrives: JSON text, parsed by JSON.parse (which is iterative in V8).
    const deep = `${'['.repeat(10_001)}1${']'.repeat(10_001)}`;
    const parsed = parseInferRequest(
      JSON.parse(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep}}]}`) as unknown,
    );
    const err = (() => {
      try {
        decodeInputs(parsed, Buffer.alloc(0));
        return undefined;
      } catch (e) {
        return e as Error & { status?: number };
      }
    })();
    expect(status(() => decodeInputs(parsed, Buffer.alloc(0)))).to.equal(400);
    expect(err?.message).to.match(/nested deeper than 32 levels/);
    const nested = [
      [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [5, 6],
          [7, 8],
        ],
      ],
    ];
    const [decoded] = decodeInputs(
      parseInferRequest({ inputs: [{ name: 'x', shape: [1, 2, 2, 2], datatype: 'UINT8', data: nested }] }),
      Buffer.alloc(0),
    );
    expect(Array.from(decoded!.data)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
    // A shape far beyond the data is refused by counting what arrived, not by allocating what was promised.
    expect(
      status(() =>
        decodeInputs(
          parseInferRequest({ inputs: [{ name: 'x', shape: [1_000_000_000], datatype: 'FP32', data: [1] }] }),
          Buffer.alloc(0),
        ),
      ),
    ).to.equal(400);
  });

  it('chooses binary per output, else per request', () => {
    const request = parseInferRequest({
      inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }],
      parameters: { binary_data_output: true },
    });
    expect(wantsBinary(request, undefined)).to.equal(true);
    expect(wantsBinary(request, { name: 'o', parameters: { binary_data: false } })).to.equal(false);
  });

  it('encodes FP32 and BYTES outputs as JSON header plus binary tail', () => {
    const { body, headerLength } = encodeInferResponse({ model_name: 'm', model_version: '1' }, [
      { name: 'p', datatype: 'FP32', shape: [1, 2], values: new Float32Array([0.25, 0.75]), binary: true },
      { name: 'c', datatype: 'BYTES', shape: [1, 1], values: ['0.75:1:dog'], binary: true },
      { name: 'j', datatype: 'FP32', shape: [1], values: new Float32Array([1]), binary: false },
    ]);
    const head = JSON.parse(body.subarray(0, headerLength).toString()) as {
      outputs: { parameters?: { binary_data_size: number }; data?: number[] }[];
    };
    expect(head.outputs[0]!.parameters!.binary_data_size).to.equal(8);
    expect(head.outputs[1]!.parameters!.binary_data_size).to.equal(14);
    expect(head.outputs[2]!.data).to.deep.equal([1]);
    const tail = body.subarray(headerLength);
    expect(tail.readFloatLE(4)).to.equal(0.75);
    expect(tail.readUInt32LE(8)).to.equal(10);
    expect(tail.subarray(12).toString()).to.equal('0.75:1:dog');
  });
});
