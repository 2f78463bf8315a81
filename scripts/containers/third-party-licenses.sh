#!/usr/bin/env bash
# Writes the licence texts of every npm package an esbuild bundle contains into
# one file: a bundle drops the packages' own LICENSE files, which their MIT,
# ISC, BSD and Apache licences ask a redistributed copy to keep. Run by
# Dockerfile.operator from the repository root after bundling with --metafile:
#
#   bash scripts/containers/third-party-licenses.sh meta.json /out/app/THIRD_PARTY_LICENSES
#
# A bundled package without a licence file is named with the licence its
# package.json declares; one that declares none fails the build.
set -euo pipefail

metafile="${1:?usage: third-party-licenses.sh METAFILE OUT}"
out="${2:?usage: third-party-licenses.sh METAFILE OUT}"

node - "$metafile" "$out" <<'EOF'
const { readFileSync, readdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const [metafile, out] = process.argv.slice(2);
const inputs = Object.keys(JSON.parse(readFileSync(metafile, 'utf8')).inputs);
// node_modules/<name> or node_modules/@scope/<name>, nested ones included.
const dirs = new Set();
for (const input of inputs) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) dirs.add(m[1]);
}
const sections = [];
const undeclared = [];
for (const dir of [...dirs].sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const files = readdirSync(dir).filter((f) => /^(licen[cs]e|copying|notice)/i.test(f));
  const texts = files.map((f) => readFileSync(join(dir, f), 'utf8').trim());
  if (texts.length === 0 && !pkg.license) undeclared.push(dir);
  sections.push(`${pkg.name}@${pkg.version} (${pkg.license ?? 'see below'})\n\n${texts.join('\n\n') || `License: ${pkg.license}`}`);
}
if (undeclared.length) {
  console.error(`third-party-licenses.sh: no licence declared or shipped by ${undeclared.join(', ')}`);
  process.exit(1);
}
writeFileSync(out, `${sections.join(`\n\n${'-'.repeat(72)}\n\n`)}\n`);
console.error(`third-party-licenses.sh: ${sections.length} packages`);
EOF
