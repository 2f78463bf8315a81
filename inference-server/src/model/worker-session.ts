import { Worker } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import type { SessionRequest, SessionResponse, SessionWorkerData, TensorData } from './session-protocol.js';

export type { TensorData } from './session-protocol.js';

interface Pending {
  resolve: (r: { outputs: Record<string, TensorData>; seconds: number }) => void;
  reject: (err: Error) => void;
}

/**
 * An onnxruntime session living on a worker thread, so inference never blocks
 * the event loop. Input buffers are transferred to the worker (the caller must
 * not reuse them) and output buffers transferred back.
 */
export class WorkerSession {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputMetadata: readonly InferenceSession.ValueMetadata[],
    readonly outputMetadata: readonly InferenceSession.ValueMetadata[],
  ) {
    worker.on('message', (msg: SessionResponse) => {
      if (msg.kind !== 'result' && msg.kind !== 'error') return;
      const pending = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.kind === 'result') pending?.resolve({ outputs: msg.outputs, seconds: msg.seconds });
      else pending?.reject(new Error(`inference failed: ${msg.message}`));
    });
    const failAll = (err: Error) => {
      this.failure = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => failAll(new Error(`inference worker crashed: ${err.message}`)));
    worker.on('exit', (code) => failAll(new Error(`inference worker exited (code ${code})`)));
  }

  static create(modelPath: string, threads: number): Promise<WorkerSession> {
    const worker = new Worker(new URL('./session-worker.js', import.meta.url), {
      workerData: { modelPath, threads } satisfies SessionWorkerData,
    });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once('error', onError);
      worker.once('message', (msg: SessionResponse) => {
        worker.off('error', onError);
        if (msg.kind === 'loaded') resolve(new WorkerSession(worker, msg.inputs, msg.outputs));
        else {
          void worker.terminate();
          reject(new Error(msg.kind === 'failed' ? msg.message : `unexpected ${msg.kind} from the inference worker`));
        }
      });
    });
  }

  run(
    feeds: Record<string, TensorData>,
    outputNames: string[],
  ): Promise<{ outputs: Record<string, TensorData>; seconds: number }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    for (const [name, t] of Object.entries(feeds)) {
      // Only a view spanning its whole buffer can be transferred without taking its neighbours along.
      if (t.data.byteOffset !== 0 || t.data.byteLength !== t.data.buffer.byteLength)
        feeds[name] = { ...t, data: t.data.slice() };
    }
    const transfer = Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'run', id, feeds, outputNames } satisfies SessionRequest, transfer);
    });
  }

  async release(): Promise<void> {
    if (this.failure) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ kind: 'release' } satisfies SessionRequest);
    await exited;
  }
}
