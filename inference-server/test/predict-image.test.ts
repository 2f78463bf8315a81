import { expect } from 'chai';
import sharp, { type Sharp } from 'sharp';
import { BLUE, GREEN, RED, picture } from './helpers/images.js';
import { testModels } from './helpers/models.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

interface Seed {
  Label: string;
  Score: string;
}

describe('POST /predict/image', function () {
  this.timeout(120_000);
  let nchw: TestServer;
  let nhwc: TestServer;
  let url: string;

  before(async () => {
    const models = await testModels();
    // PyTorch-style: NCHW, ImageNet mean/std, logits, labels from a labels file.
    nchw = await startTestServer({
      MODEL_URI: models.colorNchw,
      LABELS_URI: models.colorLabels,
      MAX_UPLOAD_BYTES: String(1024 * 1024),
    });
    // Keras-style: NHWC float 0–255, softmax inside, labels embedded in the model.
    nhwc = await startTestServer({ MODEL_URI: `file://${models.colorNhwc}` });
    url = `${nchw.url}/predict/image`;
  });
  after(async () => {
    await nchw?.stop();
    await nhwc?.stop();
  });

  const formats: [string, (s: Sharp) => Sharp][] = [
    ['JPEG', (s) => s.jpeg()],
    ['PNG', (s) => s.png()],
    ['WebP', (s) => s.webp()],
    ['GIF', (s) => s.gif()],
    ['TIFF', (s) => s.tiff()],
    ['AVIF', (s) => s.avif()],
  ];
  for (const [name, encode] of formats) {
    it(`classifies a ${name} by the colour of its top half, on both layouts`, async () => {
      const image = await encode(picture(96, 64, GREEN, RED)).toBuffer();
      for (const server of [nchw, nhwc]) {
        const { status, body } = await postForm(`${server.url}/predict/image`, { image_file: image });
        expect(status, JSON.stringify(body)).to.equal(200);
        expect((body as Seed).Label).to.equal('green');
        expect(Number((body as Seed).Score)).to.be.greaterThan(0.9);
      }
    });
  }

  it('answers like the seed: Label and a three-decimal Score string', async () => {
    const image = await picture(40, 40, BLUE, RED).png().toBuffer();
    const { body } = await postForm(url, { image_file: image, with_resize: 'True', with_post_process: 'True' });
    expect(body).to.have.keys(['Label', 'Score']);
    expect((body as Seed).Score).to.match(/^[01]\.\d{3}$/);
    expect((body as Seed).Label).to.equal('blue');
  });

  it('applies EXIF orientation before looking at the picture', async () => {
    // Stored upside down (blue on top) with orientation 3 (rotate 180°): upright, red is on top.
    const image = await picture(64, 48, BLUE, RED).jpeg().withMetadata({ orientation: 3 }).toBuffer();
    const { body } = await postForm(url, { image_file: image });
    expect((body as Seed).Label).to.equal('red');
  });

  it('flattens alpha onto black instead of reading hidden colour', async () => {
    const rgba = Buffer.alloc(32 * 32 * 4);
    // transparent red on top
    for (let p = 0; p < 32 * 32; p++) rgba.set(p < 16 * 32 ? [255, 0, 0, 0] : [0, 0, 255, 255], p * 4);
    const image = await sharp(rgba, { raw: { width: 32, height: 32, channels: 4 } })
      .png()
      .toBuffer();
    const { body } = await postForm(url, { image_file: image, top_k: '3' });
    // The top half is black after flattening: all classes tie, nothing says red.
    expect(Number((body as Seed).Score)).to.be.closeTo(1 / 3, 0.01);
  });

  it('turns grayscale, 16-bit and CMYK images into sRGB', async () => {
    const grey = await picture(32, 32, GREEN, GREEN).toColourspace('b-w').png().toBuffer();
    const g = await postForm(url, { image_file: grey });
    expect(g.status).to.equal(200);
    expect(Number((g.body as Seed).Score)).to.be.closeTo(1 / 3, 0.02);
    const deep = await picture(32, 32, RED, BLUE).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(deep).metadata()).depth).to.equal('ushort');
    expect(((await postForm(url, { image_file: deep })).body as Seed).Label).to.equal('red');
    const cmyk = await picture(32, 32, BLUE, GREEN).toColourspace('cmyk').jpeg().toBuffer();
    expect((await sharp(cmyk).metadata()).space).to.equal('cmyk');
    expect(((await postForm(url, { image_file: cmyk })).body as Seed).Label).to.equal('blue');
  });

  it('resizes per the mode: letterbox keeps a wide strip from being read as its top', async () => {
    // 128×32: top 16 rows red, bottom blue. Center-cropped, the top half is red; letterboxed onto blue padding,
    // the top half is 12 rows of padding and 4 of red.
    const image = await picture(128, 32, RED, BLUE).png().toBuffer();
    const models = await testModels();
    const letterbox = await startTestServer({
      MODEL_URI: models.colorNhwc,
      RESIZE_MODE: 'letterbox',
      PAD_COLOR: '0,0,255',
    });
    try {
      const { body } = await postForm(`${letterbox.url}/predict/image`, { image_file: image });
      expect((body as Seed).Label).to.equal('blue');
    } finally {
      await letterbox.stop();
    }
    expect(((await postForm(url, { image_file: image })).body as Seed).Label).to.equal('red');
  });

  it('returns the top k as a list', async () => {
    const image = await picture(32, 32, RED, RED).png().toBuffer();
    const { status, body } = await postForm(`${url}?top_k=3`, { image_file: image });
    expect(status).to.equal(200);
    // RED is (230, 20, 25): blue edges out green.
    expect((body as Seed[]).map((p) => p.Label)).to.deep.equal(['red', 'blue', 'green']);
    expect((await postForm(`${url}?top_k=4`, { image_file: image })).status).to.equal(400);
    expect((await postForm(`${url}?top_k=x`, { image_file: image })).status).to.equal(400);
  });

  it('with_post_process=False runs the model and answers "OK"', async () => {
    const image = await picture(32, 32, RED, RED).png().toBuffer();
    const { status, body } = await postForm(url, { image_file: image, with_post_process: 'False' });
    expect(status).to.equal(200);
    expect(body).to.equal('OK');
  });

  it('with_resize=False needs the model size exactly', async () => {
    const right = await picture(32, 32, GREEN, RED).png().toBuffer();
    expect(((await postForm(url, { with_resize: 'false', image_file: right })).body as Seed).Label).to.equal('green');
    const wrong = await picture(33, 32, GREEN, RED).png().toBuffer();
    const { status, body } = await postForm(url, { image_file: wrong, with_resize: '0' });
    expect(status).to.equal(400);
    expect((body as { error: string }).error).to.match(/exactly 32×32, got 33×32/);
  });

  it('accepts a raw image body', async () => {
    const image = await picture(32, 32, BLUE, RED).jpeg().toBuffer();
    const res = await fetch(url, { method: 'POST', body: image, headers: { 'content-type': 'image/jpeg' } });
    expect(((await res.json()) as Seed).Label).to.equal('blue');
  });

  describe('refuses bad input with a JSON error and keeps serving', () => {
    const expectError = async (res: Promise<{ status: number; body: unknown }>, status: number, pattern: RegExp) => {
      const { status: got, body } = await res;
      expect(got, JSON.stringify(body)).to.equal(status);
      expect((body as { error: string }).error).to.match(pattern);
    };

    it('missing image_file → 400', () => expectError(postForm(url, { with_resize: 'True' }), 400, /no image_file/));
    it('not multipart → 415', () =>
      expectError(
        fetch(url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }).then(async (r) => ({
          status: r.status,
          body: await r.json(),
        })),
        415,
        /multipart\/form-data/,
      ));
    it('bad boolean → 400', async () =>
      expectError(
        postForm(url, { image_file: await picture(8, 8, RED, RED).png().toBuffer(), with_resize: 'maybe' }),
        400,
        /with_resize="maybe" is not a boolean/,
      ));
    it('not an image → 415', () =>
      expectError(
        postForm(url, { image_file: Buffer.from('hello, I am text') }),
        415,
        /not an image in a supported format/,
      ));
    it('SVG → 415', () =>
      expectError(
        postForm(url, { image_file: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>') }),
        415,
        /svg is not supported/,
      ));
    it('truncated JPEG → 400', async () => {
      const jpeg = await picture(256, 256, RED, BLUE).jpeg().toBuffer();
      await expectError(postForm(url, { image_file: jpeg.subarray(0, jpeg.length / 2) }), 400, /could not be decoded/);
    });
    it('upload over the limit → 413', () =>
      expectError(postForm(url, { image_file: Buffer.alloc(1024 * 1024 + 100, 1) }), 413, /upload limit/));
    it('an upload of exactly the limit is not over it (its bytes are judged next: 415), one byte more is', async () => {
      await expectError(postForm(url, { image_file: Buffer.alloc(1024 * 1024, 1) }), 415, /not an image/);
      await expectError(postForm(url, { image_file: Buffer.alloc(1024 * 1024 + 1, 1) }), 413, /upload limit/);
    });
    it('a form field of exactly 1024 bytes is taken, 1025 is too long → 400', async () => {
      const image = await picture(8, 8, RED, RED).png().toBuffer();
      expect((await postForm(url, { image_file: image, note: 'x'.repeat(1024) })).status).to.equal(200);
      await expectError(
        postForm(url, { image_file: image, note: 'x'.repeat(1025) }),
        400,
        /form field note is too long/,
      );
    });
    it('a url-encoded form → 415', () =>
      expectError(
        fetch(url, {
          method: 'POST',
          body: 'image_file=abc',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }).then(async (r) => ({ status: r.status, body: await r.json() })),
        415,
        /multipart\/form-data/,
      ));
    it('a declared body far over the limit → 413 before reading it', async () => {
      const res = await fetch(url, {
        method: 'POST',
        body: Buffer.alloc(3 * 1024 * 1024),
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
      });
      expect(res.status).to.equal(413);
    });
    it('decompression bomb → 413 from the header alone', async () => {
      const bomb = await sharp({ create: { width: 10_000, height: 10_000, channels: 3, background: 'white' } })
        .png({ compressionLevel: 9 })
        .toBuffer();
      expect(bomb.length).to.be.lessThan(1024 * 1024);
      await expectError(
        postForm(url, { image_file: bomb }),
        413,
        /(100000000 pixels; the limit is|more pixels than the limit of) 40000000/,
      );
    });
    it('malformed multipart → 400', () =>
      expectError(
        fetch(url, {
          method: 'POST',
          body: '--x\r\nContent-Disposition: form-data; name="image_file"; filename="a"\r\n\r\nabc',
          headers: { 'content-type': 'multipart/form-data; boundary=x' },
        }).then(async (r) => ({ status: r.status, body: await r.json() })),
        400,
        /malformed multipart|Unexpected end/,
      ));
    it('unknown route → 404 JSON', () =>
      expectError(
        fetch(`${nchw.url}/predict/video`, { method: 'POST' }).then(async (r) => ({
          status: r.status,
          body: await r.json(),
        })),
        404,
        /no route/,
      ));

    after(async () => {
      const { status } = await postForm(url, { image_file: await picture(8, 8, RED, RED).png().toBuffer() });
      expect(status).to.equal(200);
    });
  });
});
