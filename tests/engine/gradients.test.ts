// Exact backward: the engine's gradients at every differentiable hook, on random checkpoints of
// shapes the engine was not written for, against central finite differences of the independent
// float64 reference forward (tests/reference/forward.ts, perturbed at the same hook).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gradients } from '../../engine/backward/gradient.ts';
import { metricWithGrad, type LogitMetric } from '../../engine/backward/metric.ts';
import { allHookNames, resolveHook } from '../../engine/hooks.ts';
import { GptOssModel } from '../../engine/model.ts';
import { Rng } from '../../engine/rng.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';
import { loadReferenceModel, type ReferenceModel } from '../reference/forward.ts';

const SHAPES = [
  { name: 'gqa-4x2-top2-w3', seed: 31, cfg: { hidden_size: 96, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 12, vocab_size: 61, num_local_experts: 4, num_experts_per_tok: 2, sliding_window: 3 } },
  // swiglu_limit 0.3: the clamps on gate and up are active for many units, so their zero-gradient branches are exercised.
  { name: 'mqa-6-top3-w4-clamp', seed: 47, cfg: { hidden_size: 32, intermediate_size: 96, num_hidden_layers: 3, num_attention_heads: 6, num_key_value_heads: 1, head_dim: 8, vocab_size: 43, num_local_experts: 5, num_experts_per_tok: 3, sliding_window: 4, swiglu_limit: 0.3 } },
  { name: 'mha-3-top1-w2', seed: 59, cfg: { hidden_size: 64, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 3, num_key_value_heads: 3, head_dim: 20, vocab_size: 37, num_local_experts: 3, num_experts_per_tok: 1, sliding_window: 2 } },
];

const root = mkdtempSync(join(tmpdir(), 'ns-grad-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The shape's random checkpoint, written on first use. */
function checkpointOf(s: (typeof SHAPES)[number]): string {
  const dir = join(root, s.name);
  if (!existsSync(join(dir, 'config.json'))) writeRandomCheckpoint(dir, gptOssConfigJson(s.cfg), s.seed);
  return dir;
}

/** Row b of an engine hook tensor [B, ...], with every T axis cut to the row's length: the reference's layout. */
function rowOf(t: Tensor, shape: string, b: number, len: number): Float64Array {
  const axes = shape.replace(/[[\]\s]/g, '').split(',');
  const dims = t.dims;
  const keep = dims.map((n, a) => (axes[a] === 'T' ? len : n));
  const out = new Float64Array(keep.slice(1).reduce((x, y) => x * y, 1));
  const strides = dims.map((_, a) => dims.slice(a + 1).reduce((x, y) => x * y, 1));
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    let rem = i;
    for (let a = dims.length - 1; a >= 1; a--) {
      idx[a] = rem % keep[a];
      rem = Math.floor(rem / keep[a]);
    }
    let src = b * strides[0];
    for (let a = 1; a < dims.length; a++) src += idx[a] * strides[a];
    out[i] = t.data[src];
  }
  return out;
}

/** |fd - <g, u>| / |g| over a random unit direction u (central differences of the float64 reference). */
function fdError(ref: ReferenceModel, tokens: number[], hook: string, g: Float64Array, f: (logits: Float64Array) => number, rng: Rng, eps = 1e-4): { err: number; gnorm: number } {
  const u = Float64Array.from(rng.normals(g.length, 1));
  const un = Math.hypot(...u);
  for (let i = 0; i < u.length; i++) u[i] /= un;
  const at = (s: number) => {
    const r = ref.forward(tokens, { add: new Map([[hook, u.map((x) => s * x)]]) });
    return { value: f(r.logits64), indices: r.expertIndices.map((x) => Array.from(x).join()) };
  };
  const base = ref.forward(tokens).expertIndices.map((x) => Array.from(x).join());
  const plus = at(eps);
  const minus = at(-eps);
  // The top-k choice is held fixed: a step that flips it would not be a derivative.
  expect(plus.indices, `${hook}: +eps changed the expert choice`).toEqual(base);
  expect(minus.indices, `${hook}: -eps changed the expert choice`).toEqual(base);
  const fd = (plus.value - minus.value) / (2 * eps);
  let dot = 0;
  let n2 = 0;
  for (let i = 0; i < g.length; i++) {
    dot += g[i] * u[i];
    n2 += g[i] * g[i];
  }
  const gnorm = Math.sqrt(n2);
  return { err: Math.abs(fd - dot) / Math.max(gnorm, 1e-12), gnorm };
}

const NOT_DIFFERENTIABLE = new Set(['attn.hook_sink', 'mlp.hook_expert_indices']);

describe('gradients match finite differences of the independent float64 forward', () => {
  for (const s of SHAPES) {
    it(`${s.name}: every differentiable hook, two rows of different lengths, within 1e-3 of |g|`, async () => {
      const dir = checkpointOf(s);
      const model = GptOssModel.load(dir, { threads: 1 });
      const ref = loadReferenceModel(dir);
      const rng = new Rng(s.seed + 7);
      const V = s.cfg.vocab_size;
      const prompts = [9, 6].map((n) => Array.from({ length: n }, () => rng.int(V)));
      const targets = prompts.map(() => rng.int(V));
      const hooks = allHookNames(s.cfg.num_hidden_layers).filter((h) => !NOT_DIFFERENTIABLE.has(resolveHook(h, s.cfg.num_hidden_layers).spec.local));
      const r = await gradients(model, prompts, { metric: { name: 'logit', target: targets }, grads: hooks });
      let worst = 0;
      for (const [b, tokens] of prompts.entries()) {
        const last = (logits: Float64Array) => logits[(tokens.length - 1) * V + targets[b]];
        expect(r.metric[b]).toBeCloseTo(ref.forward(tokens).logits64[(tokens.length - 1) * V + targets[b]], 3);
        for (const h of hooks) {
          const g = rowOf(r.grads.get(h)!, resolveHook(h, s.cfg.num_hidden_layers).spec.shape, b, tokens.length);
          const { err, gnorm } = fdError(ref, tokens, h, g, last, rng);
          // With top-1 the single weight is softmax of one logit, 1 whatever the logit: no gradient there.
          if (!(s.cfg.num_experts_per_tok === 1 && h.endsWith('mlp.hook_router_logits'))) expect(gnorm, `${h}: gradient is all zero`).toBeGreaterThan(0);
          expect(err, `${h} row ${b}`).toBeLessThanOrEqual(1e-3);
          worst = Math.max(worst, err);
        }
      }
      console.log(`${s.name}: ${hooks.length} hooks x 2 rows, worst |fd - <g,u>| / |g| = ${worst.toExponential(2)}`);
      await model.dispose();
    });
  }

  it('each metric (logit_diff, logprob, prob, loss, kl) seeds the right gradient', async () => {
    const s = SHAPES[0];
    const dir = checkpointOf(s);
    const model = GptOssModel.load(dir, { threads: 1 });
    const ref = loadReferenceModel(dir);
    const V = s.cfg.vocab_size;
    const tokens = [5, 17, 2, 40, 33, 8, 12];
    const clean = ref.forward([5, 17, 2, 41, 33, 8, 12]).logits64.slice(6 * V);
    const rng = new Rng(3);
    const metrics: LogitMetric[] = [
      { name: 'logit_diff', target: [4], distractor: [9] },
      { name: 'logprob', target: [4] },
      { name: 'prob', target: [4] },
      { name: 'loss', target: [4] },
      { name: 'kl', clean: [clean] },
    ];
    for (const m of metrics) {
      const r = await gradients(model, [tokens], { metric: m, grads: ['blocks.1.hook_resid_pre', 'hook_embed'] });
      for (const h of ['blocks.1.hook_resid_pre', 'hook_embed']) {
        const f = (logits: Float64Array) => metricWithGrad(m, 0, logits.subarray(6 * V)).value;
        const { err } = fdError(ref, tokens, h, Float64Array.from(r.grads.get(h)!.data), f, rng);
        expect(err, `${m.name} at ${h}`).toBeLessThanOrEqual(1e-3);
      }
    }
    await model.dispose();
  });

  it('recomputing each layer gives the same gradients as keeping the forward tensors', async () => {
    const dir = checkpointOf(SHAPES[1]);
    const model = GptOssModel.load(dir, { threads: 1 });
    const opts = { metric: { name: 'logit' as const, target: [3, 4] }, grads: ['blocks.*.hook_resid_pre', 'blocks.1.attn.hook_q'] };
    const prompts = [[1, 2, 3, 4, 5], [6, 7, 8]];
    const kept = await gradients(model, prompts, opts);
    const again = await gradients(model, prompts, { ...opts, recompute: true });
    expect(kept.recomputed).toBe(false);
    expect(again.recomputed).toBe(true);
    for (const [n, t] of kept.grads) expect(Array.from(again.grads.get(n)!.data)).toEqual(Array.from(t.data));
    await model.dispose();
  });

  it('a pass that stops at the earliest hook_z (nothing below it wanted) gives the same gradients as the full pass', async () => {
    const dir = checkpointOf(SHAPES[0]);
    const model = GptOssModel.load(dir, { threads: 1 });
    const opts = { metric: { name: 'logit' as const, target: [3, 4] }, grads: ['blocks.*.attn.hook_z', 'blocks.*.hook_mlp_out'] };
    const prompts = [[1, 2, 3, 4, 5], [6, 7, 8]];
    const short = await gradients(model, prompts, opts);
    const full = await gradients(model, prompts, { ...opts, grads: [...opts.grads, 'hook_embed'] });
    for (const [n, t] of short.grads) expect(Array.from(full.grads.get(n)!.data)).toEqual(Array.from(t.data));
    expect(short.grads.size).toBe(full.grads.size - 1);
    await model.dispose();
  });

  it('an intervention passes (1 - mask) of the gradient upstream', async () => {
    const s = SHAPES[0];
    const dir = checkpointOf(s);
    const model = GptOssModel.load(dir, { threads: 1 });
    const prompts = [[1, 2, 3, 4, 5, 6]];
    const opts = { metric: { name: 'logit' as const, target: [7] }, grads: ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_post'], capture: ['blocks.0.hook_resid_post'] };
    const plain = await gradients(model, prompts, opts);
    // Replacing a quarter of the residual by its own value leaves the forward as it was, so the
    // gradient at the hook is unchanged and what flows upstream of it is 3/4 of the plain one.
    const value = plain.cache.get('blocks.0.hook_resid_post')!;
    const quarter = await gradients(model, prompts, { ...opts, interventions: [{ hook: 'blocks.0.hook_resid_post', mask: { data: new Float32Array([0.25]), dims: [1] }, value }] });
    const rel = (a: Float32Array, b: Float32Array, k: number) => Math.max(...a.map((x, i) => Math.abs(x - k * b[i]))) / Math.max(...b.map(Math.abs));
    expect(rel(quarter.grads.get('blocks.0.hook_resid_post')!.data, plain.grads.get('blocks.0.hook_resid_post')!.data, 1)).toBeLessThan(1e-5);
    expect(rel(quarter.grads.get('blocks.0.hook_resid_pre')!.data, plain.grads.get('blocks.0.hook_resid_pre')!.data, 0.75)).toBeLessThan(1e-5);
    // A full mask cuts every path through the hook.
    const cut = await gradients(model, prompts, { ...opts, interventions: [{ hook: 'blocks.0.hook_resid_post', mask: { data: new Float32Array([1]), dims: [1] }, value }] });
    expect(cut.grads.get('blocks.0.hook_resid_pre')!.data.every((x) => x === 0)).toBe(true);
    await model.dispose();
  });

  it('`neuroscope gradient --json` prints d logit[last, ID] / d activation, [T, H], matching finite differences', () => {
    const s = SHAPES[1];
    const dir = checkpointOf(s);
    const ids = [3, 14, 15, 9, 26, 5];
    const out = execFileSync('node', ['bin/neuroscope.js', 'gradient', '--model', dir, '--ids', ids.join(','), '--hook', 'blocks.1.hook_resid_pre', '--target', '7', '--json'], { encoding: 'utf8' });
    const { grad } = JSON.parse(out) as { grad: number[][] };
    expect(grad).toHaveLength(ids.length);
    expect(grad[0]).toHaveLength(s.cfg.hidden_size);
    const V = s.cfg.vocab_size;
    const { err } = fdError(loadReferenceModel(dir), ids, 'blocks.1.hook_resid_pre', Float64Array.from(grad.flat()), (l) => l[(ids.length - 1) * V + 7], new Rng(1));
    expect(err).toBeLessThanOrEqual(1e-3);
  });

  it('refuses what has no gradient and runs over the memory budget, before running', async () => {
    const dir = checkpointOf(SHAPES[0]);
    const model = GptOssModel.load(dir, { threads: 1, memoryBudgetGb: 1e-5 });
    const opts = { metric: { name: 'logit' as const, target: [1] }, grads: ['blocks.0.hook_resid_pre'] };
    await expect(gradients(model, [[1, 2, 3]], { ...opts, grads: ['blocks.0.attn.hook_sink'] })).rejects.toThrow(/no gradient at "blocks.0.attn.hook_sink"/);
    await expect(gradients(model, [[1, 2, 3]], { ...opts, grads: ['blocks.1.mlp.hook_expert_indices'] })).rejects.toThrow(/discrete/);
    await expect(gradients(model, [[1, 2, 3]], { ...opts, metric: { name: 'logit_diff', target: [1] } })).rejects.toThrow(/needs a distractor/);
    const big = Array.from({ length: 8 }, () => Array.from({ length: 64 }, (_, i) => i % 61));
    await expect(gradients(model, big, { ...opts, metric: { name: 'logit', target: big.map(() => 1) } })).rejects.toThrow(/over the memory budget/);
    await model.dispose();
  });
});
