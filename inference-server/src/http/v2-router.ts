import { Router, type Request } from 'express';
import { InvalidRequest, NotReady, notFound } from '../errors.js';
import type { Classifier } from '../model/classifier.js';
import { labelFor, topK } from '../model/postprocess.js';
import type { DataPlane } from '../runtime/data-plane.js';
import { V2_INFER_ROUTE } from './admission-gate.js';
import { inferenceContext } from './request-context.js';
import { readBody, type UploadLimits } from './upload.js';
import { V2_DATATYPE_OF, encodeInferResponse, wantsBinary, type V2ResponseOutput } from './v2-codec.js';
import type { V2Decoder } from './v2-decoder.js';

const MODEL_VERSION = '1';

export interface ServerInfo {
  name: string;
  version: string;
}

/** Classification extension: each row's top N as "value:index:label" (value as the output holds it, like Triton). */
function classification(
  values: Float32Array,
  batch: number,
  n: number,
  labels: readonly string[] | undefined,
): string[] {
  const classes = values.length / batch;
  const out: string[] = [];
  for (let b = 0; b < batch; b++) {
    const row = values.subarray(b * classes, (b + 1) * classes);
    for (const { index, score } of topK(row, n)) out.push(`${score}:${index}:${labelFor(labels, index)}`);
  }
  return out;
}

/** The Open Inference Protocol (KServe v2) REST API for the one model this server holds. */
export function v2Router(
  dataPlane: DataPlane,
  info: ServerInfo,
  limits: Omit<UploadLimits, 'memoryFull'>,
  decoder: V2Decoder,
): Router {
  const router = Router();
  const modelName = dataPlane.config.modelName;
  const uploadLimits: UploadLimits = { ...limits, memoryFull: () => dataPlane.memoryFull() };

  const requireModel = (req: Request): Classifier => {
    // Express 5 types a parameter as string | string[] (for wildcards); these are plain segments.
    const name = String(req.params.name);
    const version = req.params.version === undefined ? undefined : String(req.params.version);
    if (name !== modelName) throw notFound(`model ${name} is not served here; this server serves ${modelName}`);
    if (version !== undefined && version !== MODEL_VERSION)
      throw notFound(`model ${name} has no version ${version}; it has version ${MODEL_VERSION}`);
    return dataPlane.requireReady().classifier;
  };

  router.get('/v2', (_req, res) => {
    res.json({ name: info.name, version: info.version, extensions: ['binary_tensor_data', 'classification'] });
  });
  router.get('/v2/health/live', (_req, res) => {
    res.json({ live: true });
  });
  router.get('/v2/health/ready', (_req, res) => {
    res.status(dataPlane.ready ? 200 : 503).json({ ready: dataPlane.ready });
  });
  router.get('/v2/models/:name{/versions/:version}/ready', (req, res) => {
    try {
      requireModel(req);
      res.json({ name: modelName, ready: true });
    } catch (err) {
      if (err instanceof NotReady) res.status(503).json({ name: modelName, ready: false, error: err.message });
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

  // Any content type: the Triton client sends none. The body is bounded while it is read.
  router.post(V2_INFER_ROUTE, async (req, res) => {
    const classifier = requireModel(req);
    const context = inferenceContext(dataPlane, res);
    const body = await readBody(req, uploadLimits, context.reservation);
    const bodyHeaderLength = req.get('inference-header-content-length');
    // What parsing a large JSON part holds counts against the memory bound like the body itself.
    if (!context.reservation.grow(decoder.reserveBytes(body, bodyHeaderLength))) throw dataPlane.memoryFull();
    const { request, inputs } = await decoder.decode(body, bodyHeaderLength);
    const sig = classifier.signature;
    if (inputs.length !== 1)
      throw new InvalidRequest(
        `the model takes one input named ${sig.inputName}; got ${inputs.map((i) => i.header.name).join(', ')}`,
      );
    const { header, data } = inputs[0]!;
    const datatype = V2_DATATYPE_OF[sig.dtype];
    if (header.datatype !== datatype && header.name === sig.inputName)
      throw new InvalidRequest(`input ${sig.inputName} must be ${datatype}, got ${header.datatype}`);
    const requested = request.outputs ?? [{ name: sig.outputName }];
    // Clients index the binary tail by output name (tritonclient does): a repeat would be misread silently.
    if (new Set(requested.map((o) => o.name)).size !== requested.length) {
      throw new InvalidRequest(
        'an output is requested more than once; ask for it once per request (with or without classification)',
      );
    }
    for (const o of requested) {
      if (o.name !== sig.outputName)
        throw new InvalidRequest(`the model has no output ${o.name}; its output is ${sig.outputName}`);
      const n = o.parameters?.classification;
      if (n !== undefined && (!Number.isInteger(n) || (n as number) < 1 || (n as number) > sig.classes)) {
        throw new InvalidRequest(`output ${o.name}: classification must be an integer from 1 to ${sig.classes}`);
      }
    }
    const { scores: values, dims } = await dataPlane.inferTensor({
      ...context,
      inputName: header.name,
      data,
      shape: header.shape,
    });
    const batch = dims[0]!;
    const encoded = requested.map((o): V2ResponseOutput => {
      const n = o.parameters?.classification as number | undefined;
      const binaryOut = wantsBinary(request, o);
      if (n !== undefined)
        return {
          name: o.name,
          datatype: 'BYTES',
          shape: [batch, n],
          values: classification(values, batch, n, classifier.labels),
          binary: binaryOut,
        };
      return { name: o.name, datatype: 'FP32', shape: dims, values, binary: binaryOut };
    });
    const { body: out, headerLength } = encodeInferResponse(
      { model_name: modelName, model_version: MODEL_VERSION, id: request.id },
      encoded,
    );
    if (headerLength !== undefined) {
      res.set('Inference-Header-Content-Length', String(headerLength)).type('application/octet-stream');
    } else {
      res.type('application/json');
    }
    res.send(out);
  });
  return router;
}
