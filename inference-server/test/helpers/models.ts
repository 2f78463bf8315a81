import { ensureModels, type ModelPaths } from '../../../scripts/models/generate.js';

export interface TestModels {
  /** PyTorch-style colour classifier: NCHW, ImageNet mean/std, logits, dynamic batch, no labels inside. */
  colorNchw: string;
  /** Keras-style: NHWC float 0–255, softmax output, batch 1, labels in the metadata. */
  colorNhwc: string;
  /** NHWC uint8 input, logits, labels in the metadata. */
  colorUint8: string;
  colorLabels: string;
  /** ResNet-50-shaped (25.5 M parameters, seeded weights), NCHW, dynamic batch. */
  resnet50: string;
}

let cached: Promise<ModelPaths> | undefined;

/** The project's generated models, made once per machine (cached by generator version). */
export async function testModels(): Promise<TestModels> {
  // Only what the tests use: the Keras-layout ResNet-50 (another 100 MB) is the peer benchmark's.
  cached ??= ensureModels(undefined, {
    only: ['colorNchwImagenet', 'colorNhwcKeras', 'colorNhwcUint8', 'colorLabels', 'resnet50'],
    log: () => undefined,
  });
  const p = await cached;
  return {
    colorNchw: p.colorNchwImagenet,
    colorNhwc: p.colorNhwcKeras,
    colorUint8: p.colorNhwcUint8,
    colorLabels: p.colorLabels,
    resnet50: p.resnet50,
  };
}
