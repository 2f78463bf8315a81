/**
 * Class labels: from a labels file (one per line, or a JSON array/object) or from
 * the ONNX metadata, where exporters put them under a handful of keys.
 */

const METADATA_KEYS = ['labels', 'classes', 'class_names', 'names'];

/** Parses `{"0": "cat"}`, `{0: 'cat'}` (Python repr, as ultralytics writes it) or a JSON array. */
function parseStructured(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'string'))
      throw new Error('labels JSON array must contain only strings');
    return parsed;
  }
  const entries = new Map<number, string>();
  const pair = /["']?(\d+)["']?\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')/g;
  for (const m of trimmed.matchAll(pair))
    entries.set(Number(m[1]), m[2] !== undefined ? (JSON.parse(`"${m[2]}"`) as string) : m[3]!);
  if (entries.size === 0) throw new Error('labels object has no index: "label" entries');
  const out: string[] = [];
  for (let i = 0; i < entries.size; i++) {
    const label = entries.get(i);
    if (label === undefined) throw new Error(`labels object has no entry for index ${i}`);
    out.push(label);
  }
  return out;
}

/** Parses a labels document: a JSON array, an index→label object, or one label per line. */
export function parseLabels(text: string): string[] {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed === '') throw new Error('labels file is empty');
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return parseStructured(trimmed);
  // Blank lines inside would shift every later index, so only trailing ones are dropped.
  const lines = text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Labels embedded in the model's metadata, if any key we know holds a parsable list. */
export function labelsFromMetadata(metadata: Record<string, string>): string[] | undefined {
  for (const key of METADATA_KEYS) {
    const value = metadata[key];
    if (value === undefined) continue;
    try {
      return parseLabels(value);
    } catch {
      // Not a label list after all (some exporters use these keys for other things).
    }
  }
  return undefined;
}
