/**
 * The stroke font of scripts/make-ocr-fixture.ts that draws the OCR fixtures and the clinical
 * example's notes: every glyph draws, lines stack, unknown characters are refused, and the
 * committed fixtures are exactly what the renderer produces (so a fresh clone needs no step).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FONT_CHARS, encodePng, render } from '../../scripts/make-ocr-fixture.js';

const root = resolve(import.meta.dirname, '../..');

describe('OCR fixture font', () => {
  it('draws every glyph, A-Z, digits and punctuation, with ink on each', () => {
    expect(FONT_CHARS).toContain('ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    for (const c of FONT_CHARS) {
      const { pixels } = render(c, 3, 4);
      expect(pixels.some((p) => p < 128), c).toBe(true);
    }
  });

  it('stacks lines 16 units apart, lower case drawn as capitals, and refuses what it cannot draw', () => {
    const one = render('AB', 3, 10);
    const two = render('ab\nAB', 3, 10);
    expect(two.height - one.height).toBe(16 * 3);
    expect(Buffer.from(two.pixels.subarray(0, one.width * (10 + 30)))).toEqual(Buffer.from(one.pixels.subarray(0, one.width * (10 + 30))));
    expect(() => render('A~B')).toThrow(/no glyph for "~"/);
  });

  it('reproduces the committed invoice fixture byte for byte', () => {
    const { width, height, pixels } = render('INVOICE 4821 TOTAL 99');
    expect(encodePng(width, height, pixels).equals(readFileSync(resolve(root, 'test/fixtures/ocr/invoice.png')))).toBe(true);
  });
});
