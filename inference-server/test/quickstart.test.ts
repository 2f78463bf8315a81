import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { defaultModelBytes, DEFAULT_MODEL_DIR } from '../../scripts/models/default-model.js';
import { spawnServer } from './helpers/process.js';

const run = promisify(execFile);

describe('quickstart: the built-in default model', function () {
  this.timeout(60_000);

  it('is exactly what scripts/models/default-model.ts generates', async () => {
    const committed = await readFile(`${DEFAULT_MODEL_DIR}model.onnx`);
    expect(Buffer.compare(committed, Buffer.from(defaultModelBytes()))).to.equal(0);
  });

  it('starts without MODEL_URI and the curl line it prints answers with a label', async () => {
    const proc = spawnServer({ MODEL_URI: '' });
    try {
      const line = await proc.waitFor((l) => typeof l.curl === 'string');
      const curl = line.curl as string;
      expect(curl).to.match(/^curl -F image_file=@inference-server\/models\/default\/example\.jpg http:\/\/localhost:\d+\/predict\/image$/);
      // Run the printed line as a user would, from the repository root.
      const args = curl.split(' ').slice(1);
      const { stdout } = await run('curl', ['-sS', ...args], { cwd: new URL('../../../', import.meta.url) });
      const answer = JSON.parse(stdout) as { Label: string; Score: string };
      expect(answer.Label).to.equal('red');
      expect(Number(answer.Score)).to.be.greaterThan(0.5);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
});
