import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PREPROCESSING, preprocessingFromEnv, type PreprocessingOptions } from '../../../crds/preprocessing.js';
import { SERVER_ENV, type EnvContext, type ServerEnvKey, type ServerVariable } from '../../../crds/server-env.js';

/**
 * The model served when MODEL_URI is not set: EfficientNet-Lite0 trained on ImageNet, bundled so a
 * fresh clone classifies real photos offline (inference-server/models/efficientnet-lite0/README.md).
 * Resolved from the compiled file, dist/inference-server/src/config/, back to the repository (or image) root.
 */
export const DEFAULT_MODEL_PATH = fileURLToPath(
  new URL('../../../../inference-server/models/efficientnet-lite0/model.onnx', import.meta.url),
);
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
  /**
   * SLO mode: the accepted wait for the model, past which requests are refused at once; 'auto' sizes it from the model,
   * 0 (the default) is off.
   */
  maxQueueMs: number | 'auto';
  /**
   * The memory bound on what requests in progress hold; 'auto' sizes it from the container's memory limit once the
   * model is loaded.
   */
  maxQueueBytes: number | 'auto';
  /** An upload that sends nothing for this long is answered 408. */
  uploadIdleTimeoutMs: number;
  /** An upload slower than this on average (once it is older than uploadIdleTimeoutMs) is answered 408. */
  uploadMinBytesPerSecond: number;
  /** 503s sent at once per second; past it they wait their turn, so clients that retry at once cannot take the CPU. */
  refusalsPerSecond: number;
  /** Dynamic batching (dynamic-batch models only): largest batch; 1 turns it off. */
  maxBatchSize: number;
  /**
   * How long a lone image may wait for batch-mates while the session is idle (0: batch only what queued while busy).
   */
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

/** Reads and validates the whole configuration (crds/server-env.ts); one error lists every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv, cpus: number): ServerConfig {
  const errors: string[] = [];
  const ctx: EnvContext = { cpus, sessions: 1 };
  /** A variable's value; a bad one is noted and its default (read from an empty environment) stands in. */
  const read = <K extends ServerEnvKey>(key: K): ReturnType<(typeof SERVER_ENV)[K]['read']> => {
    const variable = SERVER_ENV[key] as unknown as ServerVariable<ReturnType<(typeof SERVER_ENV)[K]['read']>>;
    try {
      return variable.read(env, ctx);
    } catch (err) {
      errors.push((err as Error).message);
      return variable.read({}, ctx);
    }
  };
  ctx.sessions = read('sessions');
  const modelUri = read('modelUri') ?? DEFAULT_MODEL_PATH;
  const readPreprocessing = (): PreprocessingOptions => {
    try {
      return preprocessingFromEnv(env);
    } catch (err) {
      errors.push((err as Error).message);
      return { ...DEFAULT_PREPROCESSING };
    }
  };
  const config: Omit<ServerConfig, 'logLevel'> = {
    port: read('port'),
    host: read('host'),
    modelUri,
    labelsUri: read('labelsUri'),
    modelName: read('modelName') ?? modelNameFromUri(modelUri),
    cacheDir: read('cacheDir'),
    fetchDeadlineMs: read('fetchDeadlineMs'),
    preprocessing: readPreprocessing(),
    inputSize: read('inputSize'),
    outputName: read('outputName'),
    maxUploadBytes: read('maxUploadBytes'),
    maxInputPixels: read('maxInputPixels'),
    maxTensorBytes: read('maxTensorBytes'),
    maxInFlight: read('maxInFlight'),
    maxQueueMs: read('maxQueueMs'),
    maxQueueBytes: read('maxQueueBytes'),
    uploadIdleTimeoutMs: read('uploadIdleTimeoutMs'),
    uploadMinBytesPerSecond: read('uploadMinBytesPerSecond'),
    refusalsPerSecond: read('refusalsPerSecond'),
    maxBatchSize: read('maxBatchSize'),
    maxQueueDelayMs: read('maxQueueDelayMs'),
    requestDeadlineMs: read('requestDeadlineMs'),
    decodeConcurrency: read('decodeConcurrency'),
    sessions: ctx.sessions,
    threads: read('threads'),
    maxTopK: read('maxTopK'),
    shutdownGraceMs: read('shutdownGraceMs'),
    requestTimeoutMs: read('requestTimeoutMs'),
    drainDelayMs: read('drainDelayMs'),
  };
  if (!/^[\w.-]{1,128}$/.test(config.modelName))
    errors.push(`MODEL_NAME=${config.modelName}: use letters, digits, '.', '_' or '-'`);
  // After MODEL_NAME's check, so errors are listed in the order the table documents them.
  const logLevel = read('logLevel');
  if (errors.length > 0) throw new Error(`invalid configuration: ${errors.join('; ')}`);
  return { ...config, logLevel };
}
