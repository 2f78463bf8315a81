/**
 * The OnnxModel CRD against a real kube-apiserver: it installs, defaults,
 * explains itself, refuses bad specs with clear messages, prints readable
 * columns, scales, and names exactly the fields of the TypeScript contract.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import {
  eventually,
  repoRoot,
  sharedControlPlane,
  type ControlPlane,
  type KubectlResult,
} from '../../operator/test/helpers/control-plane.js';
import { API_VERSION, GROUP, KIND, PLURAL, SPEC_DEFAULTS, VERSION } from '../onnxmodel-types.js';
import { SCHEMA_FIELD_LISTS, SPEC_FIELDS, STATUS_FIELDS } from '../onnxmodel-fields.js';

const ROOT = repoRoot();
const CRD_FILE = join(ROOT, 'crds', 'onnxmodel.yaml');
const CRD_NAME = `${PLURAL}.${GROUP}`;

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

function storageSchema(): Schema {
  const crd = parse(readFileSync(CRD_FILE, 'utf8')) as {
    spec: { versions: { name: string; storage: boolean; schema: { openAPIV3Schema: Schema } }[] };
  };
  const version = crd.spec.versions.find((v) => v.storage);
  if (!version) throw new Error('no storage version');
  return version.schema.openAPIV3Schema;
}

function at(schema: Schema, path: string): Schema {
  let node = schema;
  for (const part of path.split('.').filter(Boolean)) {
    const next = node.properties?.[part];
    if (!next) throw new Error(`the CRD schema has no ${path}`);
    node = next;
  }
  return node;
}

function manifest(name: string, spec: unknown): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec });
}

function show(r: KubectlResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe('OnnxModel CRD (crds/onnxmodel.yaml)', function () {
  let cp: ControlPlane;
  let ns: string;

  const kubectlOk = async (args: string[], input?: string): Promise<string> => {
    const r = await cp.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${show(r)}`);
    return r.stdout;
  };

  before(async function () {
    this.timeout(900_000); // the first run compiles the control plane
    cp = await sharedControlPlane();
    await kubectlOk(['apply', '-f', CRD_FILE]);
    await kubectlOk(['wait', '--for=condition=Established', `crd/${CRD_NAME}`, '--timeout=60s']);
    ns = await cp.createNamespace('crd');
    // Discovery of the new kind can lag Established by a moment.
    await eventually(() => kubectlOk(['get', PLURAL, '-n', ns]), { timeoutMs: 30_000 });
  });

  it('is installed as a namespaced, established CRD with its names and subresources', async () => {
    const crd = JSON.parse(await kubectlOk(['get', 'crd', CRD_NAME, '-o', 'json'])) as {
      spec: {
        scope: string;
        names: Record<string, unknown>;
        versions: { name: string; served: boolean; storage: boolean; subresources?: Record<string, unknown> }[];
      };
      status: { conditions: { type: string; status: string }[] };
    };
    expect(crd.spec.scope).to.equal('Namespaced');
    expect(crd.spec.names).to.deep.include({
      kind: KIND,
      plural: PLURAL,
      singular: 'onnxmodel',
      shortNames: ['om'],
      categories: ['ml', 'all'],
    });
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).to.deep.equal([[VERSION, true, true]]);
    expect(crd.spec.versions[0]!.subresources).to.deep.equal({
      status: {},
      scale: {
        specReplicasPath: '.spec.replicas',
        statusReplicasPath: '.status.replicas',
        labelSelectorPath: '.status.selector',
      },
    });
    expect(crd.status.conditions.find((c) => c.type === 'Established')?.status).to.equal('True');
    expect(crd.status.conditions.find((c) => c.type === 'NonStructuralSchema')).to.equal(undefined);
  });

  it('applies config/samples/minimal.yaml and fills in the defaults', async () => {
    await kubectlOk(['apply', '-n', ns, '-f', join(ROOT, 'config', 'samples', 'minimal.yaml')]);
    const obj = JSON.parse(await kubectlOk(['get', 'onnxmodel', 'minimal', '-n', ns, '-o', 'json'])) as {
      spec: Record<string, unknown>;
    };
    expect(obj.spec).to.deep.equal({
      modelUri: 'gs://your-bucket/models/classifier.onnx',
      replicas: SPEC_DEFAULTS.replicas,
      resources: SPEC_DEFAULTS.resources,
      service: SPEC_DEFAULTS.service,
    });
    expect(obj.spec).to.deep.include({ replicas: 1, service: { type: 'LoadBalancer', port: 80 } });
  });

  it('defaults autoscaling and keeps the fields a user set', async () => {
    const out = await kubectlOk(
      ['create', '-n', ns, '-o', 'json', '-f', '-'],
      manifest('auto', {
        modelUri: 'https://models.example.com/resnet50.onnx',
        autoscaling: { maxReplicas: 4 },
        resources: { requests: { cpu: '500m' } },
        service: { type: 'ClusterIP' },
      }),
    );
    const { spec } = JSON.parse(out) as { spec: { autoscaling: unknown; resources: unknown; service: unknown } };
    expect(spec.autoscaling).to.deep.equal({
      minReplicas: 1,
      maxReplicas: 4,
      targetCPUUtilizationPercentage: SPEC_DEFAULTS.targetCPUUtilizationPercentage,
    });
    expect(spec.resources).to.deep.equal({
      requests: { cpu: '500m', memory: '1Gi' },
      limits: SPEC_DEFAULTS.resources.limits,
    });
    expect(spec.service).to.deep.equal({ type: 'ClusterIP', port: 80 });
  });

  it('accepts every sample in config/samples (kustomization)', async () => {
    const out = await kubectlOk(['apply', '--dry-run=server', '-n', ns, '-k', join(ROOT, 'config', 'samples')]);
    expect(out).to.match(/onnxmodel\.serving\.onnxoperator\.dev\/minimal .*server dry run/);
    expect(out).to.match(/onnxmodel\.serving\.onnxoperator\.dev\/resnet50 .*server dry run/);
  });

  it('accepts a spec that uses every field', async () => {
    const r = await cp.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], {
      input: manifest('everything', {
        modelUri: 'gs://my-bucket/resnet50/model.onnx',
        labelsUri: 'file:///models/labels.txt',
        replicas: 0,
        resources: { requests: { cpu: 2, memory: '2Gi' }, limits: { cpu: '2', memory: '4Gi' } },
        image: 'ghcr.io/example/onnx-inference-server:0.1.0',
        preprocessing: {
          resizeMode: 'letterbox',
          channelOrder: 'BGR',
          layout: 'NCHW',
          normalization: 'custom',
          scale: 1,
          mean: [123.68, 116.78, 103.94],
          std: [58.4, 57.1, 57.4],
          padColor: [114, 114, 114],
          softmax: 'never',
          inputSize: '320x240',
          outputName: 'logits',
        },
        batching: { maxBatchSize: 16, maxQueueDelayMs: 2 },
        sessions: 2,
        admission: { maxInFlight: 64, maxQueueMs: 0 },
        service: { type: 'NodePort', port: 8080, annotations: { 'networking.gke.io/load-balancer-type': 'Internal' } },
        autoscaling: { minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 },
        podDisruptionBudget: { minAvailable: '50%' },
        serviceAccountName: 'model-reader',
        env: [
          { name: 'LOG_LEVEL', value: 'debug' },
          { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        ],
        nodeSelector: { 'cloud.google.com/gke-nodepool': 'inference' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'inference', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
      }),
    });
    expect(r.code, show(r)).to.equal(0);
    expect(r.stdout).to.contain('server dry run');
  });

  it('explains its fields (kubectl explain)', async function () {
    this.timeout(120_000);
    // The OpenAPI document that kubectl explain reads is published a little after Established.
    const out = await eventually(() => kubectlOk(['explain', 'onnxmodel.spec.preprocessing.resizeMode']), {
      timeoutMs: 60_000,
      intervalMs: 1000,
    });
    expect(out).to.contain('FIELD: resizeMode <string>');
    expect(out).to.match(/How the image is resized to the model's input size/);
    for (const mode of ['stretch', 'center-crop', 'letterbox']) expect(out).to.contain(mode);
    expect(out).to.contain('(default)');
    const uri = await kubectlOk(['explain', 'om.spec.modelUri']);
    expect(uri).to.contain('gs://BUCKET/OBJECT');
  });

  describe('refuses invalid specs with a clear message', () => {
    const cases: { title: string; spec: Record<string, unknown>; expect: (string | RegExp)[] }[] = [
      { title: 'missing modelUri', spec: { replicas: 1 }, expect: ['spec.modelUri: Required value'] },
      {
        title: 's3:// modelUri',
        spec: { modelUri: 's3://bucket/model.onnx' },
        expect: [
          'spec.modelUri: Invalid value: "s3://bucket/model.onnx"',
          'modelUri must be a gs://BUCKET/OBJECT, https://HOST/PATH or file:///PATH URI',
        ],
      },
      {
        title: 'plain http:// modelUri',
        spec: { modelUri: 'http://example.com/model.onnx' },
        expect: ['modelUri must be a gs://BUCKET/OBJECT'],
      },
      {
        title: 'a gs:// URI naming a bucket, not an object',
        spec: { modelUri: 'gs://bucket/' },
        expect: ['spec.modelUri in body should match'],
      },
      {
        title: 'an s3:// labelsUri',
        spec: { modelUri: 'gs://b-1/m.onnx', labelsUri: 's3://b/l.txt' },
        expect: ['labelsUri must be a gs://BUCKET/OBJECT'],
      },
      {
        title: 'replicas -1',
        spec: { modelUri: 'gs://bucket/model.onnx', replicas: -1 },
        expect: ['spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0'],
      },
      {
        title: 'autoscaling minReplicas > maxReplicas',
        spec: { modelUri: 'gs://bucket/model.onnx', autoscaling: { minReplicas: 5, maxReplicas: 2 } },
        expect: [
          'spec.autoscaling.minReplicas: Invalid value: ' +
            'autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas',
        ],
      },
      {
        title: 'autoscaling without maxReplicas',
        spec: { modelUri: 'gs://bucket/model.onnx', autoscaling: { minReplicas: 2 } },
        expect: ['spec.autoscaling.maxReplicas: Required value'],
      },
      {
        title: 'a mean with 2 elements',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { mean: [0.5, 0.5] } },
        expect: [
          'spec.preprocessing.mean: Invalid value: 2: spec.preprocessing.mean in body should have at least 3 items',
        ],
      },
      {
        title: 'an unknown resizeMode',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { resizeMode: 'fill' } },
        expect: [
          'spec.preprocessing.resizeMode: Unsupported value: "fill": ' +
            'supported values: "stretch", "center-crop", "letterbox"',
        ],
      },
      {
        title: 'a zero std',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { std: [1, 0, 1] } },
        expect: [
          'spec.preprocessing.std[1]: Invalid value: 0: spec.preprocessing.std[1] in body should be greater than 0',
        ],
      },
      {
        title: 'a padColor out of 0-255',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { padColor: [0, 0, 256] } },
        expect: ['spec.preprocessing.padColor[2]'],
      },
      {
        title: 'mean with a normalization other than custom',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { normalization: 'imagenet', mean: [1, 2, 3] } },
        expect: ['scale, mean and std only apply with normalization: custom'],
      },
      {
        title: 'an inputSize side over 8192',
        spec: { modelUri: 'gs://bucket/model.onnx', preprocessing: { inputSize: '9000x224' } },
        expect: ['each side of inputSize must be between 1 and 8192 pixels'],
      },
      {
        title: 'a CPU request above the limit',
        spec: { modelUri: 'gs://bucket/model.onnx', resources: { requests: { cpu: '3' }, limits: { cpu: '2500m' } } },
        expect: [
          'spec.resources.requests.cpu: Invalid value: ' +
            'resources.requests.cpu (3) must be less than or equal to resources.limits.cpu (2500m)',
        ],
      },
      {
        title: 'a memory limit below the default request',
        spec: { modelUri: 'gs://bucket/model.onnx', resources: { limits: { memory: '512Mi' } } },
        expect: ['resources.requests.memory (1Gi) must be less than or equal to resources.limits.memory (512Mi)'],
      },
      {
        title: 'a malformed quantity',
        spec: { modelUri: 'gs://bucket/model.onnx', resources: { requests: { memory: '1GB' } } },
        expect: ['spec.resources.requests.memory in body should match'],
      },
      {
        title: 'a service port of 0',
        spec: { modelUri: 'gs://bucket/model.onnx', service: { port: 0 } },
        expect: ['spec.service.port'],
      },
      {
        title: 'a batch size of 0',
        spec: { modelUri: 'gs://bucket/model.onnx', batching: { maxBatchSize: 0 } },
        expect: ['spec.batching.maxBatchSize'],
      },
      {
        title: 'sessions 0',
        spec: { modelUri: 'gs://bucket/model.onnx', sessions: 0 },
        expect: ['spec.sessions: Invalid value: 0: spec.sessions in body should be greater than or equal to 1'],
      },
      {
        title: 'sessions 17',
        spec: { modelUri: 'gs://bucket/model.onnx', sessions: 17 },
        expect: ['spec.sessions: Invalid value: 17: spec.sessions in body should be less than or equal to 16'],
      },
      {
        title: 'a fractional sessions',
        spec: { modelUri: 'gs://bucket/model.onnx', sessions: 1.5 },
        expect: ['spec.sessions'],
      },
      {
        title: 'admission maxInFlight 0',
        spec: { modelUri: 'gs://bucket/model.onnx', admission: { maxInFlight: 0 } },
        expect: [
          'spec.admission.maxInFlight: Invalid value: 0: ' +
            'spec.admission.maxInFlight in body should be greater than or equal to 1',
        ],
      },
      {
        title: 'admission maxQueueMs -1',
        spec: { modelUri: 'gs://bucket/model.onnx', admission: { maxQueueMs: -1 } },
        expect: [
          'spec.admission.maxQueueMs: Invalid value: -1: ' +
            'spec.admission.maxQueueMs in body should be greater than or equal to 0',
        ],
      },
      {
        title: 'admission maxQueueMs 600001',
        spec: { modelUri: 'gs://bucket/model.onnx', admission: { maxQueueMs: 600001 } },
        expect: [
          'spec.admission.maxQueueMs: Invalid value: 600001: ' +
            'spec.admission.maxQueueMs in body should be less than or equal to 600000',
        ],
      },
      {
        title: 'a fractional admission maxInFlight',
        spec: { modelUri: 'gs://bucket/model.onnx', admission: { maxInFlight: 2.5 } },
        expect: ['spec.admission.maxInFlight'],
      },
      {
        title: 'a PDB minAvailable that is neither a number nor a percentage',
        spec: { modelUri: 'gs://bucket/model.onnx', podDisruptionBudget: { minAvailable: 'half' } },
        expect: ['spec.podDisruptionBudget.minAvailable'],
      },
      {
        title: 'a serviceAccountName that is not a DNS-1123 name',
        spec: { modelUri: 'gs://bucket/model.onnx', serviceAccountName: 'Model_Reader' },
        expect: ['spec.serviceAccountName in body should match'],
      },
      {
        title: 'an env entry without a name',
        spec: { modelUri: 'gs://bucket/model.onnx', env: [{ value: 'x' }] },
        expect: ['spec.env[0].name: Required value'],
      },
      {
        title: 'an unknown field',
        spec: { modelUri: 'gs://bucket/model.onnx', replica: 2 },
        expect: ['unknown field "spec.replica"'],
      },
    ];
    for (const c of cases) {
      it(c.title, async () => {
        const r = await cp.kubectl(['apply', '-n', ns, '-f', '-'], { input: manifest('invalid', c.spec) });
        expect(r.code, show(r)).to.not.equal(0);
        for (const e of c.expect) {
          if (typeof e === 'string') expect(r.stderr, show(r)).to.contain(e);
          else expect(r.stderr, show(r)).to.match(e);
        }
      });
    }

    it('a name that cannot name a Service', async () => {
      const r = await cp.kubectl(['apply', '-n', ns, '-f', '-'], {
        input: manifest('1-model', { modelUri: 'gs://bucket/model.onnx' }),
      });
      expect(r.code, show(r)).to.not.equal(0);
      expect(r.stderr).to.contain('metadata.name must be a DNS-1035 label');
    });

    it('and stored none of them', async () => {
      const r = await cp.kubectl(['get', 'onnxmodel', 'invalid', '1-model', '-n', ns, '--ignore-not-found']);
      expect(r.code, show(r)).to.equal(0);
      expect(r.stdout.trim()).to.equal('');
    });
  });

  it('prints readable columns for kubectl get onnxmodels / om', async () => {
    for (const resource of ['onnxmodels', 'om', 'onnxmodel.serving.onnxoperator.dev']) {
      const out = await kubectlOk(['get', resource, '-n', ns]);
      const [header, ...rows] = out.trimEnd().split('\n');
      expect(header!.trim().split(/\s+/), resource).to.deep.equal([
        'NAME',
        'MODEL',
        'DESIRED',
        'READY',
        'STATUS',
        'ADDRESS',
        'AGE',
      ]);
      const minimal = rows.find((r) => r.startsWith('minimal '));
      expect(minimal, out).to.match(/^minimal\s+gs:\/\/your-bucket\/models\/classifier\.onnx\s+1\s+\S+$/);
    }
    const wide = await kubectlOk(['get', 'om', '-n', ns, '-o', 'wide']);
    expect(wide.split('\n')[0]!.trim().split(/\s+/)).to.deep.equal([
      'NAME',
      'MODEL',
      'DESIRED',
      'READY',
      'STATUS',
      'ADDRESS',
      'URL',
      'AGE',
    ]);
    // The categories put models in `kubectl get ml` and `kubectl get all`.
    expect(await kubectlOk(['get', 'ml', '-n', ns, '-o', 'name'])).to.contain(
      'onnxmodel.serving.onnxoperator.dev/minimal',
    );
    expect(await kubectlOk(['get', 'all', '-n', ns, '-o', 'name'])).to.contain(
      'onnxmodel.serving.onnxoperator.dev/minimal',
    );
  });

  it('shows Ready and Address from status in the columns', async () => {
    await kubectlOk(
      ['apply', '-n', ns, '-f', '-'],
      manifest('columns', { modelUri: 'gs://bucket/model.onnx', replicas: 2 }),
    );
    const status = {
      status: {
        observedGeneration: 1,
        replicas: 2,
        readyReplicas: 2,
        selector: `${GROUP}/model=columns`,
        address: '203.0.113.7',
        url: 'http://203.0.113.7/predict/image',
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'ModelServed',
            message: '',
            lastTransitionTime: '2026-01-01T00:00:00Z',
            observedGeneration: 1,
          },
        ],
      },
    };
    await kubectlOk([
      'patch',
      'onnxmodel',
      'columns',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify(status),
    ]);
    const out = await kubectlOk(['get', 'om', 'columns', '-n', ns, '--no-headers']);
    expect(out.trim().split(/\s+/).slice(0, 6)).to.deep.equal([
      'columns',
      'gs://bucket/model.onnx',
      '2',
      '2',
      'True',
      '203.0.113.7',
    ]);
    const bad = await cp.kubectl([
      'patch',
      'onnxmodel',
      'columns',
      '-n',
      ns,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          conditions: [
            { type: 'Ready', status: 'Maybe', reason: 'X', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
          ],
        },
      }),
    ]);
    expect(bad.code, show(bad)).to.not.equal(0);
    expect(bad.stderr).to.contain('Unsupported value: "Maybe"');
  });

  it('has a scale subresource: kubectl scale sets spec.replicas', async () => {
    await kubectlOk(['apply', '-n', ns, '-f', '-'], manifest('scaled', { modelUri: 'gs://bucket/model.onnx' }));
    await kubectlOk(['scale', 'onnxmodel/scaled', '-n', ns, '--replicas=3']);
    const replicas = await kubectlOk(['get', 'onnxmodel', 'scaled', '-n', ns, '-o', 'jsonpath={.spec.replicas}']);
    expect(replicas).to.equal('3');
    const scale = JSON.parse(
      await kubectlOk(['get', '--raw', `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}/scaled/scale`]),
    ) as { kind: string; spec: { replicas: number } };
    expect(scale).to.deep.include({ kind: 'Scale', spec: { replicas: 3 } });
  });

  describe('schema vs the TypeScript contract (crds/onnxmodel-types.ts)', () => {
    const schema = storageSchema();
    const spec = at(schema, 'spec');

    for (const { path, fields } of SCHEMA_FIELD_LISTS) {
      it(`spec${path ? '.' + path : ''} has exactly the fields of the type`, () => {
        const props = Object.keys(at(spec, path).properties ?? {});
        expect([...props].sort()).to.deep.equal([...fields].sort());
      });
    }

    it('status has exactly the fields of OnnxModelStatus', () => {
      expect(Object.keys(at(schema, 'status').properties ?? {}).sort()).to.deep.equal([...STATUS_FIELDS].sort());
    });

    it('requires exactly the fields the type requires', () => {
      expect((spec as { required?: string[] }).required).to.deep.equal(['modelUri']);
      expect((at(spec, 'autoscaling') as { required?: string[] }).required).to.deep.equal(['maxReplicas']);
      expect((at(spec, 'podDisruptionBudget') as { required?: string[] }).required).to.deep.equal(['minAvailable']);
      expect(SPEC_FIELDS).to.include('modelUri');
    });

    it('describes every field', () => {
      const missing: string[] = [];
      const walk = (node: Schema, path: string) => {
        if (path && path !== 'metadata' && !node.description) missing.push(path);
        for (const [name, child] of Object.entries(node.properties ?? {})) walk(child, path ? `${path}.${name}` : name);
        // Objects in lists are described too (kubectl explain shows them); scalar items and map values are not fields.
        if (node.items?.type === 'object') walk(node.items, `${path}[]`);
      };
      walk(schema, '');
      expect(missing, 'fields without a description').to.deep.equal([]);
    });
  });
});
