/**
 * The worker thread that owns the onnxruntime session. onnxruntime-node's
 * `session.run` is asynchronous in name only: it runs the whole graph on the
 * calling thread (inside a setImmediate), so on the main thread it would stall
 * every socket for the length of an inference. Here it stalls nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { SessionRequest, SessionResponse, SessionWorkerData, TensorData } from './session-protocol.js';

const port = parentPort;
if (port === null) throw new Error('session-worker must run in a worker thread');
const { modelPath, threads } = workerData as SessionWorkerData;

function metadata(values: readonly ort.InferenceSession.ValueMetadata[]) {
  return values.map((v) =>
    v.isTensor
      ? { name: v.name, isTensor: true as const, type: v.type, shape: [...v.shape] }
      : { name: v.name, isTensor: false as const },
  );
}

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    port!.postMessage({ kind: 'failed', message: (err as Error).message } satisfies SessionResponse);
    return;
  }
  port!.postMessage({
    kind: 'loaded',
    inputs: metadata(session.inputMetadata),
    outputs: metadata(session.outputMetadata),
  } satisfies SessionResponse);

  port!.on('message', (msg: SessionRequest) => {
    if (msg.kind === 'release') {
      void session.release().finally(() => port!.close());
      return;
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(msg.feeds))
      feeds[name] = new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
    const started = performance.now();
    session
      .run(feeds, msg.outputNames)
      .then((result) => {
        const outputs: Record<string, TensorData> = {};
        const transfer: ArrayBuffer[] = [];
        for (const [name, value] of Object.entries(result)) {
          const data = value.data as Float32Array;
          outputs[name] = { type: value.type, data, dims: [...value.dims] };
          transfer.push(data.buffer as ArrayBuffer);
        }
        port!.postMessage(
          {
            kind: 'result',
            id: msg.id,
            outputs,
            seconds: (performance.now() - started) / 1000,
          } satisfies SessionResponse,
          transfer,
        );
      })
      .catch((err: unknown) => {
        port!.postMessage({ kind: 'error', id: msg.id, message: (err as Error).message } satisfies SessionResponse);
      });
  });
}

void main();
