import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { DEFAULT_SAMPLE_IMAGE } from '../src/config/server-config.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

// dist/inference-server/test/ → the repository root.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCREENSHOT = `${ROOT}bench/results/page-screenshot.png`;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

interface Seed {
  Label: string;
  Score: string;
}

/** The browser page at GET /, driven in Debian's chromium through playwright-core (no downloaded browser). */
describe('browser page (GET /)', function () {
  this.timeout(120_000);
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let image: Buffer;
  let expectedRows: number;
  let apiTop: Seed[];
  /** Console errors, uncaught page errors and CSP violations seen since the page opened. */
  const problems: string[] = [];

  before(async function () {
    this.timeout(900_000); // the first run installs chromium from Debian
    // Fails (never skips) when the browser cannot be provided: the page must be tested in one.
    const { stdout } = await promisify(execFile)('bash', [`${ROOT}scripts/browser-setup.sh`], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const executablePath = stdout.trim().split('\n').pop() ?? '';
    expect(executablePath, 'scripts/browser-setup.sh prints the browser path').to.equal('/usr/bin/chromium');

    server = await startTestServer({}); // the bundled default model, whichever it is
    image = await readFile(DEFAULT_SAMPLE_IMAGE);
    // What the API itself answers for this file is what the page must show.
    const meta = (await (await fetch(`${server.url}/v2/models/${server.config.modelName}`)).json()) as {
      outputs: { shape: number[] }[];
    };
    const classes = meta.outputs[0]!.shape.at(-1)!;
    expectedRows = Math.min(5, classes);
    const api = await postForm(
      `${server.url}/predict/image?top_k=${expectedRows}`,
      { image_file: image },
      { filename: 'example.jpg', type: 'image/jpeg' },
    );
    expect(api.status, JSON.stringify(api.body)).to.equal(200);
    expect(api.headers.get('server-timing')).to.match(/^decode;dur=\d+(\.\d+)?, infer;dur=\d+(\.\d+)?$/);
    apiTop = api.body as Seed[];
    expect(apiTop).to.have.length(expectedRows);

    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, colorScheme: 'light' });
    page = await context.newPage();
    page.on('console', (msg: ConsoleMessage) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    // CSP violations also reach the console, but the event is the certain signal.
    await page.addInitScript({
      content:
        "document.addEventListener('securitypolicyviolation', " +
        "(e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** No console errors or warnings, page errors or CSP violations, except the ones a test expects. */
  function expectNoProblems(allowed?: RegExp): void {
    const unexpected = problems.filter((p) => allowed === undefined || !allowed.test(p));
    problems.length = 0;
    expect(unexpected, unexpected.join('\n')).to.deep.equal([]);
  }

  it('serves the page with a strict Content-Security-Policy and shows the model', async () => {
    const res = await page.goto(`${server.url}/`);
    expect(res?.status()).to.equal(200);
    const headers = res!.headers();
    expect(headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(headers['content-security-policy'])
      .to.contain("default-src 'self'")
      .and.contain("script-src 'self'")
      .and.contain("style-src 'self'");
    expect(headers['x-content-type-options']).to.equal('nosniff');
    expect(headers['cache-control']).to.equal('no-cache');
    // The model line comes from GET /v2/models/{name}: the page found the name and the class count.
    await page.locator('#model-info', { hasText: 'classes' }).waitFor();
    expect(await page.locator('#model-info').textContent()).to.contain(server.config.modelName);
    expect(await page.locator('#results-heading').textContent()).to.equal(`Top ${expectedRows}`);
    expectNoProblems();
  });

  it('classifies a photo chosen with the file input: the API’s top label, bars, scores and latency', async () => {
    await page.locator('#file').setInputFiles(DEFAULT_SAMPLE_IMAGE);
    await page.locator('#latency .chip').first().waitFor();

    const rows = page.locator('#results li');
    expect(await rows.count()).to.equal(expectedRows);
    expect(await rows.first().locator('.label').textContent()).to.equal(apiTop[0]!.Label);
    expect(await rows.locator('.label').allTextContents()).to.deep.equal(apiTop.map((p) => p.Label));
    const scores = await rows.locator('.score').allTextContents();
    expect(scores).to.deep.equal(apiTop.map((p) => `${(Number(p.Score) * 100).toFixed(1)}%`));
    // Each row has a bar as wide as its score.
    const widths = await rows
      .locator('.bar .fill')
      .evaluateAll((fills: { style: { width: string } }[]) => fills.map((f) => f.style.width));
    expect(widths.map(parseFloat)).to.deep.equal(scores.map(parseFloat));

    const latency = (await page.locator('#latency').textContent()) ?? '';
    expect(latency).to.match(/Round trip \d+(\.\d)? ms/);
    // From the Server-Timing header of POST /predict/image.
    expect(latency)
      .to.match(/Server decode \d+(\.\d)? ms/)
      .and.match(/Inference \d+(\.\d)? ms/);

    const preview = page.locator('#preview');
    expect(await preview.isVisible()).to.equal(true);
    expect(await preview.getAttribute('alt')).to.equal('Preview of example.jpg');
    expect(await preview.evaluate((img: { naturalWidth: number }) => img.naturalWidth)).to.be.greaterThan(0);
    expect(await page.locator('#error').isVisible()).to.equal(false);
    expect(await page.locator('#results-card').getAttribute('aria-busy')).to.equal('false');

    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.waitForTimeout(500); // let the bars finish their transition
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expectNoProblems();
  });

  it('takes a dropped image and a pasted one', async () => {
    const bytes = image.toString('base64');
    const makeTransfer = `(() => {
      const bin = atob(${JSON.stringify(bytes)});
      const data = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], 'dropped.jpg', { type: 'image/jpeg' }));
      return dt;
    })()`;
    await page.evaluate('document.getElementById("results").replaceChildren()');
    const transfer = await page.evaluateHandle(makeTransfer);
    await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: transfer });
    await page.locator('#results li').first().waitFor();
    expect(await page.locator('#results li .label').first().textContent()).to.equal(apiTop[0]!.Label);
    expect(await page.locator('#preview').getAttribute('alt')).to.equal('Preview of dropped.jpg');

    await page.evaluate('document.getElementById("results").replaceChildren()');
    await page.evaluate(
      "document.dispatchEvent(new ClipboardEvent('paste', { " +
        `clipboardData: ${makeTransfer.replace("'dropped.jpg'", "'pasted.jpg'")}, bubbles: true }))`,
    );
    await page.locator('#results li').first().waitFor();
    expect(await page.locator('#results li .label').first().textContent()).to.equal(apiTop[0]!.Label);
    expect(await page.locator('#preview').getAttribute('alt')).to.equal('Preview of pasted.jpg');
    expectNoProblems();
  });

  it('can be used from the keyboard, with a visible focus ring on the picker', async () => {
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.id')).to.equal('file');
    expect(await page.evaluate(`getComputedStyle(document.querySelector('label[for="file"]')).outlineStyle`)).to.equal(
      'solid',
    );
    expect(await page.getByLabel('Choose an image…').getAttribute('type')).to.equal('file');
    expectNoProblems();
  });

  it('shows the server’s error message for a file that is not an image', async () => {
    const text = Buffer.from('this is not a picture\n');
    const api = await postForm(
      `${server.url}/predict/image?top_k=${expectedRows}`,
      { image_file: text },
      { filename: 'notes.txt', type: 'text/plain' },
    );
    expect(api.status).to.equal(415);
    const message = (api.body as { error: string }).error;

    await page.locator('#file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: text });
    const error = page.locator('#error');
    await error.waitFor({ state: 'visible' });
    const shown = (await error.textContent()) ?? '';
    expect(shown).to.contain('HTTP 415').and.contain(message);
    expect(await error.getAttribute('role')).to.equal('alert');
    expect(await page.locator('#results li').count()).to.equal(0);
    expect(await page.locator('#latency').isVisible()).to.equal(false);
    expect(await page.locator('#preview').isVisible()).to.equal(false);
    // The browser itself logs the failed request; that one line is expected.
    expectNoProblems(/^console error: Failed to load resource: the server responded with a status of 415/);
  });

  it('recovers after an error: the next image is classified again', async () => {
    await page.locator('#file').setInputFiles(DEFAULT_SAMPLE_IMAGE);
    await page.locator('#results li').first().waitFor();
    expect(await page.locator('#error').isVisible()).to.equal(false);
    expect(await page.locator('#results li .label').first().textContent()).to.equal(apiTop[0]!.Label);
    expectNoProblems();
  });
});
