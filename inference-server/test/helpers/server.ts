import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';
import { loadConfig, type ServerConfig } from '../../src/config/server-config.js';
import { startServer, type RunningServer } from '../../src/server.js';

/** Log lines captured from a server under test, parsed. */
export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger: Logger;

  constructor() {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString('utf8').split('\n'))
          if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    this.logger = pino({ level: 'debug' }, sink);
  }

  get text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }
}

export interface TestServer extends RunningServer {
  config: ServerConfig;
  logs: LogCapture;
  stop(): Promise<void>;
}

/** Starts an in-process server on a free loopback port with the given environment; waits for the model. */
export async function startTestServer(env: NodeJS.ProcessEnv, { waitReady = true } = {}): Promise<TestServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', SHUTDOWN_GRACE_MS: '5000', ...env }, 2);
  const logs = new LogCapture();
  const running = await startServer(config, logs.logger, { name: 'test', version: '0.0.0' });
  if (waitReady) await running.modelReady;
  else running.modelReady.catch(() => undefined);
  // Onto the running server itself, so its getters (inFlight) stay live.
  return Object.assign(running, { config, logs, stop: () => running.shutdown('test done') });
}

/** POSTs a multipart form built from the given fields (a Buffer becomes the image_file upload). */
export async function postForm(
  url: string,
  fields: Record<string, string | Buffer>,
  init: { filename?: string; type?: string } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === 'string') form.append(name, value);
    else
      form.append(
        name,
        new Blob([value], { type: init.type ?? 'application/octet-stream' }),
        init.filename ?? 'upload.bin',
      );
  }
  const res = await fetch(url, { method: 'POST', body: form });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text so the assertion shows it
  }
  return { status: res.status, body, headers: res.headers };
}
