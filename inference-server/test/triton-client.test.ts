// The official Triton Python HTTP client (tritonclient[http] from PyPI, pinned in
// scripts/requirements-test.txt) against our KServe v2 endpoints, unchanged: binary
// inputs and outputs by default, the classification extension, no Content-Type.
// The venv comes from scripts/python-venv.sh; if it can't be set up the suite fails,
// never skips.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { testModels } from './helpers/models.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);

function repoRoot(): string {
  // Works from src (ts) and dist (js): walk up to the directory holding scripts/python-venv.sh.
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'scripts', 'python-venv.sh'))) return dir;
  }
  throw new Error('scripts/python-venv.sh not found above ' + fileURLToPath(import.meta.url));
}

const ROOT = repoRoot();
const CHECK = join(ROOT, 'inference-server', 'test', 'clients', 'triton_http_check.py');

/** The venv's python, built on first use (cached outside the tree). Throws with the script's output if it can't. */
async function venvPython(): Promise<string> {
  const script = join(ROOT, 'scripts', 'python-venv.sh');
  try {
    const { stdout } = await run('bash', [script], { maxBuffer: 16 << 20, timeout: 280_000 });
    const python = stdout.trim().split('\n').pop() ?? '';
    if (!existsSync(python)) throw new Error(`script printed "${python}", which does not exist`);
    return python;
  } catch (err) {
    // execFile's error message includes the script's stderr (pip's output).
    throw new Error(`cannot set up the Python test venv via ${script}: ${(err as Error).message}`, { cause: err });
  }
}

interface CheckResult {
  model_name: string;
  model_version: string;
  outputs: [string, string, number[], number | null][];
  logits: number[][];
  argmax: number[];
  classification_shape: number[];
  classification: string[][];
}

describe('official Triton Python HTTP client (tritonclient.http)', function () {
  this.timeout(300_000);
  let server: TestServer;
  let python: string;
  let hostPort: string;

  before(async () => {
    python = await venvPython();
    const models = await testModels();
    server = await startTestServer({
      MODEL_URI: models.colorNchw,
      LABELS_URI: models.colorLabels,
      MODEL_NAME: 'colors',
    });
    hostPort = new URL(server.url).host;
  });
  after(() => server?.stop());

  /** Runs the check script (async: the server runs in this process) and parses its JSON lines. */
  async function check(
    ...args: string[]
  ): Promise<{ metadata: Record<string, unknown>; result: Record<string, unknown> }> {
    let stdout: string;
    try {
      ({ stdout } = await run(python, ['-I', CHECK, '--url', hostPort, '--model', 'colors', ...args], {
        timeout: 120_000,
        maxBuffer: 16 << 20,
      }));
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      throw new Error(
        `${CHECK} ${args.join(' ')} failed: ${e.message}\nstdout: ${e.stdout ?? ''}\n` +
          `server log: ${server.logs.text.slice(-4000)}`,
        { cause: err },
      );
    }
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const metadata = lines.find((l) => 'metadata' in l)?.metadata as Record<string, unknown>;
    const result = lines[lines.length - 1]!;
    expect(metadata, stdout).to.be.an('object');
    return { metadata, result };
  }

  it('reads health and model metadata, infers batch 1 with binary tensors and classification', async () => {
    const { metadata, result } = await check('--top', 'green', '--batch', '1');
    expect(metadata).to.deep.include({
      name: 'colors',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 32, 32] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3] }],
    });
    const r = result as unknown as CheckResult;
    expect(r).to.deep.include({ model_name: 'colors', model_version: '1' });
    // Both outputs came back in the binary tail (tritonclient asks for binary by default).
    expect(r.outputs[0]).to.deep.equal(['logits', 'FP32', [1, 3], 12]);
    expect(r.outputs[1]!.slice(0, 3)).to.deep.equal(['logits', 'BYTES', [1, 3]]);
    expect(r.outputs[1]![3]).to.be.a('number').greaterThan(0);
    // Top half green (bottom half blue): class 1.
    expect(r.argmax).to.deep.equal([1]);
    expect(r.classification_shape).to.deep.equal([1, 3]);
    const [row] = r.classification;
    expect(row).to.have.length(3);
    expect(row![0]).to.match(/^-?[\d.]+(e[+-]?\d+)?:1:green$/);
    // All three classes, best first; each value is that class's logit.
    expect(row!.map((s) => s.split(':').slice(1).join(':')).sort()).to.deep.equal(['0:red', '1:green', '2:blue']);
    for (const s of row!) {
      const [value, index] = s.split(':');
      expect(Number(value)).to.be.closeTo(r.logits[0]![Number(index)]!, 1e-4);
    }
    const values = row!.map((s) => Number(s.split(':')[0]));
    expect(values).to.deep.equal([...values].sort((a, b) => b - a));
  });

  it('infers a batch of 3 (red, green, blue tops) and classifies each row', async () => {
    const { result } = await check('--top', 'red,green,blue', '--batch', '3');
    const r = result as unknown as CheckResult;
    expect(r.outputs[0]).to.deep.equal(['logits', 'FP32', [3, 3], 36]);
    expect(r.outputs[1]!.slice(0, 3)).to.deep.equal(['logits', 'BYTES', [3, 3]]);
    expect(r.outputs[1]![3]).to.be.a('number').greaterThan(0);
    expect(r.argmax).to.deep.equal([0, 1, 2]);
    expect(r.classification_shape).to.deep.equal([3, 3]);
    expect(r.classification.map((row) => row[0]!.split(':').slice(1).join(':'))).to.deep.equal([
      '0:red',
      '1:green',
      '2:blue',
    ]);
    r.classification.forEach((row, b) => {
      expect(row).to.have.length(3);
      const [value, index] = row[0]!.split(':');
      expect(Number(value)).to.be.closeTo(r.logits[b]![Number(index)]!, 1e-4);
    });
  });

  it('raises InferenceServerException carrying the server error text for a wrong shape', async () => {
    const { result } = await check('--top', 'blue', '--batch', '1', '--bad-shape');
    expect(result).to.deep.equal({
      exception: 'InferenceServerException',
      status: '400',
      message: 'input input must have shape [1..256, 3, 32, 32], got [1, 3, 64, 16]',
    });
  });
});
