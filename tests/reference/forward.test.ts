// The reference oracle against OpenAI's own reference outputs (tests/fixtures/gpt-oss-ref), plus
// sanity checks on ablation and the pieces (MXFP4, masks) that the fixtures exercise only indirectly.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadReferenceModel, ropeTables, type ReferenceModel, type ReferenceOutput } from './forward.ts';
import { readSafetensors, toFloat32, dequantMxfp4, type RawTensor } from './safetensors.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'gpt-oss-ref');
const CASES = ['long', 'short', 'repeat'] as const;

/** max |a - b|, and that divided by max |b|. */
function err(a: ArrayLike<number>, b: ArrayLike<number>): { abs: number; rel: number } {
  expect(a.length).toBe(b.length);
  let abs = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { abs, rel: abs / scale };
}

function concat(parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) out[o++] = p[i];
  return out;
}

for (const ref of ['ref-a', 'ref-b'] as const) {
  describe(`reference forward vs OpenAI reference outputs: ${ref}`, () => {
    const dir = join(FIXTURES, ref);
    let model: ReferenceModel;
    let expected: Map<string, RawTensor>;
    let cases: Record<string, { tokens: number[] }>;
    const outs = new Map<string, ReferenceOutput>();

    beforeAll(() => {
      model = loadReferenceModel(dir);
      expected = readSafetensors(join(dir, 'expected.safetensors'));
      cases = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).cases;
      for (const c of CASES) outs.set(c, model.forward(cases[c].tokens));
    });
    const want = (c: string, what: string) => toFloat32(expected.get(`${c}.${what}`)!);

    for (const c of CASES) {
      it(`${c}: logits, residuals, patterns and routing match`, () => {
        const o = outs.get(c)!;
        const logits = err(o.logits, want(c, 'logits'));
        const mid = err(concat(o.residMid), want(c, 'resid_mid'));
        const post = err(concat(o.residPost), want(c, 'resid_post'));
        const pattern = err(concat(o.pattern), want(c, 'pattern'));
        const router = err(concat(o.routerLogits), want(c, 'router_logits'));
        const weights = err(concat(o.expertWeights), want(c, 'expert_weights'));
        console.info(
          `${ref}/${c}: logits rel ${logits.rel.toExponential(2)}, resid_mid rel ${mid.rel.toExponential(2)}, ` +
            `resid_post rel ${post.rel.toExponential(2)}, pattern abs ${pattern.abs.toExponential(2)}, ` +
            `router rel ${router.rel.toExponential(2)}, weights abs ${weights.abs.toExponential(2)}`,
        );
        expect(err(o.embed, want(c, 'embed')).abs).toBe(0); // BF16 -> f32 is exact
        expect(logits.rel).toBeLessThanOrEqual(1e-4);
        expect(mid.rel).toBeLessThanOrEqual(1e-4);
        expect(post.rel).toBeLessThanOrEqual(1e-4);
        expect(pattern.abs).toBeLessThanOrEqual(1e-4);
        expect(router.rel).toBeLessThanOrEqual(1e-4);
        expect(weights.abs).toBeLessThanOrEqual(1e-4);
        expect(Array.from(concat(o.expertIndices))).toEqual(Array.from(want(c, 'expert_indices')));
      });
    }

    it('pattern rows plus sink mass sum to 1, and masks follow the layer type', () => {
      const o = outs.get('long')!;
      const T = cases.long.tokens.length, nH = model.nHeads, W = model.window;
      for (let l = 0; l < model.nLayers; l++) {
        const sliding = l % 2 === 0;
        for (let h = 0; h < nH; h++) {
          for (let i = 0; i < T; i++) {
            let row = 0;
            for (let j = 0; j < T; j++) {
              const p = o.pattern[l][(h * T + i) * T + j];
              row += p;
              const visible = j <= i && (!sliding || i - j < W);
              if (visible) expect(p).toBeGreaterThan(0);
              else expect(p).toBe(0);
            }
            const sink = o.sinkMass[l][h * T + i];
            expect(sink).toBeGreaterThan(0);
            expect(row + sink).toBeCloseTo(1, 6);
          }
        }
      }
    });

    it('head ablation: none is a no-op; one head changes logits from its layer on only', () => {
      const tokens = cases.short.tokens;
      const plain = outs.get('short')!;
      const none = model.forward(tokens, { ablateHeads: [] });
      expect(Array.from(none.logits)).toEqual(Array.from(plain.logits));
      const layer = 1, head = model.nHeads - 1;
      const abl = model.forward(tokens, { ablateHeads: [{ layer, head }] });
      expect(err(abl.logits, plain.logits).abs).toBeGreaterThan(1e-3);
      // Upstream of the ablated head nothing moves; its own attention pattern is still reported.
      expect(Array.from(abl.residPost[layer - 1])).toEqual(Array.from(plain.residPost[layer - 1]));
      expect(Array.from(abl.pattern[layer])).toEqual(Array.from(plain.pattern[layer]));
      expect(err(abl.residMid[layer], plain.residMid[layer]).abs).toBeGreaterThan(0);
      expect(() => model.forward(tokens, { ablateHeads: [{ layer: model.nLayers, head: 0 }] })).toThrow();
    });
  });
}

describe('reference building blocks', () => {
  it('dequantises MXFP4: low nibble even, high nibble odd, scale 2^(s-127)', () => {
    const blocks = new Uint8Array(16);
    blocks[0] = 0x7f; // even = code 15 (-6), odd = code 7 (6)
    blocks[15] = 0x91; // element 30 = code 1 (0.5), element 31 = code 9 (-0.5)
    const w = dequantMxfp4({ dtype: 'U8', shape: [1, 1, 16], bytes: blocks }, { dtype: 'U8', shape: [1, 1], bytes: Uint8Array.of(128) });
    expect(w.length).toBe(32);
    expect([w[0], w[1], w[2], w[30], w[31]]).toEqual([-12, 12, 0, 1, -1]);
  });

  it('decodes BF16 exactly', () => {
    const bytes = Uint8Array.of(0x80, 0x3f, 0x40, 0xc0); // 1.0, -3.0
    expect(Array.from(toFloat32({ dtype: 'BF16', shape: [2], bytes }))).toEqual([1, -3]);
  });

  it('matches the documented YaRN check values', () => {
    const cfg = JSON.parse(readFileSync(join(FIXTURES, 'ref-a', 'config.json'), 'utf8'));
    const [invFreq, concentration] = ropeTables(cfg, 64);
    expect(invFreq[9]).toBeCloseTo(0.0317057, 7);
    expect(invFreq[17] / 1.293187e-4).toBeCloseTo(1, 5);
    expect(concentration).toBeCloseTo(1.34657, 5);
  });
});
