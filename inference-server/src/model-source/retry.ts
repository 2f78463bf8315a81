// Generic retry with exponential backoff + full jitter, bounded by attempts and a
// total deadline, plus the error classification used for model downloads.
import { setTimeout as sleep } from 'node:timers/promises';

/** Bytes did not match the expected checksum: maybe corrupted in flight, so retried a little. */
export class ChecksumMismatchError extends Error {
  override name = 'ChecksumMismatchError';
}

/** A failure known to be transient (e.g. truncated body, object replaced mid-download). */
export class TransientError extends Error {
  override name = 'TransientError';
}

/** An HTTP response status outside 2xx. */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type RetryStop = 'permanent' | 'exhausted' | 'deadline' | 'aborted';

/** Thrown by retry(): `cause` is the last attempt's error. */
export class RetryError extends Error {
  override name = 'RetryError';
  constructor(
    message: string,
    readonly attempts: number,
    readonly stop: RetryStop,
    readonly lastError: unknown,
  ) {
    super(message, { cause: lastError });
  }
}

export interface RetryInfo {
  attempt: number; // the attempt that just failed (1-based)
  delayMs: number;
  err: unknown;
}

export interface RetryOptions {
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Total budget for all attempts and waits, from the call. */
  deadlineMs?: number;
  isRetryable?: (err: unknown, attempt: number) => boolean;
  onRetry?: (info: RetryInfo) => void;
  signal?: AbortSignal;
  /** Injectable for deterministic tests; defaults to Math.random. */
  random?: () => number;
}

export async function retry<T>(
  fn: (attempt: number, signal: AbortSignal) => T | Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
  const baseDelayMs = opts.baseDelayMs ?? 250;
  const maxDelayMs = opts.maxDelayMs ?? 10_000;
  const isRetryable = opts.isRetryable ?? isRetryableError;
  const random = opts.random ?? Math.random;
  const deadlineMs = opts.deadlineMs ?? Infinity;
  const deadlineAt = Date.now() + deadlineMs;

  // Attempts see one signal that fires on caller abort or at the deadline.
  const signals: AbortSignal[] = [];
  if (opts.signal) signals.push(opts.signal);
  if (Number.isFinite(deadlineMs)) signals.push(AbortSignal.timeout(Math.max(0, deadlineMs)));
  const signal = signals.length > 0 ? AbortSignal.any(signals) : new AbortController().signal;

  const fail = (stop: RetryStop, attempts: number, err: unknown): RetryError => {
    const msg = errorMessage(err);
    const text =
      stop === 'deadline'
        ? `deadline of ${deadlineMs}ms exceeded after ${attempts} attempt${attempts === 1 ? '' : 's'} ` +
          `(last error: ${msg})`
        : stop === 'aborted'
          ? `aborted after ${attempts} attempt${attempts === 1 ? '' : 's'} (last error: ${msg})`
          : attempts > 1
            ? `${msg} after ${attempts} attempts`
            : msg;
    return new RetryError(text, attempts, stop, err);
  };
  const stopReason = (): RetryStop | undefined =>
    opts.signal?.aborted ? 'aborted' : signal.aborted || Date.now() >= deadlineAt ? 'deadline' : undefined;

  for (let attempt = 1; ; attempt++) {
    try {
      if (signal.aborted) throw abortReason(signal);
      return await fn(attempt, signal);
    } catch (err) {
      const stopped = stopReason();
      if (stopped) throw fail(stopped, attempt, err);
      if (!isRetryable(err, attempt)) throw fail('permanent', attempt, err);
      if (attempt >= maxAttempts) throw fail('exhausted', attempt, err);
      // Full jitter: uniform in [0, min(cap, base * 2^(n-1))] spreads out synchronized clients.
      const delayMs = Math.round(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
      if (Date.now() + delayMs >= deadlineAt) throw fail('deadline', attempt, err);
      opts.onRetry?.({ attempt, delayMs, err });
      try {
        await sleep(delayMs, undefined, { signal });
      } catch {
        throw fail(stopReason() ?? 'aborted', attempt, err);
      }
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** How many attempts in total a persisting checksum mismatch gets. */
export const MAX_INTEGRITY_ATTEMPTS = 3;

export type ErrorClass = 'retryable' | 'permanent' | 'integrity';

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const RETRYABLE_MESSAGE_RE = /socket hang up|other side closed|premature close|^terminated$/i;

export function classifyError(err: unknown): ErrorClass {
  // Walk the cause chain: fetch() wraps socket errors as TypeError('fetch failed', {cause}).
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof ChecksumMismatchError) return 'integrity';
    if (e instanceof TransientError) return 'retryable';
    const status = httpStatusOf(e);
    if (status !== undefined) {
      return status === 408 || status === 429 || status >= 500 ? 'retryable' : 'permanent';
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return 'retryable';
    if (RETRYABLE_MESSAGE_RE.test(e.message)) return 'retryable';
  }
  return 'permanent'; // unknown errors (ENOSPC, EACCES, bugs) won't fix themselves
}

export function isRetryableError(err: unknown, attempt: number): boolean {
  const cls = classifyError(err);
  return cls === 'retryable' || (cls === 'integrity' && attempt < MAX_INTEGRITY_ATTEMPTS);
}

/** HTTP status from our HttpStatusError or a @google-cloud/storage ApiError (numeric `code`). */
export function httpStatusOf(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as { status?: unknown; code?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.code === 'number' ? e.code : undefined;
  return status !== undefined && status >= 100 && status <= 599 ? status : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message.trim() : String(err);
}
