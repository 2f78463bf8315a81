/**
 * Renders the README's table of the inference server's environment variables
 * from the contract that the operator writes and the server reads
 * (crds/server-env.ts, crds/preprocessing.ts), so the table cannot drift from
 * either program.
 *
 *   node dist/scripts/config-docs.js                     # print the table
 *   node dist/scripts/config-docs.js --check README.md   # exit 1 if README's copy is stale
 *   node dist/scripts/config-docs.js --write README.md   # replace README's copy
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PREPROCESSING_DOCS, PREPROCESSING_ENV, type PreprocessingOptions } from '../crds/preprocessing.js';
import { SERVER_ENV } from '../crds/server-env.js';
import { sectionCli, type GeneratedSection } from './readme-section.js';

export const CONFIG_SECTION: GeneratedSection = {
  start: '<!-- server-env:start -->',
  end: '<!-- server-env:end -->',
  what: 'configuration table',
  source: 'crds/server-env.ts and crds/preprocessing.ts',
  writeCommand: 'node dist/scripts/config-docs.js --write README.md',
  heading: 'Configuration (inference server)',
};

/** The preprocessing rows follow this variable: they describe the model's input, as OUTPUT_NAME does. */
const PREPROCESSING_AFTER = SERVER_ENV.outputName.name;
const PREPROCESSING_ORDER: (keyof PreprocessingOptions)[] = [
  'layout',
  'resizeMode',
  'channelOrder',
  'normalization',
  'scale',
  'mean',
  'std',
  'padColor',
  'softmax',
];

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The table that goes between the markers. */
export function renderConfigTable(): string {
  const row = (name: string, shownDefault: string, doc: string) =>
    `| \`${name}\` | ${cell(shownDefault)} | ${cell(doc)} |`;
  const rows: string[] = [];
  for (const v of Object.values(SERVER_ENV)) {
    rows.push(row(v.name, v.shownDefault, v.doc));
    if (v.name === PREPROCESSING_AFTER) {
      for (const key of PREPROCESSING_ORDER)
        rows.push(row(PREPROCESSING_ENV[key], PREPROCESSING_DOCS[key].shownDefault, PREPROCESSING_DOCS[key].doc));
    }
  }
  return [
    '<!-- Generated from crds/server-env.ts and crds/preprocessing.ts by ' +
      '`node dist/scripts/config-docs.js --write README.md`; edit those, not this table. -->',
    '',
    '| variable | default | meaning |',
    '|---|---|---|',
    ...rows,
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = sectionCli(process.argv.slice(2), CONFIG_SECTION, renderConfigTable);
  } catch (err) {
    process.stderr.write(`config-docs: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
