/**
 * What Node's HTTP parser refuses still gets a JSON error body, as the API
 * promises for every refusal: raw requests over a socket, since no HTTP client
 * sends these on purpose.
 */
import { connect } from 'node:net';
import { expect } from 'chai';
import { startTestServer, type TestServer } from './helpers/server.js';

/** Sends `raw`, reads until the server closes (or 10 s), returns the status and the parsed body. */
function rawRequest(url: string, raw: string | Buffer, opts: { keepOpenMs?: number } = {}): Promise<{ status: number; headers: string; body: unknown; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no answer in 10 s')), 10_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      resolve({ status, headers: head, body: parsed, text });
    });
    socket.write(raw);
    if (!opts.keepOpenMs) return;
    setTimeout(() => socket.end(), opts.keepOpenMs);
  });
}

describe('protocol errors (below Express) answer with JSON', function () {
  this.timeout(60_000);
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ REQUEST_TIMEOUT_MS: '3000' });
  });
  after(() => server?.stop());

  const cases: [name: string, raw: string, status: number][] = [
    ['an unknown method', 'BREW /predict/image HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['a malformed request line', 'GET\r\n\r\n', 400],
    ['Content-Length with Transfer-Encoding', 'POST /predict/image HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['a bad chunk size', 'POST /predict/image HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
    ['headers over the limit', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ['Expect: bogus', 'POST /predict/image HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 0\r\n\r\n', 417],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
  ];
  for (const [name, raw, status] of cases) {
    it(`${name}: ${status} with a JSON error`, async () => {
      const r = await rawRequest(server.url, raw);
      expect(r.status, r.text.slice(0, 300)).to.equal(status);
      expect(r.headers).to.match(/content-type: application\/json/i);
      expect(r.body).to.deep.include({ status });
      expect((r.body as { error: string }).error).to.be.a('string').and.not.equal('');
    });
  }

  it('a request whose headers never finish: 408 with a JSON error', async () => {
    const r = await rawRequest(server.url, 'POST /predict/image HTTP/1.1\r\nHost: x\r\n');
    expect(r.status, r.text).to.equal(408);
    expect(r.body).to.deep.include({ status: 408 });
  });

  it('keeps serving afterwards', async () => {
    const res = await fetch(`${server.url}/v2/health/ready`);
    expect(res.status).to.equal(200);
  });
});
