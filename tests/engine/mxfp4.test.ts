import { describe, expect, it } from 'vitest';
import { dequantizeMxfp4, FP4_VALUES, quantizeMxfp4 } from '../../engine/mxfp4.ts';
import { Rng } from '../../engine/rng.ts';
import { Checkpoint } from '../../engine/checkpoint.ts';

const MAGS = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

/** Bitwise float equality (0 vs -0 counts); vitest's toEqual is slow on arrays this size. */
function expectSameFloats(got: Float32Array, want: Float32Array, label = ''): void {
  expect(got.length, label).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = a.findIndex((bits, k) => bits !== b[k]);
  expect(i < 0 ? 'equal' : `${label} differs first at ${i}: ${got[i]} vs ${want[i]}`).toBe('equal');
}

describe('dequantizeMxfp4', () => {
  it('has the E2M1 value table', () => {
    expect(FP4_VALUES).toEqual([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);
  });

  it('decodes hand-computed bytes: low nibble is the even element, scale is 2^(s-127)', () => {
    const rows = 2;
    const cols = 64; // two blocks per row
    const blocks = new Uint8Array(rows * 2 * 16);
    const scales = new Uint8Array([128, 125, 127, 130]); // row0: x2, x1/4; row1: x1, x8
    blocks[0] = 0x72; // low 2 -> 1.0 (elem 0), high 7 -> 6.0 (elem 1)
    blocks[1] = 0x9f; // low F -> -6 (elem 2), high 9 -> -0.5 (elem 3)
    blocks[16] = 0x31; // row 0 block 1: low 1 -> 0.5 (elem 32), high 3 -> 1.5 (elem 33)
    blocks[32 + 15] = 0x80; // row 1 block 0 byte 15: low 0 -> 0 (elem 30), high 8 -> -0 (elem 31)
    blocks[48 + 15] = 0xd4; // row 1 block 1 byte 15: low 4 -> 2 (elem 62), high D -> -3 (elem 63)
    const w = dequantizeMxfp4(blocks, scales, rows, cols);
    expect(w.length).toBe(128);
    expect(Array.from(w.subarray(0, 4))).toEqual([2, 12, -12, -1]);
    expect(Array.from(w.subarray(32, 34))).toEqual([0.125, 0.375]);
    expect(w[64 + 30]).toBe(0);
    expect(Object.is(w[64 + 31], -0)).toBe(true);
    expect(Array.from(w.subarray(64 + 62, 64 + 64))).toEqual([16, -24]);
    // Every other element decodes code 0.
    const touched = new Set([0, 1, 2, 3, 32, 33, 94, 95, 126, 127]);
    for (let i = 0; i < 128; i++) if (!touched.has(i)) expect(w[i]).toBe(0);
  });

  it('fills a given output array and checks sizes', () => {
    const out = new Float32Array(32).fill(9);
    const got = dequantizeMxfp4(new Uint8Array(16).fill(0x22), new Uint8Array([127]), 1, 32, out);
    expect(got).toBe(out);
    expect(Array.from(out)).toEqual(new Array(32).fill(1));
    expect(() => dequantizeMxfp4(new Uint8Array(16), new Uint8Array(1), 1, 48)).toThrow(/multiple of 32/);
    expect(() => dequantizeMxfp4(new Uint8Array(15), new Uint8Array(1), 1, 32)).toThrow(/needs 16 block bytes and 1 scales, got 15 and 1/);
    expect(() => dequantizeMxfp4(new Uint8Array(16), new Uint8Array(1), 1, 32, new Float32Array(31))).toThrow(/out has 31 values/);
  });
});

describe('quantizeMxfp4', () => {
  it('round-trips exactly representable blocks (code x 2^k per block)', () => {
    const rng = new Rng(1);
    const rows = 8;
    const cols = 96;
    const w = new Float32Array(rows * cols);
    for (let g = 0; g < (rows * cols) / 32; g++) {
      const k = rng.int(41) - 20;
      for (let i = 0; i < 32; i++) w[32 * g + i] = FP4_VALUES[rng.int(16)] * 2 ** k;
    }
    const { blocks, scales } = quantizeMxfp4(w, rows, cols);
    expect(blocks.length).toBe((rows * cols) / 2);
    expect(scales.length).toBe((rows * cols) / 32);
    const back = dequantizeMxfp4(blocks, scales, rows, cols);
    expectSameFloats(back, w);
  });

  it('round-trips the experts of a real fixture checkpoint exactly', () => {
    const ck = Checkpoint.open('tests/fixtures/gpt-oss-ref/ref-b');
    const { hiddenSize: H, intermediateSize: I } = ck.config;
    const { gateUpW, downW } = ck.expert(1, 2);
    const gu = quantizeMxfp4(gateUpW, 2 * I, H);
    expectSameFloats(dequantizeMxfp4(gu.blocks, gu.scales, 2 * I, H), gateUpW);
    const dn = quantizeMxfp4(downW, H, I);
    expectSameFloats(dequantizeMxfp4(dn.blocks, dn.scales, H, I), downW);
  });

  it('picks the smallest scale that fits and rounds within half a code step', () => {
    const rng = new Rng(7);
    const rows = 16;
    const cols = 64;
    const w = rng.normals(rows * cols, 0.05);
    const { blocks, scales } = quantizeMxfp4(w, rows, cols);
    const back = dequantizeMxfp4(blocks, scales, rows, cols);
    for (let g = 0; g < scales.length; g++) {
      const scale = 2 ** (scales[g] - 127);
      const block = w.subarray(32 * g, 32 * g + 32);
      const max = Math.max(...Array.from(block, Math.abs));
      expect(max).toBeLessThanOrEqual(6 * scale);
      expect(max).toBeGreaterThan(3 * scale); // one step smaller would not fit
      for (let i = 0; i < 32; i++) {
        const x = Math.abs(block[i]) / scale;
        const halfStep = x <= 2 ? 0.25 : x <= 4 ? 0.5 : 1;
        expect(Math.abs(back[32 * g + i] - block[i])).toBeLessThanOrEqual(halfStep * scale);
        expect(MAGS).toContain(Math.abs(back[32 * g + i]) / scale);
      }
    }
  });

  it('rounds ties to the even code and keeps signs', () => {
    const w = new Float32Array(32);
    // 6 fixes the scale at 2^0; then each pair is (tie, expected).
    const ties = [[0.25, 0], [0.75, 1], [1.25, 1], [1.75, 2], [2.5, 2], [3.5, 4], [5, 4], [-0.75, -1], [-5, -4], [-0.1, -0]];
    w[0] = 6;
    ties.forEach(([x], i) => (w[i + 1] = x));
    const { blocks, scales } = quantizeMxfp4(w, 1, 32);
    expect(scales[0]).toBe(127);
    const back = dequantizeMxfp4(blocks, scales, 1, 32);
    expect(back[0]).toBe(6);
    ties.forEach(([, want], i) => expect(Object.is(back[i + 1], want)).toBe(true));
  });

  it('gives an all-zero block scale byte 0 and rejects non-finite values', () => {
    const { blocks, scales } = quantizeMxfp4(new Float32Array(32), 1, 32);
    expect(scales[0]).toBe(0);
    expect(blocks.every((b) => b === 0)).toBe(true);
    const bad = new Float32Array(64);
    bad[40] = NaN;
    expect(() => quantizeMxfp4(bad, 1, 64)).toThrow(/non-finite value in block 1 \(row 0\)/);
    expect(() => quantizeMxfp4(new Float32Array(30), 1, 30)).toThrow(/multiple of 32/);
  });
});
