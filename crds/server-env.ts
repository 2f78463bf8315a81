/**
 * The inference server's environment: the contract between the operator, which
 * writes it into every pod (operator/src/desired-state.ts), and the server,
 * which reads it back (inference-server/src/config/server-config.ts). Each
 * variable is one entry here, with its name, how it is read and written, its
 * default and what it means; the README's configuration table is generated
 * from these entries (scripts/config-docs.ts) and a test keeps it in step.
 * The preprocessing variables travel as a group (crds/preprocessing.ts).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { integer, optionalInteger, raw, text, type Env, type EnvContext, type ServerVariable } from './env-variable.js';

export type { Env, EnvContext, ServerVariable };

const MiB = 1024 * 1024;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The server's variables, keyed by their field in the server's config. */
export const SERVER_ENV = {
  modelUri: text('MODEL_URI', undefined, {
    shownDefault: 'the bundled EfficientNet-Lite0',
    doc: '`gs://bucket/path/model.onnx`, `https://…`, `file:///…` or a path',
  }),
  labelsUri: text('LABELS_URI', undefined, {
    shownDefault: '–',
    doc:
      'labels, same schemes: one per line, a JSON array, or an index→label object. ' +
      "Without it, labels in the model's metadata (`labels`, `classes`, `class_names`, `names`) are used; " +
      'without those, the class index',
  }),
  modelName: text('MODEL_NAME', undefined, {
    shownDefault: "file name without `.onnx` (the folder's name for a file called `model.onnx`)",
    doc: 'name in the v2 API and in logs',
  }),
  cacheDir: {
    ...text('MODEL_CACHE_DIR', '', {
      shownDefault: '`$TMPDIR/onnx-model-cache`',
      doc: "where downloads go (an emptyDir in Kubernetes); reused on restart when the object's checksum still matches",
    }),
    read: (env: Env) => raw(env, 'MODEL_CACHE_DIR') ?? join(tmpdir(), 'onnx-model-cache'),
  },
  fetchDeadlineMs: integer('MODEL_FETCH_TIMEOUT_MS', 10 * 60_000, {
    min: 1000,
    doc: 'total time allowed for the download, retries included',
  }),
  storageEmulatorHost: text('STORAGE_EMULATOR_HOST', undefined, {
    shownDefault: '–',
    doc: 'a GCS emulator (`host:port` or URL) instead of Google Cloud Storage',
  }),
  port: integer('PORT', 8080, { min: 0, max: 65535, doc: 'listen port' }),
  host: text('HOST', '0.0.0.0', { shownDefault: '`0.0.0.0`', doc: 'listen address' }),
  inputSize: {
    name: 'INPUT_SIZE',
    shownDefault: 'from the input shape',
    doc: "`224` or `WIDTHxHEIGHT`, only when the model's size is symbolic",
    read(env: Env): { width: number; height: number } | undefined {
      const v = raw(env, 'INPUT_SIZE');
      if (v === undefined) return undefined;
      const m = /^(\d+)(?:x(\d+))?$/i.exec(v);
      if (!m) throw new Error(`INPUT_SIZE=${v}: expected N or WIDTHxHEIGHT, e.g. 224 or 320x240`);
      const width = Number(m[1]);
      const height = Number(m[2] ?? m[1]);
      if (width < 1 || height < 1 || width > 8192 || height > 8192)
        throw new Error(`INPUT_SIZE=${v}: sides must be 1–8192`);
      return { width, height };
    },
    write: (v: { width: number; height: number } | undefined) =>
      v === undefined ? '' : v.width === v.height ? String(v.width) : `${v.width}x${v.height}`,
  } satisfies ServerVariable<{ width: number; height: number } | undefined>,
  outputName: text('OUTPUT_NAME', undefined, {
    shownDefault: 'the first output',
    doc: 'which output holds the class scores',
  }),
  maxUploadBytes: integer('MAX_UPLOAD_BYTES', 20 * MiB, { min: 1024, doc: 'largest image upload' }),
  maxInputPixels: integer('MAX_INPUT_PIXELS', 40_000_000, { min: 1, doc: 'largest image, in pixels' }),
  maxTensorBytes: integer('MAX_TENSOR_BYTES', 64 * MiB, {
    min: 1024,
    doc:
      'largest v2 request body; a JSON body whose parse would hold more than 4 × this is refused ' +
      '(413: use the binary extension)',
  }),
  maxTopK: integer('MAX_TOP_K', 100, { min: 1, doc: 'largest `top_k`' }),
  maxQueueBytes: {
    name: 'MAX_QUEUE_BYTES',
    shownDefault: '`auto`',
    doc:
      'the memory bound: the most bytes all requests in progress may hold (bodies, decoded images, tensors); ' +
      'past it new ones get 503 + `Retry-After`. ' +
      "`auto`: half of what the container's memory limit (cgroup; the machine's memory without one) " +
      'leaves once the model is loaded, at least 64 MiB. See [Admission](#admission-and-overload)',
    read(env: Env): number | 'auto' {
      const v = raw(env, 'MAX_QUEUE_BYTES')?.toLowerCase();
      if (v === undefined || v === 'auto') return 'auto';
      const n = Number(v);
      if (!Number.isInteger(n) || n < MiB)
        throw new Error(`MAX_QUEUE_BYTES=${env.MAX_QUEUE_BYTES}: expected auto or a number of bytes, at least ${MiB}`);
      return n;
    },
    write: String,
  } satisfies ServerVariable<number | 'auto'>,
  maxInFlight: optionalInteger('MAX_IN_FLIGHT', {
    min: 1,
    doc: 'opt-in cap on images queued or running (a v2 batch of N counts N); unset, only the memory bound applies',
  }),
  maxQueueMs: {
    name: 'MAX_QUEUE_MS',
    shownDefault: '`0` (off)',
    doc:
      'SLO mode, opt-in: hold only as many images as can start their inference within this many ms ' +
      'at the measured speed, refuse the rest at once with 503 + `Retry-After`. ' +
      '`auto`: one lone inference (timed at warm-up), at least 50 ms',
    read(env: Env): number | 'auto' {
      const v = raw(env, 'MAX_QUEUE_MS')?.toLowerCase();
      if (v === undefined) return 0;
      if (v === 'auto') return 'auto';
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 600_000)
        throw new Error(`MAX_QUEUE_MS=${env.MAX_QUEUE_MS}: expected 0 (off), auto or milliseconds up to 600000`);
      return n;
    },
    write: String,
  } satisfies ServerVariable<number | 'auto'>,
  uploadIdleTimeoutMs: integer('UPLOAD_IDLE_TIMEOUT_MS', 5_000, {
    min: 100,
    max: 600_000,
    doc: 'a body that sends no byte for this long is answered 408',
  }),
  uploadMinBytesPerSecond: integer('UPLOAD_MIN_BYTES_PER_SECOND', 1024, {
    min: 0,
    doc: 'a body older than `UPLOAD_IDLE_TIMEOUT_MS` arriving slower than this on average is answered 408 (slowloris)',
  }),
  refusalsPerSecond: integer('REFUSALS_PER_SECOND', 250, {
    min: 1,
    max: 1_000_000,
    doc:
      '503s sent at once per second; past it each waits its turn (holding only its socket), ' +
      'so clients that resend at once, ignoring `Retry-After`, cannot take the CPU from the requests being served',
  }),
  sessions: integer('SESSIONS', 1, {
    min: 1,
    max: 64,
    doc:
      "onnxruntime sessions run side by side (Triton's instance count), each on its own worker thread " +
      'with an equal share of the CPUs and its own copy of the weights. ' +
      '`1`: fastest lone request; `2` on 2 CPUs: more throughput without batching and a shorter tail under load, ' +
      'a slower lone request (one thread) and twice the weights in memory',
  }),
  maxBatchSize: integer('MAX_BATCH_SIZE', 8, {
    min: 1,
    max: 256,
    doc:
      'dynamic batching for models with a dynamic batch dimension: images that queue while the session is busy ' +
      'run as one tensor, up to this many; `1` turns it off (fixed-batch models never batch)',
  }),
  maxQueueDelayMs: integer('MAX_QUEUE_DELAY_MS', 0, {
    min: 0,
    max: 1000,
    doc:
      'how long a lone image waits for batch-mates while the session is idle ' +
      '(0: batch only what queued while it was busy)',
  }),
  // Generous: a queue of several hundred requests on a slow pod is still answered; clients that give up first are
  // dropped from the queue.
  requestDeadlineMs: integer('REQUEST_DEADLINE_MS', 60_000, {
    min: 1,
    doc:
      'a request still waiting for the model this long after it arrived is answered 504 instead of run; ' +
      'a request whose client has gone is dropped from the queue whatever its deadline',
  }),
  // The CPUs are shared out between the sessions; a share below one thread would only oversubscribe.
  threads: integer('INTRA_OP_THREADS', (ctx) => Math.max(1, Math.floor(ctx.cpus / ctx.sessions)), {
    min: 1,
    max: 1024,
    shownDefault: 'CPU limit ÷ `SESSIONS`',
    doc:
      "onnxruntime threads per session (the CPU limit is the cgroup's CPU quota, rounded up, " +
      "not the host's core count)",
  }),
  decodeConcurrency: integer('DECODE_CONCURRENCY', (ctx) => Math.max(1, ctx.cpus), {
    min: 1,
    max: 256,
    shownDefault: 'the CPU limit',
    doc: "images decoded at once (libvips' pool is sized to the CPU limit)",
  }),
  requestTimeoutMs: integer('REQUEST_TIMEOUT_MS', 60_000, {
    min: 1000,
    doc: 'deadline for receiving the whole request (headers must come within 15 s)',
  }),
  drainDelayMs: integer('DRAIN_DELAY_MS', 0, {
    min: 0,
    doc: 'after SIGTERM, how long readiness is false before the listener closes (lets load balancers notice)',
  }),
  shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 25_000, {
    min: 0,
    doc: 'after that, how long in-flight requests may take before connections are cut',
  }),
  logLevel: {
    ...text('LOG_LEVEL', 'info', { shownDefault: '`info`', doc: 'pino level' }),
    read(env: Env): string {
      const v = raw(env, 'LOG_LEVEL') ?? 'info';
      if (!(LOG_LEVELS as readonly string[]).includes(v))
        throw new Error(`LOG_LEVEL=${v}: expected ${LOG_LEVELS.slice(0, -1).join(', ')} or silent`);
      return v;
    },
  },
} as const;

export type ServerEnvKey = keyof typeof SERVER_ENV;
