// Tool mechanics on a random checkpoint: the batched sweep with prefix reuse equals one forward
// per site, every result is in the store, and bad inputs get clear errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callTool, ablateTool, captureTool, pathPatchTool, patchTool, steerTool, type ToolContext } from '../../tools/index.ts';
import { openRandomWordWorkspace } from '../helpers/random-model.ts';

let ctx: ToolContext;
let close: () => Promise<void>;
beforeAll(async () => ({ ctx, close } = await openRandomWordWorkspace('ns-mech-')));
afterAll(() => close());

const clean = ['w1 w2 w3 w4 w5 w1 w7', 'w9 w8 w3 w4 w5 w9 w7'];
const corrupted = ['w1 w2 w3 w4 w5 w6 w7', 'w9 w8 w3 w4 w5 w10 w7'];
const base = { clean, corrupted, target: 'w2', distractor: 'w3' };

describe('patch_activations', () => {
  it('the batched sweep with prefix reuse equals one forward per site', async () => {
    for (const site of ['resid_pre', 'mlp_out', 'head', 'expert'] as const) {
      const batched = await callTool(patchTool, { ...base, site, maxBatch: 8 }, ctx);
      const sequential = await callTool(patchTool, { ...base, site, mode: 'sequential' }, ctx);
      expect(batched.forwards).toBeLessThan(sequential.forwards);
      const a = batched.grid.values.flat();
      const b = sequential.grid.values.flat();
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 4);
    }
  });

  it('position sweeps computed over the causal cone only (corrupted keys/values before the patch) equal one forward per site', async () => {
    for (const extra of [{ site: 'resid_post' }, { site: 'attn_out' }, { site: 'resid_mid' }, { site: 'head', perPosition: true, heads: [0, 1] }] as const) {
      const batched = await callTool(patchTool, { ...base, ...extra, maxBatch: 6 }, ctx);
      const sequential = await callTool(patchTool, { ...base, ...extra, mode: 'sequential' }, ctx);
      const a = batched.grid.values.flat();
      const b = sequential.grid.values.flat();
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i++) expect(a[i], `${extra.site} site ${i}`).toBeCloseTo(b[i]!, 4);
    }
  });

  it('resid_pre at layer 0 restores everything at the differing position and nothing elsewhere', async () => {
    const r = await callTool(patchTool, { ...base, site: 'resid_pre', layers: [0] }, ctx);
    const row = r.grid.values[0];
    expect(row[5]).toBeCloseTo(1, 5);
    for (const p of [0, 1, 2, 3, 4, 6]) expect(row[p]).toBeCloseTo(0, 5);
  });

  it('stores every site as a row equal to the returned grid', async () => {
    const r = await callTool(patchTool, { ...base, site: 'head' }, ctx);
    const q = await ctx.store.query(`SELECT layer, component, effect FROM results WHERE experiment_id = '${r.experimentId}' ORDER BY layer, component`, { maxRows: 1000 });
    const flat = r.grid.values.flat();
    expect(q.rows.length).toBe(flat.length);
    q.rows.forEach((row, i) => expect(row[2] as number).toBe(flat[i]));
    const e = await ctx.store.query(`SELECT kind, clean_value, corrupted_value FROM experiments WHERE experiment_id = '${r.experimentId}'`);
    expect(e.rows[0][0]).toBe('activation_patching');
    expect(e.rows[0][1] as number).toBeCloseTo(r.clean, 5);
    expect(e.rows[0][2] as number).toBeCloseTo(r.corrupted, 5);
  });
});

describe('other causal tools', () => {
  it('path patching to resid_end from every head, and to a receiver', async () => {
    const toEnd = await callTool(pathPatchTool, { ...base, receivers: 'resid_end' }, ctx);
    expect(toEnd.grid.rows.labels).toEqual(['L0', 'L1', 'L2']);
    const toHead = await callTool(pathPatchTool, { ...base, receivers: ['L2.H1'], receiverInput: 'qkv' }, ctx);
    expect(toHead.grid.rows.labels).toEqual(['L0', 'L1']);
    expect(toHead.top.length).toBeGreaterThan(0);
  });

  it('ablation: zero, mean and resample report before/after; routing ablation forbids the expert', async () => {
    const prompts = ['w1 w2 w3 w4', 'w5 w6 w7 w8', 'w9 w10 w11 w12'];
    const zero = await callTool(ablateTool, { prompts, target: 'w2', distractor: 'w3', components: ['L1.H0', 'L2.E1', 'L0.E0.N3'] }, ctx);
    expect(zero.each).toHaveLength(3);
    expect(zero.before).not.toBeCloseTo(zero.after, 6);
    const mean = await callTool(ablateTool, { prompts, target: 'w2', distractor: 'w3', components: ['L1.H0'], method: 'mean' }, ctx);
    expect(mean.before).toBeCloseTo(zero.before, 6);
    const resample = await callTool(ablateTool, { prompts, target: 'w2', distractor: 'w3', components: ['L1.H0'], method: 'resample' }, ctx);
    expect(Number.isFinite(resample.after)).toBe(true);
    const routing = await callTool(ablateTool, { prompts, metric: 'kl', components: ['L0.E0', 'L0.E1'], expertMode: 'routing', each: false }, ctx);
    expect(routing.before).toBe(0);
    expect(routing.after).toBeGreaterThan(0);
  });

  it('steering: a contrast vector at every token moves the metric at least as much as at one token', async () => {
    const r = await callTool(steerTool, {
      prompts: ['w1 w2 w3 w4 w5', 'w6 w7 w8 w9 w10'], target: 'w2', distractor: 'w3',
      vector: { positive: ['w2 w2 w2'], negative: ['w3 w3 w3'] }, layer: 1, coefficients: [0, 4], saveAs: 'w2_minus_w3',
    }, ctx);
    const at = (mode: string, c: number) => r.rows.find((x) => x.mode === mode && x.coefficient === c)!;
    expect(at('last', 0).shift).toBeCloseTo(0, 6);
    expect(Math.abs(at('all', 4).shift)).toBeGreaterThan(Math.abs(at('last', 4).shift) * 0.999);
    expect(r.generations[0].steered['all x4']).toBeTypeOf('string');
    const v = await ctx.store.getVector('w2_minus_w3');
    expect(v!.vec.length).toBe(64);
    // The same direction given as raw values steers identically (a client can steer along a direction it computed).
    const raw = await callTool(steerTool, {
      prompts: ['w1 w2 w3 w4 w5', 'w6 w7 w8 w9 w10'], target: 'w2', distractor: 'w3',
      vector: { values: Array.from(v!.vec) }, layer: 1, coefficients: [0, 4], generateTokens: 0, saveAs: 'raw_copy',
    }, ctx);
    expect(raw.rows.map((x) => x.metric)).toEqual(r.rows.map((x) => x.metric));
    expect(raw.vector).toBe('raw_copy');
    await expect(callTool(steerTool, { prompts: ['w1 w2'], target: 'w2', distractor: 'w3', vector: { values: [1, 2] }, layer: 1 }, ctx))
      .rejects.toThrow(/vector\.values has 2 values; the residual stream has 64/);
  });

  it('capture stores one row per prompt x hook x position x component and they read back equal', async () => {
    const r = await callTool(captureTool, { prompts: ['w1 w2 w3', 'w4 w5'], hooks: ['blocks.*.hook_resid_post', 'blocks.0.attn.hook_pattern'], positions: [-1] }, ctx);
    expect(r.rowsStored).toBe(2 * 3 + 2 * 4);
    const rows = await ctx.store.getActivations({ runId: r.runIds[0], hook: 'blocks.0.attn.hook_pattern' });
    expect(rows).toHaveLength(4);
    expect(rows[0].vec.length).toBe(3);
    const q = await ctx.store.query(`SELECT count(*) FROM activations WHERE run_id IN ('${r.runIds.join("','")}')`);
    expect(Number(q.rows[0][0])).toBe(14);
  });
});

describe('bad inputs', () => {
  it('answer with what was wrong and what is valid', async () => {
    await expect(callTool(patchTool, { ...base, site: 'resid_pre', layers: [7] }, ctx)).rejects.toThrow(/layer 7 is out of range; valid: 0..2/);
    await expect(callTool(patchTool, { ...base, site: 'resid_pre', positions: [12] }, ctx)).rejects.toThrow(/position 12 is beyond the prompt; valid: 0..6/);
    await expect(callTool(patchTool, { ...base, corrupted: ['w1 w2', 'w1 w2 w3 w4 w5 w6 w7'], site: 'head' }, ctx)).rejects.toThrow(/clean\[0\] has 7 tokens but corrupted\[0\] has 2/);
    await expect(callTool(patchTool, { ...base, clean: [], site: 'head' }, ctx)).rejects.toThrow(/invalid arguments for patch_activations/);
    await expect(callTool(patchTool, { ...base, site: 'nowhere' }, ctx)).rejects.toThrow(/site/);
    await expect(callTool(patchTool, { ...base, distractor: 'w2 w3', site: 'head' }, ctx)).rejects.toThrow(/distractor "w2 w3" is 2 tokens/);
    await expect(callTool(captureTool, { prompts: ['w1'], hooks: ['blocks.0.attn.hook_zz'] }, ctx)).rejects.toThrow(/unknown hook/);
    await expect(callTool(ablateTool, { prompts: ['w1 w2'], target: 'w1', distractor: 'w2', components: ['L0.H9'] }, ctx)).rejects.toThrow(/head 9 is out of range; valid: 0..3/);
    await expect(callTool(pathPatchTool, { ...base, senders: ['L2.H0'], receivers: ['L1.H0'] }, ctx)).rejects.toThrow(/not before the receivers/);
    await expect(callTool(steerTool, { prompts: ['w1'], target: 'w1', distractor: 'w2', vector: { name: 'nope' }, layer: 0 }, ctx)).rejects.toThrow(/no stored vector "nope"/);
  });

  it('a cancelled sweep stops with a clear error', async () => {
    const ac = new AbortController();
    const c = { ...ctx, signal: ac.signal, onProgress: () => ac.abort() };
    await expect(callTool(patchTool, { ...base, site: 'resid_pre', maxBatch: 2 }, c)).rejects.toThrow(/cancelled/);
  });
});
