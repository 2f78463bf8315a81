/**
 * What an upload is, by its first bytes, before any decoder sees it: libvips
 * would otherwise hand SVG to librsvg, PDF to poppler and HEIC to libheif just
 * to find out. Pure; reads at most the first 64 bytes.
 */

/** The formats the server decodes. */
export type AcceptedFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif';

export type Sniffed =
  | { accepted: true; format: AcceptedFormat }
  /** `format` names what it looks like when known (svg, heic, pdf, bmp, …). */
  | { accepted: false; format: string | undefined };

const ascii = (buf: Buffer, start: number, end: number) => buf.toString('latin1', start, end);

/** ISO BMFF brands (the `ftyp` box): AVIF is decoded; HEIC and other HEIF flavours are not. */
function isoBrand(buf: Buffer): Sniffed {
  const size = buf.length >= 4 ? buf.readUInt32BE(0) : 0;
  const end = Math.min(buf.length, size >= 16 ? size : 64, 64);
  const brands = [ascii(buf, 8, 12)];
  for (let i = 16; i + 4 <= end; i += 4) brands.push(ascii(buf, i, i + 4));
  if (brands.some((b) => b === 'avif' || b === 'avis')) return { accepted: true, format: 'avif' };
  if (brands.some((b) => /^(heic|heix|hevc|hevx|heim|heis)$/.test(b))) return { accepted: false, format: 'heic' };
  return { accepted: false, format: brands[0] === 'mif1' || brands[0] === 'msf1' ? 'heif' : `iso-bmff (${brands[0]})` };
}

export function sniffImage(buf: Buffer): Sniffed {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff)
    return { accepted: true, format: 'jpeg' };
  if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47 && buf.readUInt32BE(4) === 0x0d0a1a0a)
    return { accepted: true, format: 'png' };
  if (buf.length >= 6 && /^GIF8[79]a$/.test(ascii(buf, 0, 6))) return { accepted: true, format: 'gif' };
  if (buf.length >= 12 && ascii(buf, 0, 4) === 'RIFF' && ascii(buf, 8, 12) === 'WEBP')
    return { accepted: true, format: 'webp' };
  if (buf.length >= 4 && (ascii(buf, 0, 4) === 'II*\0' || ascii(buf, 0, 4) === 'MM\0*'))
    return { accepted: true, format: 'tiff' };
  if (buf.length >= 12 && ascii(buf, 4, 8) === 'ftyp') return isoBrand(buf);
  const head = ascii(buf, 0, Math.min(buf.length, 64))
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart();
  if (head.startsWith('<'))
    return { accepted: false, format: /<svg/i.test(head) || head.startsWith('<?xml') ? 'svg' : 'xml/html' };
  if (head.startsWith('%PDF')) return { accepted: false, format: 'pdf' };
  if (buf.length >= 2 && ascii(buf, 0, 2) === 'BM') return { accepted: false, format: 'bmp' };
  if (buf.length >= 4 && buf.readUInt32BE(0) === 0x00000100) return { accepted: false, format: 'ico' };
  return { accepted: false, format: undefined };
}
