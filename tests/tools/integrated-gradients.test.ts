// integrated_gradients: completeness on a built-in model (exact where the metric is linear in the
// hook, a small gap that shrinks with steps where it is not), attributions in the store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { callTool, integratedGradientsTool, type ToolContext } from '../../tools/index.ts';
import { integratedGradientsOutput } from '../../tools/integrated-gradients.ts';
import { ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-ig-'));
let manifest: Manifest;
let ctx: ToolContext;
let close: () => Promise<void>;
beforeAll(async () => {
  manifest = buildTinyModel('tiny-s', 4243, join(root, 'model'));
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
});
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
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
