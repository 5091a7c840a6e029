// Batching, padding, caching and the intervention form, each checked against a value computed
// another way (unbatched runs, the independent reference implementation, algebra on captures).
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generate } from '../../engine/generate.ts';
import { applyIntervention, type ResolvedIntervention } from '../../engine/intervention.ts';
import { GptOssModel } from '../../engine/model.ts';
import { loadReferenceModel } from '../reference/forward.ts';
import { fixtureCases, fixtureDir, maxAbsErr, relErr } from '../helpers/fixtures.ts';

const model = GptOssModel.load(fixtureDir('ref-a'), { threads: 1 });
const cfg = model.config;
const cases = fixtureCases('ref-a');
const [long, short, repeat] = cases.map((c) => c.tokens);
afterAll(() => model.dispose());

const row = (t: { data: Float32Array; dims: number[] }, b: number) => {
  const n = t.data.length / t.dims[0];
  return t.data.subarray(b * n, (b + 1) * n);
};

describe('batching', () => {
  it('a padded batch of unequal prompts gives each prompt its unbatched logits', async () => {
    const batch = await model.run([short, long, repeat], { logits: 'last' });
    for (const [b, tokens] of [short, long, repeat].entries()) {
      const alone = await model.run([tokens]);
      expect(relErr(row(batch.logits!, b), alone.logits!.data)).toBeLessThan(1e-5);
    }
  });

  it('padding does not change captured activations at real positions', async () => {
    const batch = await model.run([short, long], { capture: ['blocks.3.hook_resid_post'], logits: 'none' });
    const alone = await model.run([short], { capture: ['blocks.3.hook_resid_post'], logits: 'none' });
    const T = batch.length;
    const H = cfg.hiddenSize;
    const padded = batch.cache.get('blocks.3.hook_resid_post')!.data.subarray(0, T * H).subarray(0, short.length * H);
    expect(relErr(padded, alone.cache.get('blocks.3.hook_resid_post')!.data)).toBeLessThan(1e-5);
  });

  it('rows may join the batch at different layers and still give their own full-run logits', async () => {
    const full = await model.run([long, short], { capture: ['blocks.1.hook_resid_pre', 'blocks.3.hook_resid_pre'], logits: 'last' });
    const T = full.length;
    const H = cfg.hiddenSize;
    // Row 0 (long) starts at layer 1, row 1 (short) at layer 3, each from the full run's residual.
    const startResid = new Float32Array(2 * T * H);
    startResid.set(full.cache.get('blocks.1.hook_resid_pre')!.data.subarray(0, T * H), 0);
    startResid.set(full.cache.get('blocks.3.hook_resid_pre')!.data.subarray(T * H, 2 * T * H), T * H);
    const mixed = await model.run([long, short], { startLayer: [1, 3], startResid: { data: startResid, dims: [2, T, H] }, capture: ['blocks.2.hook_resid_post'] });
    expect(maxAbsErr(mixed.logits!.data, full.logits!.data)).toBeLessThan(1e-5);
    // A row that has not joined yet captures zeros at that layer.
    expect(mixed.cache.get('blocks.2.hook_resid_post')!.data.subarray(T * H).every((x) => x === 0)).toBe(true);
  });

  it('starting at layer L from a cached residual reproduces the full run', async () => {
    const full = await model.run([long], { capture: ['blocks.2.hook_resid_pre'], logits: 'all' });
    const resumed = await model.run([long], { startLayer: 2, startResid: full.cache.get('blocks.2.hook_resid_pre')!, logits: 'all' });
    expect(maxAbsErr(resumed.logits!.data, full.logits!.data)).toBe(0);
  });
});

describe('interventions', () => {
  it('patching resid_pre at layer L at every position from run B into run A gives B\'s logits', async () => {
    const a = repeat;
    const b = long.slice(0, repeat.length);
    const clean = await model.run([b], { capture: ['blocks.1.hook_resid_pre'], logits: 'all' });
    const patched = await model.run([a], {
      logits: 'all',
      interventions: [{ hook: 'blocks.1.hook_resid_pre', mask: { data: new Float32Array([1]), dims: [1] }, value: clean.cache.get('blocks.1.hook_resid_pre')! }],
    });
    expect(maxAbsErr(patched.logits!.data, clean.logits!.data)).toBe(0);
  });

  it('zero-ablating a head through hook_z equals the reference with that head removed', async () => {
    const ref = loadReferenceModel(fixtureDir('ref-a'));
    const mask = new Float32Array(cfg.numHeads);
    mask[2] = 1;
    const ours = await model.run([long], {
      logits: 'all',
      interventions: [{ hook: 'blocks.1.attn.hook_z', mask: { data: mask, dims: [1, 1, cfg.numHeads, 1] }, value: { data: new Float32Array([0]), dims: [1] } }],
    });
    const expected = ref.forward(long, { ablateHeads: [{ layer: 1, head: 2 }] }).logits;
    const plain = ref.forward(long).logits;
    expect(relErr(ours.logits!.data, expected)).toBeLessThan(1e-4);
    expect(relErr(ours.logits!.data, plain)).toBeGreaterThan(1e-3);
  });

  it('per-head results sum (with the o_proj bias) to the attention output', async () => {
    const r = await model.run([short], { capture: ['blocks.0.attn.hook_result', 'blocks.0.hook_attn_out'], logits: 'none' });
    const res = r.cache.get('blocks.0.attn.hook_result')!;
    const out = r.cache.get('blocks.0.hook_attn_out')!;
    const bias = model.checkpoint.attention(0).oB;
    const [, T, nH, H] = res.dims;
    const sum = new Float32Array(T * H);
    for (let t = 0; t < T; t++) for (let h = 0; h < nH; h++) for (let i = 0; i < H; i++) sum[t * H + i] += res.data[(t * nH + h) * H + i];
    for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) sum[t * H + i] += bias[i];
    expect(relErr(sum, out.data)).toBeLessThan(1e-5);
  });

  it('capturing hooks never changes the forward pass', async () => {
    const plain = await model.run([long], { logits: 'all' });
    const captured = await model.run([long], { logits: 'all', capture: ['blocks.*.attn.hook_result', 'blocks.*.mlp.hook_expert_out', 'blocks.*.mlp.hook_post'] });
    expect(maxAbsErr(captured.logits!.data, plain.logits!.data)).toBe(0);
  });

  it('one batch carries many variants: per-row masks equal separate runs', async () => {
    // Row 0 clean, row 1 with head 0 of layer 0 zeroed, row 2 with head 3 zeroed.
    const mask = new Float32Array(3 * cfg.numHeads);
    mask[1 * cfg.numHeads + 0] = 1;
    mask[2 * cfg.numHeads + 3] = 1;
    const batched = await model.run([long, long, long], {
      interventions: [{ hook: 'blocks.0.attn.hook_z', mask: { data: mask, dims: [3, 1, cfg.numHeads, 1] }, value: { data: new Float32Array([0]), dims: [1] } }],
    });
    for (let b = 0; b < 3; b++) {
      const m = mask.slice(b * cfg.numHeads, (b + 1) * cfg.numHeads);
      const single = await model.run([long], {
        interventions: [{ hook: 'blocks.0.attn.hook_z', mask: { data: m, dims: [1, 1, cfg.numHeads, 1] }, value: { data: new Float32Array([0]), dims: [1] } }],
      });
      expect(relErr(row(batched.logits!, b), single.logits!.data)).toBeLessThan(1e-5);
    }
  });

  it('steering adds to the residual stream: add at resid_post moves the next layer input by exactly that vector', async () => {
    const add = new Float32Array(cfg.hiddenSize).map((_, i) => (i % 7) - 3);
    const r = await model.run([short], {
      capture: ['blocks.1.hook_resid_post', 'blocks.2.hook_resid_pre'], logits: 'none',
      interventions: [{ hook: 'blocks.1.hook_resid_post', add: { data: add, dims: [cfg.hiddenSize] } }],
    });
    const base = await model.run([short], { capture: ['blocks.1.hook_resid_post'], logits: 'none' });
    const after = r.cache.get('blocks.2.hook_resid_pre')!.data;
    const before = base.cache.get('blocks.1.hook_resid_post')!.data;
    for (let i = 0; i < after.length; i++) expect(after[i]).toBeCloseTo(before[i] + add[i % cfg.hiddenSize], 4);
  });

  it('routing interventions force and forbid experts before top-k', async () => {
    const base = await model.run([short], { capture: ['blocks.0.mlp.hook_expert_indices'], logits: 'none' });
    const chosen = base.cache.get('blocks.0.mlp.hook_expert_indices')!.data;
    const first = chosen[0];
    const forbidden = await model.run([short], { capture: ['blocks.0.mlp.hook_expert_indices'], logits: 'none', routing: [{ layer: 0, forbid: [first] }] });
    const f = forbidden.cache.get('blocks.0.mlp.hook_expert_indices')!.data;
    expect(Array.from(f).includes(first)).toBe(false);
    const notChosen = [...Array(cfg.numExperts).keys()].find((e) => !Array.from(chosen.subarray(0, cfg.expertsPerToken)).includes(e))!;
    const forced = await model.run([short], { capture: ['blocks.0.mlp.hook_expert_indices'], logits: 'none', routing: [{ layer: 0, force: [notChosen], positions: [0] }] });
    const g = forced.cache.get('blocks.0.mlp.hook_expert_indices')!.data;
    expect(g[0]).toBe(notChosen);
    expect(Array.from(g.subarray(cfg.expertsPerToken))).toEqual(Array.from(chosen.subarray(cfg.expertsPerToken)));
  });

  it('zeroing one expert\'s output equals forbidding nothing but removing its weighted contribution', async () => {
    const r = await model.run([short], { capture: ['blocks.1.mlp.hook_expert_out', 'blocks.1.hook_mlp_out'], logits: 'none' });
    const eo = r.cache.get('blocks.1.mlp.hook_expert_out')!;
    const [, T, E, H] = eo.dims;
    const mask = new Float32Array(E);
    mask[1] = 1;
    const ablated = await model.run([short], {
      capture: ['blocks.1.hook_mlp_out'], logits: 'none',
      interventions: [{ hook: 'blocks.1.mlp.hook_expert_out', mask: { data: mask, dims: [1, 1, E, 1] }, value: { data: new Float32Array([0]), dims: [1] } }],
    });
    const expected = r.cache.get('blocks.1.hook_mlp_out')!.data.slice();
    for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) expected[t * H + i] -= eo.data[(t * E + 1) * H + i];
    // A few float32 ulps of mlp_out (|mlp_out| reaches ~200 here, where one ulp is 1.5e-5).
    expect(relErr(ablated.cache.get('blocks.1.hook_mlp_out')!.data, expected)).toBeLessThan(1e-6);
  });
});

describe('generation', () => {
  it('greedy generation follows the argmax and sampling is reproducible from a seed', async () => {
    const [g] = await generate(model, [short], { maxNewTokens: 4, stopTokens: [] });
    const r = await model.run([[...short, ...g.tokens.slice(0, 3)]]);
    const logits = r.logits!.data;
    let arg = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[arg]) arg = i;
    expect(g.tokens[3]).toBe(arg);
    const s1 = await generate(model, [short], { maxNewTokens: 5, temperature: 1, topP: 0.9, seed: 7, stopTokens: [] });
    const s2 = await generate(model, [short], { maxNewTokens: 5, temperature: 1, topP: 0.9, seed: 7, stopTokens: [] });
    expect(s1[0].tokens).toEqual(s2[0].tokens);
    expect(s1[0].tokens).toHaveLength(5);
  });

  it('steering stays active while generating', async () => {
    // Steer along the unembedding row of a token the model does not otherwise produce.
    const target = 17;
    const H = cfg.hiddenSize;
    const add = model.checkpoint.lmHead().slice(target * H, (target + 1) * H).map((x) => x * 200);
    const plain = await generate(model, [short], { maxNewTokens: 3, stopTokens: [] });
    const steered = await generate(model, [short], {
      maxNewTokens: 3, stopTokens: [],
      interventions: [{ hook: 'blocks.3.hook_resid_post', add: { data: add, dims: [1, 1, cfg.hiddenSize] } }],
    });
    expect(plain[0].tokens).not.toContain(target);
    expect(steered[0].tokens).toEqual([target, target, target]);
  });
});

describe('bad inputs', () => {
  it('names what is wrong and what is valid', async () => {
    await expect(model.run([short], { capture: ['blocks.0.attn.hook_zz'] })).rejects.toThrow(/unknown hook "blocks.0.attn.hook_zz".*valid hooks/);
    await expect(model.run([short], { capture: ['blocks.9.hook_resid_post'] })).rejects.toThrow(/layer 9 is out of range; this model has layers 0..3/);
    await expect(model.run([short], { capture: ['blocks.*.nothing'] })).rejects.toThrow(/matches nothing/);
    await expect(model.run([[1, 2, 999999]])).rejects.toThrow(/token id 999999; valid ids are 0..511/);
    await expect(model.run([])).rejects.toThrow(/empty batch/);
    await expect(model.run([short], { interventions: [{ hook: 'blocks.0.hook_resid_pre', add: { data: new Float32Array(5), dims: [5] } }] }))
      .rejects.toThrow(/do not broadcast to the hook's shape \[1,6,128\]/);
    await expect(model.run([short], { interventions: [{ hook: 'blocks.0.mlp.hook_expert_indices', add: { data: new Float32Array(1), dims: [1] } }] }))
      .rejects.toThrow(/cannot be intervened on/);
    await expect(model.run([short], { routing: [{ layer: 0, forbid: [0, 1, 2, 3, 4, 5] }] })).rejects.toThrow(/leaves fewer than top-k/);
    await expect(model.run([short], { startLayer: 2 })).rejects.toThrow(/needs startResid/);
    const ac = new AbortController();
    ac.abort();
    await expect(model.run([short], { signal: ac.signal })).rejects.toThrow(/cancelled/);
  });
});

describe('memory', () => {
  it('a run that cannot fit the memory budget is refused with the figures, and weights stream under a small budget', async () => {
    const small = GptOssModel.load(fixtureDir('ref-a'), { threads: 1, memoryBudgetGb: 0.001 });
    await expect(small.run([long, long, long, long, long, long, long, long])).rejects.toThrow(/needs about [\d.]+ GiB of activations \(batch 8 x 21 tokens, 0 captured hooks\), over the memory budget of 0.00 GiB/);
    const tight = GptOssModel.load(fixtureDir('ref-a'), { threads: 1, memoryBudgetGb: 0.004 });
    const r = await tight.run([short]);
    // Streaming from disk gives what the same float32 path gives with every weight cached, bit for bit.
    const cached = GptOssModel.load(fixtureDir('ref-a'), { threads: 1, expertWeights: 'stream' });
    const plain = await cached.run([short]);
    expect(maxAbsErr(r.logits!.data, plain.logits!.data)).toBe(0);
    await cached.dispose();
    expect(tight.cachedWeightBytes).toBeLessThanOrEqual(0.002 * 2 ** 30);
    await small.dispose();
    await tight.dispose();
  });
});

describe('applyIntervention (the JS-side form, for hooks computed outside the graphs)', () => {
  // Element by element from the definition, with explicit broadcast indexing.
  function reference(x: Float32Array, dims: number[], parts: { data: Float32Array; dims: number[] }[]): Float32Array {
    const out = x.slice();
    const at = (t: { data: Float32Array; dims: number[] }, idx: number[]) => t.data[t.dims.reduce((o, n, ax) => o * n + (n === 1 ? 0 : idx[ax]), 0)];
    for (let i = 0; i < x.length; i++) {
      const idx: number[] = [];
      for (let ax = dims.length - 1, r = i; ax >= 0; ax--) {
        idx[ax] = r % dims[ax];
        r = Math.floor(r / dims[ax]);
      }
      const [m, v, a] = parts.map((p) => at(p, idx));
      out[i] = x[i] * (1 - m) + m * v + a;
    }
    return out;
  }

  it('equals the definition bit for bit for any shape and broadcast pattern', () => {
    const shape = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 });
    fc.assert(fc.property(shape, fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), fc.integer({ min: 1, max: 1e6 }), (dims, keep, seed) => {
      let s = seed;
      const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
      const part = (k: number) => {
        const pd = dims.map((n, ax) => (keep[k * 4 + ax] ? n : 1));
        return { data: Float32Array.from({ length: pd.reduce((a, b) => a * b, 1) }, rnd), dims: pd };
      };
      const [mask, value, add] = [part(0), part(1), part(2)];
      const x = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, rnd);
      const want = reference(x, dims, [mask, value, add]);
      const got = { data: x.slice(), dims };
      applyIntervention(got, { hook: undefined as never, mask, value, add } as ResolvedIntervention);
      expect(Array.from(got.data)).toEqual(Array.from(want));
    }), { numRuns: 300 });
  });
});
