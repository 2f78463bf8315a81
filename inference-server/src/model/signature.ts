import type { InferenceSession } from 'onnxruntime-node';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  type Layout,
  type PreprocessingOptions,
  type Triple,
} from '../../../crds/preprocessing.js';

export type InputDType = 'float32' | 'uint8';

/** What the server needs to know about a classifier's input and output, read from the session. */
export interface ModelSignature {
  inputName: string;
  dtype: InputDType;
  layout: Layout;
  height: number;
  width: number;
  /** A fixed batch size, or 'dynamic' when the first dimension is symbolic. */
  batch: number | 'dynamic';
  /** The shape as the model declares it, -1 for symbolic dims (for the v2 metadata endpoint). */
  inputShape: number[];
  outputName: string;
  outputShape: number[];
  /** Number of classes: the product of the output's non-batch dimensions. */
  classes: number;
}

/** Per-channel affine map from a 0–255 pixel to the tensor value: value = pixel * gain[c] + bias[c]. */
export interface PixelTransform {
  gain: Triple;
  bias: Triple;
}

type ValueMetadata = InferenceSession.ValueMetadata;

const dim = (d: number | string | undefined): number => (typeof d === 'number' && d > 0 ? d : -1);

function guessLayout(shape: number[]): Layout | undefined {
  const [, d1, , d3] = shape;
  if (d1 === 3 && d3 !== 3) return 'NCHW';
  if (d3 === 3 && d1 !== 3) return 'NHWC';
  return undefined;
}

export interface SignatureOverrides {
  /** Used when the model's spatial dims are symbolic. */
  inputSize?: { width: number; height: number };
  outputName?: string;
}

/**
 * Derives the signature from onnxruntime's metadata. Throws a message that tells
 * the operator of the model what to configure when the model cannot tell us.
 */
export function describeModel(
  inputs: readonly ValueMetadata[],
  outputs: readonly ValueMetadata[],
  options: Pick<PreprocessingOptions, 'layout'>,
  overrides: SignatureOverrides = {},
): ModelSignature {
  if (inputs.length !== 1) {
    throw new Error(
      `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); ` +
        'an image classifier with exactly one image input is required',
    );
  }
  const input = inputs[0]!;
  if (!input.isTensor) throw new Error(`input ${input.name} is not a tensor`);
  if (input.type !== 'float32' && input.type !== 'uint8') {
    throw new Error(`input ${input.name} has type ${input.type}; float32 and uint8 image inputs are supported`);
  }
  if (input.shape.length !== 4) {
    throw new Error(
      `input ${input.name} has shape [${input.shape.join(', ')}]; a 4-D image batch (NCHW or NHWC) is required`,
    );
  }
  const shape = input.shape.map(dim);
  const layout = options.layout ?? guessLayout(shape);
  if (layout === undefined) {
    throw new Error(
      `cannot tell the layout of input ${input.name} [${input.shape.join(', ')}]; set INPUT_LAYOUT to NCHW or NHWC`,
    );
  }
  const [, c, h, w] = layout === 'NCHW' ? shape : [shape[0], shape[3], shape[1], shape[2]];
  if (c !== 3 && c !== -1) throw new Error(`input ${input.name} has ${c} channels; 3-channel colour input is required`);
  const height = h !== undefined && h > 0 ? h : overrides.inputSize?.height;
  const width = w !== undefined && w > 0 ? w : overrides.inputSize?.width;
  if (height === undefined || width === undefined) {
    throw new Error(
      `input ${input.name} has symbolic height or width [${input.shape.join(', ')}]; ` +
        'set INPUT_SIZE (e.g. 224 or 224x224)',
    );
  }
  const batchDim = shape[0]!;
  const outputName = overrides.outputName ?? outputs[0]?.name;
  const output = outputs.find((o) => o.name === outputName);
  if (output === undefined || !output.isTensor) {
    throw new Error(
      `output ${outputName ?? '(none)'} not found among the model's tensor outputs ` +
        `(${outputs.map((o) => o.name).join(', ')})`,
    );
  }
  if (output.type !== 'float32')
    throw new Error(`output ${output.name} has type ${output.type}; float32 scores are required`);
  const outputShape = output.shape.map(dim);
  const classDims = outputShape.slice(1);
  if (classDims.some((d) => d < 0) || classDims.length === 0) {
    throw new Error(
      `output ${output.name} has shape [${output.shape.join(', ')}]; ` +
        'a [batch, classes] output with a fixed class count is required',
    );
  }
  return {
    inputName: input.name,
    dtype: input.type,
    layout,
    height,
    width,
    batch: batchDim > 0 ? batchDim : 'dynamic',
    inputShape: shape,
    outputName: output.name,
    outputShape,
    classes: classDims.reduce((a, b) => a * b, 1),
  };
}

/** Resolves the normalization option against the model: `auto` follows the input's conventions. */
export function pixelTransform(
  signature: Pick<ModelSignature, 'dtype' | 'layout'>,
  options: PreprocessingOptions,
): PixelTransform {
  let mode = options.normalization;
  if (signature.dtype === 'uint8') {
    if (mode !== 'auto' && mode !== 'none') {
      throw new Error(`NORMALIZATION=${mode} cannot apply to a uint8 input; the model takes raw 0-255 pixels`);
    }
    mode = 'none';
  }
  if (mode === 'auto') mode = signature.layout === 'NCHW' ? 'imagenet' : 'none';
  const build = (scale: number, mean: Triple, std: Triple): PixelTransform => ({
    gain: [scale / std[0], scale / std[1], scale / std[2]],
    bias: [-mean[0] / std[0], -mean[1] / std[1], -mean[2] / std[2]],
  });
  switch (mode) {
    case 'imagenet':
      return build(1 / 255, IMAGENET_MEAN, IMAGENET_STD);
    case 'none':
      return build(1, [0, 0, 0], [1, 1, 1]);
    case 'custom':
      return build(options.scale, options.mean, options.std);
  }
}

/** Elements in one image's slice of the input tensor. */
export const imageElements = (s: Pick<ModelSignature, 'height' | 'width'>) => s.height * s.width * 3;

/** The input tensor's dims for `count` images, in the model's layout. */
export function batchShape(s: Pick<ModelSignature, 'layout' | 'height' | 'width'>, count: number): number[] {
  return s.layout === 'NCHW' ? [count, 3, s.height, s.width] : [count, s.height, s.width, 3];
}

/**
 * Writes one decoded HWC RGB image into slot `index` of a batch tensor in a single
 * pass: channel order, layout and normalization applied together.
 */
export function writeImage(
  pixels: Uint8Array,
  signature: Pick<ModelSignature, 'height' | 'width' | 'layout' | 'dtype'>,
  transform: PixelTransform,
  bgr: boolean,
  target: Float32Array | Uint8Array,
  index: number,
): void {
  const plane = signature.height * signature.width;
  const base = index * plane * 3;
  const src = bgr ? [2, 1, 0] : [0, 1, 2];
  if (target instanceof Uint8Array) {
    // uint8 models take raw pixels: a copy (NHWC RGB) or a reordering, no arithmetic.
    if (signature.layout === 'NHWC' && !bgr) {
      target.set(pixels.subarray(0, plane * 3), base);
      return;
    }
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const v = pixels[p * 3 + src[c]!]!;
        target[signature.layout === 'NCHW' ? base + c * plane + p : base + p * 3 + c] = v;
      }
    }
    return;
  }
  const [g0, g1, g2] = transform.gain;
  const [b0, b1, b2] = transform.bias;
  const [s0, s1, s2] = src as Triple;
  if (signature.layout === 'NCHW') {
    for (let p = 0, i = 0; p < plane; p++, i += 3) {
      target[base + p] = pixels[i + s0]! * g0 + b0;
      target[base + plane + p] = pixels[i + s1]! * g1 + b1;
      target[base + 2 * plane + p] = pixels[i + s2]! * g2 + b2;
    }
  } else {
    for (let p = 0, i = 0; p < plane; p++, i += 3) {
      target[base + i] = pixels[i + s0]! * g0 + b0;
      target[base + i + 1] = pixels[i + s1]! * g1 + b1;
      target[base + i + 2] = pixels[i + s2]! * g2 + b2;
    }
  }
}
