// Test helpers: a real fake-gcs-server process on loopback (built by
// scripts/fake-gcs.sh) and a small fault-injecting HTTP proxy in front of it.
// Anything that prevents the emulator from running throws: tests fail, never skip.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Storage } from '@google-cloud/storage';
import { freePort } from '../../../scripts/testkit/free-port.js';

/** Builds (once, cached outside the tree) and returns the fake-gcs-server binary path. */
export async function fakeGcsBinary(): Promise<string> {
  const script = join(repoRoot(), 'scripts', 'fake-gcs.sh');
  try {
    const { stdout } = await promisify(execFile)('bash', [script], { maxBuffer: 16 << 20 });
    const bin = stdout.trim().split('\n').pop() ?? '';
    if (!existsSync(bin)) throw new Error(`script printed "${bin}", which does not exist`);
    return bin;
  } catch (err) {
    // execFile's error message already includes the script's stderr (the go output).
    throw new Error(`cannot build fake-gcs-server via ${script}: ${(err as Error).message}`, { cause: err });
  }
}

function repoRoot(): string {
  // Works from src (ts) and dist (js): walk up to the directory holding scripts/fake-gcs.sh.
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'scripts', 'fake-gcs.sh'))) return dir;
  }
  throw new Error('scripts/fake-gcs.sh not found above ' + fileURLToPath(import.meta.url));
}

export interface FakeGcs {
  /** e.g. http://127.0.0.1:40123 (no /storage/v1). */
  url: string;
  /** A real client talking straight to the emulator (not through any proxy). */
  storage: Storage;
  createBucket(name: string): Promise<void>;
  upload(bucket: string, name: string, data: Buffer): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `host`: the address to listen on, loopback by default. Pods on the test node
 * reach the emulator only through one of the node's own addresses.
 */
export async function startFakeGcs(opts: { host?: string } = {}): Promise<FakeGcs> {
  const bin = await fakeGcsBinary();
  const host = opts.host ?? '127.0.0.1';
  const port = await freePort();
  const url = `http://${host}:${port}`;
  const args = ['-scheme', 'http', '-host', host, '-port', String(port), '-backend', 'memory'];
  const child = spawn(bin, [...args, '-public-host', `${host}:${port}`, '-log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Safety net: never leave an emulator behind if the test process exits without stop().
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`fake-gcs-server exited (${child.exitCode}): ${stderr}`);
    const ok = await fetch(`${url}/_internal/healthcheck`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`fake-gcs-server did not answer on ${url} within 15s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const storage = new Storage({ apiEndpoint: url, projectId: 'test-project', retryOptions: { autoRetry: false } });
  // The constructor uses STORAGE_EMULATOR_HOST verbatim as base URL if a test has set it.
  storage.baseUrl = `${url}/storage/v1`;
  return {
    url,
    storage,
    async createBucket(name) {
      await storage.createBucket(name);
    },
    async upload(bucket, name, data) {
      await storage.bucket(bucket).file(name).save(data, { resumable: false });
    },
    stop,
  };
}

// ---------------------------------------------------------------- fault proxy

export interface ProxiedRequest {
  method: string;
  path: string;
  media: boolean;
  status: number;
}

export interface FaultProxy {
  url: string;
  requests: ProxiedRequest[];
  mediaRequests(): number;
  /** Answer the next `n` requests (any kind) with 503. */
  fail503(n: number): void;
  /** Flip a byte in the body of the next `n` media downloads. */
  corruptMedia(n?: number): void;
  /** Cut the connection half-way through the body of the next `n` media downloads. */
  dropMediaMidBody(n?: number): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const faults = { fail503: 0, corrupt: 0, drop: 0 };
  const requests: ProxiedRequest[] = [];

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const media = /[?&]alt=media(&|$)/.test(path) || path.startsWith('/download/');
    const rec: ProxiedRequest = { method: req.method ?? 'GET', path, media, status: 0 };
    requests.push(rec);
    if (faults.fail503 > 0) {
      faults.fail503--;
      rec.status = 503;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 503, message: 'injected: service unavailable' } }));
      return;
    }
    const corrupt = media && faults.corrupt > 0 && faults.corrupt-- > 0;
    const drop = media && !corrupt && faults.drop > 0 && faults.drop-- > 0;
    const upReq = http.request(
      { host: up.hostname, port: up.port, method: req.method, path, headers: { ...req.headers, host: up.host } },
      (upRes) => {
        rec.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        const total = Number(upRes.headers['content-length'] ?? NaN);
        let sent = 0;
        let flipped = false;
        upRes.on('data', (chunk: Buffer) => {
          if (res.destroyed) return;
          if (corrupt && !flipped && chunk.length > 0) {
            chunk = Buffer.from(chunk);
            chunk[0] = (chunk[0] ?? 0) ^ 0xff; // same length, different bytes
            flipped = true;
          }
          if (drop) {
            const half = Number.isFinite(total) ? Math.floor(total / 2) : chunk.length;
            const take = Math.max(0, Math.min(chunk.length, half - sent));
            if (take > 0) res.write(chunk.subarray(0, take));
            sent += take;
            if (sent >= half) {
              upRes.destroy();
              res.socket?.destroy(); // no proper end: the client sees a cut connection
            }
            return;
          }
          res.write(chunk);
        });
        upRes.on('end', () => res.end());
        upRes.on('error', () => res.destroy());
      },
    );
    upReq.on('error', (err) => {
      rec.status = 502;
      if (!res.headersSent) res.writeHead(502).end(String(err));
      else res.destroy();
    });
    req.pipe(upReq);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    mediaRequests: () => requests.filter((r) => r.media).length,
    fail503: (n) => void (faults.fail503 = n),
    corruptMedia: (n = Infinity) => void (faults.corrupt = n),
    dropMediaMidBody: (n = 1) => void (faults.drop = n),
    reset() {
      faults.fail503 = faults.corrupt = faults.drop = 0;
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
