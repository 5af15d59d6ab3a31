/**
 * Renders the OCR test fixture, test/fixtures/ocr/invoice.png, with no image library and no
 * download: a small stroke font (line segments and elliptic arcs, enough glyphs for invoice
 * style lines) is drawn anti-aliased, since OCR engines are trained on smooth print and read
 * blocky pixel fonts badly ("N" becomes "H", "V" becomes "U"), and written as an 8-bit
 * greyscale PNG encoded by hand (IHDR/IDAT/IEND chunks, zlib from node:zlib, CRC-32 here).
 *
 *   npx tsx scripts/make-ocr-fixture.ts ["TEXT"] [out.png]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

/**
 * A stroke font: each glyph is a list of polylines in a box with the cap height 10 (y grows
 * downwards, 0 = top, 10 = baseline); `arc(cx, cy, rx, ry, from, to)` gives points of an
 * ellipse between two angles in degrees (0 = right, 90 = bottom, -90 = top).
 */
export type Pt = [number, number];
export function arc(cx: number, cy: number, rx: number, ry: number, from: number, to: number): Pt[] {
  const steps = Math.max(4, Math.ceil(Math.abs(to - from) / 10));
  return Array.from({ length: steps + 1 }, (_, i) => {
    const t = ((from + ((to - from) * i) / steps) * Math.PI) / 180;
    return [cx + rx * Math.cos(t), cy + ry * Math.sin(t)] as Pt;
  });
}
const O_ARC = arc(3.7, 5, 3.7, 5, 0, 360);
const P_BOWL: Pt[] = [[0, 10], [0, 0], [3.8, 0], ...arc(3.8, 2.7, 2.7, 2.7, -90, 90), [0, 5.4]];
export const GLYPHS: Record<string, { width: number; strokes: Pt[][] }> = {
  A: { width: 7, strokes: [[[0, 10], [3.5, 0], [7, 10]], [[1.3, 6.5], [5.7, 6.5]]] },
  B: { width: 6.8, strokes: [[[0, 0], [0, 10]], [[0, 0], [3.8, 0], ...arc(3.8, 2.5, 2.5, 2.5, -90, 90), [0, 5]], [[0, 5], [4.2, 5], ...arc(4.2, 7.5, 2.6, 2.5, -90, 90), [0, 10]]] },
  C: { width: 6.5, strokes: [arc(3.6, 5, 3.6, 5, -40, -320)] },
  D: { width: 6.5, strokes: [[[0, 0], [0, 10]], [[0, 0], [2.5, 0], ...arc(2.5, 5, 4, 5, -90, 90), [0, 10]]] },
  E: { width: 5.8, strokes: [[[5.8, 0], [0, 0], [0, 10], [5.8, 10]], [[0, 5], [5, 5]]] },
  F: { width: 5.5, strokes: [[[5.5, 0], [0, 0], [0, 10]], [[0, 5], [4.5, 5]]] },
  G: { width: 7.4, strokes: [arc(3.7, 5, 3.7, 5, -45, -360), [[7.4, 5], [4, 5]]] },
  H: { width: 6.5, strokes: [[[0, 0], [0, 10]], [[6.5, 0], [6.5, 10]], [[0, 5], [6.5, 5]]] },
  I: { width: 0, strokes: [[[0, 0], [0, 10]]] },
  J: { width: 5, strokes: [[[5, 0], [5, 7], ...arc(2.5, 7, 2.5, 3, 0, 180)]] },
  K: { width: 6, strokes: [[[0, 0], [0, 10]], [[6, 0], [0, 6.5]], [[2, 4.8], [6, 10]]] },
  L: { width: 5.5, strokes: [[[0, 0], [0, 10], [5.5, 10]]] },
  M: { width: 8, strokes: [[[0, 10], [0, 0], [4, 7], [8, 0], [8, 10]]] },
  N: { width: 6.5, strokes: [[[0, 10], [0, 0], [6.5, 10], [6.5, 0]]] },
  O: { width: 7.4, strokes: [O_ARC] },
  P: { width: 6.5, strokes: [P_BOWL] },
  Q: { width: 7.4, strokes: [O_ARC, [[4.5, 7], [7.6, 10.5]]] },
  R: { width: 6.5, strokes: [P_BOWL, [[3, 5.4], [6.5, 10]]] },
  S: { width: 6.2, strokes: [[...arc(3, 2.5, 3, 2.5, -30, -270), ...arc(3, 7.5, 3.2, 2.5, -90, 150)]] },
  T: { width: 7, strokes: [[[0, 0], [7, 0]], [[3.5, 0], [3.5, 10]]] },
  U: { width: 6.5, strokes: [[[0, 0], [0, 6.5], ...arc(3.25, 6.5, 3.25, 3.5, 180, 0), [6.5, 0]]] },
  V: { width: 7, strokes: [[[0, 0], [3.5, 10], [7, 0]]] },
  W: { width: 9, strokes: [[[0, 0], [2.2, 10], [4.5, 2], [6.8, 10], [9, 0]]] },
  X: { width: 6.5, strokes: [[[0, 0], [6.5, 10]], [[6.5, 0], [0, 10]]] },
  Y: { width: 7, strokes: [[[0, 0], [3.5, 5], [7, 0]], [[3.5, 5], [3.5, 10]]] },
  Z: { width: 6.5, strokes: [[[0, 0], [6.5, 0], [0, 10], [6.5, 10]]] },
  '0': { width: 6, strokes: [arc(3, 5, 3, 5, 0, 360)] },
  '1': { width: 4, strokes: [[[0.5, 2], [3, 0], [3, 10]]] },
  '2': { width: 6, strokes: [[...arc(3, 3, 3, 3, -165, 35), [0, 10], [6.2, 10]]] },
  '3': { width: 6, strokes: [arc(3, 2.6, 2.8, 2.6, -160, 90), arc(3, 7.3, 3.2, 2.7, -90, 160)] },
  '4': { width: 7, strokes: [[[5, 10], [5, 0], [0, 7], [7, 7]]] },
  '5': { width: 6, strokes: [[[5.6, 0], [0.6, 0], [0.2, 4.6], ...arc(3, 6.8, 3.1, 3.2, -130, 160)]] },
  '6': { width: 6, strokes: [[...arc(3.4, 5, 3.2, 5, -40, -180), ...arc(3, 7, 3, 3, 180, 540)]] },
  '7': { width: 6, strokes: [[[0, 0], [6, 0], [2, 10]]] },
  '8': { width: 6.4, strokes: [arc(3.2, 2.5, 2.7, 2.5, 0, 360), arc(3.2, 7.4, 3.2, 2.6, 0, 360)] },
  '9': { width: 6, strokes: [arc(3, 3.2, 3, 3.2, 0, 360), [[6, 3.2], ...arc(3, 6.6, 3, 3.4, 0, 140)]] },
  '.': { width: 0.4, strokes: [[[0.2, 9.6], [0.2, 10]]] },
  ',': { width: 0.8, strokes: [[[0.5, 9.4], [0.5, 10], [-0.3, 11.6]]] },
  ':': { width: 0.4, strokes: [[[0.2, 3], [0.2, 3.4]], [[0.2, 9.6], [0.2, 10]]] },
  '/': { width: 5, strokes: [[[0, 10.5], [5, -0.5]]] },
  '-': { width: 4, strokes: [[[0, 5.5], [4, 5.5]]] },
  '(': { width: 2, strokes: [arc(4, 5, 4, 6.2, -127, -233)] },
  ')': { width: 2, strokes: [arc(-2, 5, 4, 6.2, -53, 53)] },
  '%': { width: 6, strokes: [[[0, 10], [6, 0]], arc(1.2, 1.8, 1.2, 1.8, 0, 360), arc(4.8, 8.2, 1.2, 1.8, 0, 360)] },
};

/** The characters the font can draw (besides space and, between lines, newline). */
export const FONT_CHARS = Object.keys(GLYPHS).join('');

/**
 * Greyscale pixels (0 = black, 255 = white) of `text`, anti-aliased, `unit` pixels per font
 * unit. Lowercase is drawn as capitals; `\n` starts a new line (16 font units below).
 */
export function render(text: string, unit = 4, margin = 40): { width: number; height: number; pixels: Uint8Array } {
  const lines = text.toUpperCase().split('\n');
  const gap = 2.6;
  const space = 5;
  const lineStep = 16;
  const half = 0.65; // half the stroke width, in font units
  const segments: [Pt, Pt][] = [];
  let maxX = 0;
  lines.forEach((line, row) => {
    const y0 = row * lineStep;
    let x = 0;
    for (const c of line) {
      if (c === ' ') {
        x += space;
        continue;
      }
      const g = GLYPHS[c];
      if (!g) throw new Error(`no glyph for ${JSON.stringify(c)}; the font has ${FONT_CHARS}, space and newline`);
      for (const stroke of g.strokes) for (let i = 1; i < stroke.length; i++) segments.push([[stroke[i - 1][0] + x, stroke[i - 1][1] + y0], [stroke[i][0] + x, stroke[i][1] + y0]]);
      x += g.width + gap;
    }
    maxX = Math.max(maxX, x - gap);
  });
  const width = Math.ceil(maxX * unit + 2 * margin);
  const height = Math.ceil((10 + (lines.length - 1) * lineStep) * unit + 2 * margin);
  // Distance from each pixel centre to the nearest stroke, visiting only the pixels near each
  // segment (a whole page against every segment would be quadratic).
  const dist = new Float32Array(width * height).fill(Infinity);
  const reach = half + 1 / unit;
  for (const [a, b] of segments) {
    const x0 = Math.max(0, Math.floor((Math.min(a[0], b[0]) - reach) * unit + margin));
    const x1 = Math.min(width - 1, Math.ceil((Math.max(a[0], b[0]) + reach) * unit + margin));
    const y0 = Math.max(0, Math.floor((Math.min(a[1], b[1]) - reach) * unit + margin));
    const y1 = Math.min(height - 1, Math.ceil((Math.max(a[1], b[1]) + reach) * unit + margin));
    for (let py = y0; py <= y1; py++) {
      for (let px = x0; px <= x1; px++) {
        const d = distance((px + 0.5 - margin) / unit, (py + 0.5 - margin) / unit, a, b);
        if (d < dist[py * width + px]) dist[py * width + px] = d;
      }
    }
  }
  const pixels = new Uint8Array(width * height);
  for (let i = 0; i < pixels.length; i++) {
    // Ink falls off over one pixel at the stroke edge.
    const ink = Math.max(0, Math.min(1, (half - dist[i]) * unit + 0.5));
    pixels[i] = Math.round(255 * (1 - ink));
  }
  return { width, height, pixels };
}

function distance(x: number, y: number, [ax, ay]: Pt, [bx, by]: Pt): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len = dx * dx + dy * dy;
  const t = len === 0 ? 0 : Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len));
  return Math.hypot(x - ax - t * dx, y - ay - t * dy);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An 8-bit greyscale PNG of the pixels. */
export function encodePng(width: number, height: number, pixels: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: greyscale
  ihdr[10] = 0; // compression
  ihdr[11] = 0; // filter
  ihdr[12] = 0; // interlace
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter type None
    raw.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = process.argv[2] ?? 'INVOICE 4821 TOTAL 99';
  const out = resolve(process.argv[3] ?? resolve(dirname(fileURLToPath(import.meta.url)), '../test/fixtures/ocr/invoice.png'));
  const { width, height, pixels } = render(text);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, encodePng(width, height, pixels));
  console.log(`wrote ${out} (${width}x${height}): ${text}`);
}
