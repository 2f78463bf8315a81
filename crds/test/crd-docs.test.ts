/**
 * The README's OnnxModel reference is generated from the CRD (scripts/crd-docs.ts)
 * and must match it; the renderer itself is checked on the real CRD.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  END_MARKER,
  START_MARKER,
  checkReadme,
  defaultCrdPath,
  renderReference,
  repoRoot,
  updateReadme,
} from '../../scripts/crd-docs.js';
import { SPEC_FIELDS } from '../onnxmodel-fields.js';

describe('OnnxModel reference in README.md (scripts/crd-docs.ts)', () => {
  const crd = readFileSync(defaultCrdPath(), 'utf8');
  const generated = renderReference(crd);

  it('README.md holds exactly the reference generated from crds/onnxmodel.yaml', () => {
    const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
    const result = checkReadme(readme, generated);
    expect(result.ok, result.message).to.equal(true);
  });

  it('renders one row per spec field with type, default, validation and description', () => {
    const rows = generated.split('\n').filter((l) => l.startsWith('| `'));
    const paths = rows.map((r) => /^\| `([^`]+)`/.exec(r)?.[1]);
    for (const field of SPEC_FIELDS) expect(paths).to.include(field);
    expect(paths).to.include.members([
      'preprocessing.resizeMode',
      'resources.requests.cpu',
      'autoscaling.maxReplicas',
      'env[].name',
    ]);
    const row = (path: string) => rows.find((r) => r.startsWith(`| \`${path}\` |`))!;
    expect(row('modelUri')).to.contain('**required**').and.to.contain('gs://BUCKET/OBJECT');
    expect(row('replicas')).to.match(/^\| `replicas` \| integer \| `1` \| 0–1000 \|/);
    expect(row('preprocessing.resizeMode')).to.contain('one of `stretch`, `center-crop`, `letterbox`');
    expect(row('preprocessing.mean')).to.contain('exactly 3 items');
    expect(row('resources.limits.memory')).to.match(/\| integer or string \| `2Gi` \|/);
    expect(row('service.type')).to.contain('`LoadBalancer`');
    expect(row('autoscaling')).to.contain(
      'autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas',
    );
    // Pipes inside cells (regex alternations) are escaped, so every row has exactly 5 cells.
    for (const r of rows) expect(r.replace(/\\\|/g, '').split('|').length, r).to.equal(7);
  });

  it('checkReadme reports a stale or missing section, updateReadme fixes both', () => {
    const bare = '# Project\n\nText.\n';
    const missing = checkReadme(bare, generated);
    expect(missing.ok).to.equal(false);
    expect(missing.message).to.contain(START_MARKER).and.to.contain('--write');

    const appended = updateReadme(bare, generated);
    expect(appended.startsWith(bare)).to.equal(true);
    expect(appended).to.contain(`## OnnxModel reference\n\n${START_MARKER}\n`);
    expect(appended.trimEnd().endsWith(END_MARKER)).to.equal(true);
    expect(checkReadme(appended, generated).ok).to.equal(true);
    expect(updateReadme(appended, generated)).to.equal(appended);

    const stale = appended.replace('| `replicas` | integer | `1` |', '| `replicas` | integer | `2` |');
    const result = checkReadme(stale, generated);
    expect(result.ok).to.equal(false);
    expect(result.message).to.contain('out of date').and.to.contain('`replicas` | integer | `2`');
    expect(updateReadme(stale, generated)).to.equal(appended);

    const moved = `# Project\n\n${START_MARKER}\nold\n${END_MARKER}\n\n## Later\n`;
    const replaced = updateReadme(moved, generated);
    expect(replaced).to.equal(`# Project\n\n${START_MARKER}\n${generated}\n${END_MARKER}\n\n## Later\n`);
  });
});
