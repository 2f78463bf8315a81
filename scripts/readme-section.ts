/**
 * A generated section of the README: the text between two HTML comment
 * markers, rewritten by a generator (`--write`) and checked by a test or CI
 * (`--check`), so the README cannot drift from the source it documents.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface GeneratedSection {
  start: string;
  end: string;
  /** What the section documents, for messages: "OnnxModel reference". */
  what: string;
  /** Where it is generated from, for messages: "crds/onnxmodel.yaml". */
  source: string;
  /** The command that rewrites it, with README.md standing for the file. */
  writeCommand: string;
  /** The heading of the section appended when the markers are missing. */
  heading: string;
}

export interface CheckResult {
  ok: boolean;
  /** Why not, with a hint to fix it; empty when ok. */
  message: string;
}

function split(readme: string, s: GeneratedSection): { before: string; body: string; after: string } | undefined {
  const start = readme.indexOf(s.start);
  if (start < 0) return undefined;
  const end = readme.indexOf(s.end, start + s.start.length);
  if (end < 0) return undefined;
  return {
    before: readme.slice(0, start + s.start.length),
    body: readme.slice(start + s.start.length, end),
    after: readme.slice(end),
  };
}

const trimNewlines = (text: string) => text.replace(/^\n+|\n+$/g, '');

/** Whether `readme` holds exactly `generated` between the section's markers (surrounding newlines aside). */
export function checkSection(
  readme: string,
  generated: string,
  section: GeneratedSection,
  readmeName = 'README.md',
): CheckResult {
  const fix = `run \`npm run build && ${section.writeCommand.replace('README.md', readmeName)}\``;
  const parts = split(readme, section);
  if (!parts) return { ok: false, message: `${readmeName} has no ${section.start} … ${section.end} section; ${fix}` };
  const actual = trimNewlines(parts.body);
  const expected = trimNewlines(generated);
  if (actual === expected) return { ok: true, message: '' };
  const a = actual.split('\n');
  const e = expected.split('\n');
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  // README line of body line 0
  const base = (readme.slice(0, readme.indexOf(section.start)).match(/\n/g)?.length ?? 0) + 2;
  return {
    ok: false,
    message:
      `${readmeName}'s ${section.what} is out of date with ${section.source}; ${fix}.\n` +
      `first difference at ${readmeName}:${base + i}:\n` +
      `  README:    ${a[i] ?? '(end of section)'}\n` +
      `  generated: ${e[i] ?? '(end of section)'}`,
  };
}

/** `readme` with `generated` between the markers; appends the section under its heading when they are missing. */
export function updateSection(readme: string, generated: string, section: GeneratedSection): string {
  const body = `\n${trimNewlines(generated)}\n`;
  const parts = split(readme, section);
  if (parts) return parts.before + body + parts.after;
  const sep = readme.endsWith('\n\n') ? '' : readme.endsWith('\n') ? '\n' : '\n\n';
  return `${readme}${sep}## ${section.heading}\n\n${section.start}${body}${section.end}\n`;
}

/** A generator's command line: print (no argument), `--check FILE` (exit 1 when stale) or `--write FILE`. */
export function sectionCli(argv: string[], section: GeneratedSection, render: () => string): number {
  const [mode, target, ...rest] = argv;
  if (mode === undefined) {
    process.stdout.write(`${render()}\n`);
    return 0;
  }
  if ((mode !== '--check' && mode !== '--write') || target === undefined || rest.length > 0) {
    throw new Error(`unknown arguments ${argv.join(' ')} (usage: [--check FILE | --write FILE])`);
  }
  const file = resolve(target);
  const readme = readFileSync(file, 'utf8');
  const generated = render();
  if (mode === '--check') {
    const result = checkSection(readme, generated, section, target);
    if (!result.ok) {
      process.stderr.write(`${result.message}\n`);
      return 1;
    }
    process.stdout.write(`${target}: ${section.what} is up to date\n`);
    return 0;
  }
  const updated = updateSection(readme, generated, section);
  if (updated !== readme) writeFileSync(file, updated);
  process.stdout.write(`${target}: ${section.what} ${updated === readme ? 'already up to date' : 'written'}\n`);
  return 0;
}
