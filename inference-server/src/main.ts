import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pino } from 'pino';
import sharp from 'sharp';
import { EXIT_CODE, writeTerminationMessage } from '../../crds/exit-status.js';
import { DEFAULT_MODEL_PATH, DEFAULT_SAMPLE_IMAGE, loadConfig, type ServerConfig } from './config/server-config.js';
import { effectiveCpus } from './runtime/cpu-limit.js';
import { startServer } from './server.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function curlLine(config: ServerConfig, url: string): string {
  const image =
    config.modelUri === DEFAULT_MODEL_PATH ? relative(process.cwd(), DEFAULT_SAMPLE_IMAGE) : 'YOUR_IMAGE.jpg';
  return `curl -F image_file=@${image} ${url.replace('127.0.0.1', 'localhost')}/predict/image`;
}

async function main(): Promise<void> {
  let config: ServerConfig;
  const cpus = effectiveCpus();
  try {
    config = loadConfig(process.env, cpus);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    writeTerminationMessage(`invalid configuration: ${(err as Error).message}`);
    process.exit(EXIT_CODE.invalidConfig);
  }
  // libvips sizes its pool from the host's cores, like onnxruntime: hold it to the pod's CPU limit.
  sharp.concurrency(cpus);
  const logger = pino({ level: config.logLevel, base: { service: 'inference-server', model: config.modelName } });
  const running = await startServer(config, logger, { name: 'onnx-operator-inference-server', version: pkg.version });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_CODE.crashed);
    }
    void running.shutdown(signal).then(() => process.exit(EXIT_CODE.stopped));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await running.modelReady;
    logger.info({ curl: curlLine(config, running.url) }, `try it: ${curlLine(config, running.url)}`);
  } catch (err) {
    // Exiting lets Kubernetes restart the pod with back-off (and retry the download), visibly.
    const message = `model failed to load: ${(err as Error).message}`;
    logger.fatal(
      { err: { message: (err as Error).message }, modelUri: config.modelUri.replace(/\?.*$/, '?…') },
      message,
    );
    writeTerminationMessage(message);
    await running.shutdown('model failed to load');
    process.exit(EXIT_CODE.modelLoadFailed);
  }
}

void main();
