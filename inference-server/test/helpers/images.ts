import sharp, { type Sharp } from 'sharp';

export type Rgb = { r: number; g: number; b: number };
export const RED: Rgb = { r: 230, g: 20, b: 25 };
export const GREEN: Rgb = { r: 30, g: 200, b: 40 };
export const BLUE: Rgb = { r: 20, g: 30, b: 220 };

/** A width×height picture whose top half is `top` and bottom half `bottom`, as raw RGB. */
export function halves(width: number, height: number, top: Rgb, bottom: Rgb): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const c = y < height / 2 ? top : bottom;
    for (let x = 0; x < width; x++) data.set([c.r, c.g, c.b], (y * width + x) * 3);
  }
  return data;
}

/** The same picture encoded with sharp; `encode` picks the format and options. */
export function picture(width: number, height: number, top: Rgb, bottom: Rgb): Sharp {
  return sharp(halves(width, height, top, bottom), { raw: { width, height, channels: 3 } });
}
