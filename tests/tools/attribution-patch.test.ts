// attribution_patch against patch_activations on a built-in model at a seed no construction was tuned
// on: the gradient estimate ranks the sites as patching does where the effect is not saturated.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { attributionPatchOutput } from '../../tools/attribution-patch.ts';
import { attributionPatchTool, callTool, patchTool, type ToolContext } from '../../tools/index.ts';
import { ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-atp-'));
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

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((x, y) => x + y, 0) / n;
  const mb = b.reduce((x, y) => x + y, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('attribution_patch', () => {
  it('over every head (IOI, indirect object swapped) correlates with patching and agrees on the top head', async () => {
    const set = ioiPatchingSet(manifest.tasks.ioi.examples.slice(0, 8), 'io_swap');
    const patched = await callTool(patchTool, { ...set, site: 'head' }, ctx);
    const atp = await callTool(attributionPatchTool, { ...set, site: 'head' }, ctx);
    attributionPatchOutput.parse(atp);
    expect(atp.grid.rowLabels).toEqual(patched.grid.rowLabels);
    expect(atp.grid.colLabels).toEqual(patched.grid.colLabels);
    expect(atp.clean).toBeCloseTo(patched.clean, 4);
    expect(atp.corrupted).toBeCloseTo(patched.corrupted, 4);
    const r = pearson(atp.grid.effects.flat(), patched.grid.effects.flat());
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
      const flat = atp.grid.effects.flat().filter((x) => !Number.isNaN(x));
      expect(q.rows.length).toBe(flat.length);
      const kind = await ctx.store.query(`SELECT kind FROM experiments WHERE experiment_id = '${atp.experimentId}'`);
      expect(kind.rows[0][0]).toBe('attribution_patching');
      // At layer 0 the residual is the embedding: the only position that differs carries the estimate.
      if (args.site === 'resid_pre') {
        const row0 = atp.grid.effects[0];
        const differing = new Set(set.clean.flatMap((c, n) => c.split(' ').flatMap((w, i) => (w !== set.corrupted[n].split(' ')[i] ? [i] : []))));
        row0.forEach((e, p) => (differing.has(p) ? expect(Math.abs(e)).toBeGreaterThan(0) : expect(e).toBe(0)));
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
