import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { loadOperatorConfig, type OperatorConfig } from './config.js';
import { OnnxModelController } from './controller.js';
import { KubeRest } from './kube/rest.js';
import { LeaderElector } from './leader-election.js';

async function main(): Promise<void> {
  let config: OperatorConfig;
  try {
    config = loadOperatorConfig(process.env);
  } catch (err) {
    process.stderr.write(`invalid configuration: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel, base: { service: 'onnx-operator', identity: config.identity } });
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const rest = new KubeRest(kc);
  const controller = new OnnxModelController(kc, rest, { serverImage: config.serverImage }, logger, {
    namespace: config.watchNamespace,
    workers: config.workers,
    resyncMs: config.resyncMs,
    identity: config.identity,
  });

  // Standbys are ready too (so a rollout of two replicas proceeds); the leader once its caches synced.
  let elector: LeaderElector | undefined;
  const ready = () => (elector && !elector.isLeader) || controller.synced;
  const http = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
    } else if (req.url === '/readyz') {
      res.statusCode = ready() ? 200 : 503;
      res.end(ready() ? 'ok' : 'caches not synced');
    } else if (req.url === '/metrics') {
      void controller.metrics.registry.metrics().then((text) => {
        res.setHeader('content-type', controller.metrics.registry.contentType);
        res.end(text);
      });
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => http.listen(config.port, resolve));
  logger.info(
    {
      port: (http.address() as AddressInfo).port,
      serverImage: config.serverImage,
      leaderElection: config.leaderElection,
    },
    'operator started',
  );

  const startController = () => {
    controller.metrics.leader.set(1);
    controller.start().catch((err: unknown) => {
      logger.fatal({ err: (err as Error).message }, 'controller failed to start');
      process.exit(1);
    });
  };
  if (config.leaderElection) {
    elector = new LeaderElector(
      rest,
      { namespace: config.leaseNamespace, name: config.leaseName, identity: config.identity },
      logger,
    );
    // Losing the lease mid-flight means another replica may already act: stop at once, as controller-runtime does.
    elector.run(startController, () => process.exit(1));
  } else {
    startController();
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => process.exit(1), config.shutdownGraceMs);
    await controller.stop();
    await elector?.stop();
    http.close();
    rest.close();
    clearTimeout(timer);
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
