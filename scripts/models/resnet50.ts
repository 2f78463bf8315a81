/**
 * ResNet-50 v1 with the real topology and parameter count (~25.5M, BatchNorm
 * folded into conv biases) but seeded random weights. It is for load/latency
 * benchmarks and "big model" tests: compute and memory match the real network,
 * predictions are meaningless. Downloading real weights would make tests
 * depend on the network and on a ~100 MB artefact we can't regenerate.
 */
import {
  buildModel,
  encodeModel,
  floatTensor,
  node,
  valueInfo,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from './onnx-builder.js';

export interface ResNet50Options {
  /** PRNG seed; same seed → byte-identical model. Default 50. */
  seed?: number;
  /** Batch dim symbolic "batch" (true, default) or fixed 1. */
  dynamicBatch?: boolean;
  /**
   * The layout of the seed's Keras ResNet-50 export (false, default: PyTorch's).
   * true: input `image_input` [batch, 224, 224, 3] float32 holding raw 0–255
   * RGB pixels, the preprocessing inside the graph (a Transpose to NCHW, then
   * ImageNet mean/std as a Sub and a Mul), the same network with the same
   * weights, and a Softmax: output `predictions` [batch, 1000] probabilities.
   * So it computes softmax(the default model's logits on the normalized image).
   */
  keras?: boolean;
}

/** mulberry32: tiny, fast, good-enough 32-bit PRNG; returns floats in [0,1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Stages of ResNet-50: [blocks, bottleneck width, first-block stride].
const STAGES: ReadonlyArray<readonly [number, number, number]> = [
  [3, 64, 1],
  [4, 128, 2],
  [6, 256, 2],
  [3, 512, 2],
];
const EXPANSION = 4;
const NUM_CLASSES = 1000;
/** ImageNet mean and std of RGB pixels in 0–1, as torchvision normalizes. */
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly rand: () => number;

  constructor(seed: number) {
    this.rand = mulberry32(seed);
  }

  /** Uniform(-bound, bound) fill. */
  private uniform(n: number, bound: number): Float32Array {
    const out = new Float32Array(n);
    const rand = this.rand;
    for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * bound;
    return out;
  }

  /**
   * Conv (+ folded-BN bias) (+ ReLU). He-uniform init (variance 2/fan_in) keeps
   * activations O(1) through ReLUs; `gain` < 1 on the last conv of each
   * residual branch stops the residual sum from growing block after block.
   */
  conv(
    name: string,
    input: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    relu: boolean,
    gain = 1,
  ): string {
    const fanIn = cin * k * k;
    const w = `${name}.weight`;
    const b = `${name}.bias`;
    this.initializers.push(
      floatTensor(w, [cout, cin, k, k], this.uniform(cout * fanIn, gain * Math.sqrt(6 / fanIn))),
      floatTensor(b, [cout], this.uniform(cout, 0.01)),
    );
    const pad = (k - 1) >> 1;
    const out = relu ? `${name}.out` : name;
    this.nodes.push(
      node(
        'Conv',
        [input, w, b],
        [out],
        { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], group: 1 },
        name,
      ),
    );
    if (!relu) return out;
    this.nodes.push(node('Relu', [out], [`${name}.relu`]));
    return `${name}.relu`;
  }

  /** v1 bottleneck: stride on the first 1x1 (as in the paper and Keras' ResNet50). */
  bottleneck(prefix: string, input: string, cin: number, width: number, stride: number): string {
    const cout = width * EXPANSION;
    const a = this.conv(`${prefix}.conv1`, input, cin, width, 1, stride, true);
    const b = this.conv(`${prefix}.conv2`, a, width, width, 3, 1, true);
    const c = this.conv(`${prefix}.conv3`, b, width, cout, 1, 1, false, 0.2);
    // Projection shortcut whenever shape changes (first block of every stage).
    const shortcut =
      cin !== cout || stride !== 1 ? this.conv(`${prefix}.downsample`, input, cin, cout, 1, stride, false) : input;
    this.nodes.push(node('Add', [c, shortcut], [`${prefix}.add`]), node('Relu', [`${prefix}.add`], [`${prefix}.out`]));
    return `${prefix}.out`;
  }

  /** Fully connected layer as Gemm(x, W^T, b), PyTorch-default init bound 1/sqrt(fan_in). */
  fc(name: string, input: string, cin: number, cout: number, output: string): void {
    const bound = 1 / Math.sqrt(cin);
    this.initializers.push(
      floatTensor(`${name}.weight`, [cout, cin], this.uniform(cout * cin, bound)),
      floatTensor(`${name}.bias`, [cout], this.uniform(cout, bound)),
    );
    this.nodes.push(node('Gemm', [input, `${name}.weight`, `${name}.bias`], [output], { transB: 1 }, name));
  }
}

export function resnet50Model(opts: ResNet50Options = {}): ModelProto {
  const seed = opts.seed ?? 50;
  const batch = (opts.dynamicBatch ?? true) ? 'batch' : 1;
  const keras = opts.keras ?? false;
  const g = new GraphBuilder(seed);

  let input = 'input';
  if (keras) {
    // NHWC 0–255 → NCHW → (x/255 − mean) / std, as one Sub and one Mul per channel.
    // Constants, not drawn from the PRNG: the weights stay those of the default model.
    g.initializers.push(
      floatTensor(
        'preprocess.mean',
        [1, 3, 1, 1],
        IMAGENET_MEAN.map((m) => 255 * m),
      ),
      floatTensor(
        'preprocess.scale',
        [1, 3, 1, 1],
        IMAGENET_STD.map((s) => 1 / (255 * s)),
      ),
    );
    g.nodes.push(
      node('Transpose', ['image_input'], ['preprocess.nchw'], { perm: [0, 3, 1, 2] }),
      node('Sub', ['preprocess.nchw', 'preprocess.mean'], ['preprocess.centered']),
      node('Mul', ['preprocess.centered', 'preprocess.scale'], ['preprocess.out']),
    );
    input = 'preprocess.out';
  }

  // Stem: 7x7/2 conv → 3x3/2 max pool (224 → 112 → 56).
  let x = g.conv('conv1', input, 3, 64, 7, 2, true);
  g.nodes.push(node('MaxPool', [x], ['maxpool'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
  x = 'maxpool';

  let cin = 64;
  STAGES.forEach(([blocks, width, stride], s) => {
    for (let i = 0; i < blocks; i++) {
      x = g.bottleneck(`layer${s + 1}.${i}`, x, cin, width, i === 0 ? stride : 1);
      cin = width * EXPANSION;
    }
  });

  // Head: global average pool → [N,2048] → FC 2048→1000.
  g.nodes.push(node('GlobalAveragePool', [x], ['avgpool']), node('Flatten', ['avgpool'], ['flatten'], { axis: 1 }));
  g.fc('fc', 'flatten', cin, NUM_CLASSES, 'logits');
  if (keras) g.nodes.push(node('Softmax', ['logits'], ['predictions'], { axis: 1 }));

  return buildModel({
    graphName: keras ? 'resnet50_v1_random_keras' : 'resnet50_v1_random',
    docString: keras
      ? `ResNet-50 v1 topology (BatchNorm folded), random weights from mulberry32 seed ${seed}, ` +
        'in the layout of a Keras export: NHWC 0–255 input, preprocessing in the graph, softmax output. ' +
        'Not a trained model.'
      : `ResNet-50 v1 topology (BatchNorm folded), random weights from mulberry32 seed ${seed}. Not a trained model.`,
    nodes: g.nodes,
    inputs: [
      keras
        ? valueInfo('image_input', 'float32', [batch, 224, 224, 3])
        : valueInfo('input', 'float32', [batch, 3, 224, 224]),
    ],
    outputs: [valueInfo(keras ? 'predictions' : 'logits', 'float32', [batch, NUM_CLASSES])],
    initializers: g.initializers,
  });
}

/** Serialized ResNet-50 (≈102 MB). */
export function resnet50Shaped(opts: ResNet50Options = {}): Uint8Array {
  return encodeModel(resnet50Model(opts));
}
