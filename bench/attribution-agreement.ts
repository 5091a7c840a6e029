// bench/attribution-agreement: attribution_patch (plain and with the QK fix) against patch_activations
// over every head, on built-in models at the given seeds, for each IOI corruption the prompt sets
// offer. Prints Pearson and where AtP ranks patching's top head.
// Run: npx tsx bench/attribution-agreement.ts [--size tiny-s|tiny-m] [--seeds 9001,9002] [--style realistic|clean] [--examples N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel, type TinySize, type TinyStyle } from '../engine/tiny/index.ts';
import { attributionPatchTool, callTool, patchTool } from '../tools/index.ts';
import { pearson } from '../tools/linalg.ts';
import { byLength, ioiPatchingSet } from '../tools/prompt-sets.ts';
import { openWorkspace } from '../tools/workspace.ts';
import { parseArgs, printTable } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { size: 'string', seeds: 'string', style: 'string', examples: 'number', kinds: 'string' });
const size = (args.size ?? 'tiny-s') as TinySize;
const style = (args.style ?? 'realistic') as TinyStyle;
const seeds = String(args.seeds ?? '9001').split(',').map(Number);
const kinds = String(args.kinds ?? 'io_swap,abc,names').split(',') as ('io_swap' | 'abc' | 'names')[];
const rows: string[][] = [];
for (const seed of seeds) {
  const root = mkdtempSync(join(tmpdir(), 'ns-bench-agree-'));
  try {
    let manifest;
    try {
      manifest = buildTinyModel(size, seed, join(root, 'model'), style);
    } catch (e) {
      console.log(`seed ${seed} skipped: ${(e as Error).message}`);
      continue;
    }
    const { ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 });
    const examples = byLength(manifest.tasks.ioi.examples)[0].slice(0, Number(args.examples ?? 8));
    for (const kind of kinds) {
      const set = ioiPatchingSet(examples, kind);
      const patched = await callTool(patchTool, { ...set, site: 'head' }, ctx);
      const p = patched.grid.values.flat().map((x) => x ?? Number.NaN);
      const top = patched.top[0].site;
      for (const qkFix of process.env.NO_QK ? [false] : [false, true]) {
        const atp = await callTool(attributionPatchTool, { ...set, site: 'head', ...(qkFix ? { qkFix } : {}) }, ctx);
        const a = atp.grid.values.flat().map((x) => x ?? Number.NaN);
        const rank = atp.top.findIndex((t) => t.site === top);
        rows.push([`${size} ${style} ${seed}`, kind, qkFix ? 'AtP*' : 'AtP', pearson(a, p).toFixed(3), `${top} (${patched.top[0].effect.toFixed(2)})`, rank < 0 ? '>10' : String(rank + 1), atp.top.slice(0, 3).map((t) => `${t.site} ${t.effect.toFixed(2)}`).join(', ')]);
        console.log(rows.at(-1)!.join(' | '));
      }
    }
    await close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
printTable(['model', 'corruption', 'method', 'Pearson', 'patching top head', 'AtP rank of it', 'AtP top 3'], rows);
