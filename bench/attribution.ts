// bench/attribution: attribution patching (AtP, 2 forwards + 1 backward) vs the full activation-patching
// sweep over every head x position on IOI prompts of gpt-oss-tiny, in one run: time ratio, cost in
// forward-equivalents and rank agreement.  Run: npx tsx bench/attribution.ts [--size tiny-s|tiny-m] [--seed N] [--examples N] [--kind io_swap|abc] [--threads N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gradients } from '../engine/backward/gradient.ts';
import { buildTinyModel, type TinySize } from '../engine/tiny/index.ts';
import { attributionPatchTool, callTool, patchTool } from '../tools/index.ts';
import { byLength, ioiPatchingSet } from '../tools/prompt-sets.ts';
import { openWorkspace } from '../tools/workspace.ts';
import { pearson, spearman } from '../tools/linalg.ts';
import { bench, parseArgs, printTable, seconds, timeOnce } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { size: 'string', seed: 'number', examples: 'number', kind: 'string', threads: 'number' });
const size = (args.size ?? 'tiny-m') as TinySize;
const kind = (args.kind ?? 'io_swap') as 'io_swap' | 'abc';
const root = mkdtempSync(join(tmpdir(), 'ns-bench-atp-'));
try {
  const manifest = buildTinyModel(size, Number(args.seed ?? 5), join(root, 'model'));
  const { ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: args.threads === undefined ? undefined : Number(args.threads) });
  const examples = byLength(manifest.tasks.ioi.examples)[0].slice(0, Number(args.examples ?? 4));
  const set = ioiPatchingSet(examples, kind);
  const sweep = { ...set, site: 'head' as const, perPosition: true };
  const model = ctx.session.model;
  const ids = set.corrupted.map((p) => ctx.session.encodeAll([p], 'corrupted')[0].ids);
  const targets = set.target.map((w) => ctx.session.tokenId(w, 'target'));
  await callTool(attributionPatchTool, { ...sweep, layers: [0], heads: [0] }, ctx); // warm the sessions and weights

  // Anchor: one forward of the corrupted batch; AtP's parts in the same units.
  const forward = await bench(() => model.run(ids), { warmup: 1, runs: 5 });
  const fwdBwd = await bench(() => gradients(model, ids, { metric: { name: 'logit', target: targets }, grads: ['blocks.*.attn.hook_z'], capture: ['blocks.*.attn.hook_z'] }), { warmup: 1, runs: 3 });
  let atp: Awaited<ReturnType<typeof callTool<typeof attributionPatchTool.input, typeof attributionPatchTool.output>>> | undefined;
  let patched: Awaited<ReturnType<typeof callTool<typeof patchTool.input, typeof patchTool.output>>> | undefined;
  const tAtp = await timeOnce(async () => { atp = await callTool(attributionPatchTool, sweep, ctx); });
  const tPatch = await timeOnce(async () => { patched = await callTool(patchTool, { ...sweep, maxBatch: 256 }, ctx); });
  await close();

  const a = atp!.grid.values.flat().map((x) => x ?? Number.NaN);
  const p = patched!.grid.values.flat().map((x) => x ?? Number.NaN);
  const topPatch = patched!.top[0].site;
  const rankOfTop = atp!.top.findIndex((t) => t.site === topPatch);
  const r = pearson(a, p);
  const rho = spearman(a, p);
  // Most sites do nothing; their order is noise. Rank agreement where patching sees an effect:
  const live = p.flatMap((x, i) => (Math.abs(x) >= 0.01 ? [i] : []));
  const rhoLive = live.length >= 2 ? spearman(live.map((i) => a[i]), live.map((i) => p[i])) : Number.NaN;
  const engineCost = 1 + fwdBwd.median / forward.median;
  const cfg = manifest.architecture;
  printTable(['measure', 'value'], [
    ['model', `${size} seed ${args.seed ?? 5} (${cfg.num_hidden_layers} layers x ${cfg.num_attention_heads} heads, hidden ${cfg.hidden_size})`],
    ['sweep', `${a.length} sites (every head x position) x ${examples.length} IOI examples (${kind})`],
    ['forward (anchor)', seconds(forward.median)],
    ['forward + backward (gradients at every hook_z)', `${seconds(fwdBwd.median)} = ${(fwdBwd.median / forward.median).toFixed(2)} forwards`],
    ['AtP engine cost (clean forward + forward + backward)', `${engineCost.toFixed(2)} forward-equivalents`],
    ['attribution_patch end to end (with DuckDB rows)', `${seconds(tAtp)} = ${(tAtp / forward.median).toFixed(2)} forward-equivalents`],
    ['patch_activations (batched, prefix reuse)', `${seconds(tPatch)} = ${(tPatch / forward.median).toFixed(1)} forward-equivalents, ${patched!.forwards} engine passes`],
    ['time ratio patching / AtP', `${(tPatch / tAtp).toFixed(1)}x`],
    ['Pearson / Spearman (AtP vs patching), all sites', `${r.toFixed(3)} / ${rho.toFixed(3)}`],
    ['Spearman where |patching effect| >= 0.01', `${rhoLive.toFixed(3)} over ${live.length} sites`],
    ['patching top site', `${topPatch} (${patched!.top[0].effect.toFixed(3)}); AtP rank ${rankOfTop < 0 ? '> 10' : rankOfTop + 1}`],
  ]);
  console.log(JSON.stringify({ bench: 'attribution', size, kind, sites: a.length, examples: examples.length, forwardS: forward.median, forwardBackwardS: fwdBwd.median, atpS: tAtp, patchS: tPatch, ratio: tPatch / tAtp, atpEngineForwardEquivalents: engineCost, atpToolForwardEquivalents: tAtp / forward.median, pearson: r, spearman: rho, spearmanLive: rhoLive, liveSites: live.length, topPatch, atpRankOfTop: rankOfTop + 1 }));
} finally {
  rmSync(root, { recursive: true, force: true });
}
