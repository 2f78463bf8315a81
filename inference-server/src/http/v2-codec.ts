import { TooLarge, badRequest } from '../errors.js';

/**
 * The Open Inference Protocol (KServe v2) REST encoding, with the binary tensor
 * data extension: a request or response body may be a JSON header of
 * `Inference-Header-Content-Length` bytes followed by raw tensor bytes.
 */

export type V2Datatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

export const V2_DATATYPE_OF = { float32: 'FP32', uint8: 'UINT8' } as const;
const ELEMENT_BYTES: Partial<Record<V2Datatype, number>> = { FP32: 4, UINT8: 1 };

type Parameters = Record<string, unknown>;

export interface V2RequestInput {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Parameters;
  data?: unknown;
}

export interface V2RequestOutput {
  name: string;
  parameters?: Parameters;
}

export interface V2InferRequest {
  id?: string;
  parameters?: Parameters;
  inputs: V2RequestInput[];
  outputs?: V2RequestOutput[];
}

/** A decoded input: its declared header (without its JSON `data`) and its elements. */
export interface DecodedInput {
  header: Omit<V2RequestInput, 'data'>;
  data: Float32Array | Uint8Array;
}

export interface V2ResponseOutput {
  name: string;
  datatype: V2Datatype;
  shape: number[];
  /** Row-major values (numbers, or strings for BYTES). */
  values: ArrayLike<number> | string[];
  binary: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deeper than any tensor this server takes (rank ≤ 4 plus batch); a deeper `data` is refused, not walked. */
export const MAX_DATA_DEPTH = 32;

/** Nesting allowed anywhere in a request: `data`'s levels plus the request's own and its parameters'. */
export const MAX_JSON_DEPTH = MAX_DATA_DEPTH + 8;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;

/** What a JSON text holds that decides the cost of parsing it. */
export interface JsonScan {
  /** Array elements and object members, bounded by the separators: each becomes a slot, perhaps a heap number. */
  values: number;
  /** Any byte outside ASCII: V8 then holds the text two bytes per character. */
  wide: boolean;
}

/** What JSON.parse may hold for a text: the string itself and up to 16 bytes per value (slot and boxed number). */
export function parseCostBytes(scan: JsonScan, jsonBytes: number): number {
  return jsonBytes * (scan.wide ? 2 : 1) + scan.values * 16;
}

/**
 * One pass over a JSON text before JSON.parse sees it: refuses nesting past
 * maxDepth (the parser would first build every level: 5 M levels took 2.5 s
 * and 300 MB) and counts what parsing will allocate. Strings are skipped;
 * syntax is left to JSON.parse.
 */
export function scanJson(bytes: Uint8Array, maxDepth = MAX_JSON_DEPTH): JsonScan {
  let depth = 0;
  let values = 1;
  let wide = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === QUOTE) {
      // Skip to the closing quote; a backslash escapes the byte after it.
      for (i++; i < bytes.length && bytes[i] !== QUOTE; i++) {
        if (bytes[i] === BACKSLASH) i++;
        else if (bytes[i]! >= 0x80) wide = true;
      }
    } else if (c === COMMA) {
      values++;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) throw badRequest(`the inference request is nested deeper than ${maxDepth} levels`);
      values++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return { values, wide };
}

/**
 * Splits a body into its JSON header (parsed) and its binary tail. A text
 * whose parse would hold more than maxParseBytes is refused before parsing.
 */
export function splitBody(
  body: Buffer,
  headerLength: string | undefined,
  maxParseBytes = Infinity,
): { json: unknown; binary: Buffer } {
  let jsonBytes = body;
  let binary: Buffer = Buffer.alloc(0);
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isInteger(n) || n < 0 || n > body.length) {
      throw badRequest(`Inference-Header-Content-Length ${headerLength} does not fit a ${body.length}-byte body`);
    }
    jsonBytes = body.subarray(0, n);
    binary = body.subarray(n);
  }
  if (jsonBytes.length === 0) throw badRequest('the request body is empty; send a JSON inference request');
  const cost = parseCostBytes(scanJson(jsonBytes), jsonBytes.length);
  if (cost > maxParseBytes) {
    throw new TooLarge(
      `parsing this JSON request would take about ${Math.ceil(cost / 2 ** 20)} MiB, ` +
        `over the ${Math.floor(maxParseBytes / 2 ** 20)} MiB allowed; send the tensor with the binary tensor extension`,
    );
  }
  try {
    return { json: JSON.parse(jsonBytes.toString('utf8')) as unknown, binary };
  } catch (err) {
    throw badRequest(`the inference request is not valid JSON: ${(err as Error).message}`);
  }
}

/** Validates the request's JSON structure (types only; the model checks come later). */
export function parseInferRequest(json: unknown): V2InferRequest {
  if (!isObject(json)) throw badRequest('the inference request must be a JSON object');
  const { id, parameters, inputs, outputs } = json;
  if (id !== undefined && typeof id !== 'string') throw badRequest('"id" must be a string');
  if (parameters !== undefined && !isObject(parameters)) throw badRequest('"parameters" must be an object');
  if (!Array.isArray(inputs) || inputs.length === 0) throw badRequest('"inputs" must be a non-empty array');
  const parsedInputs = inputs.map((input, i): V2RequestInput => {
    if (!isObject(input)) throw badRequest(`inputs[${i}] must be an object`);
    const { name, shape, datatype } = input;
    if (typeof name !== 'string') throw badRequest(`inputs[${i}].name must be a string`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      throw badRequest(`input ${name}: "shape" must be an array of non-negative integers`);
    }
    if (typeof datatype !== 'string') throw badRequest(`input ${name}: "datatype" must be a string such as FP32`);
    if (input.parameters !== undefined && !isObject(input.parameters))
      throw badRequest(`input ${name}: "parameters" must be an object`);
    return { name, shape: shape as number[], datatype, parameters: input.parameters, data: input.data };
  });
  let parsedOutputs: V2RequestOutput[] | undefined;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw badRequest('"outputs" must be an array');
    parsedOutputs = outputs.map((output, i): V2RequestOutput => {
      if (!isObject(output) || typeof output.name !== 'string')
        throw badRequest(`outputs[${i}] must be an object with a "name"`);
      if (output.parameters !== undefined && !isObject(output.parameters))
        throw badRequest(`output ${output.name}: "parameters" must be an object`);
      return { name: output.name, parameters: output.parameters };
    });
  }
  return { id, parameters: parameters, inputs: parsedInputs, outputs: parsedOutputs };
}

/**
 * Flattens JSON tensor data (flat or nested arrays) into numbers, checking each
 * element. Iterative, with an explicit stack bounded by MAX_DATA_DEPTH: a
 * 10,000-level nesting is a 400, never a stack overflow.
 */
function flattenJson(data: unknown, name: string, count: number, uint8: boolean): number[] {
  // Grown as elements arrive, never sized from the shape: a shape of 10^9 must not allocate 4 GB.
  const out: number[] = [];
  const put = (v: unknown) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw badRequest(`input ${name}: "data" must contain only finite numbers`);
    if (uint8 && !(Number.isInteger(v) && v >= 0 && v <= 255))
      throw badRequest(`input ${name}: UINT8 data must be integers 0-255`);
    if (out.length >= count) throw badRequest(`input ${name}: "data" has more elements than its shape (${count})`);
    out.push(v);
  };
  if (!Array.isArray(data)) put(data);
  else {
    const stack: { items: unknown[]; next: number }[] = [{ items: data, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next === top.items.length) {
        stack.pop();
        continue;
      }
      const item = top.items[top.next++];
      if (Array.isArray(item)) {
        if (stack.length >= MAX_DATA_DEPTH)
          throw badRequest(`input ${name}: "data" is nested deeper than ${MAX_DATA_DEPTH} levels`);
        stack.push({ items: item, next: 0 });
      } else put(item);
    }
  }
  if (out.length !== count)
    throw badRequest(`input ${name}: "data" has ${out.length} elements but shape needs ${count}`);
  return out;
}

/**
 * Reads each input's elements from JSON `data` or from the binary tail
 * (in input order, `parameters.binary_data_size` bytes each).
 */
export function decodeInputs(request: V2InferRequest, binary: Buffer): DecodedInput[] {
  let offset = 0;
  const decoded = request.inputs.map(({ data: json, ...header }): DecodedInput => {
    const bytesPer = ELEMENT_BYTES[header.datatype as V2Datatype];
    if (bytesPer === undefined)
      throw badRequest(`input ${header.name}: datatype ${header.datatype} is not supported; use FP32 or UINT8`);
    const count = header.shape.reduce((a, b) => a * b, 1);
    const binarySize = header.parameters?.binary_data_size;
    if (binarySize !== undefined) {
      if (typeof binarySize !== 'number' || binarySize !== count * bytesPer) {
        throw badRequest(
          `input ${header.name}: binary_data_size ${JSON.stringify(binarySize)} ` +
            `but shape [${header.shape.join(', ')}] of ${header.datatype} needs ${count * bytesPer} bytes`,
        );
      }
      if (offset + binarySize > binary.length)
        throw badRequest(`input ${header.name}: the body ends before its ${binarySize} bytes of binary data`);
      const bytes = binary.subarray(offset, offset + binarySize);
      offset += binarySize;
      // Copy: the tail may start at any byte, and a Float32Array view needs 4-byte alignment.
      const copy = new Uint8Array(bytes);
      return { header, data: header.datatype === 'FP32' ? new Float32Array(copy.buffer, 0, count) : copy };
    }
    if (json === undefined)
      throw badRequest(`input ${header.name}: has neither "data" nor parameters.binary_data_size`);
    const values = flattenJson(json, header.name, count, header.datatype === 'UINT8');
    return { header, data: header.datatype === 'UINT8' ? Uint8Array.from(values) : Float32Array.from(values) };
  });
  if (offset !== binary.length)
    throw badRequest(`the body has ${binary.length - offset} bytes of binary data no input claims`);
  return decoded;
}

/** A request decoded whole: its structure (inputs without their JSON `data`) and each input's elements. */
export interface DecodedRequest {
  request: V2InferRequest;
  inputs: DecodedInput[];
}

/** Splits, parses, validates and decodes a v2 body: the whole request stage before the model's own checks. */
export function decodeInferBody(
  body: Buffer,
  headerLength: string | undefined,
  maxParseBytes = Infinity,
): DecodedRequest {
  const { json, binary } = splitBody(body, headerLength, maxParseBytes);
  const request = parseInferRequest(json);
  const inputs = decodeInputs(request, binary);
  // Dropped here so that neither the caller nor a worker's reply carries the parsed arrays on.
  return { request: { ...request, inputs: inputs.map((i) => i.header) }, inputs };
}

/** Whether an output is sent as binary: its own `binary_data`, else the request-wide `binary_data_output`. */
export function wantsBinary(request: V2InferRequest, output: V2RequestOutput | undefined): boolean {
  const own = output?.parameters?.binary_data;
  if (typeof own === 'boolean') return own;
  return request.parameters?.binary_data_output === true;
}

function encodeBinary(output: V2ResponseOutput): Buffer {
  if (output.datatype === 'BYTES') {
    // BYTES elements are each a 4-byte little-endian length then the bytes.
    const parts = (output.values as string[]).flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      return [len, bytes];
    });
    return Buffer.concat(parts);
  }
  const values = output.values as Float32Array | Uint8Array;
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** Encodes the response: plain JSON, or JSON header + binary tail when any output is binary. */
export function encodeInferResponse(
  head: { model_name: string; model_version: string; id?: string },
  outputs: V2ResponseOutput[],
): { body: Buffer; headerLength?: number } {
  const tails: Buffer[] = [];
  const jsonOutputs = outputs.map((o) => {
    const base = { name: o.name, datatype: o.datatype, shape: o.shape };
    if (!o.binary) return { ...base, data: Array.from(o.values as ArrayLike<number | string>) };
    const bytes = encodeBinary(o);
    tails.push(bytes);
    return { ...base, parameters: { binary_data_size: bytes.length } };
  });
  const json = Buffer.from(JSON.stringify({ ...head, outputs: jsonOutputs }), 'utf8');
  if (tails.length === 0) return { body: json };
  return { body: Buffer.concat([json, ...tails]), headerLength: json.length };
}
