import type { InferenceSession } from 'onnxruntime-node';

/** A tensor as it crosses the thread boundary (its buffer is transferred, not copied). */
export interface TensorData {
  type: string;
  data: Float32Array | Uint8Array;
  dims: number[];
}

export interface SessionWorkerData {
  modelPath: string;
  threads: number;
}

export type SessionRequest =
  { kind: 'run'; id: number; feeds: Record<string, TensorData>; outputNames: string[] } | { kind: 'release' };

export type SessionResponse =
  | { kind: 'loaded'; inputs: InferenceSession.ValueMetadata[]; outputs: InferenceSession.ValueMetadata[] }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, TensorData>; seconds: number }
  | { kind: 'error'; id: number; message: string };
