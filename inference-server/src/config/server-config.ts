import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { preprocessingFromEnv, type PreprocessingOptions } from './preprocessing.js';

/**
 * The model served when MODEL_URI is not set: EfficientNet-Lite0 trained on ImageNet, bundled so a
 * fresh clone classifies real photos offline (inference-server/models/efficientnet-lite0/README.md).
 * Resolved from the compiled file, dist/inference-server/src/config/, back to the repository (or image) root.
 */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../../../inference-server/models/efficientnet-lite0/model.onnx', import.meta.url));
/** A photo for the quickstart's curl line (Chelsea the cat, from scikit-image's data, public domain). */
export const DEFAULT_SAMPLE_IMAGE = join(DEFAULT_MODEL_PATH, '..', 'example.jpg');

export interface ServerConfig {
  port: number;
  host: string;
  modelUri: string;
  labelsUri?: string;
  /** Name under /v2/models/{name}; defaults to the model file's name without extension. */
  modelName: string;
  cacheDir: string;
  fetchDeadlineMs: number;
  preprocessing: PreprocessingOptions;
  inputSize?: { width: number; height: number };
  outputName?: string;
  maxUploadBytes: number;
  maxInputPixels: number;
  /** Largest v2 infer request body (JSON or binary tensors). */
  maxTensorBytes: number;
  /** Opt-in cap on images queued or running; unset, only the memory bound (maxQueueBytes) applies. */
  maxInFlight: number | undefined;
  /** SLO mode: the accepted wait for the model, past which requests are refused at once; 'auto' sizes it from the model, 0 (the default) is off. */
  maxQueueMs: number | 'auto';
  /** The memory bound on what requests in progress hold; 'auto' sizes it from the container's memory limit once the model is loaded. */
  maxQueueBytes: number | 'auto';
  /** An upload that sends nothing for this long is answered 408. */
  uploadIdleTimeoutMs: number;
  /** An upload slower than this on average (once it is older than uploadIdleTimeoutMs) is answered 408. */
  uploadMinBytesPerSecond: number;
  /** 503s sent at once per second; past it they wait their turn, so clients that retry at once cannot take the CPU. */
  refusalsPerSecond: number;
  /** Dynamic batching (dynamic-batch models only): largest batch; 1 turns it off. */
  maxBatchSize: number;
  /** How long a lone image may wait for batch-mates while the session is idle (0: batch only what queued while busy). */
  maxQueueDelayMs: number;
  /** A request still waiting for the model this long after it arrived is answered 504. */
  requestDeadlineMs: number;
  decodeConcurrency: number;
  /** onnxruntime sessions run side by side (Triton's instance count). */
  sessions: number;
  /** Intra-op threads of each session. */
  threads: number;
  maxTopK: number;
  shutdownGraceMs: number;
  /** Whole-request deadline (slow uploads included), so a trickling client cannot hold a slot forever. */
  requestTimeoutMs: number;
  /** Time between readiness going false and the listener closing, so load balancers stop sending first. */
  drainDelayMs: number;
  logLevel: string;
}

const MiB = 1024 * 1024;

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${raw}: expected an integer between ${min} and ${max}`);
  return n;
}

/** MAX_QUEUE_MS: 0 (off, the default), `auto` or a number of milliseconds. */
function queueBudget(env: NodeJS.ProcessEnv): number | 'auto' {
  const raw = env.MAX_QUEUE_MS?.trim().toLowerCase();
  if (raw === undefined || raw === '') return 0;
  if (raw === 'auto') return 'auto';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) throw new Error(`MAX_QUEUE_MS=${env.MAX_QUEUE_MS}: expected 0 (off), auto or milliseconds up to 600000`);
  return n;
}

/** MAX_QUEUE_BYTES: `auto` (the default) or a number of bytes, at least 1 MiB. */
function queueBytes(env: NodeJS.ProcessEnv): number | 'auto' {
  const raw = env.MAX_QUEUE_BYTES?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'auto') return 'auto';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < MiB) throw new Error(`MAX_QUEUE_BYTES=${env.MAX_QUEUE_BYTES}: expected auto or a number of bytes, at least ${MiB}`);
  return n;
}

/** MAX_IN_FLIGHT: unset (no count cap) or a whole number of images, at least 1. */
function optionalCap(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.MAX_IN_FLIGHT?.trim();
  if (raw === undefined || raw === '') return undefined;
  return int(env, 'MAX_IN_FLIGHT', 1, 1);
}

function size(env: NodeJS.ProcessEnv): { width: number; height: number } | undefined {
  const raw = env.INPUT_SIZE?.trim();
  if (!raw) return undefined;
  const m = /^(\d+)(?:x(\d+))?$/i.exec(raw);
  if (!m) throw new Error(`INPUT_SIZE=${raw}: expected N or WIDTHxHEIGHT, e.g. 224 or 320x240`);
  const width = Number(m[1]);
  const height = Number(m[2] ?? m[1]);
  if (width < 1 || height < 1 || width > 8192 || height > 8192) throw new Error(`INPUT_SIZE=${raw}: sides must be 1–8192`);
  return { width, height };
}

/**
 * The model's name from its URI: `gs://b/models/resnet50.onnx` → `resnet50`; a file named just
 * `model.onnx` takes its folder's name (`gs://b/resnet50/model.onnx` → `resnet50`).
 */
export function modelNameFromUri(uri: string): string {
  const path = uri.replace(/[?#].*$/, '');
  const clean = (s: string) => s.replace(/\.onnx$/i, '').replace(/[^\w.-]/g, '-');
  const name = clean(basename(path));
  if (name !== 'model' && name !== '') return name;
  const folder = clean(basename(dirname(path)));
  return folder !== '' && folder !== '.' && !folder.includes(':') ? folder : 'model';
}

/** Reads and validates the whole configuration; one error lists every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv, cpus: number): ServerConfig {
  const errors: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (err) {
      errors.push((err as Error).message);
      return fallback;
    }
  };
  const modelUri = env.MODEL_URI?.trim() || DEFAULT_MODEL_PATH;
  const sessions = attempt(() => int(env, 'SESSIONS', 1, 1, 64), 1);
  // The CPUs are shared out between the sessions; a share below one thread would only oversubscribe.
  const threadShare = Math.max(1, Math.floor(cpus / sessions));
  const threads = attempt(() => int(env, 'INTRA_OP_THREADS', threadShare, 1, 1024), threadShare);
  const config: ServerConfig = {
    port: attempt(() => int(env, 'PORT', 8080, 0, 65535), 8080),
    host: env.HOST?.trim() || '0.0.0.0',
    modelUri,
    labelsUri: env.LABELS_URI?.trim() || undefined,
    modelName: env.MODEL_NAME?.trim() || modelNameFromUri(modelUri),
    cacheDir: env.MODEL_CACHE_DIR?.trim() || join(tmpdir(), 'onnx-model-cache'),
    fetchDeadlineMs: attempt(() => int(env, 'MODEL_FETCH_TIMEOUT_MS', 10 * 60_000, 1000), 600_000),
    preprocessing: attempt(() => preprocessingFromEnv(env), undefined as unknown as PreprocessingOptions),
    inputSize: attempt(() => size(env), undefined),
    outputName: env.OUTPUT_NAME?.trim() || undefined,
    maxUploadBytes: attempt(() => int(env, 'MAX_UPLOAD_BYTES', 20 * MiB, 1024), 20 * MiB),
    maxInputPixels: attempt(() => int(env, 'MAX_INPUT_PIXELS', 40_000_000, 1), 40_000_000),
    maxTensorBytes: attempt(() => int(env, 'MAX_TENSOR_BYTES', 64 * MiB, 1024), 64 * MiB),
    maxInFlight: attempt(() => optionalCap(env), undefined),
    maxQueueMs: attempt(() => queueBudget(env), 0),
    maxQueueBytes: attempt(() => queueBytes(env), 'auto'),
    uploadIdleTimeoutMs: attempt(() => int(env, 'UPLOAD_IDLE_TIMEOUT_MS', 5_000, 100, 600_000), 5_000),
    uploadMinBytesPerSecond: attempt(() => int(env, 'UPLOAD_MIN_BYTES_PER_SECOND', 1024, 0), 1024),
    refusalsPerSecond: attempt(() => int(env, 'REFUSALS_PER_SECOND', 250, 1, 1_000_000), 250),
    maxBatchSize: attempt(() => int(env, 'MAX_BATCH_SIZE', 8, 1, 256), 8),
    maxQueueDelayMs: attempt(() => int(env, 'MAX_QUEUE_DELAY_MS', 0, 0, 1000), 0),
    // Generous: a queue of several hundred requests on a slow pod is still answered; clients that give up first are dropped from the queue.
    requestDeadlineMs: attempt(() => int(env, 'REQUEST_DEADLINE_MS', 60_000, 1), 60_000),
    decodeConcurrency: attempt(() => int(env, 'DECODE_CONCURRENCY', Math.max(1, cpus), 1, 256), cpus),
    sessions,
    threads,
    maxTopK: attempt(() => int(env, 'MAX_TOP_K', 100, 1), 100),
    shutdownGraceMs: attempt(() => int(env, 'SHUTDOWN_GRACE_MS', 25_000, 0), 25_000),
    requestTimeoutMs: attempt(() => int(env, 'REQUEST_TIMEOUT_MS', 60_000, 1000), 60_000),
    drainDelayMs: attempt(() => int(env, 'DRAIN_DELAY_MS', 0, 0), 0),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
  };
  if (!/^[\w.-]{1,128}$/.test(config.modelName)) errors.push(`MODEL_NAME=${config.modelName}: use letters, digits, '.', '_' or '-'`);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(config.logLevel)) errors.push(`LOG_LEVEL=${config.logLevel}: expected fatal, error, warn, info, debug, trace or silent`);
  if (errors.length > 0) throw new Error(`invalid configuration: ${errors.join('; ')}`);
  return config;
}
