import type { SoftmaxMode } from '../../../crds/preprocessing.js';

export interface Prediction {
  index: number;
  label: string;
  score: number;
}

/** True when a row already is a probability distribution (the model ends in softmax). */
export function looksLikeProbabilities(row: ArrayLike<number>): boolean {
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (!(v >= 0 && v <= 1)) return false;
    sum += v;
  }
  return Math.abs(sum - 1) < 1e-3;
}

/** Numerically stable softmax (shifted by the max so exp never overflows). */
export function softmax(row: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  const out = new Float32Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    out[i] = Math.exp(row[i]! - max);
    sum += out[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

export function toProbabilities(row: Float32Array, mode: SoftmaxMode): Float32Array {
  if (mode === 'never') return row;
  if (mode === 'auto' && looksLikeProbabilities(row)) return row;
  return softmax(row);
}

/** The k best classes, best first; ties keep the lower index first. O(n·k), k is small. */
export function topK(scores: ArrayLike<number>, k: number): { index: number; score: number }[] {
  const best: { index: number; score: number }[] = [];
  const n = Math.min(k, scores.length);
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i]!;
    if (best.length === n && !(score > best[n - 1]!.score)) continue;
    let at = best.length === n ? n - 1 : best.length;
    while (at > 0 && score > best[at - 1]!.score) at--;
    best.splice(at, 0, { index: i, score });
    if (best.length > n) best.pop();
  }
  return best;
}

export function labelFor(labels: readonly string[] | undefined, index: number): string {
  return labels?.[index] ?? String(index);
}
