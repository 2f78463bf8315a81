import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { spawnServer } from './helpers/process.js';

const run = promisify(execFile);
const CAT = (
  JSON.parse(
    await readFile(new URL('../../../inference-server/test/fixtures/photos/expected.json', import.meta.url), 'utf8'),
  ) as Record<string, { accept: string[] }>
)['chelsea.jpg']!.accept;

describe('quickstart: the built-in default model', function () {
  this.timeout(60_000);

  it('starts without MODEL_URI and the curl line it prints calls the cat in the photo a cat', async () => {
    const proc = spawnServer({ MODEL_URI: '' });
    try {
      const line = await proc.waitFor((l) => typeof l.curl === 'string');
      const curl = line.curl as string;
      expect(curl).to.match(
        new RegExp(
          /^curl -F image_file=@inference-server\/models\/efficientnet-lite0\/example\.jpg /.source +
            /http:\/\/localhost:\d+\/predict\/image$/.source,
        ),
      );
      // Run the printed line as a user would, from the repository root.
      const args = curl.split(' ').slice(1);
      const { stdout } = await run('curl', ['-sS', ...args], { cwd: new URL('../../../', import.meta.url) });
      const answer = JSON.parse(stdout) as { Label: string; Score: string };
      expect(CAT).to.include(answer.Label);
      expect(Number(answer.Score)).to.be.greaterThan(0.2);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });
});
