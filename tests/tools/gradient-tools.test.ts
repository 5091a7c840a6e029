// The gradient tools on a built-in model at a seed no construction was tuned on (tiny-s seed 777):
// attribution_patch against patch_activations, integrated_gradients' completeness, and
// edge_attribution recovering the planted IOI circuit (the tools never see the manifest; the test
// scores them against it), with the edge-patched forward exact at both ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { attributionPatchOutput } from '../../tools/attribution-patch.ts';
import { edgeAttributionOutput } from '../../tools/edge-attribution.ts';
import { edgeLabel, feeds, graphNodes, runWithEdges, senderHooks, senderLabel, senderOutput } from '../../tools/edge-graph.ts';
import { attributionPatchTool, callTool, edgeAttributionTool, integratedGradientsTool, patchTool, type ToolContext } from '../../tools/index.ts';
import { integratedGradientsOutput } from '../../tools/integrated-gradients.ts';
import { pearson } from '../../tools/linalg.ts';
import { ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { ioiEdgeSet, plantedIoiEdges } from './ioi-edges.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-grad-tools-'));
let manifest: Manifest;
let ctx: ToolContext;
let close: () => Promise<void>;
beforeAll(async () => {
  manifest = buildTinyModel('tiny-s', 777, join(root, 'model'));
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
});
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
});

describe('attribution_patch', () => {
  it('over every head (IOI, indirect object swapped) correlates with patching and agrees on the top head', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 8), 'io_swap');
    const patched = await callTool(patchTool, { ...set, site: 'head' }, ctx);
    const atp = await callTool(attributionPatchTool, { ...set, site: 'head' }, ctx);
    attributionPatchOutput.parse(atp);
    expect(atp.grid.rows).toEqual(patched.grid.rows);
    expect(atp.grid.cols).toEqual(patched.grid.cols);
    expect(atp.clean).toBeCloseTo(patched.clean, 4);
    expect(atp.corrupted).toBeCloseTo(patched.corrupted, 4);
    const flat = (g: typeof atp.grid) => g.values.flat().map((x) => x ?? Number.NaN);
    const r = pearson(flat(atp.grid), flat(patched.grid));
    console.log(`tiny-s seed 777 io_swap heads: Pearson(AtP, patching) = ${r.toFixed(4)}; patching top ${patched.top[0].site}, AtP top 3 ${atp.top.slice(0, 3).map((t) => t.site)}`);
    expect(r).toBeGreaterThanOrEqual(0.8);
    expect(atp.top.slice(0, 3).map((t) => t.site)).toContain(patched.top[0].site);
    expect(atp.passes).toEqual({ forwards: 2, backwards: 1 });
  });

  it('per head x position and per residual position, every estimate is a stored row equal to the grid', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 4), 'io_swap');
    for (const args of [{ site: 'head', perPosition: true }, { site: 'resid_pre' }] as const) {
      const atp = await callTool(attributionPatchTool, { ...set, ...args }, ctx);
      const q = await ctx.store.query(`SELECT effect FROM results WHERE experiment_id = '${atp.experimentId}'`, { maxRows: 10_000 });
      const flat = atp.grid.values.flat().filter((x) => x !== null);
      expect(q.rows.length).toBe(flat.length);
      const kind = await ctx.store.query(`SELECT kind FROM experiments WHERE experiment_id = '${atp.experimentId}'`);
      expect(kind.rows[0][0]).toBe('attribution_patching');
      // At layer 0 the residual is the embedding: the only position that differs carries the estimate.
      if (args.site === 'resid_pre') {
        const row0 = atp.grid.values[0];
        const differing = new Set(set.clean.flatMap((c, n) => c.split(' ').flatMap((w, i) => (w !== set.corrupted[n].split(' ')[i] ? [i] : []))));
        row0.forEach((e, p) => (differing.has(p) ? expect(Math.abs(e ?? 0)).toBeGreaterThan(0) : expect(e).toBe(0)));
      }
    }
  });

  it('with igSteps averages path gradients and reports the passes; bad arguments are refused', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 4), 'io_swap');
    const ig = await callTool(attributionPatchTool, { ...set, site: 'head', igSteps: 3 }, ctx);
    expect(ig.passes).toEqual({ forwards: 5, backwards: 3 });
    await expect(callTool(attributionPatchTool, { ...set, site: 'head', mode: 'sequential' }, ctx)).rejects.toThrow(/mode/);
    await expect(callTool(attributionPatchTool, { ...set, site: 'head', layers: [9] }, ctx)).rejects.toThrow(/layer 9 is out of range; valid: 0..3/);
  });
});

describe('integrated_gradients', () => {
  it('is exact in one step where the metric is linear in the hook (logit_diff of the final normalised stream)', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 4), 'io_swap');
    const r = await callTool(integratedGradientsTool, { prompts: set.clean, baseline: set.corrupted, target: set.target, distractor: set.distractor, hook: 'ln_final.hook_normalized', steps: 1 }, ctx);
    integratedGradientsOutput.parse(r);
    expect(Math.abs(r.completeness.input - r.completeness.baseline)).toBeGreaterThan(1);
    expect(r.completeness.relativeGap).toBeLessThan(1e-5);
  });

  it('over the residual stream: the gap shrinks with steps, the differing position carries the attribution, rows are stored', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 4), 'io_swap');
    const args = { prompts: set.clean, baseline: set.corrupted, target: set.target, distractor: set.distractor, hook: 'blocks.0.hook_resid_pre' };
    const coarse = await callTool(integratedGradientsTool, { ...args, steps: 2 }, ctx);
    const fine = await callTool(integratedGradientsTool, { ...args, steps: 24 }, ctx);
    console.log(`IG completeness gap on blocks.0.hook_resid_pre: ${coarse.completeness.relativeGap.toExponential(2)} at 2 steps, ${fine.completeness.relativeGap.toExponential(2)} at 24`);
    expect(fine.completeness.relativeGap).toBeLessThan(0.05);
    expect(fine.completeness.relativeGap).toBeLessThan(coarse.completeness.relativeGap);
    // Layer 0's residual is the embedding: positions where the prompts agree have x = x' and no attribution.
    const differing = new Set(set.clean.flatMap((c, n) => c.split(' ').flatMap((w, i) => (w !== set.corrupted[n].split(' ')[i] ? [`P${i}`] : []))));
    for (const c of fine.cells) if (!differing.has(c.label)) expect(c.attribution).toBe(0);
    const q = await ctx.store.query(`SELECT count(*) AS n, sum(value) AS s FROM results WHERE experiment_id = '${fine.experimentId}'`);
    expect(Number(q.rows[0][0])).toBe(fine.cells.length);
    expect(Number(q.rows[0][1])).toBeCloseTo(fine.completeness.sum, 6);
  });

  it('refuses a read-only hook and a misaligned baseline', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 2), 'io_swap');
    const base = { prompts: set.clean, target: set.target, distractor: set.distractor };
    await expect(callTool(integratedGradientsTool, { ...base, hook: 'blocks.0.attn.hook_sink' }, ctx)).rejects.toThrow(/read-only/);
    await expect(callTool(integratedGradientsTool, { ...base, baseline: set.corrupted.slice(0, 1), hook: 'hook_embed' }, ctx)).rejects.toThrow(/2 clean prompts but 1 corrupted/);
  });
});

describe('edge_attribution', () => {
  it('the edge-patched forward is the clean run with every edge kept and the corrupted run with none', async () => {
    const set = ioiEdgeSet(manifest, 4);
    const model = ctx.session.model;
    const ids = (p: string[]) => p.map((x) => ctx.session.encodeAll([x], 'p')[0].ids);
    const hooks = senderHooks(ctx.session.config.numLayers);
    const clean = await model.run(ids(set.clean), { capture: hooks });
    const corr = await model.run(ids(set.corrupted), { capture: hooks });
    const { senders, receivers } = graphNodes(ctx.session.config);
    const corrupted = new Map(senders.map((s) => [senderLabel(s), senderOutput(s, corr.cache, ctx.session.config.numHeads)]));
    const all = new Set(receivers.flatMap((r) => senders.filter((s) => feeds(s, r, ctx.session.config.numLayers)).map((s) => edgeLabel(s, r))));
    const rel = (a: Float32Array, b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i]))) / Math.max(...b.map(Math.abs));
    expect(rel((await runWithEdges(model, ids(set.clean), corrupted, all)).data, clean.logits!.data)).toBeLessThan(1e-4);
    expect(rel((await runWithEdges(model, ids(set.clean), corrupted, new Set())).data, corr.logits!.data)).toBeLessThan(1e-4);
  });

  it('EAP-IG recovers the planted IOI circuit (precision and recall >= 0.8), verified by patching', async () => {
    const group = ctx.session.config.numHeads / ctx.session.config.numKvHeads;
    const planted = new Set(plantedIoiEdges(manifest, group));
    const r = await callTool(edgeAttributionTool, { ...ioiEdgeSet(manifest, 8), method: 'EAP-IG' }, ctx);
    edgeAttributionOutput.parse(r);
    const hit = r.circuit.edges.filter((e) => planted.has(e)).length;
    const precision = hit / r.circuit.edges.length;
    const recall = hit / planted.size;
    console.log(`tiny-s seed 777 EAP-IG: circuit of ${r.circuit.edges.length} edges keeps ${r.circuit.faithfulness.toFixed(3)}; precision ${precision.toFixed(2)}, recall ${recall.toFixed(2)}; curve ${JSON.stringify(r.curve.map((c) => [c.edges, +c.faithfulness.toFixed(3)]))}`);
    expect(precision).toBeGreaterThanOrEqual(0.8);
    expect(recall).toBeGreaterThanOrEqual(0.8);
    expect(r.circuit.faithfulness).toBeGreaterThanOrEqual(0.8);
    // The circuit is the smallest verified set reaching the threshold: the next smaller one on the curve does not.
    const below = r.curve.filter((c) => c.edges < r.circuit.edges.length);
    expect(below.at(-1)!.edges).toBe(r.circuit.edges.length - 1);
    expect(below.at(-1)!.faithfulness).toBeLessThan(0.8);
    const q = await ctx.store.query(`SELECT count(*) FROM results WHERE experiment_id = '${r.experimentId}'`);
    expect(Number(q.rows[0][0])).toBe(r.edges);
    expect(r.passes.backwards).toBe(5);
  });
});
