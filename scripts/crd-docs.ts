/**
 * Renders the OnnxModel spec reference (a Markdown table: field, type, default,
 * validation, description) from the CRD's schema, so the README cannot drift
 * from what the API server enforces and `kubectl explain` prints.
 *
 *   node dist/scripts/crd-docs.js                     # print the reference
 *   node dist/scripts/crd-docs.js --check README.md   # exit 1 if README's copy is stale
 *   node dist/scripts/crd-docs.js --write README.md   # replace README's copy
 *
 * The README holds the text between `<!-- onnxmodel-reference:start -->` and
 * `<!-- onnxmodel-reference:end -->`; `--write` appends an "OnnxModel reference"
 * section with the markers when they are missing. `--crd PATH` reads another CRD
 * file (default crds/onnxmodel.yaml of this repository).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { checkSection, sectionCli, updateSection, type CheckResult, type GeneratedSection } from './readme-section.js';

export const START_MARKER = '<!-- onnxmodel-reference:start -->';
export const END_MARKER = '<!-- onnxmodel-reference:end -->';

/** The parts of a structural schema this renderer reads. */
export interface SchemaNode {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
}

interface CrdDocument {
  kind?: string;
  spec?: {
    group?: string;
    names?: { kind?: string };
    versions?: { name: string; storage?: boolean; schema?: { openAPIV3Schema?: SchemaNode } }[];
  };
}

/** The repository root: the nearest ancestor of this file holding crds/onnxmodel.yaml. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'crds', 'onnxmodel.yaml'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('crds/onnxmodel.yaml not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export function defaultCrdPath(): string {
  return join(repoRoot(), 'crds', 'onnxmodel.yaml');
}

/** The openAPIV3Schema of the CRD's storage version. */
export function crdSchema(crdYaml: string): SchemaNode {
  return storageVersion(crdYaml).schema;
}

function storageVersion(crdYaml: string): { apiVersion: string; kind: string; schema: SchemaNode } {
  const doc = parse(crdYaml) as CrdDocument;
  if (doc?.kind !== 'CustomResourceDefinition') throw new Error('not a CustomResourceDefinition');
  const version = doc.spec?.versions?.find((v) => v.storage) ?? doc.spec?.versions?.[0];
  const schema = version?.schema?.openAPIV3Schema;
  if (!version || !schema) throw new Error('the CRD has no openAPIV3Schema');
  return { apiVersion: `${doc.spec?.group ?? ''}/${version.name}`, kind: doc.spec?.names?.kind ?? '', schema };
}

// ------------------------------------------------------------------ rendering

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
/** A Markdown table cell: one line, pipes escaped (also inside code spans, as GFM wants). */
const cell = (s: string) => oneLine(s).replace(/\|/g, '\\|');
const code = (s: string) => (s.includes('`') ? '`` ' + s + ' ``' : '`' + s + '`');

function typeOf(node: SchemaNode): string {
  if (node['x-kubernetes-int-or-string']) return 'integer or string';
  if (node.type === 'array') {
    const item = node.items ? typeOf(node.items) : 'any';
    return `array of ${item.replace(/^object/, 'objects')}`;
  }
  if (node.type === 'object') {
    if (node.properties) return 'object';
    if (typeof node.additionalProperties === 'object') return `map of ${typeOf(node.additionalProperties)}`;
    if (node['x-kubernetes-preserve-unknown-fields']) return 'object (free-form)';
    return 'object';
  }
  return node.type ?? 'any';
}

function rangeText(node: SchemaNode): string | undefined {
  const lo = node.minimum === undefined ? undefined : `${node.exclusiveMinimum ? '>' : '≥'} ${node.minimum}`;
  const hi = node.maximum === undefined ? undefined : `${node.exclusiveMaximum ? '<' : '≤'} ${node.maximum}`;
  if (lo && hi && !node.exclusiveMinimum && !node.exclusiveMaximum) return `${node.minimum}–${node.maximum}`;
  return [lo, hi].filter(Boolean).join(', ') || undefined;
}

function countText(min: number | undefined, max: number | undefined, unit: string): string | undefined {
  if (min !== undefined && min === max) return `exactly ${min} ${unit}`;
  if (min !== undefined && max !== undefined) return `${min}–${max} ${unit}`;
  if (max !== undefined) return `at most ${max} ${unit}`;
  if (min !== undefined && min > 0) return `at least ${min} ${unit}`;
  return undefined;
}

/**
 * A CEL rule as prose: its message; for a messageExpression made of quoted
 * literals joined by `+`, the literals with `…` for the computed parts
 * (`'a (' + string(x) + ') b'` → `a (…) b`); else the rule itself.
 */
function ruleText(v: { rule: string; message?: string; messageExpression?: string }): string {
  if (v.message) return oneLine(v.message);
  const expr = oneLine(v.messageExpression ?? '');
  if (/^'[^']*'(\s*\+\s*[^'+]+\s*\+\s*'[^']*')*$/.test(expr)) {
    return expr.replace(/'\s*\+\s*[^'+]+\s*\+\s*'/g, '…').slice(1, -1);
  }
  return `rule ${code(oneLine(v.rule))}`;
}

function validationText(node: SchemaNode, required: boolean): string {
  const parts: string[] = [];
  if (required) parts.push('**required**');
  if (node.enum) parts.push(`one of ${node.enum.map((v) => code(String(v))).join(', ')}`);
  const range = rangeText(node);
  if (range) parts.push(range);
  if (node.format && node.format !== 'int32' && node.format !== 'int64') parts.push(`format ${node.format}`);
  const len = countText(node.minLength, node.maxLength, 'characters');
  if (len) parts.push(len);
  const items = countText(node.minItems, node.maxItems, 'items');
  if (items) parts.push(items);
  if (node.items) {
    const itemRange = rangeText(node.items);
    if (itemRange) parts.push(`each ${itemRange}`);
    if (node.items.enum) parts.push(`each one of ${node.items.enum.map((v) => code(String(v))).join(', ')}`);
  }
  if (node['x-kubernetes-list-type'] === 'map')
    parts.push(`unique ${(node['x-kubernetes-list-map-keys'] ?? []).join(', ')}`);
  if (node.pattern) parts.push(`pattern ${code(node.pattern)}`);
  for (const v of node['x-kubernetes-validations'] ?? []) parts.push(ruleText(v));
  return parts.join('; ');
}

function defaultText(node: SchemaNode): string {
  if (node.default === undefined) return '';
  // `{}` on an object only makes its fields' own defaults apply; those rows show them.
  if (typeof node.default === 'object' && node.default !== null && Object.keys(node.default).length === 0) return '';
  return code(typeof node.default === 'string' ? node.default : JSON.stringify(node.default));
}

interface Row {
  path: string;
  node: SchemaNode;
  required: boolean;
}

function collect(node: SchemaNode, prefix: string, rows: Row[]): void {
  const required = new Set(node.required ?? []);
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    rows.push({ path, node: child, required: required.has(name) });
    if (child.properties) collect(child, path, rows);
    if (child.type === 'array' && child.items?.properties) collect(child.items, `${path}[]`, rows);
  }
}

/** The Markdown reference for the spec of the CRD in `crdYaml` (the text that goes between the markers). */
export function renderReference(crdYaml: string): string {
  const { apiVersion, kind, schema: root } = storageVersion(crdYaml);
  const spec = root.properties?.spec;
  if (!spec?.properties) throw new Error('the CRD schema has no spec properties');
  const rows: Row[] = [];
  collect(spec, '', rows);
  const lines = [
    '<!-- Generated from crds/onnxmodel.yaml by `node dist/scripts/crd-docs.js --write README.md`; ' +
      'edit the CRD, not this table. -->',
    '',
    `Fields of an \`${kind}\`'s \`spec\` (\`${apiVersion}\`), as the API server`,
    'validates and defaults them; `kubectl explain onnxmodel.spec.FIELD` prints the same descriptions.',
    '',
    '| field | type | default | validation | description |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${cell(code(r.path))} | ${cell(typeOf(r.node))} | ${cell(defaultText(r.node))} ` +
        `| ${cell(validationText(r.node, r.required))} | ${cell(r.node.description ?? '')} |`,
    ),
  ];
  for (const v of root['x-kubernetes-validations'] ?? []) lines.push('', `Also: ${ruleText(v)}.`);
  return lines.join('\n');
}

// ------------------------------------------------------------------ README markers

export const REFERENCE_SECTION: GeneratedSection = {
  start: START_MARKER,
  end: END_MARKER,
  what: 'OnnxModel reference',
  source: 'crds/onnxmodel.yaml',
  writeCommand: 'node dist/scripts/crd-docs.js --write README.md',
  heading: 'OnnxModel reference',
};

export type { CheckResult };

/** Whether `readme` holds exactly `generated` between the markers (surrounding newlines aside). */
export function checkReadme(readme: string, generated: string, readmeName = 'README.md'): CheckResult {
  return checkSection(readme, generated, REFERENCE_SECTION, readmeName);
}

/** `readme` with `generated` between the markers; appends an "OnnxModel reference" section when they are missing. */
export function updateReadme(readme: string, generated: string): string {
  return updateSection(readme, generated, REFERENCE_SECTION);
}

// ------------------------------------------------------------------ CLI

function main(argv: string[]): number {
  let crdPath = defaultCrdPath();
  const crdAt = argv.indexOf('--crd');
  if (crdAt >= 0) {
    const p = argv[crdAt + 1];
    if (!p) throw new Error('--crd needs a file');
    crdPath = resolve(p);
    argv = [...argv.slice(0, crdAt), ...argv.slice(crdAt + 2)];
  }
  return sectionCli(argv, REFERENCE_SECTION, () => renderReference(readFileSync(crdPath, 'utf8')));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`crd-docs: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
