// Parsing of model/label source URIs into a discriminated union, and redaction
// of secrets (userinfo, signed-URL signatures, tokens) for logs and errors.
// Pure: no I/O.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ModelSource =
  { kind: 'gcs'; bucket: string; object: string } | { kind: 'http'; url: URL } | { kind: 'file'; path: string };

export interface ParseOptions {
  /** Allow plain http:// to non-loopback hosts (default false: http is for loopback tests). */
  allowInsecureHttp?: boolean;
  /** Base directory for relative plain paths (default process.cwd()). */
  cwd?: string;
}

export class UriError extends Error {
  override name = 'UriError';
}

const SCHEME_RE = /^([a-z][a-z0-9+.-]*):/i;
// Bucket names: lowercase letters, digits, '-', '_', '.'; start/end alphanumeric; 3-222 chars.
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export function parseModelUri(input: string, opts: ParseOptions = {}): ModelSource {
  const uri = input.trim();
  if (uri === '') throw new UriError('empty model URI');
  const scheme = SCHEME_RE.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    // No scheme: a local path.
    return { kind: 'file', path: isAbsolute(uri) ? resolve(uri) : resolve(opts.cwd ?? process.cwd(), uri) };
  }
  switch (scheme) {
    case 'gs':
      return parseGcs(uri);
    case 'https':
    case 'http':
      return parseHttp(uri, scheme, opts);
    case 'file': {
      let path: string;
      try {
        path = fileURLToPath(uri); // decodes %XX; rejects file://remotehost/...
      } catch (err) {
        throw new UriError(`invalid file URI ${redactUri(uri)}: ${(err as Error).message}`);
      }
      return { kind: 'file', path };
    }
    default:
      throw new UriError(
        `unsupported URI scheme "${scheme}:" in ${redactUri(uri)} ` +
          '(supported: gs://bucket/object, https://..., file:///abs/path or a local path)',
      );
  }
}

function parseGcs(uri: string): ModelSource {
  // Not parsed with URL: GCS object names are raw (not percent-encoded) and may contain '?', '#', ' '.
  if (!uri.toLowerCase().startsWith('gs://'))
    throw new UriError(`invalid gs URI ${redactUri(uri)}: expected gs://bucket/object`);
  const rest = uri.slice('gs://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const object = slash < 0 ? '' : rest.slice(slash + 1);
  if (!BUCKET_RE.test(bucket)) throw new UriError(`invalid gs URI ${redactUri(uri)}: bad bucket name "${bucket}"`);
  if (object === '' || object.endsWith('/')) {
    throw new UriError(`invalid gs URI ${redactUri(uri)}: must name an object, not a bucket or folder`);
  }
  return { kind: 'gcs', bucket, object };
}

function parseHttp(uri: string, scheme: string, opts: ParseOptions): ModelSource {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new UriError(`invalid URL ${redactUri(uri)}`);
  }
  if (scheme === 'http' && !opts.allowInsecureHttp && !isLoopbackHost(url.hostname)) {
    throw new UriError(`refusing plain http:// for non-loopback host in ${redactUri(uri)}: use https://`);
  }
  if (url.pathname === '' || url.pathname === '/') throw new UriError(`URL ${redactUri(uri)} must name a file`);
  url.hash = ''; // never sent to the server
  return { kind: 'http', url };
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Query parameter names whose values are credentials (signed URLs, SAS tokens, API keys...). */
const SECRET_PARAM_RE = /sig|token|secret|passw|credential|key|auth|session|code/i;

/**
 * A log-safe form of a URI: drops userinfo and fragment and replaces the values of
 * secret-looking query parameters with REDACTED. Never throws.
 */
export function redactUri(input: string): string {
  // Fast path: nothing that could carry a secret (also keeps gs:// names and paths verbatim).
  if (!/[@?#]/.test(input) || !SCHEME_RE.test(input)) return input;
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    // Unparseable: strip anything that looks like userinfo, and the whole query.
    return input.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1').replace(/[?#].*$/s, '?REDACTED');
  }
  url.username = '';
  url.password = '';
  url.hash = '';
  const params = url.searchParams;
  const secretKeys = [...new Set(params.keys())].filter((k) => SECRET_PARAM_RE.test(k));
  for (const k of secretKeys) params.set(k, 'REDACTED');
  let out = url.toString();
  // Non-special schemes (e.g. gs:) ignore `username = ''`; strip userinfo textually.
  out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
  return out;
}

/** Redacts every URL found in free text (e.g. an upstream error message). */
export function redactText(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (u) => redactUri(u));
}

/**
 * The identity of a source for cache keys: for URLs, the signing/credential query
 * parameters are dropped so that re-signed URLs of one file share a cache entry
 * (content is still revalidated by ETag/checksums before reuse).
 */
export function cacheIdentity(src: ModelSource): string {
  if (src.kind !== 'http') return describeSource(src);
  const url = new URL(src.url.toString());
  url.username = '';
  url.password = '';
  const kept = [...url.searchParams].filter(
    ([k]) => !SECRET_PARAM_RE.test(k) && !/^(x-goog-|x-amz-|googleaccessid$|expires$)/i.test(k),
  );
  kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  url.search = new URLSearchParams(kept).toString();
  return url.toString();
}

/** Human-readable, log-safe description of a parsed source. */
export function describeSource(src: ModelSource): string {
  switch (src.kind) {
    case 'gcs':
      return `gs://${src.bucket}/${src.object}`;
    case 'http':
      return redactUri(src.url.toString());
    case 'file':
      return src.path;
  }
}
