// The KV cache: a prefill then cached steps must reproduce full recomputation (logits, captures,
// routing at absolute positions), generation must give the same tokens with and without it, and
// combinations a cache cannot serve are refused. Random checkpoint: sliding window 3 (shorter than
// the sequences, so decoding runs past it), 6 query heads over 2 KV heads, top-3 of 5 experts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, type GenerateOptions } from '../../engine/generate.ts';
import { GptOssModel, type KvCache } from '../../engine/model.ts';
import { Rng } from '../../engine/rng.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';
import { maxAbsErr, relErr } from '../helpers/fixtures.ts';

const CFG = {
  hidden_size: 64, intermediate_size: 32, num_hidden_layers: 4, num_attention_heads: 6, num_key_value_heads: 2,
  head_dim: 16, vocab_size: 97, num_local_experts: 5, num_experts_per_tok: 3, sliding_window: 3,
};
const V = CFG.vocab_size;
const H = CFG.hidden_size;
const root = mkdtempSync(join(tmpdir(), 'ns-kv-'));
let model: GptOssModel;
const rng = new Rng(41);
const tokens = (n: number) => Array.from({ length: n }, () => rng.int(V));
const seqA = tokens(16);
const seqB = tokens(16);
// Rows of different prompt lengths (two of them equal, so one group holds two rows).
const prompts = [tokens(5), tokens(8), tokens(5), tokens(3)];

beforeAll(() => {
  writeRandomCheckpoint(join(root, 'm'), gptOssConfigJson(CFG), 17);
  model = GptOssModel.load(join(root, 'm'), { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** Positions [from, to) of row b of a [B, T, ...] tensor. */
const span = (t: { data: Float32Array; dims: number[] }, b: number, from: number, to: number) => {
  const per = t.data.length / (t.dims[0] * t.dims[1]);
  return t.data.subarray((b * t.dims[1] + from) * per, (b * t.dims[1] + to) * per);
};

describe('cached steps reproduce full recomputation', () => {
  it('logits at every step, for chunks of several tokens and single tokens, past the sliding window', async () => {
    let kv: KvCache | undefined;
    let pos = 0;
    let worst = 0;
    for (const n of [6, 3, 1, 1, 1, 1, 2, 1]) {
      const step = await model.run([seqA.slice(pos, pos + n), seqB.slice(pos, pos + n)], { past: kv, returnKv: true, logits: 'all' });
      kv = step.kv!;
      expect(kv.length).toBe(pos + n);
      expect(step.logits!.dims).toEqual([2, n, V]);
      const full = await model.run([seqA.slice(0, pos + n), seqB.slice(0, pos + n)], { logits: 'all' });
      for (const b of [0, 1]) {
        const e = relErr(span(step.logits!, b, 0, n), span(full.logits!, b, pos, pos + n));
        worst = Math.max(worst, e);
        expect(e).toBeLessThan(1e-4);
      }
      pos += n;
    }
    expect(pos).toBe(16);
    expect(worst).toBeGreaterThan(0); // a real comparison, not the same computation twice
  });

  it('the cache holds the post-RoPE keys and the values; captures cover the new positions, the key axis all of them', async () => {
    const P = 9;
    const capture = ['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_attn_scores', 'blocks.2.attn.hook_rot_k', 'blocks.2.attn.hook_v', 'blocks.3.hook_resid_post'];
    const full = await model.run([seqA.slice(0, P + 2)], { logits: 'none', capture });
    const pre = await model.run([seqA.slice(0, P)], { returnKv: true, logits: 'none' });
    const step = await model.run([seqA.slice(P, P + 2)], { past: pre.kv, returnKv: true, logits: 'none', capture });
    const { numHeads: nH, numKvHeads: nKV, headDim: d } = model.config;
    // keys [1, T, nKV, d] from the full run vs the cache [1, nKV, P+2, d].
    const rk = full.cache.get('blocks.2.attn.hook_rot_k')!;
    const v = full.cache.get('blocks.2.attn.hook_v')!;
    const layer = step.kv!.layers[2];
    expect(layer.k.dims).toEqual([1, nKV, P + 2, d]);
    const toHeadMajor = (t: Float32Array) => {
      const o = new Float32Array(t.length);
      for (let p = 0; p < P + 2; p++) for (let h = 0; h < nKV; h++) for (let i = 0; i < d; i++) o[(h * (P + 2) + p) * d + i] = t[(p * nKV + h) * d + i];
      return o;
    };
    expect(relErr(layer.k.data, toHeadMajor(rk.data))).toBeLessThan(1e-5);
    expect(relErr(layer.v.data, toHeadMajor(v.data))).toBeLessThan(1e-5);
    // Cached captures: [1, nH, 2, P + 2] = the last two query rows of the full [1, nH, P + 2, P + 2].
    for (const name of ['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_attn_scores']) {
      const mine = step.cache.get(name)!;
      expect(mine.dims).toEqual([1, nH, 2, P + 2]);
      const theirs = full.cache.get(name)!;
      const rows = new Float32Array(nH * 2 * (P + 2));
      for (let h = 0; h < nH; h++) rows.set(theirs.data.subarray((h * (P + 2) + P) * (P + 2), (h * (P + 2) + P + 2) * (P + 2)), h * 2 * (P + 2));
      if (name.endsWith('pattern')) expect(maxAbsErr(mine.data, rows)).toBeLessThan(1e-6);
      else expect(relErr(mine.data, rows)).toBeLessThan(1e-5);
    }
    // The sliding window (3) on layer 0: the newest query sees only its last 3 keys.
    const pat = step.cache.get('blocks.0.attn.hook_pattern')!.data;
    const last = pat.subarray(P + 2, 2 * (P + 2)); // head 0, query P + 1
    expect(Array.from(last.subarray(0, P - 1)).every((x) => x === 0)).toBe(true);
    expect(Array.from(last.subarray(P - 1)).every((x) => x > 0)).toBe(true);
    expect(step.cache.get('blocks.3.hook_resid_post')!.dims).toEqual([1, 2, H]);
    expect(relErr(step.cache.get('blocks.3.hook_resid_post')!.data, span(full.cache.get('blocks.3.hook_resid_post')!, 0, P, P + 2))).toBeLessThan(1e-5);
  });

  it('interventions apply to the new positions; routing positions are absolute', async () => {
    const add = new Float32Array(H).map((_, i) => ((i % 5) - 2) * 0.7);
    const interventions = [{ hook: 'blocks.1.hook_resid_post', add: { data: add, dims: [1, 1, H] } }];
    const routing = [{ layer: 2, force: [4], forbid: [0], positions: [3, 10] }];
    const full = await model.run([seqA.slice(0, 12)], { logits: 'all', interventions, routing, capture: ['blocks.2.mlp.hook_expert_indices'] });
    const plain = await model.run([seqA.slice(0, 12)], { logits: 'all' });
    // The prefill is positions 0..7 (10 is out of its range); the step's rule still names 3, which is cached.
    const pre = await model.run([seqA.slice(0, 8)], { returnKv: true, logits: 'all', interventions, routing: [{ ...routing[0], positions: [3] }] });
    const step = await model.run([seqA.slice(8, 12)], { past: pre.kv, logits: 'all', interventions, routing, capture: ['blocks.2.mlp.hook_expert_indices'] });
    expect(relErr(pre.logits!.data, span(full.logits!, 0, 0, 8))).toBeLessThan(1e-4);
    expect(relErr(step.logits!.data, span(full.logits!, 0, 8, 12))).toBeLessThan(1e-4);
    expect(relErr(step.logits!.data, span(plain.logits!, 0, 8, 12))).toBeGreaterThan(1e-2);
    // Absolute position 10 is new position 2 of the step: expert 4 forced there, expert 0 nowhere near it.
    const k = CFG.num_experts_per_tok;
    const idx = Array.from(step.cache.get('blocks.2.mlp.hook_expert_indices')!.data);
    expect(idx[2 * k]).toBe(4);
    expect(idx.slice(2 * k, 3 * k)).not.toContain(0);
    expect(idx).toEqual(Array.from(span(full.cache.get('blocks.2.mlp.hook_expert_indices')!, 0, 8, 12)));
  });
});

describe('generate with and without the cache', () => {
  const both = async (opts: GenerateOptions) => [
    await generate(model, prompts, { ...opts, kvCache: false }),
    await generate(model, prompts, { ...opts, kvCache: true }),
  ];
  const same = (a: Awaited<ReturnType<typeof generate>>, b: typeof a) => {
    expect(b.map((g) => g.tokens)).toEqual(a.map((g) => g.tokens));
    expect(b.map((g) => g.stoppedBy)).toEqual(a.map((g) => g.stoppedBy));
    a.forEach((g, i) => g.logprobs.forEach((lp, j) => expect(Math.abs(b[i].logprobs[j] - lp)).toBeLessThan(1e-4)));
  };

  it('greedy: same tokens and logprobs on rows of different lengths, with a stop token ending some rows early', async () => {
    const [plain, cached] = await both({ maxNewTokens: 10, stopTokens: [] });
    same(plain, cached);
    // A stop token that ends one row early while another row never produces it.
    const stopTok = plain.flatMap((g) => g.tokens.slice(1, 6)).find((t) => plain.some((g) => !g.tokens.includes(t)));
    expect(stopTok).toBeDefined();
    const [a, b] = await both({ maxNewTokens: 10, stopTokens: [stopTok!] });
    same(a, b);
    expect(a.map((g) => g.stoppedBy)).toContain('stop');
    expect(a.map((g) => g.stoppedBy)).toContain('length');
  });

  it('seeded sampling: same tokens and logprobs (same rng draws in the same order)', async () => {
    const [a, b] = await both({ maxNewTokens: 10, temperature: 1, topP: 0.9, seed: 11, stopTokens: [] });
    same(a, b);
    const other = await generate(model, prompts, { maxNewTokens: 10, temperature: 1, topP: 0.9, seed: 12, stopTokens: [] });
    expect(other.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
  });

  it('a fixed steering intervention broadcast over positions, per row and shared, and routing rules give the same generations', async () => {
    const dir = model.checkpoint.lmHead().slice(7 * H, 8 * H);
    const shared = [{ hook: 'blocks.2.hook_resid_post', add: { data: dir.map((x) => x * 30), dims: [1, 1, H] } }];
    const perRow = new Float32Array(prompts.length * H);
    prompts.forEach((_, b) => perRow.set(dir.map((x) => x * 10 * b), b * H));
    const rowwise = [{ hook: 'blocks.1.hook_resid_mid', add: { data: perRow, dims: [prompts.length, 1, H] } }];
    const routing = [{ layer: 1, force: [3], forbid: [0, 1], positions: [4, 7], rows: [0, 3] }];
    const plain = await generate(model, prompts, { maxNewTokens: 8, stopTokens: [] });
    for (const opts of [{ interventions: shared }, { interventions: rowwise }, { routing }, { interventions: shared, routing }]) {
      const [a, b] = await both({ maxNewTokens: 8, stopTokens: [], ...opts });
      same(a, b);
      // Each changes the model: some logprob moves (tokens may or may not flip).
      expect(Math.max(...a.flatMap((g, i) => g.logprobs.map((lp, j) => (plain[i].tokens[j] === g.tokens[j] ? Math.abs(lp - plain[i].logprobs[j]) : 1))))).toBeGreaterThan(1e-3);
    }
  });

  it('interventions as a function: auto recomputes; with the cache only the new positions are taken', async () => {
    const add = model.checkpoint.lmHead().slice(7 * H, 8 * H).map((x) => x * 30);
    // The same vector at every position, built per length: the cache must match the fixed form.
    const everywhere = (T: number) => [{ hook: 'blocks.2.hook_resid_post', add: { data: new Float32Array(T * H).map((_, i) => add[i % H]), dims: [1, T, H] } }];
    const fixed = await generate(model, prompts, { maxNewTokens: 6, stopTokens: [], interventions: [{ hook: 'blocks.2.hook_resid_post', add: { data: add, dims: [1, 1, H] } }], kvCache: false });
    same(fixed, await generate(model, prompts, { maxNewTokens: 6, stopTokens: [], interventions: everywhere, kvCache: true }));
    // Steering only the last position moves with the length: auto recomputes, as kvCache false does.
    const lastOnly = (T: number) => {
      const a = new Float32Array(prompts.length * T * H);
      prompts.forEach((_, b) => a.set(add, (b * T + T - 1) * H));
      return [{ hook: 'blocks.0.hook_resid_post', add: { data: a, dims: [prompts.length, T, H] } }];
    };
    const opts = { maxNewTokens: 6, stopTokens: [], interventions: lastOnly };
    expect(await generate(model, prompts, opts)).toEqual(await generate(model, prompts, { ...opts, kvCache: false }));
    // With the cache each position is steered once, when it is the newest: the same as recomputing
    // with every position from the prompt's last one on steered.
    const cached = await generate(model, prompts, { ...opts, kvCache: true });
    const fromPromptEnd = await generate(model, prompts, { ...opts, kvCache: false, interventions: (T) => {
      const a = new Float32Array(prompts.length * T * H);
      prompts.forEach((p, b) => { for (let t = p.length - 1; t < T; t++) a.set(add, (b * T + t) * H); });
      return [{ hook: 'blocks.0.hook_resid_post', add: { data: a, dims: [prompts.length, T, H] } }];
    } });
    same(fromPromptEnd, cached);
    const plain = await generate(model, prompts, { maxNewTokens: 6, stopTokens: [] });
    expect(cached.map((g) => g.tokens)).not.toEqual(plain.map((g) => g.tokens));
  });

  it('onStep and the abort signal behave the same with the cache', async () => {
    const steps: number[] = [];
    await generate(model, prompts, { maxNewTokens: 4, stopTokens: [], kvCache: true, onStep: (s, n) => steps.push(s * 10 + n) });
    expect(steps).toEqual([14, 24, 34, 44]);
    const ac = new AbortController();
    ac.abort();
    await expect(generate(model, prompts, { maxNewTokens: 4, kvCache: true, signal: ac.signal })).rejects.toThrow(/cancelled/);
  });
});

describe('causal cone: a run from layer L over positions p.. with the cache of positions < p', () => {
  it('reproduces the full run there, with rows joining at different layers and a patch inside the cone', async () => {
    const p = 6;
    const n = seqA.length;
    // A patch at layer 2, position p + 1 (inside the cone: positions before p keep their keys and values).
    const added = (T: number, at: number) => ({ data: Float32Array.from({ length: T * H }, (_, i) => (Math.floor(i / H) === at ? ((i % H) % 7) / 10 : 0)), dims: [1, T, H] });
    const patch = { hook: 'blocks.2.hook_resid_pre', add: added(n, p + 1) };
    const full = await model.run([seqA, seqB], { logits: 'all', capture: ['blocks.*.hook_resid_pre'], interventions: [patch] });
    const prefix = await model.run([seqA.slice(0, p), seqB.slice(0, p)], { returnKv: true, logits: 'none' });
    const starts = [1, 3];
    const T = seqA.length - p;
    const startResid = { data: new Float32Array(2 * T * H), dims: [2, T, H] };
    starts.forEach((L, b) => startResid.data.set(span(full.cache.get(`blocks.${L}.hook_resid_pre`)!, b, p, n), b * T * H));
    // Row 1 starts at layer 3, after the patched layer: it gets the patch through its start residual.
    const cone = await model.run([seqA.slice(p), seqB.slice(p)], {
      past: prefix.kv, startLayer: starts, startResid, logits: 'all',
      interventions: [{ hook: patch.hook, add: added(T, 1) }],
    });
    for (const b of [0, 1]) expect(relErr(span(cone.logits!, b, 0, T), span(full.logits!, b, p, n))).toBeLessThanOrEqual(1e-5);
  });
});

describe('combinations a cache cannot serve are refused', () => {
  it('names what is wrong', async () => {
    const pre = await model.run([seqA.slice(0, 6), seqB.slice(0, 6)], { returnKv: true, logits: 'none' });
    const kv = pre.kv!;
    const resid = { data: new Float32Array(2 * 1 * H), dims: [2, 1, H] };
    await expect(model.run([[1], [2]], { returnKv: true, startLayer: 0, startResid: resid })).rejects.toThrow(/returnKv cannot be combined with startLayer/);
    await expect(model.run([[1, 2], [3]], { past: kv })).rejects.toThrow(/every row must have the same length \(a KV cache holds no padding\); got lengths \[2,1\]/);
    await expect(model.run([[1, 2], [3]], { returnKv: true })).rejects.toThrow(/same length/);
    await expect(model.run([[1]], { past: kv })).rejects.toThrow(/past layer 0 k has dims \[2,2,6,16\].*expected \[1,2,6,16\]/);
    await expect(model.run([[1], [2]], { returnKv: true, endLayer: 2 })).rejects.toThrow(/returnKv needs every layer/);
    await expect(model.run([[1], [2]], { past: kv, routing: [{ layer: 0, force: [1], positions: [7] }] })).rejects.toThrow(/routing position 7 is out of range; valid: 0..6 \(absolute positions; 0..5 are cached/);
    await expect(model.run([[1], [2]], { past: { length: 6, layers: kv.layers.slice(1) } })).rejects.toThrow(/past has 3 layers; this model has 4/);
    await expect(generate(model, prompts, { kvCache: 'yes' as never })).rejects.toThrow(/kvCache must be/);
    const short = GptOssModel.load(join(root, 'm'), { threads: 1, maxTokens: 8 });
    const p = await short.run([seqA.slice(0, 6)], { returnKv: true, logits: 'none' });
    await expect(short.run([seqA.slice(6, 9)], { past: p.kv })).rejects.toThrow(/past of 6 tokens plus 3 new tokens is 9 positions; the limit is 8/);
    await short.dispose();
  });
});
