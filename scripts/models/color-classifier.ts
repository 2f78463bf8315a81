/**
 * Tiny, exactly-predictable classifier: which primary colour dominates the TOP
 * HALF of the image. Only the top half counts so tests can prove that EXIF
 * orientation and NCHW/NHWC layout are handled (a rotated/transposed image
 * moves the colours out of the top half and flips the answer).
 *
 * logits[c] = 20 * mean over top-half pixels of (p_c / 255), p the 0..255 RGB value.
 * The ×20 keeps classes well separated (pure red → softmax ≈ [1, 2e-9, 2e-9]).
 */
import {
  buildModel,
  encodeModel,
  floatTensor,
  int64Tensor,
  node,
  valueInfo,
  type Dim,
  type NodeProto,
  type TensorProto,
} from './onnx-builder.js';

export const COLOR_LABELS = ['red', 'green', 'blue'] as const;
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
const LOGIT_SCALE = 20;

export interface ColorClassifierOptions {
  layout: 'NCHW' | 'NHWC';
  dtype: 'float32' | 'uint8';
  /** Square image side; the top half is the first floor(size/2) rows. Default 32. */
  size?: number;
  /** Batch dim symbolic "batch" (true) or fixed (false; `batchSize`, default 1). */
  dynamicBatch: boolean;
  batchSize?: number;
  output: 'logits' | 'softmax';
  /** Store the labels as JSON in metadata_props["labels"]. */
  embedLabels: boolean;
  /**
   * 'imagenet': input is (p/255 - mean[c]) / std[c] (float32 only).
   * 'none': input is raw p, 0..255 as float32 (Keras style) or uint8 bytes.
   */
  normalization: 'imagenet' | 'none';
}

export function colorClassifier(opts: ColorClassifierOptions): Uint8Array {
  const size = opts.size ?? 32;
  if (!Number.isInteger(size) || size < 2) throw new Error(`size must be an integer >= 2, got ${size}`);
  if (opts.normalization === 'imagenet' && opts.dtype !== 'float32') {
    throw new Error('imagenet normalization needs float32 input');
  }

  const nchw = opts.layout === 'NCHW';
  const inputName = nchw ? 'input' : 'image_input';
  const outputName = opts.output === 'softmax' ? 'probabilities' : 'logits';
  const batch: Dim = opts.dynamicBatch ? 'batch' : (opts.batchSize ?? 1);
  const inputDims: Dim[] = nchw ? [batch, 3, size, size] : [batch, size, size, 3];
  // Spatial axes for this layout; H is the first of them.
  const [hAxis, wAxis] = nchw ? [2, 3] : [1, 2];

  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];

  // 1. Keep rows [0, size/2) on the H axis.
  inits.push(
    int64Tensor('top_starts', [1], [0]),
    int64Tensor('top_ends', [1], [Math.floor(size / 2)]),
    int64Tensor('top_axes', [1], [hAxis]),
  );
  nodes.push(node('Slice', [inputName, 'top_starts', 'top_ends', 'top_axes'], ['top_half']));
  let cur = 'top_half';

  // 2. uint8 → float so the mean isn't integer arithmetic.
  if (opts.dtype === 'uint8') {
    nodes.push(node('Cast', [cur], ['top_half_f'], { to: 1 /* FLOAT */ }));
    cur = 'top_half_f';
  }

  // 3. Per-channel mean over H and W → [N,3] whatever the layout (keepdims=0
  //    drops the spatial axes, leaving batch and channel), i.e. already flat.
  nodes.push(node('ReduceMean', [cur], ['channel_mean'], { axes: [hAxis, wAxis], keepdims: 0 }));
  cur = 'channel_mean';

  // 4. Back to p/255 in 0..1. Mean is linear, so undoing the normalization
  //    after averaging is exact: mean(p/255) = mean(x) * std + mean.
  if (opts.normalization === 'imagenet') {
    inits.push(
      floatTensor('imagenet_std', [3], [...IMAGENET_STD]),
      floatTensor('imagenet_mean', [3], [...IMAGENET_MEAN]),
    );
    nodes.push(
      node('Mul', [cur, 'imagenet_std'], ['unit_scaled']),
      node('Add', ['unit_scaled', 'imagenet_mean'], ['unit']),
    );
  } else {
    inits.push(floatTensor('inv_255', [], [1 / 255]));
    nodes.push(node('Mul', [cur, 'inv_255'], ['unit']));
  }

  // 5. Spread the logits so classes are well separated.
  inits.push(floatTensor('logit_scale', [], [LOGIT_SCALE]));
  if (opts.output === 'softmax') {
    nodes.push(node('Mul', ['unit', 'logit_scale'], ['logits']));
    nodes.push(node('Softmax', ['logits'], [outputName], { axis: 1 }));
  } else {
    nodes.push(node('Mul', ['unit', 'logit_scale'], [outputName]));
  }

  const model = buildModel({
    graphName: `color_classifier_${opts.layout.toLowerCase()}_${opts.dtype}`,
    docString:
      'Classifies the dominant primary colour (red, green, blue) of the top half of the image. ' +
      `layout=${opts.layout} dtype=${opts.dtype} normalization=${opts.normalization} size=${size}`,
    nodes,
    inputs: [valueInfo(inputName, opts.dtype, inputDims)],
    outputs: [valueInfo(outputName, 'float32', [batch, COLOR_LABELS.length])],
    initializers: inits,
    metadata: opts.embedLabels ? { labels: JSON.stringify(COLOR_LABELS) } : {},
  });
  return encodeModel(model);
}
