/**
 * The worker thread that decodes large KServe v2 bodies (see v2-decoder.ts):
 * a JSON.parse that takes a second here stalls no socket and no health probe.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ServingError } from '../errors.js';
import { decodeInferBody } from './v2-codec.js';
import { transferables, type DecodeJob, type DecodeReply, type DecodeWorkerData } from './v2-decoder.js';

const port = parentPort;
if (port === null) throw new Error('v2-decode-worker must run in a worker thread');
const { maxParseBytes } = workerData as DecodeWorkerData;

port.on('message', ({ id, body, headerLength }: DecodeJob) => {
  let reply: DecodeReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const decoded = decodeInferBody(
      Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      headerLength,
      maxParseBytes,
    );
    reply = { id, ok: decoded };
    transfer = transferables(decoded.inputs);
  } catch (err) {
    // Domain errors travel by class name; anything else is a bug, reported as such by the other side.
    const name = err instanceof ServingError ? err.name : 'Error';
    reply = { id, error: { name, message: (err as Error).message } };
  }
  port.postMessage(reply, transfer);
});
