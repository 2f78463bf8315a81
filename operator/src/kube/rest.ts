import { createHash } from 'node:crypto';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../../crds/onnxmodel-types.js';

/** A Kubernetes API error with the server's status, reason and message (the Status object). */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409;

/**
 * For the log only (every failed reconcile is retried with backoff): whether a
 * failure usually heals by itself (conflicts, throttling, server errors,
 * dropped connections) or needs someone to act.
 */
export function looksTransient(err: unknown): boolean {
  if (err instanceof KubeApiError) return err.status === 409 || err.status === 429 || err.status >= 500;
  const code = (err as { code?: string }).code;
  return typeof code === 'string' && ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN'].includes(code);
}

export interface RequestInit {
  body?: unknown;
  contentType?: string;
  /** Instead of application/json: e.g. a PartialObjectMetadataList for counting. */
  accept?: string;
  query?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/**
 * A thin JSON client over the kubeconfig's transport. The generated clients of
 * @kubernetes/client-node make server-side apply and subresource merge patches
 * awkward (content types are fixed per method); the REST calls the operator
 * needs are few, so it speaks them directly.
 */
export class KubeRest {
  private agent: { key: string; agent: Agent } | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly userAgent = 'onnx-operator',
  ) {}

  /**
   * One keep-alive agent for as long as the TLS material stays the same. The
   * kubeconfig builds a fresh agent per request, i.e. a TLS handshake per call:
   * at 200 models that was most of the operator's CPU. Credentials are still
   * applied per request, so rotated tokens and certificates are picked up.
   */
  private reuseAgent(options: RequestOptions): void {
    if (this.kc.getCurrentCluster()?.proxyUrl) return; // the kubeconfig's proxy agent stays in charge
    const material = createHash('sha256');
    for (const part of [options.ca, options.cert, options.key]) {
      // A key given as { pem, passphrase } is keyed by its PEM.
      for (const piece of part === undefined ? ['-'] : Array.isArray(part) ? part : [part])
        material.update(typeof piece === 'string' || Buffer.isBuffer(piece) ? piece : piece.pem);
      material.update('|');
    }
    material.update(String(options.rejectUnauthorized) + String(options.servername));
    const key = material.digest('hex');
    if (this.agent?.key !== key) {
      this.agent?.agent.destroy();
      this.agent = {
        key,
        agent: new Agent({
          keepAlive: true,
          maxSockets: 32,
          ca: options.ca,
          cert: options.cert,
          key: options.key,
          rejectUnauthorized: options.rejectUnauthorized,
          servername: options.servername,
        }),
      };
    }
    options.agent = this.agent.agent;
  }

  close(): void {
    this.agent?.agent.destroy();
  }

  async request<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(path, cluster.server);
    for (const [k, v] of Object.entries(init.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const payload = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
    const options: RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: {
        accept: init.accept ?? 'application/json',
        'user-agent': this.userAgent,
        ...(payload
          ? { 'content-type': init.contentType ?? 'application/json', 'content-length': String(payload.length) }
          : {}),
      },
      timeout: init.timeoutMs ?? 15_000,
    };
    await this.kc.applyToHTTPSOptions(options);
    if (url.protocol === 'https:') this.reuseAgent(options);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = text;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(body as T);
            return;
          }
          const s = (body ?? {}) as { reason?: string; message?: string };
          reject(
            new KubeApiError(
              status,
              s.reason ?? 'Unknown',
              `${method} ${url.pathname}: ${status} ${s.message ?? text.slice(0, 200)}`,
            ),
          );
        });
      });
      req.on('timeout', () => {
        // A pooled socket that stopped answering is rarely alone (a stalled proxy, a dead node):
        // drop the whole pool so the retry opens fresh connections instead of queueing on the rest.
        this.agent?.agent.destroy();
        this.agent = undefined;
        req.destroy(Object.assign(new Error(`${method} ${url.pathname}: timed out`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  get<T>(path: string, query?: Record<string, string | undefined>, timeoutMs?: number): Promise<T> {
    return this.request<T>('GET', path, { query, timeoutMs });
  }

  /** Server-side apply: the object as we want it; the API server merges and tracks our fields. */
  apply<T>(path: string, body: unknown, fieldManager: string): Promise<T> {
    return this.request<T>('PATCH', path, {
      body,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager, force: 'true' },
    });
  }

  mergePatch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: 'application/merge-patch+json' });
  }

  post<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    return this.request<T>('POST', path, { body, timeoutMs });
  }

  put<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    return this.request<T>('PUT', path, { body, timeoutMs });
  }

  delete(path: string, query?: Record<string, string | undefined>): Promise<unknown> {
    return this.request('DELETE', path, { query, body: { propagationPolicy: 'Background' } });
  }
}

/** Resource paths for the kinds the operator touches. */
export const paths = {
  onnxModels: (ns?: string) =>
    ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
  deployments: (ns?: string) => (ns ? `/apis/apps/v1/namespaces/${ns}/deployments` : '/apis/apps/v1/deployments'),
  services: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/services` : '/api/v1/services'),
  pods: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods'),
  hpas: (ns?: string) =>
    ns
      ? `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`
      : '/apis/autoscaling/v2/horizontalpodautoscalers',
  pdbs: (ns?: string) =>
    ns ? `/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets` : '/apis/policy/v1/poddisruptionbudgets',
  events: (ns: string) => `/api/v1/namespaces/${ns}/events`,
  leases: (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
};
