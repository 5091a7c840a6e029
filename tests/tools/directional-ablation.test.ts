// Directional ablation: `ablate` with `project` removes a direction from the residual stream. The
// planted direction is the one the logit difference reads at the last layer, finalNorm ⊙ (U[w2] -
// U[w3]): with it projected out of the final residual the logit difference is 0 (up to float32),
// while a random direction of the same norm leaves it nearly as it was. Stored vectors (by name,
// with their hook as the default) and raw values both work; a probe's stored direction is usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../engine/rng.ts';
import { ablateTool, callTool, probeTool, steerTool, type ToolContext } from '../../tools/index.ts';
import { openRandomWordWorkspace } from '../helpers/random-model.ts';

let ctx: ToolContext;
let close: () => Promise<void>;
beforeAll(async () => ({ ctx, close } = await openRandomWordWorkspace('ns-direction-')));
afterAll(() => close());

const prompts = ['w1 w2 w3 w4 w5 w1 w7', 'w8 w9 w3 w4 w5 w8 w6', 'w10 w2 w11 w4 w12 w10 w7'];
const task = { prompts, target: 'w2', distractor: 'w3', metric: 'logit_diff' as const };
const last = () => `blocks.${ctx.session.config.numLayers - 1}.hook_resid_post`;

/** finalNorm ⊙ (U[w2] - U[w3]): the direction the logit difference reads from the final residual. */
function plantedDirection(): number[] {
  const ck = ctx.session.model.checkpoint;
  const [t, d] = [ctx.session.tokenizer.encode('w2')[0], ctx.session.tokenizer.encode('w3')[0]];
  const U = ck.readRows('lm_head.weight', [t, d]);
  const g = ck.finalNorm();
  const H = ctx.session.config.hiddenSize;
  return Array.from({ length: H }, (_, i) => g[i] * (U[i] - U[H + i]));
}

const norm = (v: readonly number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe('directional ablation', () => {
  it('projecting out the planted direction removes the logit difference; a random direction of the same norm does not', async () => {
    const planted = plantedDirection();
    const removed = await callTool(ablateTool, { ...task, project: { vector: { values: planted }, hooks: [last()] } }, ctx);
    expect(Math.abs(removed.before)).toBeGreaterThan(0.05);
    expect(Math.abs(removed.after)).toBeLessThan(1e-4 * Math.max(1, Math.abs(removed.before)));
    expect(removed.projected?.hooks).toEqual([last()]);
    expect(removed.projected?.norm).toBeCloseTo(norm(planted), 4);

    const rng = new Rng(7);
    const raw = planted.map(() => rng.normal());
    const random = raw.map((x) => (x * norm(planted)) / norm(raw));
    const kept = await callTool(ablateTool, { ...task, project: { vector: { values: random }, hooks: [last()] } }, ctx);
    expect(kept.before).toBe(removed.before);
    // The planted direction removes all of the difference; the random one moves it by a fraction.
    expect(Math.abs(kept.change)).toBeLessThan(0.5 * Math.abs(removed.change));
    expect(Math.abs(kept.after)).toBeGreaterThan(0.5 * Math.abs(removed.before));
    console.log(`logit_diff ${removed.before} -> planted direction removed ${removed.after}, random direction of the same norm removed ${kept.after}`);
  });

  it('a raw vector is stored under its name and can be ablated by name, at its own hook by default', async () => {
    const planted = plantedDirection();
    const first = await callTool(ablateTool, { ...task, project: { vector: { values: planted }, hooks: [last()], saveAs: 'planted_diff' } }, ctx);
    const stored = await ctx.store.getVector('planted_diff');
    expect(stored?.hook).toBe(last());
    expect(stored?.kind).toBe('ablation');
    const byName = await callTool(ablateTool, { ...task, project: { vector: { name: 'planted_diff' } } }, ctx);
    expect(byName.after).toBe(first.after);
    expect(byName.projected?.vector).toBe('planted_diff');
    // Several hooks (a pattern) project at each, in forward order; the last one still zeroes the read-out.
    const every = await callTool(ablateTool, { ...task, project: { vector: { name: 'planted_diff' }, hooks: ['blocks.*.hook_resid_post'] } }, ctx);
    expect(every.projected?.hooks).toHaveLength(ctx.session.config.numLayers);
    expect(Math.abs(every.after)).toBeLessThan(1e-4 * Math.max(1, Math.abs(every.before)));
  });

  it('mean ablation sets the direction to its mean over the reference prompts', async () => {
    const planted = plantedDirection();
    // The coordinate is set to its mean over the prompts' tokens instead of 0: a different result.
    const zero = await callTool(ablateTool, { ...task, project: { vector: { values: planted }, hooks: [last()] } }, ctx);
    const mean = await callTool(ablateTool, { ...task, method: 'mean', project: { vector: { values: planted }, hooks: [last()] } }, ctx);
    expect(mean.before).toBe(zero.before);
    expect(Math.abs(mean.after - zero.after)).toBeGreaterThan(1e-3);
    await expect(callTool(ablateTool, { ...task, method: 'resample', project: { vector: { values: planted }, hooks: [last()] } }, ctx))
      .rejects.toThrow(/directional ablation takes method "zero".*not "resample"/);
  });

  it('directions other tools store (probe, steering contrast) can be ablated by name', async () => {
    const examples = ['w1 w2 w3', 'w1 w4 w3', 'w1 w5 w3', 'w1 w6 w3', 'w8 w2 w9', 'w8 w4 w9', 'w8 w5 w9', 'w8 w6 w9']
      .map((prompt, i) => ({ prompt, label: i < 4 ? 'a' : 'b' }));
    const probe = await callTool(probeTool, { examples, hook: 'resid_post', layers: [1] }, ctx);
    const r = await callTool(ablateTool, { ...task, project: { vector: { name: probe.vectors[0].name } } }, ctx);
    expect(r.projected?.hooks).toEqual(['blocks.1.hook_resid_post']);
    expect(Number.isFinite(r.after)).toBe(true);
    const steer = await callTool(steerTool, { ...task, layer: 0, vector: { positive: ['w1 w2'], negative: ['w8 w9'] }, coefficients: [1], modes: ['last'], generateTokens: 0, saveAs: 'contrast_0' }, ctx);
    expect(steer.vector).toBe('contrast_0');
    const s = await callTool(ablateTool, { ...task, project: { vector: { name: 'contrast_0' } } }, ctx);
    expect(s.projected?.hooks).toEqual(['blocks.0.hook_resid_post']);
  });

  it('refuses what cannot be a direction or a place for one', async () => {
    await expect(callTool(ablateTool, task, ctx)).rejects.toThrow(/give exactly one of components .* or project/);
    await expect(callTool(ablateTool, { ...task, project: { vector: { values: [1, 2, 3] }, hooks: [last()] } }, ctx))
      .rejects.toThrow(/vector\.values has 3 values; the residual stream has 64/);
    await expect(callTool(ablateTool, { ...task, project: { vector: { values: plantedDirection() }, hooks: ['blocks.0.attn.hook_z'] } }, ctx))
      .rejects.toThrow(/blocks\.0\.attn\.hook_z \(\[B, T, nH, d\]\) is not a residual-width hook/);
    await expect(callTool(ablateTool, { ...task, project: { vector: { values: plantedDirection() } } }, ctx)).rejects.toThrow(/project\.hooks is needed for raw values/);
  });
});
