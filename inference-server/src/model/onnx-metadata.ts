import { open } from 'node:fs/promises';

/**
 * Reads `ModelProto.metadata_props` (field 14) and a few header fields out of an
 * ONNX file. onnxruntime-node does not expose custom metadata, and labels are
 * commonly embedded there. We walk the top-level protobuf fields with positional
 * reads, skipping the (possibly gigabyte-sized) graph without loading it.
 */
export interface OnnxHeader {
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  modelVersion?: number;
  docString?: string;
  metadata: Record<string, string>;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;
/** Header strings are small; refuse to read a "string" field bigger than this (a corrupt file). */
const MAX_STRING_FIELD = 16 * 1024 * 1024;

function readVarint(buf: Uint8Array, pos: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const byte = buf[i]!;
    // Multiplication instead of << keeps precision past 2^31 (file offsets of big models).
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
  }
  throw new Error('not an ONNX model: malformed protobuf varint');
}

/** Decodes a StringStringEntryProto {key = 1; value = 2}. */
function decodeEntry(buf: Uint8Array): [string, string] {
  let key = '';
  let value = '';
  let pos = 0;
  const text = new TextDecoder();
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    pos = tag.next;
    if ((tag.value & 7) !== WIRE_LEN) throw new Error('not an ONNX model: malformed metadata entry');
    const len = readVarint(buf, pos);
    pos = len.next;
    const bytes = buf.subarray(pos, pos + len.value);
    pos += len.value;
    if (tag.value >>> 3 === 1) key = text.decode(bytes);
    else if (tag.value >>> 3 === 2) value = text.decode(bytes);
  }
  return [key, value];
}

export async function readOnnxHeader(path: string): Promise<OnnxHeader> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const head = Buffer.alloc(20);
    const header: OnnxHeader = { metadata: {} };
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await file.read(head, 0, head.length, offset);
      const view = head.subarray(0, bytesRead);
      const tag = readVarint(view, 0);
      const field = Math.floor(tag.value / 8);
      const wire = tag.value & 7;
      if (field === 0) throw new Error('not an ONNX model: field number 0');
      let pos = tag.next;
      if (wire === WIRE_VARINT) {
        const v = readVarint(view, pos);
        if (field === 1) header.irVersion = v.value;
        if (field === 5) header.modelVersion = v.value;
        offset += v.next;
      } else if (wire === WIRE_LEN) {
        const len = readVarint(view, pos);
        pos = len.next;
        const start = offset + pos;
        if (start + len.value > size) throw new Error('not an ONNX model: field runs past the end of the file');
        if ([2, 3, 6, 14].includes(field)) {
          if (len.value > MAX_STRING_FIELD)
            throw new Error(`not an ONNX model: header field ${field} is ${len.value} bytes`);
          const bytes = Buffer.alloc(len.value);
          await file.read(bytes, 0, len.value, start);
          if (field === 14) {
            const [k, v] = decodeEntry(bytes);
            header.metadata[k] = v;
          } else {
            const s = bytes.toString('utf8');
            if (field === 2) header.producerName = s;
            if (field === 3) header.producerVersion = s;
            if (field === 6) header.docString = s;
          }
        }
        offset = start + len.value;
      } else if (wire === WIRE_I64) {
        offset += pos + 8;
      } else if (wire === WIRE_I32) {
        offset += pos + 4;
      } else {
        throw new Error(`not an ONNX model: unsupported wire type ${wire}`);
      }
    }
    return header;
  } finally {
    await file.close();
  }
}
