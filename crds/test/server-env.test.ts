/**
 * The server's environment is one contract (crds/server-env.ts): the operator
 * writes only variables it names, the server's loader takes every default from
 * it, and the README's table is generated from it (scripts/config-docs.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../inference-server/src/config/server-config.js';
import { desiredObjects, serverEnv } from '../../operator/src/desired-state.js';
import { CONFIG_SECTION, renderConfigTable } from '../../scripts/config-docs.js';
import { repoRoot } from '../../scripts/crd-docs.js';
import { checkSection } from '../../scripts/readme-section.js';
import { API_VERSION, KIND, type OnnxModel } from '../onnxmodel-types.js';
import { PREPROCESSING_ENV } from '../preprocessing.js';
import { SERVER_ENV, type ServerEnvKey } from '../server-env.js';

const model = (spec: Partial<OnnxModel['spec']> = {}): OnnxModel => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'resnet', namespace: 'ml', uid: 'u1', generation: 1 },
  spec: {
    modelUri: 'gs://b/resnet.onnx',
    batching: { maxBatchSize: 4, maxQueueDelayMs: 2 },
    sessions: 2,
    admission: { maxInFlight: 32, maxQueueMs: 0 },
    preprocessing: { inputSize: '320x240', resizeMode: 'letterbox', mean: [1, 2, 3] },
    ...spec,
  },
});

describe('the server environment contract (crds/server-env.ts)', () => {
  const names = new Set<string>([...Object.values(SERVER_ENV).map((v) => v.name), ...Object.values(PREPROCESSING_ENV)]);

  it('names each variable once', () => {
    const all = [...Object.values(SERVER_ENV).map((v) => v.name), ...Object.values(PREPROCESSING_ENV)];
    expect(new Set(all).size).to.equal(all.length);
  });

  it('the operator writes only variables the contract names, and the server reads them back as the spec said', () => {
    const env = serverEnv(model());
    for (const { name } of env) expect(names.has(name), `${name} is not in crds/server-env.ts`).to.equal(true);
    const config = loadConfig(Object.fromEntries(env.map((e) => [e.name, e.value])), 2);
    expect(config).to.include({
      modelUri: 'gs://b/resnet.onnx',
      modelName: 'resnet',
      maxBatchSize: 4,
      maxQueueDelayMs: 2,
      sessions: 2,
      maxInFlight: 32,
      maxQueueMs: 0,
    });
    expect(config.inputSize).to.deep.equal({ width: 320, height: 240 });
    expect(config.preprocessing).to.include({ resizeMode: 'letterbox', normalization: 'custom' });
    const container = desiredObjects(model(), { serverImage: 'img' }).deployment.spec!.template.spec!.containers[0]!;
    expect(container.env).to.deep.equal(env);
  });

  it("gives the server's loader every default it uses", () => {
    const ctx = { cpus: 2, sessions: 1 };
    const config = loadConfig({}, 2) as unknown as Record<string, unknown>;
    for (const key of Object.keys(SERVER_ENV) as ServerEnvKey[]) {
      const fallback = SERVER_ENV[key].read({}, ctx);
      // Left to the server (documented as such): the bundled model, its name, the emulator.
      if (
        fallback === undefined &&
        [
          'modelUri',
          'modelName',
          'storageEmulatorHost',
          'labelsUri',
          'inputSize',
          'outputName',
          'maxInFlight',
        ].includes(key)
      )
        continue;
      expect(config[key], key).to.deep.equal(fallback);
    }
    expect(loadConfig({}, 4).threads).to.equal(4);
    expect(loadConfig({ SESSIONS: '2' }, 4).threads).to.equal(2);
  });

  it('writes what it reads: every value written for a variable reads back the same', () => {
    const ctx = { cpus: 2, sessions: 1 };
    const samples: Partial<Record<ServerEnvKey, unknown>> = {
      port: 9000,
      maxQueueMs: 'auto',
      maxQueueBytes: 2 ** 21,
      maxInFlight: 7,
      inputSize: { width: 320, height: 240 },
      logLevel: 'debug',
    };
    for (const [key, value] of Object.entries(samples) as [ServerEnvKey, unknown][]) {
      const v = SERVER_ENV[key] as unknown as {
        name: string;
        read(env: object, c: typeof ctx): unknown;
        write(x: unknown): string;
      };
      expect(v.read({ [v.name]: v.write(value) }, ctx), key).to.deep.equal(value);
    }
  });

  it('README.md holds exactly the table generated from it', () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const result = checkSection(readme, renderConfigTable(), CONFIG_SECTION);
    expect(result.ok, result.message).to.equal(true);
    for (const name of names) expect(renderConfigTable(), name).to.contain(`| \`${name}\` |`);
  });
});
