/**
 * Every way an upload can be broken maps to the client's fault, by what the
 * bytes are (sniffed) and which stage refused them, never by which libvips
 * message happened to arrive: 400 broken, 413 too big, 415 not a format we decode.
 */
import { expect } from 'chai';
import sharp from 'sharp';
import { InvalidImage, TooLarge, UnsupportedMedia } from '../../src/errors.js';
import { decodeImage, type DecodeRequest } from '../../src/imaging/decode.js';
import { sniffImage } from '../../src/imaging/sniff.js';

const REQ: DecodeRequest = {
  width: 32,
  height: 32,
  resizeMode: 'stretch',
  resize: true,
  padColor: [0, 0, 0],
  maxPixels: 40_000_000,
};
const failure = (p: Promise<unknown>) =>
  p.then(
    () => new Error('decoded'),
    (e: unknown) => e as Error,
  );
const solid = (format: 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif', size = 64) =>
  sharp({ create: { width: size, height: size, channels: 3, background: { r: 200, g: 30, b: 40 } } })
    .toFormat(format)
    .toBuffer();

/** A small seeded PRNG: the corruptions are the same on every run. */
function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

describe('decoding hostile images', () => {
  it('sniffs by magic bytes: the accepted formats, and what it refuses by name', async () => {
    for (const f of ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const)
      expect(sniffImage(await solid(f))).to.deep.equal({ accepted: true, format: f });
    expect(sniffImage(Buffer.from('  <?xml version="1.0"?><svg width="100000" height="100000"/>'))).to.deep.equal({
      accepted: false,
      format: 'svg',
    });
    const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic'), Buffer.alloc(64)]);
    expect(sniffImage(heic)).to.deep.equal({ accepted: false, format: 'heic' });
    expect(sniffImage(Buffer.from('%PDF-1.7'))).to.deep.equal({ accepted: false, format: 'pdf' });
    expect(sniffImage(Buffer.alloc(0))).to.deep.equal({ accepted: false, format: undefined });
  });

  it('refuses SVG and fake HEIC with 415 before any decoder sees them', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="1" height="1"/></svg>',
    );
    expect(await failure(decodeImage(svg, REQ)))
      .to.be.instanceOf(UnsupportedMedia)
      .and.to.have.property('message')
      .that.matches(/svg is not supported/);
    const heic = Buffer.concat([
      Buffer.from([0, 0, 0, 24]),
      Buffer.from('ftypheic\0\0\0\0mif1heic'),
      Buffer.alloc(200, 7),
    ]);
    expect(await failure(decodeImage(heic, REQ)))
      .to.be.instanceOf(UnsupportedMedia)
      .and.to.have.property('message')
      .that.matches(/heic is not supported/);
  });

  it('a PNG whose IHDR width has two flipped bits is a 400, not a 500', async () => {
    const png = Buffer.from(await solid('png'));
    png[19]! ^= 0x01; // IHDR width 64 → 321 (the chunk's CRC no longer matches)
    png[18]! ^= 0x01;
    expect(await failure(decodeImage(png, REQ))).to.be.instanceOf(InvalidImage);
  });

  it('a JPEG whose header claims 6000×6000 but holds 64×64 of data is a 400 (truncated), not a label', async () => {
    const jpeg = Buffer.from(await solid('jpeg'));
    const sof = jpeg.findIndex((b, i) => b === 0xff && (jpeg[i + 1] === 0xc0 || jpeg[i + 1] === 0xc2));
    jpeg.writeUInt16BE(6000, sof + 5);
    jpeg.writeUInt16BE(6000, sof + 7);
    const err = await failure(decodeImage(jpeg, REQ));
    expect(err).to.be.instanceOf(InvalidImage);
    expect(err.message).to.match(/truncated/);
  });

  it('a header naming more pixels than the limit is a 413', async () => {
    expect(await failure(decodeImage(await solid('png', 256), { ...REQ, maxPixels: 10_000 }))).to.be.instanceOf(
      TooLarge,
    );
  });

  const damagedFilesTitle =
    'truncated and bit-flipped files of every format, decoded at the same moment, are each a 400, 413 or 415, ' +
    'never a 500';
  it(damagedFilesTitle, async () => {
    const random = rng(42);
    const broken: Buffer[] = [];
    for (const f of ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const) {
      const good = await solid(f, 96);
      for (let i = 0; i < 6; i++) {
        const b = Buffer.from(good.subarray(0, Math.max(12, Math.floor(good.length * (0.2 + random() * 0.7)))));
        broken.push(b);
        const flipped = Buffer.from(good);
        for (let k = 0; k < 2; k++) flipped[Math.floor(random() * flipped.length)]! ^= 1 << Math.floor(random() * 8);
        broken.push(flipped);
      }
    }
    const results = await Promise.allSettled(broken.map((b) => decodeImage(b, REQ)));
    const serverErrors = results.flatMap((r, i) =>
      r.status === 'rejected' &&
      !(r.reason instanceof InvalidImage || r.reason instanceof TooLarge || r.reason instanceof UnsupportedMedia)
        ? [`#${i}: ${(r.reason as Error).message}`]
        : [],
    );
    expect(serverErrors).to.deep.equal([]);
  });

  it('still decodes a valid image of each format', async () => {
    for (const f of ['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif'] as const) {
      const d = await decodeImage(await solid(f), REQ);
      expect([d.width, d.height, d.pixels.length, d.sourceFormat]).to.deep.equal([32, 32, 32 * 32 * 3, f]);
    }
  });
});
