// edge_attribution on a built-in model at a seed no construction was tuned on: EAP-IG recovers the
// planted IOI circuit's edges, and the edge-patched forward it verifies circuits with is exact at
// both ends (every edge clean = the clean run, none = the corrupted run).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { edgeAttributionOutput } from '../../tools/edge-attribution.ts';
import { edgeLabel, feeds, graphNodes, runWithEdges, senderHooks, senderLabel, senderOutput } from '../../tools/edge-graph.ts';
import { callTool, edgeAttributionTool, type ToolContext } from '../../tools/index.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { ioiEdgeSet, plantedIoiEdges } from './ioi-edges.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-eap-'));
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
