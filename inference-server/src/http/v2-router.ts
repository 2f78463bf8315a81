import express, { Router, type Request } from 'express';
import { ApiError, badRequest, notFound } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import { labelFor, topK } from '../model/postprocess.js';
import type { Serving } from '../runtime/serving.js';
import {
  V2_DATATYPE_OF,
  decodeInputs,
  encodeInferResponse,
  parseInferRequest,
  splitBody,
  wantsBinary,
  type DecodedInput,
  type V2ResponseOutput,
} from './v2-codec.js';

const MODEL_VERSION = '1';
const MAX_BATCH = 256;

export interface ServerInfo {
  name: string;
  version: string;
}

/** Checks a v2 input against the model: one image input, right dtype, right shape. */
function checkInput(classifier: Classifier, inputs: DecodedInput[]): { data: Float32Array | Uint8Array; shape: number[] } {
  const sig = classifier.signature;
  if (inputs.length !== 1 || inputs[0]!.header.name !== sig.inputName) {
    throw badRequest(`the model takes one input named ${sig.inputName}; got ${inputs.map((i) => i.header.name).join(', ')}`);
  }
  const { header, data } = inputs[0]!;
  const datatype = V2_DATATYPE_OF[sig.dtype];
  if (header.datatype !== datatype) throw badRequest(`input ${sig.inputName} must be ${datatype}, got ${header.datatype}`);
  const expected = classifier.inputShape(1);
  const shape = header.shape;
  const batch = shape[0] ?? 0;
  const wrong =
    shape.length !== 4 ||
    shape.slice(1).some((d, i) => d !== expected[i + 1]) ||
    batch < 1 ||
    batch > MAX_BATCH ||
    (sig.batch !== 'dynamic' && batch !== sig.batch);
  if (wrong) {
    const batchText = sig.batch === 'dynamic' ? `1..${MAX_BATCH}` : String(sig.batch);
    throw badRequest(`input ${sig.inputName} must have shape [${batchText}, ${expected.slice(1).join(', ')}], got [${shape.join(', ')}]`);
  }
  return { data, shape };
}

/** Classification extension: each row's top N as "value:index:label" (value as the output holds it, like Triton). */
function classification(values: Float32Array, batch: number, n: number, labels: readonly string[] | undefined): string[] {
  const classes = values.length / batch;
  const out: string[] = [];
  for (let b = 0; b < batch; b++) {
    const row = values.subarray(b * classes, (b + 1) * classes);
    for (const { index, score } of topK(row, n)) out.push(`${score}:${index}:${labelFor(labels, index)}`);
  }
  return out;
}

/** The Open Inference Protocol (KServe v2) REST API for the one model this server holds. */
export function v2Router(serving: Serving, info: ServerInfo, maxTensorBytes: number): Router {
  const router = Router();
  const modelName = serving.config.modelName;

  const requireModel = (req: Request): Classifier => {
    const name = req.params.name;
    const version = req.params.version;
    if (name !== modelName) throw notFound(`model ${name} is not served here; this server serves ${modelName}`);
    if (version !== undefined && version !== MODEL_VERSION) throw notFound(`model ${name} has no version ${version}; it has version ${MODEL_VERSION}`);
    return serving.requireReady();
  };

  router.get('/v2', (_req, res) => {
    res.json({ name: info.name, version: info.version, extensions: ['binary_tensor_data', 'classification'] });
  });
  router.get('/v2/health/live', (_req, res) => {
    res.json({ live: true });
  });
  router.get('/v2/health/ready', (_req, res) => {
    res.status(serving.ready ? 200 : 503).json({ ready: serving.ready });
  });
  router.get('/v2/models/:name{/versions/:version}/ready', (req, res) => {
    try {
      requireModel(req);
      res.json({ name: modelName, ready: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) res.status(503).json({ name: modelName, ready: false, error: err.message });
      else throw err;
    }
  });
  router.get('/v2/models/:name{/versions/:version}', (req, res) => {
    const classifier = requireModel(req);
    const sig = classifier.signature;
    res.json({
      name: modelName,
      versions: [MODEL_VERSION],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: sig.inputName, datatype: V2_DATATYPE_OF[sig.dtype], shape: sig.inputShape }],
      outputs: [{ name: sig.outputName, datatype: 'FP32', shape: sig.outputShape }],
      parameters: { layout: sig.layout, labels: classifier.labels?.length ?? 0 },
    });
  });

  // Any content type: the Triton client sends none. The body is bounded before it is read.
  const rawBody = express.raw({ type: () => true, limit: maxTensorBytes });
  router.post(
    '/v2/models/:name{/versions/:version}/infer',
    (req, res, next) => {
      requireModel(req);
      res.on('close', serving.admit());
      next();
    },
    rawBody,
    async (req, res) => {
      const classifier = requireModel(req);
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { json, binary } = splitBody(body, req.get('inference-header-content-length'));
      const request = parseInferRequest(json);
      const { data, shape } = checkInput(classifier, decodeInputs(request, binary));
      const sig = classifier.signature;
      const requested = request.outputs ?? [{ name: sig.outputName }];
      // Clients index the binary tail by output name (tritonclient does): a repeat would be misread silently.
      if (new Set(requested.map((o) => o.name)).size !== requested.length) {
        throw badRequest('an output is requested more than once; ask for it once per request (with or without classification)');
      }
      for (const o of requested) {
        if (o.name !== sig.outputName) throw badRequest(`the model has no output ${o.name}; its output is ${sig.outputName}`);
        const n = o.parameters?.classification;
        if (n !== undefined && (!Number.isInteger(n) || (n as number) < 1 || (n as number) > sig.classes)) {
          throw badRequest(`output ${o.name}: classification must be an integer from 1 to ${sig.classes}`);
        }
      }
      const tensor = { type: sig.dtype, data, dims: shape };
      const { outputs, timing } = await classifier.run({ [sig.inputName]: tensor }, [sig.outputName]);
      serving.metrics.queueDuration.observe(timing.queueSeconds);
      serving.metrics.inferenceDuration.observe(timing.inferenceSeconds);
      const result = outputs[sig.outputName]!;
      const values = result.data as Float32Array;
      const batch = shape[0]!;
      const encoded = requested.map((o): V2ResponseOutput => {
        const n = o.parameters?.classification as number | undefined;
        const binaryOut = wantsBinary(request, o);
        if (n !== undefined) return { name: o.name, datatype: 'BYTES', shape: [batch, n], values: classification(values, batch, n, classifier.labels), binary: binaryOut };
        return { name: o.name, datatype: 'FP32', shape: result.dims, values, binary: binaryOut };
      });
      const { body: out, headerLength } = encodeInferResponse({ model_name: modelName, model_version: MODEL_VERSION, id: request.id }, encoded);
      if (headerLength !== undefined) {
        res.set('Inference-Header-Content-Length', String(headerLength)).type('application/octet-stream');
      } else {
        res.type('application/json');
      }
      res.send(out);
    },
  );
  return router;
}
