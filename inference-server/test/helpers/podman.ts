/**
 * Shared by the container image tests: running scripts and podman, and reading
 * what the scripts print. The images are built by scripts/containers/build-images.sh.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const IMAGE_BUILD_TIMEOUT_MS = 30 * 60_000;

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'scripts', 'containers', 'build-images.sh'))) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`no scripts/containers/build-images.sh above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; echo?: boolean } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repoRoot(),
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.echo) process.stderr.write(d);
    });
    child.on('error', (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export const tail = (text: string, lines = 40) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** The `export NAME=value` lines the scripts print (values quoted with bash's printf %q). */
export function parseExports(stdout: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^export ([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1').replace(/\\(.)/g, '$1');
  }
  return vars;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The images run as uid 1000: hand it a host path (chown as root; otherwise open it up with `fallbackMode`). */
export function shareWithContainerUser(path: string, fallbackMode: number): void {
  try {
    chownSync(path, 1000, 1000);
  } catch {
    chmodSync(path, fallbackMode);
  }
}
