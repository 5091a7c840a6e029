// Analysis tools B: attention_patterns, expert_routing, similarity_search, neuron_selectivity and
// find_circuit. Mechanics on a random word-level checkpoint (numbers agree with direct engine runs,
// stored rows equal returned results, clear errors, cancellation), then ground truth on planted
// gpt-oss-tiny models at a seed used nowhere else (5151). The tools never read the manifest.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { attentionTool } from '../../tools/attention.ts';
import { captureTool } from '../../tools/capture.ts';
import { circuitTool } from '../../tools/circuit.ts';
import { callTool, type ToolContext } from '../../tools/define.ts';
import { metricOf } from '../../tools/metrics.ts';
import { routingTool } from '../../tools/routing.ts';
import { selectivityTool } from '../../tools/selectivity.ts';
import { similarityTool } from '../../tools/similarity.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-analysis-b-'));
let ctx: ToolContext;
let close: () => Promise<void>;

beforeAll(async () => {
  writeRandomWordModel(join(root, 'model'));
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
});
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
});

const resultsOf = async (experimentId: string) =>
  (await ctx.store.query(`SELECT site, layer, component, neuron, value, effect, extra FROM results WHERE experiment_id = '${experimentId}'`, { maxRows: 10000 })).rows;
const extraOf = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v) as Record<string, unknown>;

describe('attention_patterns', () => {
  const prompts = ['w1 w2 w3 w4 w5 w1 w2 w3 w4 w5', 'w6 w7 w6 w8 w9'];

  it('pattern rows plus sink mass sum to 1, and role scores lie in [0, 1]', async () => {
    const r = await callTool(attentionTool, { prompts, layers: [0, 2], heads: [0, 3] }, ctx);
    expect(r.heads).toBe(4);
    expect(r.patterns!.heads).toHaveLength(4);
    expect(r.patterns!.tokens).toHaveLength(10);
    for (const h of r.patterns!.heads) {
      h.pattern.forEach((row, t) => {
        expect(row).toHaveLength(t + 1);
        expect(row.reduce((a, b) => a + b, 0) + h.sink[t]).toBeCloseTo(1, 3);
      });
    }
    for (const s of r.scores!) {
      for (const v of Object.values(s.scores)) {
        expect(v).not.toBeNull();
        expect(v!).toBeGreaterThanOrEqual(0);
        expect(v!).toBeLessThanOrEqual(1);
      }
    }
    const ind = r.roles.find((x) => x.role === 'induction')!;
    // Prompt 0: positions 5..9 (the repeat; the token after the earlier copy lies before t); prompt 1:
    // w6 at position 2 (its earlier copy is at 0, and 0 + 1 < 2).
    expect(ind.queries).toBe(5 + 1);
    expect(ind.baseline).toBeCloseTo(r.scores!.reduce((a, s) => a + s.scores.induction!, 0) / 4, 10);
  });

  it('scores equal those computed from the returned patterns', async () => {
    const r = await callTool(attentionTool, { prompts: [prompts[0]], layers: [1], maxPatternHeads: 8 }, ctx);
    for (const h of r.patterns!.heads) {
      const s = r.scores!.find((x) => x.head === h.head)!.scores;
      const P = h.pattern;
      const prev = P.slice(1).reduce((a, row, i) => a + row[i], 0) / (P.length - 1);
      const first = P.slice(1).reduce((a, row) => a + row[0], 0) / (P.length - 1);
      const sink = h.sink.reduce((a, b) => a + b, 0) / h.sink.length;
      // queries 5..9: induction attends to t - 4, duplicate-token to t - 5
      const ind = [5, 6, 7, 8, 9].reduce((a, t) => a + P[t][t - 4], 0) / 5;
      const dup = [5, 6, 7, 8, 9].reduce((a, t) => a + P[t][t - 5], 0) / 5;
      expect(s.previous_token!).toBeCloseTo(prev, 3);
      expect(s.attends_to_first!).toBeCloseTo(first, 3);
      expect(s.sink!).toBeCloseTo(sink, 3);
      expect(s.induction!).toBeCloseTo(ind, 3);
      expect(s.duplicate_token!).toBeCloseTo(dup, 3);
    }
  });

  it('returns one head as a labelled matrix and stores a row per head x role', async () => {
    const r = await callTool(attentionTool, { prompts, head: 'L1.H2', matrixTokens: 6, top: 12 }, ctx);
    expect(r.patterns).toBeUndefined();
    expect(r.patternsOmitted).toMatch(/12 heads selected/);
    const m = r.matrix!;
    expect(m.offset).toBe(4);
    expect(m.tokens).toEqual(['w5', 'w1', 'w2', 'w3', 'w4', 'w5']);
    expect(m.grid.rows).toEqual({ name: 'query', labels: ['4:w5', '5:w1', '6:w2', '7:w3', '8:w4', '9:w5'] });
    expect(m.grid.cols).toEqual({ name: 'key', labels: m.grid.rows.labels });
    expect(m.heatmap).toHaveLength(6);
    m.grid.values.forEach((row, q) => row.forEach((x, k) => (k > q ? expect(x).toBeNull() : expect(x).toBeGreaterThanOrEqual(0))));
    const rows = await resultsOf(r.experimentId);
    expect(rows).toHaveLength(12 * 5);
    for (const row of rows) {
      const role = extraOf(row[6]).role as keyof NonNullable<typeof r.scores>[0]['scores'];
      const s = r.scores!.find((x) => x.head === row[0])!;
      expect(row[4] as number).toBeCloseTo(s.scores[role]!, 10);
    }
    const e = await ctx.store.query(`SELECT kind FROM experiments WHERE experiment_id = '${r.experimentId}'`);
    expect(e.rows[0][0]).toBe('attention_roles');
  });

  it('rejects bad inputs with what is valid', async () => {
    await expect(callTool(attentionTool, { prompts, head: 'L9.H0' }, ctx)).rejects.toThrow(/layer 9 is out of range; valid: 0..2/);
    await expect(callTool(attentionTool, { prompts, head: 'L1.E0' }, ctx)).rejects.toThrow(/not an attention head/);
    await expect(callTool(attentionTool, { prompts, heads: [7] }, ctx)).rejects.toThrow(/head 7 is out of range; valid: 0..3/);
    await expect(callTool(attentionTool, { prompts, patternPrompt: 5 }, ctx)).rejects.toThrow(/patternPrompt 5 is out of range; valid: 0..1/);
    await expect(callTool(attentionTool, { prompts: [] }, ctx)).rejects.toThrow(/invalid arguments for attention_patterns/);
    const ac = new AbortController();
    await expect(callTool(attentionTool, { prompts, batchSize: 1 }, { ...ctx, signal: ac.signal, onProgress: () => ac.abort() })).rejects.toThrow(/cancelled/);
  });
});

describe('expert_routing', () => {
  const prompts = ['w1 w2 w3 w4', 'w5 w6 w1 w2 w3', 'w9 w9 w2'];

  it('load sums to 1 per layer, routes and classes agree with a direct engine run, rows are stored', async () => {
    const r = await callTool(routingTool, { prompts, classes: { odd: ['w1', 'w3', 'w5', 'w9'], even: ['w2', 'w4', 'w6', 'w8'] }, maxTokenRows: 100 }, ctx);
    expect(r.tokens).toBe(12);
    expect(r.k).toBe(2);
    expect(r.load.rows).toEqual({ name: 'layer', labels: ['L0', 'L1', 'L2'] });
    expect(r.load.cols).toEqual({ name: 'expert', labels: ['E0', 'E1', 'E2', 'E3'] });
    const sum = (xs: (number | null)[]) => xs.reduce((a: number, b) => a + b!, 0);
    for (const [i, row] of r.load.values.entries()) {
      expect(sum(row)).toBeCloseTo(1, 10);
      expect(sum(r.weight.values[i])).toBeCloseTo(1, 6);
    }
    const odd = r.classes!.find((c) => c.class === 'odd')!;
    const even = r.classes!.find((c) => c.class === 'even')!;
    expect(odd.tokens).toBe(7);
    expect(even.tokens).toBe(5);
    expect(r.unmatchedWords).toEqual(['w8']);
    odd.top.forEach((t, i) => {
      expect(sum(odd.dist.values[i])).toBeCloseTo(1, 10);
      expect(odd.weight.values[i][t.expert]).toBe(Math.max(...odd.weight.values[i].map(Number)));
    });
    // k = 2: one pair per token per layer.
    const full = await resultsOf(r.experimentId);
    const pairRows = full.filter((row) => extraOf(row[6]).kind === 'cooccurrence' && row[1] === 0);
    expect(pairRows.reduce((a, row) => a + (row[4] as number), 0)).toBe(12);

    const direct = await ctx.session.model.run(prompts.map((p) => ctx.session.encode(p).ids), { capture: ['blocks.1.mlp.hook_expert_indices', 'blocks.1.mlp.hook_expert_weights'] });
    const idx = direct.cache.get('blocks.1.mlp.hook_expert_indices')!;
    const wts = direct.cache.get('blocks.1.mlp.hook_expert_weights')!;
    const T = direct.length;
    expect(r.routes).toHaveLength(12);
    for (const route of r.routes!) {
      const o = (route.prompt * T + route.position) * 2;
      expect(route.experts.L1.map((x) => x[0])).toEqual([idx.data[o], idx.data[o + 1]]);
      expect(route.experts.L1[0][1]).toBe(wts.data[o]);
    }
    expect(r.routes![0].class).toBe('odd');
    const loadRows = full.filter((row) => extraOf(row[6]).kind === 'load');
    expect(loadRows).toHaveLength(3 * 4);
    // Full precision: the stored share is the returned one.
    for (const row of loadRows) expect(r.load.values[row[1] as number][row[2] as number]).toBe(row[4] as number);
  });

  it('takes per-token labels, narrows layers, and caps per-token rows', async () => {
    const r = await callTool(routingTool, { prompts: ['w1 w2', 'w3 w4'], labels: [['a', null], ['a', 'b']], layers: [2], maxTokenRows: 1, topPairs: 1 }, ctx);
    expect(r.layers).toEqual([2]);
    expect(r.classes!.map((c) => [c.class, c.tokens])).toEqual([['a', 2], ['b', 1]]);
    expect(r.routes).toHaveLength(1);
    expect(r.routesOmitted).toBe(3);
    expect(Object.keys(r.routes![0].experts)).toEqual(['L2']);
    expect(r.cooccurrence.filter((c) => c.layer === 2).length).toBeLessThanOrEqual(1);
  });

  it('rejects bad inputs with what is valid', async () => {
    await expect(callTool(routingTool, { prompts: ['w1 w2 w3 w4'], labels: [['a', 'b']] }, ctx)).rejects.toThrow(/labels\[0\] has 2 entries but prompt 0 has 4 tokens/);
    await expect(callTool(routingTool, { prompts: ['w1'], labels: [['a'], ['b']] }, ctx)).rejects.toThrow(/labels has 2 arrays for 1 prompts/);
    await expect(callTool(routingTool, { prompts: ['w1'], classes: { a: ['w1'], b: ['w1'] } }, ctx)).rejects.toThrow(/word "w1" is in classes "a" and "b"/);
    await expect(callTool(routingTool, { prompts: ['w1'], layers: [3] }, ctx)).rejects.toThrow(/layer 3 is out of range; valid: 0..2/);
    const ac = new AbortController();
    await expect(callTool(routingTool, { prompts: ['w1', 'w2'], batchSize: 1 }, { ...ctx, signal: ac.signal, onProgress: () => ac.abort() })).rejects.toThrow(/cancelled/);
  });
});

describe('similarity_search', () => {
  let runIds: string[];
  const hook = 'blocks.1.hook_resid_post';
  beforeAll(async () => {
    const c = await callTool(captureTool, { prompts: ['w1 w2 w3 w4 w5', 'w6 w2 w3 w8', 'w10 w11 w12'], hooks: ['blocks.*.hook_resid_post'] }, ctx);
    runIds = c.runIds;
  });
  const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let d = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) {
      d += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    return d / Math.sqrt(na * nb);
  };

  it('a stored row is its own nearest neighbour (similarity 1); similarities match a direct computation', async () => {
    const r = await callTool(similarityTool, { query: { runId: runIds[0], hook, position: 3 }, k: 8 }, ctx);
    expect(r.hits[0]).toMatchObject({ runId: runIds[0], hook, position: 3, token: 'w4', context: ['w1', 'w2', 'w3', 'w4'], prompt: 'w1 w2 w3 w4 w5' });
    expect(r.hits[0].similarity).toBeCloseTo(1, 5);
    expect(r.hits).toHaveLength(8);
    const src = (await ctx.store.getActivations({ runId: runIds[0], hook, position: 3 }))[0].vec;
    for (let i = 0; i < r.hits.length; i++) {
      const h = r.hits[i];
      expect(h.hook).toBe(hook);
      if (i > 0) expect(h.similarity).toBeLessThanOrEqual(r.hits[i - 1].similarity);
      const v = (await ctx.store.getActivations({ runId: h.runId, hook: h.hook, position: h.position }))[0].vec;
      expect(h.similarity).toBeCloseTo(cosine(src, v), 5);
    }
    const rows = await resultsOf(r.experimentId);
    expect(rows.map((x) => x[4] as number)).toEqual(expect.arrayContaining(r.hits.map((h) => h.similarity)));
    expect(rows).toHaveLength(8);

    const excl = await callTool(similarityTool, { query: { runId: runIds[0], hook, position: 3 }, k: 8, excludeSource: true }, ctx);
    expect(excl.hits.some((h) => h.runId === runIds[0] && h.position === 3)).toBe(false);
    expect(excl.hits[0].similarity).toBeCloseTo(r.hits[1].similarity, 6);
  });

  it('a named vector and a raw vector give the same neighbours; filters by hook pattern and layer', async () => {
    const src = (await ctx.store.getActivations({ runId: runIds[1], hook, position: 2 }))[0].vec;
    await ctx.store.putVector({ name: 'analysis_b_query', kind: 'query', hook, vec: src });
    const byName = await callTool(similarityTool, { query: { name: 'analysis_b_query' }, k: 5 }, ctx);
    const byVec = await callTool(similarityTool, { query: { vector: Array.from(src) }, hooks: [hook], k: 5 }, ctx);
    expect(byName.hits[0]).toMatchObject({ runId: runIds[1], position: 2, token: 'w3' });
    expect(byName.hits.map((h) => [h.runId, h.position, h.similarity])).toEqual(byVec.hits.map((h) => [h.runId, h.position, h.similarity]));
    const anyHook = await callTool(similarityTool, { query: { vector: Array.from(src) }, hooks: ['blocks.*.hook_resid_post'], layers: [2], k: 3 }, ctx);
    expect(anyHook.hits.every((h) => h.layer === 2 && h.hook === 'blocks.2.hook_resid_post')).toBe(true);
    const runOnly = await callTool(similarityTool, { query: { vector: Array.from(src) }, sameHook: false, runIds: [runIds[2]], k: 100 }, ctx);
    expect(runOnly.hits).toHaveLength(9);
    const dot = await callTool(similarityTool, { query: { name: 'analysis_b_query' }, metric: 'dot', k: 1 }, ctx);
    const self = src.reduce((a, x) => a + x * x, 0);
    expect(dot.hits[0].similarity).toBeGreaterThanOrEqual(self * 0.999);
  });

  it('rejects bad inputs with what is valid', async () => {
    await expect(callTool(similarityTool, { query: { name: 'nope' } }, ctx)).rejects.toThrow(/no stored vector "nope"/);
    await expect(callTool(similarityTool, { query: { runId: runIds[0], hook, position: 40 } }, ctx)).rejects.toThrow(/no stored activation/);
    await expect(callTool(similarityTool, { query: { runId: runIds[0], hook: 'blocks.1.hook_nope', position: 0 } }, ctx)).rejects.toThrow(/unknown hook/);
    await expect(callTool(similarityTool, { query: { vector: [0, 0, 0] } }, ctx)).rejects.toThrow(/all zeros/);
    await expect(callTool(similarityTool, { query: { vector: [1, 2] }, runIds: ["x' OR 1=1 --"] }, ctx)).rejects.toThrow(/is not a run id/);
    await expect(callTool(similarityTool, { query: { vector: [1, 2] }, k: 0 }, ctx)).rejects.toThrow(/invalid arguments for similarity_search/);
  });
});

describe('neuron_selectivity', () => {
  const domains = { a: ['w1 w2 w3 w4', 'w2 w3 w1'], b: ['w20 w21 w22', 'w23 w24 w25 w26'], c: ['w40 w41'] };

  it('domain means and firing rates equal a direct computation; scores follow from them; rows are stored', async () => {
    const r = await callTool(selectivityTool, { domains, layers: [0, 2], top: 3, topCross: 4 }, ctx);
    expect(r.neurons).toBe(2 * 4 * 32);
    expect(r.domains).toEqual([{ domain: 'a', prompts: 2, tokens: 7 }, { domain: 'b', prompts: 2, tokens: 7 }, { domain: 'c', prompts: 1, tokens: 2 }]);
    const reported = [...Object.values(r.perDomain).flat(), ...r.crossDomain];
    expect(reported.length).toBeGreaterThan(0);
    // Direct: hook_post over each domain's tokens (zero where the expert was not chosen).
    const direct: Record<string, { post: Float32Array; T: number; lengths: number[] }> = {};
    for (const [d, ps] of Object.entries(domains)) {
      const res = await ctx.session.model.run(ps.map((p) => ctx.session.encode(p).ids), { capture: ['blocks.0.mlp.hook_post', 'blocks.2.mlp.hook_post'] });
      direct[`${d}0`] = { post: res.cache.get('blocks.0.mlp.hook_post')!.data, T: res.length, lengths: res.lengths };
      direct[`${d}2`] = { post: res.cache.get('blocks.2.mlp.hook_post')!.data, T: res.length, lengths: res.lengths };
    }
    for (const n of reported) {
      for (const d of Object.keys(domains)) {
        const { post, T, lengths } = direct[`${d}${n.layer}`];
        let sum = 0, fire = 0, count = 0;
        lengths.forEach((len, b) => {
          for (let t = 0; t < len; t++) {
            const v = post[((b * T + t) * 4 + n.expert) * 32 + n.index];
            sum += v;
            if (v > 0) fire++;
            count++;
          }
        });
        expect(n.means[d]).toBeCloseTo(sum / count, 3);
        expect(n.firing[d]).toBeCloseTo(fire / count, 3);
      }
      const m = Object.values(n.means).sort((x, y) => y - x);
      expect(n.selectivity).toBeCloseTo((m[0] - m[1]) / (Math.abs(m[0]) + 1e-6), 2);
      expect(n.means[n.domain]).toBe(m[0]);
    }
    for (const [d, list] of Object.entries(r.perDomain)) {
      for (let i = 1; i < list.length; i++) expect(list[i].selectivity).toBeLessThanOrEqual(list[i - 1].selectivity);
      for (const n of list) expect(n.domain).toBe(d);
    }
    for (let i = 1; i < r.crossDomain.length; i++) expect(r.crossDomain[i].cross).toBeLessThanOrEqual(r.crossDomain[i - 1].cross);
    const rows = await resultsOf(r.experimentId);
    expect(rows).toHaveLength(reported.length);
    for (const row of rows) {
      const extra = extraOf(row[6]);
      const n = reported.find((x) => x.neuron === row[0])!;
      expect(row[4] as number).toBeCloseTo(extra.list === 'cross' ? n.cross : n.selectivity, 4);
      expect([row[1], row[2], row[3]]).toEqual([n.layer, n.expert, n.index]);
    }
  });

  it('rejects bad inputs with what is valid', async () => {
    await expect(callTool(selectivityTool, { domains: { a: ['w1'] } }, ctx)).rejects.toThrow(/at least two domains/);
    await expect(callTool(selectivityTool, { domains, crossDomains: ['a', 'z'] }, ctx)).rejects.toThrow(/"z", which is not one of the domains: a, b, c/);
    await expect(callTool(selectivityTool, { domains, experts: [4] }, ctx)).rejects.toThrow(/expert 4 is out of range; valid: 0..3/);
  });
});

describe('find_circuit', () => {
  // The prompts end on the same token, so the empty circuit is the corrupted run (share 0).
  const clean = ['w1 w2 w3 w4 w5 w1 w7', 'w9 w8 w3 w4 w5 w9 w7'];
  const corrupted = ['w1 w2 w3 w4 w5 w6 w7', 'w9 w8 w3 w4 w5 w10 w7'];
  const base = { clean, corrupted, target: 'w2', distractor: 'w3' };

  it('threshold 0 gives the empty set; threshold 1 a set recovering everything; the curve and stored rows agree', async () => {
    // the pruning and its curve alone (completion is tested below)
    const zero = await callTool(circuitTool, { ...base, threshold: 0, complete: false }, ctx);
    expect(zero.candidates).toBe(3 * 4 + 3 * 4);
    expect(zero.circuit).toEqual([]);
    expect(zero.size).toBe(0);
    expect(zero.share).toBeCloseTo(0, 4);
    const one = await callTool(circuitTool, { ...base, threshold: 1, complete: false }, ctx);
    expect(one.share).toBeGreaterThanOrEqual(1 - 1e-4);
    expect(one.circuit).toHaveLength(one.size);
    // Same prompts, same pruning: the curve is deterministic.
    expect(one.curve.map((p) => p.added)).toEqual(zero.curve.map((p) => p.added));
    const c = one.curve;
    expect(c).toHaveLength(25);
    expect(c[24].share).toBe(1);
    expect(c[0].share).toBeCloseTo(0, 4);
    // Monotone-ish: sizes in the top half recover more than sizes in the bottom half.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(c.slice(13).map((p) => p.share))).toBeGreaterThan(mean(c.slice(0, 12).map((p) => p.share)));
    expect(new Set(c.slice(1).map((p) => p.added)).size).toBe(24);

    const rows = (await ctx.store.query(`SELECT site, effect, value, extra FROM results WHERE experiment_id = '${one.experimentId}' ORDER BY CAST(json_extract(extra, '$.size') AS INTEGER)`, { maxRows: 100 })).rows;
    expect(rows).toHaveLength(25);
    rows.forEach((row, s) => {
      expect(row[0]).toBe(s === 0 ? '(empty)' : c[s].added);
      expect(row[1] as number).toBeCloseTo(c[s].share, 4);
      expect(extraOf(row[3]).inCircuit).toBe(s > 0 && s <= one.size);
    });
    const e = await ctx.store.query(`SELECT kind, clean_value, corrupted_value FROM experiments WHERE experiment_id = '${one.experimentId}'`);
    expect(e.rows[0][0]).toBe('circuit_discovery');
    expect(e.rows[0][1] as number).toBeCloseTo(one.clean, 5);
  });

  it('the reported share of a circuit equals a direct run patching everything else from the corrupted run', async () => {
    const r = await callTool(circuitTool, { ...base, threshold: 0.6, include: ['heads'], layers: [1, 2] }, ctx);
    expect(r.candidates).toBe(8);
    expect(r.share).toBeGreaterThanOrEqual(0.6 - 1e-4);
    const ids = (ps: string[]) => ps.map((p) => ctx.session.encode(p).ids);
    const hooks = ['blocks.1.attn.hook_z', 'blocks.2.attn.hook_z'];
    const corr = await ctx.session.model.run(ids(corrupted), { capture: hooks });
    const interventions = hooks.map((hook, i) => {
      const mask = new Float32Array(4);
      for (let h = 0; h < 4; h++) if (!r.circuit.includes(`L${i + 1}.H${h}`)) mask[h] = 1;
      return { hook, mask: { data: mask, dims: [1, 1, 4, 1] }, value: corr.cache.get(hook)! };
    });
    const patched = await ctx.session.model.run(ids(clean), { interventions });
    const w = (s: string) => ctx.session.tokenId(s, 'x');
    const spec = { name: 'logit_diff' as const, targets: [w('w2'), w('w2')], distractors: [w('w3'), w('w3')] };
    const V = ctx.session.config.vocabSize;
    const m = (metricOf(spec, 0, patched.logits!.data.subarray(0, V)) + metricOf(spec, 1, patched.logits!.data.subarray(V, 2 * V))) / 2;
    expect((m - r.corrupted) / (r.clean - r.corrupted)).toBeCloseTo(r.share, 4);
  });

  it('completion adds what the pruned prefix leaves out, each addition with the shares that justify it', async () => {
    const r = await callTool(circuitTool, { ...base, threshold: 0.5 }, ctx);
    const pruned = await callTool(circuitTool, { ...base, threshold: 0.5, complete: false }, ctx);
    expect(r.pruned).toEqual(pruned.circuit);
    expect(r.circuit).toHaveLength(r.pruned.length + r.completion.length);
    expect(new Set(r.circuit)).toEqual(new Set([...r.pruned, ...r.completion.map((a) => a.component)]));
    // most important first: the circuit follows the curve's order
    const order = r.curve.slice(1).map((p) => p.added);
    expect(r.circuit).toEqual(order.filter((h) => r.circuit.includes(h!)));
    for (const a of r.completion) {
      if (a.reason === 'contributes') expect(a.after - a.before).toBeGreaterThan(0.1);
      else expect(r.circuit).toContain(a.member);
    }
    const rows = (await ctx.store.query(`SELECT site FROM results WHERE experiment_id = '${r.experimentId}' AND CAST(json_extract(extra, '$.inCircuit') AS BOOLEAN) ORDER BY CAST(json_extract(extra, '$.size') AS INTEGER)`, { maxRows: 100 })).rows;
    expect(rows.map((row) => row[0])).toEqual(r.circuit);
    // with a tolerance of 1 nothing can qualify
    const none = await callTool(circuitTool, { ...base, threshold: 0.5, completeTolerance: 1 }, ctx);
    expect(none.completion).toEqual([]);
    expect(none.circuit).toEqual(pruned.circuit);
  });

  it('takes explicit candidates including neurons', async () => {
    const r = await callTool(circuitTool, { ...base, components: ['L0.H1', 'L2.H3', 'L1.E2', 'L2.E0.N5'], threshold: 0.5 }, ctx);
    expect(r.candidates).toBe(4);
    expect(r.curve).toHaveLength(5);
    expect(r.curve.slice(1).map((p) => p.added).sort()).toEqual(['L0.H1', 'L1.E2', 'L2.E0.N5', 'L2.H3']);
  });

  it('rejects bad inputs and stops when cancelled', async () => {
    await expect(callTool(circuitTool, { ...base, corrupted: ['w1 w2', corrupted[1]] }, ctx)).rejects.toThrow(/clean\[0\] has 7 tokens but corrupted\[0\] has 2/);
    await expect(callTool(circuitTool, { ...base, components: ['L0.H9'] }, ctx)).rejects.toThrow(/head 9 is out of range; valid: 0..3/);
    await expect(callTool(circuitTool, { ...base, neurons: ['L0.H1'] }, ctx)).rejects.toThrow(/not a neuron/);
    await expect(callTool(circuitTool, { ...base, components: ['L0.H1', 'L0.H1'] }, ctx)).rejects.toThrow(/components: lists L0.H1 more than once; give each component once/);
    await expect(callTool(circuitTool, { ...base, corrupted: clean }, ctx)).rejects.toThrow(/nothing to recover/);
    await expect(callTool(circuitTool, { ...base, distractor: undefined }, ctx)).rejects.toThrow(/logit_diff needs a target and a distractor/);
    await expect(callTool(circuitTool, { ...base, threshold: 1.5 }, ctx)).rejects.toThrow(/invalid arguments for find_circuit/);
    const ac = new AbortController();
    await expect(callTool(circuitTool, { ...base, maxBatch: 4 }, { ...ctx, signal: ac.signal, onProgress: () => ac.abort() })).rejects.toThrow(/cancelled/);
  });
});

// Ground truth: the planted roles of gpt-oss-tiny, read from the manifest by the test only.
const SEED = 5151;
const built: Partial<Record<'tiny-s' | 'tiny-m', { m: Manifest; ctx: ToolContext; close: () => Promise<void> }>> = {};
async function tiny(size: 'tiny-s' | 'tiny-m') {
  if (!built[size]) {
    const dir = join(root, `${size}-${SEED}`);
    const m = buildTinyModel(size, SEED, dir, 'clean');
    const ws = await openWorkspace(dir, join(root, `data-${size}`), { threads: 1 });
    built[size] = { m, ...ws };
  }
  return built[size]!;
}
afterAll(async () => {
  for (const b of Object.values(built)) await b!.close();
});
const roles = (m: Manifest, name: string) => m.roles[name] as string[];

/** IOI pairs: the corrupted prompt swaps both names for two unused ones (same structure, no answer). */
function ioiPairs(m: Manifest, count: number) {
  const ex = m.tasks.ioi.examples.slice(0, count);
  return {
    clean: ex.map((e) => e.prompt),
    corrupted: ex.map((e) => {
      const words = e.prompt.split(' ');
      const others = m.words.names.filter((n) => !words.includes(n));
      return words.map((w) => (w === e.target ? others[0] : w === e.distractor ? others[1] : w)).join(' ');
    }),
    target: ex.map((e) => e.target),
    distractor: ex.map((e) => e.distractor),
  };
}

describe(`ground truth on gpt-oss-tiny (seed ${SEED})`, () => {
  for (const size of ['tiny-s', 'tiny-m'] as const) {
    it(`${size}: role scores single out the planted previous-token and induction heads`, async () => {
      const { m, ctx: c } = await tiny(size);
      const prompts = [...m.tasks.induction.examples.map((e) => e.prompt), ...m.tasks.ioi.examples.slice(0, 4).map((e) => e.prompt)];
      const r = await callTool(attentionTool, { prompts, head: roles(m, 'induction.induction_head')[0] }, c);
      const prev = r.roles.find((x) => x.role === 'previous_token')!;
      const planted = [...new Set([...roles(m, 'induction.previous_token'), ...roles(m, 'ioi.previous_token')])];
      expect(prev.top.slice(0, planted.length).map((t) => t.head).sort()).toEqual([...planted].sort());
      expect(prev.top[0].score).toBeGreaterThan(0.9);
      expect(prev.top[planted.length].score).toBeLessThan(0.5);
      const ind = r.roles.find((x) => x.role === 'induction')!;
      expect(ind.top[0].head).toBe(roles(m, 'induction.induction_head')[0]);
      expect(ind.top[0].score).toBeGreaterThan(0.8);
      expect(ind.top[1].score).toBeLessThan(0.3);
      const cand = r.candidates.find((x) => x.head === roles(m, 'induction.induction_head')[0])!;
      expect(cand.roles[0].role).toBe('induction');
      expect(r.matrix!.head).toBe(roles(m, 'induction.induction_head')[0]);
    });

    it(`${size}: number tokens are routed to the planted successor expert; selectivity finds the planted neurons`, async () => {
      const { m, ctx: c } = await tiny(size);
      const [, layer, expert] = /^L(\d+)\.E(\d+)$/.exec(roles(m, 'successor.expert')[0])!.map(Number);
      const r = await callTool(routingTool, { prompts: m.tasks.successor.examples.map((e) => e.prompt), classes: { numbers: m.words.numbers }, perToken: false }, c);
      const at = r.classes![0].top.find((l) => l.layer === layer)!;
      expect(at.expert).toBe(expert);
      expect(at.weightShare).toBeGreaterThan(0.9);

      const s = await callTool(selectivityTool, { domains: m.tasks.entanglement.domains }, c);
      expect(s.crossDomain.slice(0, 3).map((n) => n.neuron)).toContain(roles(m, 'entanglement.polysemantic')[0]);
      expect(s.perDomain.math.slice(0, 3).map((n) => n.neuron).sort()).toEqual([...roles(m, 'entanglement.math_only')].sort());
      expect(s.perDomain.code.slice(0, 3).map((n) => n.neuron).sort()).toEqual([...roles(m, 'entanglement.code_only')].sort());
    });
  }

  it('find_circuit returns the planted IOI heads on tiny-s and needs more heads on tiny-m', async () => {
    const s = await tiny('tiny-s');
    const ioiHeads = (m: Manifest) => ['ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition', 'ioi.name_mover'].flatMap((k) => roles(m, k));
    const rs = await callTool(circuitTool, { ...ioiPairs(s.m, 2) }, s.ctx);
    expect([...rs.circuit].sort()).toEqual(ioiHeads(s.m).sort());
    expect(rs.share).toBeGreaterThanOrEqual(0.8);
    expect(rs.candidates).toBe(4 * 8 + 4 * 8);

    const mm = await tiny('tiny-m');
    const rm = await callTool(circuitTool, { ...ioiPairs(mm.m, 1), include: ['heads'] }, mm.ctx);
    expect([...rm.circuit].sort()).toEqual(ioiHeads(mm.m).sort());
    expect(roles(mm.m, 'ioi.name_mover')).toHaveLength(3);
    expect(rm.size).toBeGreaterThan(rs.size);
    // One name mover recovers only part of the answer: the curve climbs over the three.
    const firstMover = rm.curve.findIndex((p) => p.added !== null && roles(mm.m, 'ioi.name_mover').includes(p.added));
    expect(rm.curve[firstMover].share).toBeLessThan(0.8);
  });
});
