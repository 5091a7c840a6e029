// Experts in per-layer sessions (packed MXFP4 pairs via MatMulNBits, dequantised float32, or both)
// against the streamed float32 path (JS dequantisation + Gemm per expert): the pair decomposition is
// exact, and every output and hook agrees to float32 accumulation order.
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GptOssModel } from '../../engine/model.ts';
import { dequantizeMxfp4, mxfp4ToNibblePairs } from '../../engine/mxfp4.ts';
import { fixtureCases, fixtureDir, relErr } from '../helpers/fixtures.ts';

/** Decodes the pair form the way MatMulNBits does: ((a - 8) + (b - 8)) * scale per 64-value block. */
function decodePairs(q: Uint8Array, scales: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let g = 0; g < scales.length; g++) {
    for (let j = 0; j < 16; j++) {
      const a = q[g * 32 + j];
      const b = q[g * 32 + 16 + j];
      out[g * 32 + 2 * j] = ((a & 15) - 8 + ((b & 15) - 8)) * scales[g];
      out[g * 32 + 2 * j + 1] = ((a >> 4) - 8 + ((b >> 4) - 8)) * scales[g];
    }
  }
  return out;
}

describe('mxfp4ToNibblePairs', () => {
  it('every byte and scale decodes to the MXFP4 value exactly (both halves are 4-bit integers)', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 }),
      (bytes, s0, s1) => {
        const scales = new Uint8Array([s0, s1]);
        const want = dequantizeMxfp4(bytes, scales, 2, 32);
        const { q, scales: fs } = mxfp4ToNibblePairs(bytes, scales, 2, 32);
        const got = decodePairs(q, fs, 2, 32);
        // -0 becomes +0 (a + b = 0), which changes no product's value.
        return got.every((v, i) => v === want[i]);
      },
    ), { numRuns: 300 });
  });

  it('covers all 256 bytes: the 16 codes double to 0, ±1, ±2, ±3, ±4, ±6, ±8, ±12', () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const scales = new Uint8Array(16).fill(127);
    const { q, scales: fs } = mxfp4ToNibblePairs(bytes, scales, 16, 32);
    expect(Array.from(decodePairs(q, fs, 16, 32))).toEqual(Array.from(dequantizeMxfp4(bytes, scales, 16, 32)).map((v) => v + 0));
    expect(fs[0]).toBe(0.5);
  });
});

for (const fixture of ['ref-a', 'ref-b'] as const) {
  describe(`packed experts on ${fixture}`, () => {
    const packed = GptOssModel.load(fixtureDir(fixture), { threads: 1 });
    const float32 = GptOssModel.load(fixtureDir(fixture), { threads: 1, expertWeights: 'stream' });
    const pairs = GptOssModel.load(fixtureDir(fixture), { threads: 1, expertWeights: 'pairs' });
    const f32 = GptOssModel.load(fixtureDir(fixture), { threads: 1, expertWeights: 'f32' });
    afterAll(async () => {
      await packed.dispose();
      await float32.dispose();
      await pairs.dispose();
      await f32.dispose();
    });

    it('holds both encodings in per-layer sessions by default when they fit', () => {
      expect(packed.expertPath).toBe('both');
      expect(pairs.expertPath).toBe('pairs');
      expect(float32.expertPath).toBe('stream');
      expect(() => GptOssModel.load(fixtureDir(fixture), { expertWeights: 'pairs', memoryBudgetGb: 1e-4 })).toThrow(/do not fit the weight cache .* raise memoryBudgetGb or use 'auto'/);
    });

    it('gives the float32 path\'s logits, expert outputs and neuron hooks, with and without neuron interventions', async () => {
      const c = fixtureCases(fixture)[0];
      const { numExperts: E, intermediateSize: I } = packed.config;
      const opts = {
        logits: 'all' as const,
        capture: ['blocks.*.mlp.hook_pre', 'blocks.*.mlp.hook_post', 'blocks.*.mlp.hook_expert_out', 'blocks.*.mlp.hook_expert_indices'],
        // Zero one neuron of every expert at layer 1 on every position, and add to another's gate.
        interventions: [
          { hook: 'blocks.1.mlp.hook_post', mask: { data: Float32Array.from({ length: E * I }, (_, i) => (i % I === 3 ? 1 : 0)), dims: [1, 1, E, I] }, value: { data: new Float32Array(1), dims: [1, 1, 1, 1] } },
          { hook: 'blocks.0.mlp.hook_pre', add: { data: Float32Array.from({ length: E * I }, (_, i) => (i % I === 5 ? 0.25 : 0)), dims: [1, 1, E, I] } },
        ],
      };
      for (const withIvs of [false, true]) {
        const o = withIvs ? opts : { ...opts, interventions: [] };
        const b = await float32.run([c.tokens], o);
        for (const a of [await packed.run([c.tokens], o), await pairs.run([c.tokens], o), await f32.run([c.tokens], o)]) {
          expect(relErr(a.logits!.data, b.logits!.data)).toBeLessThan(1e-5);
          for (const [name, t] of b.cache) {
            if (name.endsWith('hook_expert_indices')) expect(Array.from(a.cache.get(name)!.data)).toEqual(Array.from(t.data));
            else expect(relErr(a.cache.get(name)!.data, t.data), name).toBeLessThanOrEqual(1e-4); // the exactness bar
          }
          if (withIvs) expect(a.cache.get('blocks.1.mlp.hook_post')!.data.filter((v, i) => i % I === 3 && v !== 0).length).toBe(0);
        }
      }
    });

    it('with both encodings, experts with many rows take the float32 sessions and give the same logits', async () => {
      const c = fixtureCases(fixture)[0];
      const batch = Array.from({ length: 24 }, () => c.tokens); // every chosen expert gets >= 48 rows
      const [a, b] = [await packed.run(batch, { logits: 'all' }), await float32.run(batch, { logits: 'all' })];
      expect(relErr(a.logits!.data, b.logits!.data)).toBeLessThan(1e-5);
    });

    it('experts with 1, 2, 3 rows (one row per call) and 4 rows (one call) give the float32 path\'s logits', async () => {
      const c = fixtureCases(fixture)[0];
      for (const B of [1, 2, 3, 4]) {
        // B copies of one token: each chosen expert gets exactly B rows.
        const batch = Array.from({ length: B }, () => c.tokens.slice(0, 1));
        const [a, b] = [await pairs.run(batch, { capture: ['blocks.*.mlp.hook_post'] }), await float32.run(batch, { capture: ['blocks.*.mlp.hook_post'] })];
        expect(relErr(a.logits!.data, b.logits!.data), `B=${B}`).toBeLessThan(1e-5);
        for (const [name, t] of b.cache) expect(relErr(a.cache.get(name)!.data, t.data), `${name} B=${B}`).toBeLessThanOrEqual(1e-4);
      }
    });

    it('runs started together on one model (reused expert buffers) give what each gives alone', async () => {
      const cases = fixtureCases(fixture);
      const batches = [[cases[0].tokens], [cases[cases.length - 1].tokens, cases[0].tokens], [cases[0].tokens.slice(0, 3)]];
      const alone: Awaited<ReturnType<typeof pairs.run>>[] = [];
      for (const batch of batches) alone.push(await pairs.run(batch, { logits: 'all' }));
      const together = await Promise.all(batches.map((batch) => pairs.run(batch, { logits: 'all' })));
      together.forEach((r, i) => expect(Array.from(r.logits!.data)).toEqual(Array.from(alone[i].logits!.data)));
    });
  });
}
