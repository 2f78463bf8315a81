/**
 * The bundled default model, served when MODEL_URI is not set, so a fresh clone
 * answers over HTTP offline: the colour classifier (NCHW, ImageNet
 * normalisation, labels embedded) and an example photo-like picture for the
 * quickstart's curl line. Both are committed; a test checks they are exactly
 * what this script generates. Run: node dist/scripts/models/default-model.js
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { colorClassifier } from './color-classifier.js';

export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../../inference-server/models/default/', import.meta.url));

export function defaultModelBytes(): Uint8Array {
  return colorClassifier({ layout: 'NCHW', dtype: 'float32', size: 64, dynamicBatch: true, output: 'logits', embedLabels: true, normalization: 'imagenet' });
}

/** A 320×240 picture: a red balloon-ish disc high up on a blue-grey sky, green grass below. */
export async function exampleImage(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
    <rect width="320" height="240" fill="#8a94a6"/>
    <rect y="150" width="320" height="90" fill="#3c8d2f"/>
    <circle cx="160" cy="62" r="58" fill="#d91e18"/>
    <rect x="40" y="20" width="240" height="90" fill="#e02a1f" opacity="0.9"/>
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(new URL('model.onnx', `file://${DEFAULT_MODEL_DIR}`), defaultModelBytes());
  await writeFile(new URL('example.jpg', `file://${DEFAULT_MODEL_DIR}`), await exampleImage());
  process.stdout.write(`wrote ${DEFAULT_MODEL_DIR}model.onnx and example.jpg\n`);
}
