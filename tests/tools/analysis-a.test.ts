// Analysis tools (probe, PCA, logit lens, direct logit attribution): mechanics on a random
// word-level model with a real workspace (DuckDB file, onnxruntime sessions), and ground truth on a
// planted gpt-oss-tiny model at a seed used nowhere else. The tools never read the manifest.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { Rng } from '../../engine/rng.ts';
import { callTool, type ToolContext } from '../../tools/define.ts';
import { attentionTool } from '../../tools/attention.ts';
import { dlaTool } from '../../tools/attribution.ts';
import { logistic, mat, predictClasses, ridge, rowSpace, symmetricEigen } from '../../tools/linalg.ts';
import { logitLensTool } from '../../tools/logit-lens.ts';
import { pcaTool } from '../../tools/pca.ts';
import { probeTool } from '../../tools/probe.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';

/** Results cross MCP as JSON: they must survive a round trip unchanged (no typed arrays, NaN, undefined). */
const expectJson = (r: unknown) => expect(JSON.parse(JSON.stringify(r))).toEqual(r);

const randomPrompt = (rng: Rng, words: string[], len: number) => Array.from({ length: len }, () => words[rng.int(words.length)]).join(' ');

describe('linalg', () => {
  it('symmetricEigen: A v = λ v, orthonormal vectors, descending values', () => {
    const rng = new Rng(5);
    for (const n of [1, 2, 7, 30]) {
      const A = mat(n, n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A.data[i * n + j] = A.data[j * n + i] = rng.normal();
      const { values, vectors } = symmetricEigen(A);
      for (let c = 0; c < n; c++) {
        if (c > 0) expect(values[c]).toBeLessThanOrEqual(values[c - 1]);
        for (let i = 0; i < n; i++) {
          let av = 0;
          for (let j = 0; j < n; j++) av += A.data[i * n + j] * vectors.data[j * n + c];
          expect(av).toBeCloseTo(values[c] * vectors.data[i * n + c], 9);
        }
        for (let c2 = 0; c2 < n; c2++) {
          let d = 0;
          for (let i = 0; i < n; i++) d += vectors.data[i * n + c] * vectors.data[i * n + c2];
          expect(d).toBeCloseTo(c === c2 ? 1 : 0, 9);
        }
      }
    }
  });

  it('rowSpace, ridge and logistic regression agree with what they promise', () => {
    const rng = new Rng(9);
    for (const [N, d] of [[12, 40], [50, 6]]) {
      const X = mat(N, d, Float64Array.from({ length: N * d }, () => rng.normal()));
      const { Z, values } = rowSpace(X);
      // ZᵀZ is diagonal with the stored values.
      for (let a = 0; a < Z.cols; a++) {
        for (let b = 0; b < Z.cols; b++) {
          let s = 0;
          for (let i = 0; i < N; i++) s += Z.data[i * Z.cols + a] * Z.data[i * Z.cols + b];
          expect(s).toBeCloseTo(a === b ? values[a] : 0, 6);
        }
      }
      // Ridge with a tiny penalty interpolates a linear target when it can.
      const w = Float64Array.from({ length: d }, () => rng.normal());
      const y = Array.from({ length: N }, (_, i) => 3 + X.data.subarray(i * d, (i + 1) * d).reduce((s, x, j) => s + x * w[j], 0));
      const fit = ridge(X, y, 1e-9);
      y.forEach((v, i) => expect(fit.bias + X.data.subarray(i * d, (i + 1) * d).reduce((s, x, j) => s + x * fit.w[j], 0)).toBeCloseTo(v, 3));
      // Logistic regression separates separable labels (binary and 3 classes).
      const lab2 = y.map((v) => (v > 3 ? 1 : 0));
      expect(predictClasses(logistic(X, lab2, 2, 1e-4), X)).toEqual(lab2);
      const lab3 = Array.from({ length: N }, (_, i) => (X.data[i * d] > 0.5 ? 2 : X.data[i * d] < -0.5 ? 0 : 1));
      const acc3 = predictClasses(logistic(X, lab3, 3, 1e-4), X).filter((p, i) => p === lab3[i]).length / N;
      expect(acc3).toBeGreaterThan(0.9);
    }
  });
});

describe('analysis tools on a random word-level model', () => {
  const root = mkdtempSync(join(tmpdir(), 'ns-analysis-a-'));
  let ctx: ToolContext;
  let close: () => Promise<void>;
  let words: string[];
  beforeAll(async () => {
    words = writeRandomWordModel(join(root, 'model'), 41);
    ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  });
  afterAll(async () => {
    await close();
    rmSync(root, { recursive: true, force: true });
  });

  const prompts = ['w1 w2 w3 w4 w5 w1', 'w9 w8 w3 w4', 'w10 w11 w12 w13 w14 w15 w16 w17'];

  it('direct_logit_attribution: the parts sum to the actual logit difference (last and earlier positions, with and without a distractor)', async () => {
    for (const args of [
      { prompts, target: 'w2', distractor: 'w3', neurons: true },
      { prompts, target: ['w2', 'w5', 'w7'], distractor: ['w3', 'w6', 'w8'], position: 1 },
      { prompts, target: 'w4' },
    ]) {
      const r = await callTool(dlaTool, args, ctx);
      expectJson(r);
      expect(r.maxRelError).toBeLessThan(1e-3);
      // Actual logits from an independent run of the model.
      const ids = prompts.map((p) => ctx.session.encode(p).ids);
      const run = await ctx.session.model.run(ids, { logits: 'all' });
      const V = ctx.session.config.vocabSize;
      const T = run.length;
      const tgt = (typeof args.target === 'string' ? prompts.map(() => args.target) : args.target) as string[];
      const dis = 'distractor' in args ? (typeof args.distractor === 'string' ? prompts.map(() => args.distractor) : args.distractor) as string[] : null;
      r.perPrompt!.forEach((p, n) => {
        const pos = r.positions[n];
        const row = run.logits!.data.subarray((n * T + pos) * V, (n * T + pos + 1) * V);
        const want = row[ctx.session.tokenId(tgt[n], 't')] - (dis ? row[ctx.session.tokenId(dis[n], 'd')] : 0);
        expect(Math.abs(p.sumOfParts - want)).toBeLessThan(1e-3 * Math.max(1, Math.abs(want)));
        expect(Math.abs(p.actual - want)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want)));
      });
      // Stored rows: every non-neuron row sums to the mean logit difference; rows equal the result.
      const q = await ctx.store.query(`SELECT site, value, extra->>'kind' AS kind FROM results WHERE experiment_id = '${r.experimentId}'`, { maxRows: 5000 });
      const main = q.rows.filter((row) => row[2] !== 'neuron');
      const total = main.reduce((s, row) => s + (row[1] as number), 0);
      expect(Math.abs(total - r.actual)).toBeLessThan(1e-3 * Math.max(1, Math.abs(r.actual)));
      const top = q.rows.find((row) => row[0] === r.top[0].site)!;
      expect(top[1] as number).toBeCloseTo(r.top[0].mean, 3);
      if (args.neurons) {
        // Each chosen expert's neurons sum to the expert's row.
        const neuronRows = q.rows.filter((row) => row[2] === 'neuron');
        expect(neuronRows.length).toBeGreaterThan(0);
        const r2 = await callTool(dlaTool, { ...args, storeNeurons: 10000 }, ctx);
        const q2 = await ctx.store.query(`SELECT site, value FROM results WHERE experiment_id = '${r2.experimentId}'`, { maxRows: 10000 });
        const bySite = new Map(q2.rows.map((row) => [row[0] as string, row[1] as number]));
        for (const [site, v] of bySite) {
          if (!/^L\d+\.E\d+$/.test(site)) continue;
          const sum = [...bySite].filter(([s]) => s.startsWith(`${site}.N`)).reduce((s, [, x]) => s + x, 0);
          expect(sum).toBeCloseTo(v, 4);
        }
      }
    }
  });

  it('logit_lens: the last layer equals the model\'s real logits; stored rows read back equal', async () => {
    const L = ctx.session.config.numLayers;
    for (const position of [-1, 2]) {
      const r = await callTool(logitLensTool, { prompts, position, target: 'w5', residMid: true, embed: true, topK: 4 }, ctx);
      expectJson(r);
      expect(r.sites).toEqual(['embed', ...Array.from({ length: L }, (_, l) => [`L${l}.resid_mid`, `L${l}.resid_post`]).flat()]);
      const ids = prompts.map((p) => ctx.session.encode(p).ids);
      // Prompt labels are the decoded last words, spaced as the prompt is (a word-level vocabulary).
      expect(r.top1ByPrompt.prompts[0]).toBe(`0: ${prompts[0].split(' ').slice(Math.max(0, r.positions[0] - 2), r.positions[0] + 1).join(' ')}`);
      const run = await ctx.session.model.run(ids, { logits: 'all' });
      const V = ctx.session.config.vocabSize;
      const T = run.length;
      const w5 = ctx.session.tokenId('w5', 't');
      r.prompts.forEach((p, n) => {
        const row = run.logits!.data.subarray((n * T + r.positions[n]) * V, (n * T + r.positions[n] + 1) * V);
        const last = p.layers[p.layers.length - 1];
        expect(last.site).toBe(`L${L - 1}.resid_post`);
        expect(last.target!.logit).toBeCloseTo(row[w5], 5);
        expect(last.klToFinal).toBeLessThan(1e-6);
        const order = [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 4).map((i) => ctx.session.tokenizer.tokenString(i));
        expect(last.top.map((t) => t.token)).toEqual(order);
        expect(last.target!.rank).toBe([...row].filter((x) => x > row[w5]).length + 1);
      });
      const agg = r.aggregate[r.aggregate.length - 1];
      expect(agg.top1AgreesWithFinal).toBe(1);
      const q = await ctx.store.query(`SELECT site, value FROM results WHERE experiment_id = '${r.experimentId}' AND site NOT LIKE '%@%' ORDER BY layer NULLS FIRST, site`, { maxRows: 100 });
      expect(q.rows.length).toBe(r.aggregate.length);
      for (const row of q.rows) expect(row[1] as number).toBeCloseTo(r.aggregate.find((a) => a.site === row[0])!.targetProb!, 4);
    }
  });

  it('pca: explained variance sums to at most 1 (to 1 with every component), components orthonormal and stored', async () => {
    const rng = new Rng(1);
    const ps = Array.from({ length: 16 }, (_, i) => randomPrompt(rng, words.slice(0, 30), 3 + (i % 4)));
    const labels = ps.map((_, i) => (i % 2 ? 'odd' : 'even'));
    const r = await callTool(pcaTool, { prompts: ps, labels, hook: 'resid_post', layer: 1, components: 20, name: 'mech' }, ctx);
    expectJson(r);
    // 16 centred samples span at most 15 dimensions.
    expect(r.components.length).toBe(15);
    const total = r.components.reduce((s, c) => s + c.explainedVarianceRatio, 0);
    expect(total).toBeLessThanOrEqual(1 + 1e-9);
    expect(total).toBeGreaterThan(1 - 1e-6);
    r.components.forEach((c, i) => i > 0 && expect(c.explainedVarianceRatio).toBeLessThanOrEqual(r.components[i - 1].explainedVarianceRatio + 1e-12));
    const vecs = await Promise.all(r.components.map((c) => ctx.store.getVector(c.name)));
    for (const [a, va] of vecs.entries()) {
      expect(va!.kind).toBe('pca');
      expect(va!.hook).toBe('blocks.1.hook_resid_post');
      for (const [b, vb] of vecs.entries()) {
        let d = 0;
        for (let i = 0; i < va!.vec.length; i++) d += va!.vec[i] * vb!.vec[i];
        expect(d).toBeCloseTo(a === b ? 1 : 0, 4);
      }
    }
    // Projections: the stored vectors applied to centred activations; centroids are means of projections.
    const run = await ctx.session.model.run(ps.map((p) => ctx.session.encode(p).ids), { capture: ['blocks.1.hook_resid_post'], logits: 'none' });
    const act = run.cache.get('blocks.1.hook_resid_post')!;
    const H = ctx.session.config.hiddenSize;
    const X = ps.map((p, b) => act.data.slice((b * run.length + ctx.session.encode(p).ids.length - 1) * H, (b * run.length + ctx.session.encode(p).ids.length) * H));
    const mean = new Float64Array(H);
    X.forEach((x) => x.forEach((v, i) => (mean[i] += v / X.length)));
    X.forEach((x, b) => {
      let p0 = 0;
      for (let i = 0; i < H; i++) p0 += (x[i] - mean[i]) * vecs[0]!.vec[i];
      expect(r.projections[b].pcs[0]).toBeCloseTo(p0, 2);
    });
    const even = r.projections.filter((p) => p.label === 'even');
    expect(r.centroids!.find((c) => c.label === 'even')!.pcs[0]).toBeCloseTo(even.reduce((s, p) => s + p.pcs[0], 0) / even.length, 2);
    const rows = await ctx.store.query(`SELECT value FROM results WHERE experiment_id = '${r.experimentId}' AND site LIKE 'PC%' ORDER BY component`, { maxRows: 100 });
    rows.rows.forEach((row, i) => expect(row[0] as number).toBeCloseTo(r.components[i].explainedVarianceRatio, 6));
  });

  it('train_probe: a planted-separable labelling is found at every layer; the shuffled control stays near chance', async () => {
    // Label = which of two disjoint word sets the last word comes from (contexts random).
    const rng = new Rng(2);
    const A = words.slice(1, 9), B = words.slice(30, 38), filler = words.slice(40, 60);
    const examples = Array.from({ length: 64 }, (_, i) => {
      const cls = i % 2 ? 'A' : 'B';
      const last = (cls === 'A' ? A : B)[rng.int(8)];
      return { prompt: `${randomPrompt(rng, filler, 2 + rng.int(4))} ${last}`, label: cls };
    });
    const r = await callTool(probeTool, { examples, hook: 'resid_post', split: { folds: 4 }, controls: 3, name: 'mech_ab' }, ctx);
    expectJson(r);
    expect(r.task).toBe('classification');
    expect(r.classes).toEqual(['A', 'B']);
    expect(r.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of r.layers) {
      expect(l.heldOut).toBeGreaterThan(0.9);
      expect(l.shuffled).toBeLessThan(0.72);
      expect(l.baseline).toBeCloseTo(0.5, 1);
    }
    // The stored direction, applied in the original basis, classifies the examples.
    expect(r.vectors).toHaveLength(1);
    const v = await ctx.store.getVector(r.vectors[0].name);
    expect(v!.kind).toBe('probe');
    expect(v!.hook).toBe(r.best.hook);
    expect(v!.vec.length).toBe(64);
    const meta = v!.meta as { bias: number; class: string };
    expect(meta.bias).toBeCloseTo(r.vectors[0].bias, 6);
    expect(meta.class).toBe('B');
    const run = await ctx.session.model.run(examples.map((e) => ctx.session.encode(e.prompt).ids), { capture: [r.best.hook], logits: 'none' });
    const act = run.cache.get(r.best.hook)!;
    let right = 0;
    examples.forEach((e, b) => {
      const n = ctx.session.encode(e.prompt).ids.length;
      let s = meta.bias;
      for (let i = 0; i < 64; i++) s += v!.vec[i] * act.data[(b * run.length + n - 1) * 64 + i];
      if ((s > 0 ? 'B' : 'A') === e.label) right++;
    });
    expect(right / examples.length).toBeGreaterThan(0.95);
    // One result row per layer, equal to the returned numbers.
    const q = await ctx.store.query(`SELECT layer, value, CAST(extra->>'shuffled' AS DOUBLE), CAST(extra->>'baseline' AS DOUBLE) FROM results WHERE experiment_id = '${r.experimentId}' ORDER BY layer`);
    expect(q.rows.length).toBe(3);
    q.rows.forEach((row, i) => {
      expect(row[1] as number).toBeCloseTo(r.layers[i].heldOut, 9);
      expect(row[2] as number).toBeCloseTo(r.layers[i].shuffled, 9);
      expect(row[3] as number).toBeCloseTo(r.layers[i].baseline, 9);
    });
  });

  it('train_probe: ridge recovers a linear label of the embedding; multiclass stores a vector per class; token positions', async () => {
    const rng = new Rng(3);
    const vocab = words.slice(0, 24);
    const emb = ctx.session.model.checkpoint.embedRows(vocab.map((w) => ctx.session.tokenId(w, 'w')));
    const u = Array.from({ length: 64 }, () => rng.normal());
    const value = (w: string) => {
      const i = vocab.indexOf(w);
      return u.reduce((s, x, j) => s + x * emb[i * 64 + j], 0);
    };
    // The mean embedding of a prompt spans the vocabulary's 24 dimensions; the label is linear in it.
    const examples = Array.from({ length: 60 }, () => {
      const p = randomPrompt(rng, vocab, 3);
      return { prompt: p, label: p.split(' ').reduce((s, w) => s + value(w), 0) / 3 };
    });
    const reg = await callTool(probeTool, { examples, hook: 'hook_embed', position: 'mean', l2: 1e-6, split: { folds: 3 } }, ctx);
    expect(reg.task).toBe('regression');
    expect(reg.metric).toBe('r2');
    expect(reg.layers[0].heldOut).toBeGreaterThan(0.95);
    expect(reg.layers[0].shuffled).toBeLessThan(0.5);
    expect(reg.layers[0].baseline).toBeLessThanOrEqual(0);

    const three = Array.from({ length: 45 }, (_, i) => ({ prompt: `${randomPrompt(rng, words.slice(40, 60), 3)} ${['w1', 'w2', 'w3'][i % 3]}`, label: ['one', 'two', 'three'][i % 3] }));
    const multi = await callTool(probeTool, { examples: three, hook: 'blocks.2.hook_resid_post', name: 'mech_three' }, ctx);
    expect(multi.vectors.map((v) => v.name).sort()).toEqual(['probe_mech_three_resid_post_L2_one', 'probe_mech_three_resid_post_L2_three', 'probe_mech_three_resid_post_L2_two']);
    expect(multi.best.heldOut).toBeGreaterThan(0.9);
    const listed = await ctx.store.listVectors('probe');
    expect(listed.filter((v) => v.name.startsWith('probe_mech_three')).every((v) => v.dim === 64 && v.layer === 2)).toBe(true);

    // Every occurrence of a word is a sample.
    const tok = await callTool(probeTool, {
      examples: Array.from({ length: 20 }, (_, i) => ({ prompt: `w5 ${i % 2 ? 'w1' : 'w2'} w5 w7 w5`, label: i % 2 ? 'after1' : 'after2' })),
      hook: 'resid_post', layers: [1], position: { token: 'w5' },
    }, ctx);
    expect(tok.samples).toBe(60);
  });

  it('bad inputs get clear errors', async () => {
    const ex = Array.from({ length: 8 }, (_, i) => ({ prompt: `w1 w${i + 2}`, label: i % 2 ? 'a' : 'b' }));
    await expect(callTool(probeTool, { examples: ex, hook: 'resid_postt' }, ctx)).rejects.toThrow(/unknown hook "resid_postt"; valid: resid_pre, .*resid_post/);
    await expect(callTool(probeTool, { examples: ex, hook: 'attn.hook_pattern' }, ctx)).rejects.toThrow(/shape \[B, nH, T, T\]/);
    await expect(callTool(probeTool, { examples: ex, hook: 'blocks.9.hook_resid_post' }, ctx)).rejects.toThrow(/layer 9 is out of range; this model has layers 0..2/);
    await expect(callTool(probeTool, { examples: ex, layers: [3] }, ctx)).rejects.toThrow(/layer 3 is out of range; valid: 0..2/);
    await expect(callTool(probeTool, { examples: ex.map((e) => ({ ...e, label: 'same' })) }, ctx)).rejects.toThrow(/every example has the label "same"; a classification probe needs at least two classes/);
    await expect(callTool(probeTool, { examples: ex.slice(0, 3) }, ctx)).rejects.toThrow(/too few examples/);
    await expect(callTool(probeTool, { examples: [...ex, { prompt: 'w3', label: 'c' }] }, ctx)).rejects.toThrow(/class\(es\) "c" have only one example/);
    await expect(callTool(probeTool, { examples: [...ex, { prompt: 'w3', label: 4 }] }, ctx)).rejects.toThrow(/labels mix numbers and strings/);
    await expect(callTool(probeTool, { examples: ex, position: 5 }, ctx)).rejects.toThrow(/position 5 is beyond prompt #0/);
    await expect(callTool(probeTool, { examples: ex, position: { token: 'w9' } }, ctx)).rejects.toThrow(/"w9" does not occur in 7 prompt/);
    await expect(callTool(probeTool, { examples: ex, split: { folds: 9 } }, ctx)).rejects.toThrow(/9 folds need at least 9 examples/);
    await expect(callTool(probeTool, { examples: ex, hook: 'hook_embed', layers: [1] }, ctx)).rejects.toThrow(/hook_embed has no layers/);
    await expect(callTool(pcaTool, { prompts: ['w1', 'w2'], hook: 'resid_post' }, ctx)).rejects.toThrow(/give "layer"/);
    await expect(callTool(pcaTool, { prompts: ['w1', 'w2'], labels: ['a'], layer: 0 }, ctx)).rejects.toThrow(/labels has 1 entries for 2 prompts/);
    await expect(callTool(pcaTool, { prompts: ['w1 w2', 'w1 w2'], layer: 0 }, ctx)).rejects.toThrow(/do not vary/);
    await expect(callTool(logitLensTool, { prompts: ['w1 w2'], layers: [5] }, ctx)).rejects.toThrow(/layer 5 is out of range; valid: 0..2/);
    await expect(callTool(logitLensTool, { prompts: ['w1 w2'], position: 4 }, ctx)).rejects.toThrow(/position 4 is beyond prompt #0/);
    await expect(callTool(dlaTool, { prompts: ['w1 w2'], target: 'w3', distractor: 'w3' }, ctx)).rejects.toThrow(/target and distractor are the same token/);
    await expect(callTool(dlaTool, { prompts: ['w1 w2'], target: 'w3 w4' }, ctx)).rejects.toThrow(/target "w3 w4" is 2 tokens/);
    await expect(callTool(dlaTool, { prompts: ['w1 w2', 'w3'], target: ['w3', 'w4', 'w5'] }, ctx)).rejects.toThrow(/target has 3 entries for 2 prompts/);
    // Cancellation between batches.
    const ac = new AbortController();
    await expect(callTool(probeTool, { examples: ex, batch: 2 }, { ...ctx, signal: ac.signal, onProgress: () => ac.abort() })).rejects.toThrow(/train_probe cancelled/);
  });
});

describe('ground truth on gpt-oss-tiny (tiny-s, seed 8111)', () => {
  const root = mkdtempSync(join(tmpdir(), 'ns-analysis-a-tiny-'));
  let manifest: Manifest;
  let ctx: ToolContext;
  let close: () => Promise<void>;
  beforeAll(async () => {
    manifest = buildTinyModel('tiny-s', 8111, join(root, 'model'), 'clean');
    ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  });
  afterAll(async () => {
    await close?.();
    rmSync(root, { recursive: true, force: true });
  });

  it('direct logit attribution on IOI puts the planted name mover on top, and the parts sum to the logit difference', async () => {
    const ex = manifest.tasks.ioi.examples.slice(0, 8);
    const r = await callTool(dlaTool, { prompts: ex.map((e) => e.prompt), target: ex.map((e) => e.target), distractor: ex.map((e) => e.distractor) }, ctx);
    const movers = manifest.roles['ioi.name_mover'] as string[];
    expect(r.maxRelError).toBeLessThan(1e-3);
    expect(r.positive.slice(0, movers.length).map((p) => p.site).sort()).toEqual([...movers].sort());
    expect(r.positive[0].share).toBeGreaterThan(0.5);
  });

  it('probes for token classes (names vs numbers) are near perfect; the shuffled control stays near chance', async () => {
    const rng = new Rng(8111);
    const { names, numbers, places, objects } = manifest.words;
    const filler = [...places, ...objects];
    const examples = Array.from({ length: 48 }, (_, i) => {
      const cls = i % 2 ? 'number' : 'name';
      const last = (cls === 'name' ? names : numbers)[rng.int(cls === 'name' ? names.length : numbers.length)];
      return { prompt: `${randomPrompt(rng, filler, 1 + rng.int(4))} ${last}`, label: cls };
    });
    const r = await callTool(probeTool, { examples, hook: 'resid_post', split: { folds: 4 }, controls: 3, name: 'tiny_name_number' }, ctx);
    expect(r.layers).toHaveLength(manifest.architecture.num_hidden_layers);
    for (const l of r.layers) {
      expect(l.heldOut).toBeGreaterThanOrEqual(0.95);
      expect(l.shuffled).toBeLessThan(0.7);
    }
    expect(r.best.heldOut).toBe(1);
    const pca = await callTool(pcaTool, { prompts: examples.map((e) => e.prompt), labels: examples.map((e) => e.label), layer: 0, components: 3 }, ctx);
    // The class split is the dominant axis of variation among these prompts' last tokens.
    expect(Math.max(...pca.components.map((c) => c.classEta2!))).toBeGreaterThan(0.8);
  });

  it('attention from the last token: the planted name mover looks at the indirect object on every IOI prompt', async () => {
    const ex = manifest.tasks.ioi.examples.slice(0, 6);
    const mover = (manifest.roles['ioi.name_mover'] as string[])[0];
    const [layer, head] = mover.slice(1).split('.H').map(Number);
    const r = await callTool(attentionTool, { prompts: ex.map((e) => e.prompt), layers: [layer], heads: [head], query: -1, queryKeys: 2 }, ctx);
    expect(r.queryRows).toHaveLength(ex.length);
    r.queryRows!.forEach((row, i) => {
      const words = ex[i].prompt.split(' ');
      expect(row.position).toBe(words.length - 1);
      const top = row.heads[0].top[0];
      expect(row.heads[0].head).toBe(mover);
      expect(top.token).toBe(ex[i].target);
      expect(words[top.position]).toBe(ex[i].target);
      expect(top.weight).toBeGreaterThan(0.8);
    });
    await expect(callTool(attentionTool, { prompts: [ex[0].prompt], query: 99 }, ctx)).rejects.toThrow(/query position 99 is outside a prompt of \d+ tokens/);
    const wide = await callTool(attentionTool, { prompts: [ex[0].prompt], query: -1 }, ctx);
    expect(wide.queryRows).toBeUndefined();
    expect(wide.queryRowsOmitted).toMatch(/maxPatternHeads/);
  });

  it('logit lens: the IOI answer is absent before the name mover\'s layer and on top after it', async () => {
    const ex = manifest.tasks.ioi.examples.slice(0, 6);
    const moverLayer = Number((manifest.roles['ioi.name_mover'] as string[])[0].split('.')[0].slice(1));
    const r = await callTool(logitLensTool, { prompts: ex.map((e) => e.prompt), target: ex.map((e) => e.target) }, ctx);
    const at = (l: number) => r.aggregate.find((a) => a.site === `L${l}.resid_post`)!;
    expect(at(moverLayer).targetRank).toBe(1);
    if (moverLayer > 0) expect(at(moverLayer - 1).targetRank!).toBeGreaterThan(1);
  });
});

describe('ground truth on gpt-oss-tiny (tiny-m, seed 6061): three redundant name movers', () => {
  const root = mkdtempSync(join(tmpdir(), 'ns-analysis-a-tiny-m-'));
  let manifest: Manifest;
  let ctx: ToolContext;
  let close: () => Promise<void>;
  beforeAll(async () => {
    manifest = buildTinyModel('tiny-m', 6061, join(root, 'model'), 'clean');
    ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  });
  afterAll(async () => {
    await close?.();
    rmSync(root, { recursive: true, force: true });
  });

  it('direct logit attribution ranks exactly the planted name movers first, sharing the logit difference', async () => {
    const ex = manifest.tasks.ioi.examples.slice(0, 6);
    const r = await callTool(dlaTool, { prompts: ex.map((e) => e.prompt), target: ex.map((e) => e.target), distractor: ex.map((e) => e.distractor) }, ctx);
    const movers = manifest.roles['ioi.name_mover'] as string[];
    expect(movers.length).toBe(3);
    expect(r.maxRelError).toBeLessThan(1e-3);
    expect(r.positive.slice(0, 3).map((p) => p.site).sort()).toEqual([...movers].sort());
    for (const p of r.positive.slice(0, 3)) expect(p.share).toBeGreaterThan(0.2);
    // Nothing else carries a comparable share.
    if (r.positive[3]) expect(r.positive[3].share).toBeLessThan(0.1);
  });
});
