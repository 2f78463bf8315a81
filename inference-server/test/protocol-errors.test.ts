/**
 * What Node's HTTP parser refuses still gets a JSON error body, as the API
 * promises for every refusal: raw requests over a socket, since no HTTP client
 * sends these on purpose.
 */
import { expect } from 'chai';
import { RED, picture } from './helpers/images.js';
import { testModels } from './helpers/models.js';
import { rawRequest } from './helpers/raw-http.js';
import { startTestServer, type TestServer } from './helpers/server.js';

describe('protocol errors (below Express) answer with JSON', function () {
  this.timeout(60_000);
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ REQUEST_TIMEOUT_MS: '3000' });
  });
  after(() => server?.stop());
  const port = () => Number(new URL(server.url).port);

  const cases: [name: string, raw: string, status: number][] = [
    ['an unknown method', 'BREW /predict/image HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a malformed request line', 'GET\r\n\r\n', 400],
    [
      'Content-Length with Transfer-Encoding',
      'POST /predict/image HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
    ],
    ['a bad chunk size', 'POST /predict/image HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
    ['headers over the limit', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ['Expect: bogus', 'POST /predict/image HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 0\r\n\r\n', 417],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
  ];
  for (const [name, raw, status] of cases) {
    it(`${name}: ${status} with a JSON error`, async () => {
      const r = await rawRequest(port(), raw, { halfClose: false });
      expect(r?.status, r?.text.slice(0, 300)).to.equal(status);
      expect(r!.contentType).to.match(/^application\/json/);
      const body = JSON.parse(r!.body) as { error: string; status: number };
      expect(body.status).to.equal(status);
      expect(body.error).to.be.a('string').and.not.equal('');
    });
  }

  it('a request whose headers never finish: 408 with a JSON error', async () => {
    const r = await rawRequest(port(), 'POST /predict/image HTTP/1.1\r\nHost: x\r\n', { halfClose: false });
    expect(r?.status, r?.text).to.equal(408);
    expect(JSON.parse(r!.body)).to.deep.include({ status: 408 });
  });

  it('keeps serving afterwards', async () => {
    const res = await fetch(`${server.url}/v2/health/ready`);
    expect(res.status).to.equal(200);
  });

  it('pipelined requests on one connection are taken one after another: eight do not trip a limit of two', async () => {
    const models = await testModels();
    const limited = await startTestServer({
      MODEL_URI: models.colorNchw,
      LABELS_URI: models.colorLabels,
      MAX_IN_FLIGHT: '2',
    });
    try {
      const image = await picture(32, 32, RED, RED).png().toBuffer();
      const one = Buffer.concat([
        Buffer.from(
          'POST /predict/image HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n' +
            `Content-Length: ${image.length}\r\n\r\n`,
        ),
        image,
      ]);
      const last = Buffer.from('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const r = await rawRequest(
        Number(new URL(limited.url).port),
        Buffer.concat([...Array.from({ length: 8 }, () => one), last]),
        { halfClose: false },
      );
      const statuses = [...r!.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
      expect(statuses).to.deep.equal([200, 200, 200, 200, 200, 200, 200, 200, 200]);
      expect(r!.text.match(/"Label":"red"/g)).to.have.length(8);
    } finally {
      await limited.stop();
    }
  });
});
