// The dictionary tools on a planted gpt-oss-tiny model (a seed used nowhere else), with a real
// workspace: train_sae with only {hook} writes a SAELens folder recorded in the store and spliced in;
// capture stores its latents sparsely; feature_search finds domain-selective latents where the
// planted cross-domain expert writes (experiment 5's polysemantic neuron, split); the dashboard and
// interventions read and move them. Tools never read the manifest; the test does, for ground truth.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSaeLens } from '../../engine/sae/saelens.ts';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { captureTool } from '../../tools/capture.ts';
import { listHooksTool } from '../../tools/model-tools.ts';
import { callTool, type ToolContext } from '../../tools/define.ts';
import { attachSaeTool } from '../../tools/sae/attach-sae.ts';
import { featureDashboardOutput, featureDashboardTool, featureInterventionOutput, featureInterventionTool, featureSearchOutput, featureSearchTool } from '../../tools/sae/features.ts';
import { trainSaeOutput, trainSaeTool, type TrainSaeResult } from '../../tools/sae/train-sae.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'sae-tools-'));
let ctx: ToolContext;
let close: () => Promise<void>;
let manifest: Manifest;
let trained: TrainSaeResult;
let hook: string;

beforeAll(async () => {
  manifest = buildTinyModel('tiny-s', 5150, join(root, 'model'), 'clean');
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  const layer = Number(/^L(\d+)\./.exec((manifest.roles['entanglement.expert'] as string[])[0])![1]);
  hook = `blocks.${layer}.hook_mlp_out`;
}, 60_000);
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
});

describe('train_sae', () => {
  it('with only {hook}: trains on the built-in corpus, saves a SAELens folder, records it and splices it in', async () => {
    const progress: string[] = [];
    ctx.onProgress = (p) => progress.push(p.message ?? '');
    trained = trainSaeOutput.parse(await callTool(trainSaeTool, { hook }, ctx));
    ctx.onProgress = undefined;
    expect(trained.hook).toBe(hook);
    expect([trained.dIn, trained.dSae, trained.k, trained.architecture]).toEqual([256, 1024, 16, 'topk']);
    expect(trained.corpus).toMatch(/built-in corpus/);
    expect(trained.evalOn).toBe('held-out prompts');
    expect(trained.tokens.train).toBeGreaterThan(500);
    expect(trained.eval.l0).toBeLessThanOrEqual(16);
    expect(trained.train.explainedVariance).toBeGreaterThan(0.9);
    expect(trained.eval.explainedVariance).toBeGreaterThan(0.5);
    expect(Number.isFinite(trained.loss.delta)).toBe(true);
    expect(progress.some((m) => /training step/.test(m))).toBe(true);
    // The folder is SAELens's layout and loads back.
    expect(trained.path).toBe(join(ctx.store.dataDir, 'saes', trained.saeId));
    const cfg = JSON.parse(readFileSync(join(trained.path, 'cfg.json'), 'utf8'));
    expect([cfg.architecture, cfg.k, cfg.d_in, cfg.d_sae, cfg.metadata.hook_name]).toEqual(['topk', 16, 256, 1024, hook]);
    expect(existsSync(join(trained.path, 'sae_weights.safetensors'))).toBe(true);
    expect(readSaeLens(trained.path).dSae).toBe(1024);
    const [row] = await ctx.store.listSaes(trained.saeId);
    expect(row).toMatchObject({ hook, architecture: 'topk', dSae: 1024, k: 16, path: trained.path });
    expect((row.metrics as { loss: { delta: number } }).loss.delta).toBeCloseTo(trained.loss.delta, 6);
    expect(trained.latentHooks).toEqual([`${hook}.sae.hook_sae_acts`, `${hook}.sae.hook_sae_error`]);
  }, 400_000);

  it('refuses what it cannot do, saying what is valid', async () => {
    await expect(callTool(trainSaeTool, { hook: 'blocks.0.attn.hook_pattern' }, ctx)).rejects.toThrow(/dictionaries read one vector per token/);
    await expect(callTool(trainSaeTool, { hook, kind: 'transcoder' }, ctx)).rejects.toThrow(/a transcoder needs hookOut/);
    await expect(callTool(trainSaeTool, { hook, memoryBudgetMb: 1 }, ctx)).rejects.toThrow(/over memoryBudgetMb = 1/);
    await expect(callTool(trainSaeTool, { hook, dSae: 8, k: 9 }, ctx)).rejects.toThrow(/k = 9 is more than dSae = 8/);
    await expect(callTool(trainSaeTool, { hook, epochs: 3 }, ctx)).rejects.toThrow(/unknown argument "epochs"/);
    const ac = new AbortController();
    ac.abort();
    await expect(callTool(trainSaeTool, { hook }, { ...ctx, signal: ac.signal })).rejects.toThrow(/cancelled/);
  });
});

describe('latents as hooks and feature tools', () => {
  it('capture stores one row per active latent in sae_latents', async () => {
    const math = manifest.tasks.entanglement.domains.math.slice(0, 3);
    const r = await callTool(captureTool, { prompts: math, hooks: [`${hook}.sae.hook_sae_acts`] }, ctx);
    expect(r.latentRowsStored).toBeGreaterThan(0);
    const q = await ctx.store.query(`SELECT run_id, position, count(*) AS n, min(value) AS lo FROM sae_latents WHERE sae_id = '${trained.saeId}' GROUP BY ALL ORDER BY n DESC LIMIT 1`);
    const [, , n, lo] = q.rows[0] as number[];
    expect(Number(n)).toBeLessThanOrEqual(16);
    expect(Number(lo)).toBeGreaterThan(0);
  });

  it('feature_search finds latents selective for math and for code where the cross-domain expert writes', async () => {
    const r = featureSearchOutput.parse(await callTool(featureSearchTool, { saeId: trained.saeId, classes: manifest.tasks.entanglement.domains, top: 3 }, ctx));
    const best = Object.fromEntries(r.results.map((g) => [g.group, g.latents[0]]));
    expect(best.math.selectivity!).toBeGreaterThan(0.1);
    expect(best.code.selectivity!).toBeGreaterThan(0.1);
    expect(best.math.latent).not.toBe(best.code.latent);
    const text = featureSearchOutput.parse(await callTool(featureSearchTool, { saeId: trained.saeId, text: ['3 + 4 = 7'] }, ctx));
    expect(text.results[0].latents[0].mean).toBeGreaterThan(0);

    // The dashboard of the math latent: its top contexts are math prompts.
    const d = featureDashboardOutput.parse(await callTool(featureDashboardTool, { saeId: trained.saeId, latent: best.math.latent, top: 5 }, ctx));
    const mathSet = new Set(manifest.tasks.entanglement.domains.math);
    expect(d.topContexts.length).toBeGreaterThan(0);
    expect(d.topContexts.filter((c) => mathSet.has(c.source)).length).toBeGreaterThanOrEqual(Math.ceil(d.topContexts.length / 2));
    expect(d.histogram.reduce((n, b) => n + b.count, 0)).toBe(d.activeTokens);
    expect(d.promotes).toHaveLength(5);
    expect(d.nearest[0].cosine).toBeLessThanOrEqual(1);
    // Its decoder row is stored as a named vector at the dictionary's hook.
    const stored = await ctx.store.getVector(d.vector);
    const H = ctx.session.config.hiddenSize;
    expect(stored?.hook).toBe(hook);
    expect([...stored!.vec]).toEqual([...readSaeLens(trained.path).wDec.subarray(best.math.latent * H, (best.math.latent + 1) * H)]);

    // Ablating it on math prompts changes the output distribution; steering it moves it more than nothing.
    const math = manifest.tasks.entanglement.domains.math.slice(0, 4);
    const ab = featureInterventionOutput.parse(await callTool(featureInterventionTool, { saeId: trained.saeId, prompts: math, latents: [best.math.latent], action: 'ablate', metric: 'kl' }, ctx));
    expect(ab.before).toBeCloseTo(0, 6);
    expect(ab.after).toBeGreaterThan(0);
    const st = featureInterventionOutput.parse(await callTool(featureInterventionTool, { saeId: trained.saeId, prompts: math, latents: [best.math.latent], action: 'steer', coefficient: 0, metric: 'kl' }, ctx));
    expect(st.after).toBeCloseTo(0, 5);
  }, 200_000);

  it('attach_sae imports a SAELens folder from disk and detaches by hook', async () => {
    const r = await callTool(attachSaeTool, { path: trained.path }, ctx);
    expect(r.saeId).not.toBe(trained.saeId);
    expect(r.attached.map((a) => a.site)).toEqual([hook]);
    // While attached, its two hooks are listed (typed addresses under the site), and gone after detach.
    const listed = await callTool(listHooksTool, { filter: '.sae.' }, ctx);
    expect(listed.hooks.map((h) => [h.name, h.shape])).toEqual([[`${hook}.sae.hook_sae_acts`, '[B, T, S]'], [`${hook}.sae.hook_sae_error`, '[B, T, H]']]);
    const gone = await callTool(attachSaeTool, { detach: hook }, ctx);
    expect(gone.attached).toEqual([]);
    await expect(callTool(listHooksTool, { filter: '.sae.' }, ctx)).rejects.toThrow(/no hook name contains "\.sae\."/);
    await expect(callTool(attachSaeTool, { detach: hook }, ctx)).rejects.toThrow(/no dictionary is attached at/);
    await expect(callTool(attachSaeTool, { saeId: 'sae_nope' }, ctx)).rejects.toThrow(/no dictionary "sae_nope" in the store; known: /);
    await expect(callTool(captureTool, { prompts: ['3 + 4 = 7'], hooks: [`${hook}.sae.hook_sae_acts`] }, ctx)).rejects.toThrow(/no dictionary is attached/);
  });
});
