// Fetches a model (or labels) artifact named by a URI into a local cache directory:
// verified against the source's checksums while streaming, committed atomically
// (fsync + rename), reused across restarts when still current, retried on transient
// failures and bounded by a total deadline.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, constants as fsConstants } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { CRC32C, Storage } from '@google-cloud/storage';
import type { Logger } from 'pino';
import { SERVER_ENV } from '../../../crds/server-env.js';
import { asError } from '../errors.js';
import { cacheIdentity, parseModelUri, redactText, redactUri, type ModelSource } from './uri.js';
import {
  ChecksumMismatchError,
  HttpStatusError,
  RetryError,
  TransientError,
  errorMessage,
  httpStatusOf,
  retry,
  type RetryOptions,
} from './retry.js';

export interface Checksums {
  crc32c?: string; // base64, as GCS reports it
  md5?: string; // base64
}

export interface FetchResult {
  path: string;
  sizeBytes: number;
  /** True when a previously downloaded copy was reused without downloading. */
  fromCache: boolean;
  /** The redacted URI (safe to log). */
  source: string;
  checksums: Checksums;
}

export interface FetchOptions {
  cacheDir: string;
  logger: Logger;
  /** Total budget for the fetch including retries (default 10 min). */
  deadlineMs?: number;
  /** A client or a factory for gs:// (default: storageFromEnv()). */
  storage?: Storage | (() => Storage);
  signal?: AbortSignal;
  /** Backoff tuning (tests shorten it). */
  retry?: Pick<RetryOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs' | 'random'>;
  /** Permit http:// to non-loopback hosts. */
  allowInsecureHttp?: boolean;
  /** An attempt fails (and is retried) when no data arrives for this long (default 30 s). */
  stallTimeoutMs?: number;
}

/** Final failure; carries no upstream error object, as those can hold request headers (tokens). */
export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    message: string,
    readonly source: string,
    readonly attempts: number,
    readonly status?: number,
  ) {
    super(message);
  }
}

export const DEFAULT_DEADLINE_MS = 10 * 60_000;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** Waits of at most 0.5+1+2+4+8 s; the deadline bounds the whole anyway. */
const DEFAULT_RETRY = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 30_000 };

export async function fetchArtifact(uri: string, opts: FetchOptions): Promise<FetchResult> {
  const source = redactUri(uri);
  let src: ModelSource;
  try {
    src = parseModelUri(uri, { allowInsecureHttp: opts.allowInsecureHttp ?? false });
  } catch (err) {
    throw new FetchError(errorMessage(err), source, 0); // UriError messages are already redacted
  }
  if (src.kind === 'file') return useLocalFile(src.path, source);

  await mkdir(opts.cacheDir, { recursive: true });
  const paths = cachePaths(opts.cacheDir, src);
  const log = opts.logger.child({ uri: source });
  const started = Date.now();
  let storage: Storage | undefined; // one client for all attempts (auth setup is not free)
  try {
    const result = await retry(
      (_attempt, signal) => {
        const ctx: Ctx = { paths, source, log, signal, stallMs: opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS };
        if (src.kind === 'http') return fetchHttp(src.url, ctx);
        storage ??= resolveStorage(opts.storage);
        return fetchGcs(src, storage, ctx);
      },
      {
        ...DEFAULT_RETRY,
        ...opts.retry,
        deadlineMs: opts.deadlineMs ?? DEFAULT_DEADLINE_MS,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onRetry: ({ attempt, delayMs, err }) =>
          log.warn({ attempt, delayMs, err: safeMessage(err) }, 'model fetch attempt failed; retrying'),
      },
    );
    log.info(
      { path: result.path, sizeBytes: result.sizeBytes, fromCache: result.fromCache, durationMs: Date.now() - started },
      'model artifact ready',
    );
    return result;
  } catch (err) {
    await rm(paths.partial, { force: true }); // never leave a half-written file behind
    const attempts = err instanceof RetryError ? err.attempts : 1;
    const cause = err instanceof RetryError ? err.lastError : err;
    const status = httpStatusOf(cause);
    throw new FetchError(`${source}: ${safeMessage(err)}`, source, attempts, status);
  }
}

/**
 * A Storage client for the environment: ADC / Workload Identity in GKE, or an
 * emulator when STORAGE_EMULATOR_HOST is set. The v7 client uses that variable
 * verbatim as its JSON-API base URL, without the `/storage/v1` path that real GCS
 * and fake-gcs-server need (googleapis/nodejs-storage#2092), so metadata and media
 * requests 404 against an emulator. We therefore derive apiEndpoint from it and
 * set the base URL explicitly.
 */
export function storageFromEnv(env: NodeJS.ProcessEnv = process.env): Storage {
  // Our retry() is the single retry layer: it knows the deadline and logs attempts.
  const common = { retryOptions: { autoRetry: false } };
  const emulator = SERVER_ENV.storageEmulatorHost.read(env);
  if (!emulator) return new Storage(common);
  const endpoint = emulatorEndpoint(emulator);
  const storage = new Storage({ ...common, apiEndpoint: endpoint });
  storage.baseUrl = `${endpoint}/storage/v1`;
  return storage;
}

/** `host:port`, `http://host:port` or `http://host:port/storage/v1` → `http://host:port`. */
export function emulatorEndpoint(value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`; // Go client's convention
  return withScheme.replace(/\/+$/, '').replace(/\/storage\/v1$/, '');
}

function resolveStorage(s: FetchOptions['storage']): Storage {
  return s === undefined ? storageFromEnv() : typeof s === 'function' ? s() : s;
}

function safeMessage(err: unknown): string {
  return redactText(errorMessage(err));
}

// ---------------------------------------------------------------- local files

async function useLocalFile(path: string, source: string): Promise<FetchResult> {
  const fail = (why: string) => new FetchError(`${source}: ${why}`, source, 1);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : errorMessage(err));
  }
  if (!st.isFile()) throw fail('not a regular file');
  try {
    await access(path, fsConstants.R_OK);
  } catch {
    throw fail('file is not readable');
  }
  // Used in place: no copy, no cache entry.
  return { path, sizeBytes: st.size, fromCache: false, source, checksums: {} };
}

// ---------------------------------------------------------------- cache files

interface CachePaths {
  final: string;
  partial: string;
  sidecar: string;
}

/** What we know about the cached bytes; written next to them as JSON. */
interface Sidecar extends Checksums {
  sizeBytes: number;
  generation?: string; // gs://
  etag?: string; // https://
}

interface Ctx {
  paths: CachePaths;
  source: string;
  log: Logger; // has `uri` bound
  signal: AbortSignal;
  stallMs: number;
}

function cachePaths(cacheDir: string, src: ModelSource): CachePaths {
  // Stable across restarts; the hash keeps distinct sources apart, the name keeps it readable.
  const key = createHash('sha256').update(cacheIdentity(src)).digest('hex').slice(0, 16);
  const rawName = src.kind === 'gcs' ? src.object : src.kind === 'http' ? src.url.pathname : src.path;
  const name =
    basename(rawName)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .slice(-100) || 'artifact';
  const final = join(cacheDir, `${key}-${name}`);
  return { final, partial: `${final}.partial`, sidecar: `${final}.meta.json` };
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const j: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (typeof j !== 'object' || j === null) return undefined;
    const o = j as Record<string, unknown>;
    if (typeof o.sizeBytes !== 'number') return undefined;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      sizeBytes: o.sizeBytes,
      crc32c: str(o.crc32c),
      md5: str(o.md5),
      generation: str(o.generation),
      etag: str(o.etag),
    };
  } catch {
    return undefined; // missing or torn: treat as no cache
  }
}

async function invalidate(paths: CachePaths): Promise<void> {
  await rm(paths.sidecar, { force: true });
  await rm(paths.final, { force: true });
}

/** The cached file, if its sidecar says it is `want` and its bytes still hash to it. */
async function verifiedCache(ctx: Ctx, want: Sidecar): Promise<Checksums | undefined> {
  const { paths, log } = ctx;
  const sc = await readSidecar(paths.sidecar);
  if (!sc) return undefined;
  const same =
    sc.sizeBytes === want.sizeBytes &&
    sc.crc32c === want.crc32c &&
    sc.md5 === want.md5 &&
    sc.generation === want.generation &&
    (want.etag === undefined || sc.etag === want.etag);
  if (!same) {
    log.info('cached copy is stale; downloading the current version');
    await invalidate(paths);
    return undefined;
  }
  const st = await stat(paths.final).catch(() => undefined);
  const actual = st?.size === sc.sizeBytes ? await hashStream(createReadStream(paths.final), ctx.signal) : undefined;
  if (!actual || checksumProblem(sc, actual.checksums) !== undefined) {
    log.warn('cached copy is missing or corrupt; downloading again');
    await invalidate(paths);
    return undefined;
  }
  return actual.checksums;
}

/** Verifies the downloaded `.partial`, then makes it the cached file (crash-safe order). */
async function commit(
  ctx: Ctx,
  got: Hashed,
  expected: Checksums & { sizeBytes?: number },
  sidecar: Omit<Sidecar, keyof Checksums | 'sizeBytes'>,
): Promise<FetchResult> {
  const { paths } = ctx;
  if (expected.sizeBytes !== undefined && got.sizeBytes !== expected.sizeBytes) {
    await rm(paths.partial, { force: true });
    // A short body is a cut connection; a long one is corruption. Both are worth another try.
    throw new TransientError(`size mismatch (expected ${expected.sizeBytes} bytes, got ${got.sizeBytes})`);
  }
  const problem = checksumProblem(expected, got.checksums);
  if (problem) {
    await rm(paths.partial, { force: true });
    throw new ChecksumMismatchError(`checksum mismatch (${problem})`);
  }
  await fsyncPath(paths.partial);
  // Sidecar first out, last in: a crash in between leaves a file without sidecar = cache miss.
  await rm(paths.sidecar, { force: true });
  await rename(paths.partial, paths.final);
  const tmp = `${paths.sidecar}.tmp`;
  const content: Sidecar = { sizeBytes: got.sizeBytes, ...got.checksums, ...sidecar };
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(content, null, 2));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, paths.sidecar);
  await fsyncPath(dirname(paths.final)); // persist the renames
  return {
    path: paths.final,
    sizeBytes: got.sizeBytes,
    fromCache: false,
    source: ctx.source,
    checksums: got.checksums,
  };
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories; the data file itself was synced.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- hashing

interface Hashed {
  sizeBytes: number;
  checksums: Required<Checksums>;
}

/**
 * Consumes `source`, hashing it (CRC32C + MD5) and, for downloads, writing it to
 * `dest` with a stall watchdog: the GCS client's HTTP stack (node-fetch 2) never ends
 * nor errors a Content-Length body whose connection is cut, so silence must fail.
 */
async function hashStream(
  source: Readable,
  signal: AbortSignal,
  download?: { dest: string; stallMs: number },
): Promise<Hashed> {
  const crc = new CRC32C();
  const md5 = createHash('md5');
  let sizeBytes = 0;
  const stall = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (!download) return;
    clearTimeout(timer);
    timer = setTimeout(
      () => stall.abort(new TransientError(`download stalled: no data for ${download.stallMs}ms`)),
      download.stallMs,
    );
  };
  const tap = async function* (chunks: AsyncIterable<Buffer | Uint8Array>) {
    for await (const chunk of chunks) {
      arm();
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      crc.update(buf);
      md5.update(buf);
      sizeBytes += buf.length;
      yield buf;
    }
  };
  const sink = download
    ? createWriteStream(download.dest)
    : async (chunks: AsyncIterable<Buffer>) => {
        for await (const _ of chunks);
      };
  arm();
  try {
    await pipeline(source, tap, sink, { signal: AbortSignal.any([signal, stall.signal]) });
  } catch (err) {
    throw stall.signal.aborted ? stall.signal.reason : err;
  } finally {
    clearTimeout(timer);
  }
  return { sizeBytes, checksums: { crc32c: crc.toString(), md5: md5.digest('base64') } };
}

/** Describes the first expected checksum that `actual` fails, if any. */
function checksumProblem(expected: Checksums, actual: Checksums): string | undefined {
  for (const algo of ['crc32c', 'md5'] as const) {
    const want = expected[algo];
    if (want !== undefined && want !== actual[algo]) return `${algo} expected ${want} got ${actual[algo] ?? 'none'}`;
  }
  return undefined;
}

// ---------------------------------------------------------------- gs://

async function fetchGcs(src: { bucket: string; object: string }, storage: Storage, ctx: Ctx): Promise<FetchResult> {
  const { signal, paths } = ctx;
  let md;
  try {
    [md] = await abortable(storage.bucket(src.bucket).file(src.object).getMetadata(), signal);
  } catch (err) {
    throw gcsError(err);
  }
  if (md.contentEncoding === 'gzip') {
    // Stored checksums cover the compressed bytes; a gzip-encoded model is an upload mistake.
    throw new Error('object has Content-Encoding: gzip; upload the model without content encoding');
  }
  const remote: Sidecar = {
    sizeBytes: Number(md.size),
    ...(md.crc32c ? { crc32c: md.crc32c } : {}),
    ...(md.md5Hash ? { md5: md.md5Hash } : {}), // absent for composite objects
    generation: String(md.generation),
  };
  const cached = await verifiedCache(ctx, remote);
  if (cached)
    return { path: paths.final, sizeBytes: remote.sizeBytes, fromCache: true, source: ctx.source, checksums: cached };

  // Pin the generation so the bytes are the ones the metadata describes.
  const file = storage.bucket(src.bucket).file(src.object, { generation: remote.generation });
  // validation:false — we hash once ourselves, against the pinned metadata (not just the
  // response's x-goog-hash), and need the values for the sidecar anyway.
  const stream = file.createReadStream({ validation: false, decompress: false });
  let got: Hashed;
  try {
    got = await hashStream(stream, signal, { dest: paths.partial, stallMs: ctx.stallMs });
  } catch (err) {
    if (httpStatusOf(err) === 404)
      throw new TransientError(`object changed during download (generation ${remote.generation} is gone)`);
    throw gcsError(err);
  }
  return commit(ctx, got, remote, { generation: remote.generation });
}

function gcsError(err: unknown): Error {
  const status = httpStatusOf(err);
  if (status === undefined) return err instanceof Error ? err : new Error(String(err));
  const why =
    status === 404
      ? 'object not found (404)'
      : status === 403
        ? 'permission denied (403)'
        : status === 401
          ? 'unauthenticated (401)'
          : `GCS error ${status}: ${errorMessage(err).split('\n')[0]}`;
  return new HttpStatusError(status, why);
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(asError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

// ---------------------------------------------------------------- https://

async function fetchHttp(url: URL, ctx: Ctx): Promise<FetchResult> {
  const { paths, signal } = ctx;
  const sidecar = await readSidecar(paths.sidecar);
  const finalSize = sidecar ? (await stat(paths.final).catch(() => undefined))?.size : undefined;
  const cached = sidecar?.sizeBytes === finalSize ? sidecar : undefined; // revalidate only a plausible copy
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (cached?.etag) headers['if-none-match'] = cached.etag;
  const target = new URL(url);
  if (target.username || target.password) {
    // fetch() refuses URLs with credentials: send them as Basic auth instead.
    const user = decodeURIComponent(target.username);
    const pass = decodeURIComponent(target.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    target.username = target.password = '';
  }
  // The stall limit also covers waiting for the response head (the body has its own watchdog).
  const head = new AbortController();
  const timer = setTimeout(() => head.abort(new TransientError(`no response within ${ctx.stallMs}ms`)), ctx.stallMs);
  let res: Response;
  try {
    res = await fetch(target, { headers, signal: AbortSignal.any([signal, head.signal]), redirect: 'follow' });
  } catch (err) {
    throw head.signal.aborted ? head.signal.reason : err;
  } finally {
    clearTimeout(timer);
  }

  if (res.status === 304 && cached?.etag) {
    const checksums = await verifiedCache(ctx, cached);
    if (checksums)
      return { path: paths.final, sizeBytes: cached.sizeBytes, fromCache: true, source: ctx.source, checksums };
    throw new TransientError('cached copy failed verification'); // sidecar is gone now: next try is unconditional
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    const why =
      res.status === 404
        ? 'not found (404)'
        : res.status === 401 || res.status === 403
          ? `access denied (${res.status})`
          : `HTTP ${res.status}`;
    throw new HttpStatusError(res.status, why);
  }
  // Transfer-decoded bodies differ from the length/hashes the headers describe.
  const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const length = res.headers.get('content-length');
  const expected: Checksums & { sizeBytes?: number } = encoded ? {} : parseHashHeaders(res.headers);
  if (!encoded && length !== null && /^\d+$/.test(length)) expected.sizeBytes = Number(length);

  const body = Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>);
  const got = await hashStream(body, signal, { dest: paths.partial, stallMs: ctx.stallMs });
  const etag = res.headers.get('etag') ?? undefined;
  return commit(ctx, got, expected, etag ? { etag } : {});
}

/** `x-goog-hash: crc32c=..., md5=...` (possibly repeated) and `Content-MD5`. */
function parseHashHeaders(h: Headers): Checksums {
  const out: Checksums = {};
  for (const part of (h.get('x-goog-hash') ?? '').split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim().toLowerCase();
    const v = part.slice(eq + 1).trim();
    if (k === 'crc32c' || k === 'md5') out[k] = v;
  }
  const contentMd5 = h.get('content-md5')?.trim();
  if (contentMd5 && out.md5 === undefined) out.md5 = contentMd5;
  return out;
}
