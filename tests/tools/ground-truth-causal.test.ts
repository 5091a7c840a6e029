// The causal tools against the planted ground truth of gpt-oss-tiny, at seeds no construction was
// tuned on: the tools never see the manifest; the test scores them against it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { ablateTool, callTool, pathPatchTool, patchTool, steerTool, type ToolContext } from '../../tools/index.ts';
import { ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const CASES = [
  { size: 'tiny-s', seed: 31337 },
  { size: 'tiny-m', seed: 2718 },
] as const;

const heads = (m: Manifest, role: string) => m.roles[role] as string[];

for (const { size, seed } of CASES) {
  describe(`${size} seed ${seed}`, () => {
    const root = mkdtempSync(join(tmpdir(), `ns-gt-${size}-`));
    let manifest: Manifest;
    let ctx: ToolContext;
    let close: () => Promise<void>;
    beforeAll(async () => {
      manifest = buildTinyModel(size, seed, join(root, 'model'));
      ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
    });
    afterAll(async () => {
      await close();
      rmSync(root, { recursive: true, force: true });
    });
    const ioi = () => manifest.tasks.ioi.examples.slice(0, 8);

    it('a head sweep on IOI (indirect object swapped) ranks the planted name movers first', async () => {
      const set = ioiPatchingSet(ioi(), 'io_swap');
      const r = await callTool(patchTool, { ...set, site: 'head' }, ctx);
      const movers = heads(manifest, 'ioi.name_mover');
      const ranked = r.top.map((t) => t.site);
      expect(new Set(ranked.slice(0, movers.length))).toEqual(new Set(movers));
      const stored = await ctx.store.query(`SELECT site, effect FROM results WHERE experiment_id = '${r.experimentId}' ORDER BY abs(effect) DESC LIMIT 1`);
      expect(stored.rows[0][0]).toBe(ranked[0]);
      expect(stored.rows[0][1] as number).toBeCloseTo(r.top[0].effect, 6);
    });

    it('path patching into the name movers\' queries singles out the S-inhibition head', async () => {
      const set = ioiPatchingSet(ioi(), 'abc');
      const r = await callTool(pathPatchTool, { ...set, receivers: heads(manifest, 'ioi.name_mover'), receiverInput: 'q' }, ctx);
      expect(r.top[0].sender).toBe(heads(manifest, 'ioi.s_inhibition')[0]);
      // The top list holds only senders with an effect: the next one (if any) is far behind.
      expect(Math.abs(r.top[0].effect)).toBeGreaterThan(3 * Math.abs(r.top[1]?.effect ?? 0));
      for (const t of r.top) expect(Math.abs(t.effect)).toBeGreaterThan(1e-6);
    });

    it('ablating the planted name movers drops the logit difference; an unrelated head of their layer does not', async () => {
      const ex = ioi();
      const args = { prompts: ex.map((e) => e.prompt), target: ex.map((e) => e.target), distractor: ex.map((e) => e.distractor) };
      const movers = heads(manifest, 'ioi.name_mover');
      const planted = await callTool(ablateTool, { ...args, components: movers, each: false }, ctx);
      expect(planted.relativeDrop).toBeGreaterThan(0.75);
      const used = new Set(Object.values(manifest.roles).flatMap((v) => (Array.isArray(v) ? v : [])));
      const layer = Number(movers[0].split('.')[0].slice(1));
      const other = [...Array(manifest.architecture.num_attention_heads).keys()].map((h) => `L${layer}.H${h}`).find((h) => !used.has(h))!;
      const unrelated = await callTool(ablateTool, { ...args, components: [other], each: false }, ctx);
      expect(Math.abs(unrelated.relativeDrop!)).toBeLessThan(0.1);
      for (const method of ['mean', 'resample'] as const) {
        const r = await callTool(ablateTool, { ...args, components: movers, each: false, method, reference: manifest.tasks.ioi.examples.map((e) => e.prompt) }, ctx);
        expect(r.relativeDrop).toBeGreaterThan(0.5);
      }
    });

    it('steering along the planted sentiment direction flips the answer, more at every token than at one', async () => {
      const dir = manifest.roles['sentiment.direction'] as { layer: number; vector: number[] };
      await ctx.store.putVector({ name: `planted_sentiment_${size}`, kind: 'steering', hook: `blocks.${dir.layer}.hook_resid_pre`, vec: dir.vector });
      // Negative contexts: target is the negative continuation; steering towards positive flips it.
      const neg = manifest.tasks.sentiment.examples.filter((_, i) => i % 2 === 1).slice(0, 4);
      const r = await callTool(steerTool, {
        prompts: neg.map((e) => e.prompt), target: neg.map((e) => e.target), distractor: neg.map((e) => e.distractor),
        vector: { name: `planted_sentiment_${size}` }, layer: dir.layer, hook: 'resid_pre', coefficients: [0, 8], modes: ['last', 'all'], generateTokens: 2,
      }, ctx);
      const at = (mode: string) => r.rows.find((x) => x.mode === mode && x.coefficient === 8)!;
      expect(r.base).toBeGreaterThan(0);
      expect(at('all').metric).toBeLessThan(0);
      expect(Math.abs(at('all').shift)).toBeGreaterThan(Math.abs(at('last').shift));
    });
  });
}
