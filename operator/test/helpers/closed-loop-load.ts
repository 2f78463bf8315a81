/**
 * A closed-loop load generator like the clients users bring (Locust users that
 * never back off, a script in a loop): each worker sends the next request as
 * soon as the last one is answered, over keep-alive connections, and never
 * retries. Every answer that is not a 200 with an accepted label counts as a
 * failure, with what it was. It stops when told to, or after `maxDurationMs`.
 */
import { Agent, request } from 'node:http';

export interface LoadOptions {
  /** e.g. http://10.0.0.12/predict/image */
  url: string;
  /** The photo, sent as the seed's multipart field image_file. */
  image: Buffer;
  filename: string;
  /** Concurrent workers (each one connection at a time). */
  concurrency: number;
  /** True when the JSON answer is right (e.g. its Label is one the photo may get). */
  accept: (body: unknown) => boolean;
  /** Per request (default 60 s, the server's own deadline). */
  timeoutMs?: number;
  /** The generator stops itself after this long (default 15 min). */
  maxDurationMs?: number;
}

export interface Failure {
  phase: string;
  /** Milliseconds since start. */
  atMs: number;
  /** The HTTP status, or the socket error's code. */
  what: string;
  detail: string;
}

export interface LoadReport {
  ok: number;
  failures: Failure[];
  /** Answers per phase, in the order the phases began. */
  phases: { name: string; ok: number; failed: number }[];
  durationMs: number;
}

export class ClosedLoopLoad {
  private readonly agent: Agent;
  private readonly body: Buffer;
  private readonly contentType: string;
  private running = false;
  private workers: Promise<void>[] = [];
  private started = 0;
  private current = { name: 'start', ok: 0, failed: 0 };
  private readonly phases = [this.current];
  private readonly failures: Failure[] = [];
  private ok = 0;
  private stopTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LoadOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
    const boundary = `----closed-loop-${Date.now().toString(36)}`;
    this.contentType = `multipart/form-data; boundary=${boundary}`;
    this.body = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="image_file"; filename="${opts.filename}"\r\n` +
          'Content-Type: image/jpeg\r\n\r\n',
      ),
      opts.image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
  }

  start(): void {
    this.running = true;
    this.started = Date.now();
    this.workers = Array.from({ length: this.opts.concurrency }, () => this.worker());
    this.stopTimer = setTimeout(() => (this.running = false), this.opts.maxDurationMs ?? 15 * 60_000);
  }

  /** Names what happens from now on (failures and counts are filed under it). */
  phase(name: string): void {
    this.current = { name, ok: 0, failed: 0 };
    this.phases.push(this.current);
  }

  /** Right answers so far in the current phase. */
  get okInPhase(): number {
    return this.current.ok;
  }

  async stop(): Promise<LoadReport> {
    this.running = false;
    clearTimeout(this.stopTimer);
    await Promise.all(this.workers);
    this.agent.destroy();
    return {
      ok: this.ok,
      failures: this.failures,
      phases: this.phases.map((p) => ({ ...p })),
      durationMs: Date.now() - this.started,
    };
  }

  private async worker(): Promise<void> {
    while (this.running) {
      const phase = this.current;
      const failure = await this.once();
      if (failure === undefined) {
        this.ok++;
        phase.ok++;
      } else {
        phase.failed++;
        this.failures.push({ phase: phase.name, atMs: Date.now() - this.started, ...failure });
        // A refused connection fails at once: do not spin on it.
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private once(): Promise<{ what: string; detail: string } | undefined> {
    return new Promise((resolve) => {
      const req = request(
        this.opts.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': this.contentType, 'content-length': this.body.length },
          timeout: this.opts.timeoutMs ?? 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err: NodeJS.ErrnoException) => resolve({ what: err.code ?? 'error', detail: err.message }));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) return resolve({ what: String(res.statusCode), detail: text.slice(0, 300) });
            try {
              const body: unknown = JSON.parse(text);
              resolve(this.opts.accept(body) ? undefined : { what: 'wrong answer', detail: text.slice(0, 300) });
            } catch {
              resolve({ what: 'not JSON', detail: text.slice(0, 300) });
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ what: err.code ?? 'error', detail: err.message }));
      req.end(this.body);
    });
  }
}
