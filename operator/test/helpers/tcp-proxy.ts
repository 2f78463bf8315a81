/**
 * A plain TCP pipe in front of the API server that a test can cut: TLS goes
 * through untouched (the serving certificate names 127.0.0.1), so a kubeconfig
 * pointing at the proxy works as is. `cut()` destroys every open connection,
 * which is what a client sees when a load balancer or the API server drops its
 * watches; `refuse()` makes new connections fail too, until `accept()`.
 * `stall()` is the nastier failure: the open connections go silent (nothing
 * forwarded, nothing closed, as behind a NAT or load balancer that forgot
 * them) while new connections work.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { parse, stringify } from 'yaml';

export interface TcpProxy {
  /** e.g. https://127.0.0.1:41234 (the scheme of the upstream). */
  url: string;
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Destroys every open connection (both sides); returns how many there were. */
  cut(): number;
  /** From now on, new connections are closed at once (an outage). */
  refuse(): void;
  /** Ends an outage begun with refuse(). */
  accept(): void;
  /** The open connections stop forwarding in both directions without closing; returns how many. New ones work. */
  stall(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(upstream: string): Promise<TcpProxy> {
  const target = new URL(upstream);
  const targetPort = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  const pairs = new Set<[net.Socket, net.Socket]>();
  let accepted = 0;
  let refusing = false;

  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    accepted++;
    const up = net.connect(targetPort, target.hostname);
    const pair: [net.Socket, net.Socket] = [client, up];
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;

  const cut = () => {
    const n = pairs.size;
    for (const [a, b] of [...pairs]) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
    return n;
  };
  return {
    url: `${target.protocol}//127.0.0.1:${port}`,
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    cut,
    stall() {
      let n = 0;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
        n++;
      }
      return n;
    },
    refuse: () => void (refusing = true),
    accept: () => void (refusing = false),
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}

/** The API server URL of a kubeconfig's current cluster. */
export function kubeconfigServer(kubeconfigPath: string): string {
  const kc = parse(readFileSync(kubeconfigPath, 'utf8')) as Kubeconfig;
  return currentCluster(kc).cluster.server;
}

/** Writes a copy of a kubeconfig whose current cluster's server is `server` (e.g. a proxy's URL). */
export function writeKubeconfigCopy(kubeconfigPath: string, server: string, outPath: string): string {
  const kc = parse(readFileSync(kubeconfigPath, 'utf8')) as Kubeconfig;
  currentCluster(kc).cluster.server = server;
  writeFileSync(outPath, stringify(kc), { mode: 0o600 });
  return outPath;
}

interface Kubeconfig {
  'current-context'?: string;
  contexts: { name: string; context: { cluster: string } }[];
  clusters: { name: string; cluster: { server: string } }[];
}

function currentCluster(kc: Kubeconfig): Kubeconfig['clusters'][number] {
  const ctx = kc.contexts.find((c) => c.name === kc['current-context']) ?? kc.contexts[0];
  const cluster = kc.clusters.find((c) => c.name === ctx?.context.cluster) ?? kc.clusters[0];
  if (!cluster) throw new Error('the kubeconfig names no cluster');
  return cluster;
}
