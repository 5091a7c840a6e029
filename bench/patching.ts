// bench/patching: a full layer x position residual sweep on IOI prompts of gpt-oss-tiny, batched
// with prefix reuse vs one forward per variant, measured in one run; and capture throughput into
// DuckDB (rows/s, MB/s).  Run: npx tsx bench/patching.ts [--size tiny-s|tiny-m] [--seed N] [--examples N] [--threads N] [--rounds N]
// The two sweep modes alternate (batched first on even rounds, sequential first on odd ones) for
// --rounds rounds (default 5), and the medians are compared, so both saw the same competition for
// the cores on a shared machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel, type TinySize } from '../engine/tiny/index.ts';
import { callTool, captureTool, patchTool } from '../tools/index.ts';
import { byLength, ioiPatchingSet } from '../tools/prompt-sets.ts';
import { openWorkspace } from '../tools/workspace.ts';
import { load1, median, parseArgs, printTable, timeOnce } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { size: 'string', seed: 'number', examples: 'number', threads: 'number', rounds: 'number' });
const rounds = Number(args.rounds ?? 5);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${args.rounds}`);
const size = (args.size ?? 'tiny-s') as TinySize;
const root = mkdtempSync(join(tmpdir(), 'ns-bench-patch-'));
try {
  const manifest = buildTinyModel(size, Number(args.seed ?? 0), join(root, 'model'));
  const { ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: args.threads === undefined ? undefined : Number(args.threads) });
  // One template (one token length) so every position lines up across examples.
  const examples = byLength(manifest.tasks.ioi.examples)[0].slice(0, Number(args.examples ?? 4));
  const set = ioiPatchingSet(examples, 'abc');
  const sweep = { ...set, site: 'resid_pre' as const };
  await callTool(patchTool, { ...sweep, layers: [0], positions: [0] }, ctx); // warm the sessions
  let batched: Awaited<ReturnType<typeof patchTool.run>> | undefined;
  let sequential: typeof batched;
  const batchedRuns: number[] = [];
  const sequentialRuns: number[] = [];
  const runBatched = async () => batchedRuns.push(await timeOnce(async () => { batched = await callTool(patchTool, { ...sweep, mode: 'batched', maxBatch: 256 }, ctx); }));
  const runSequential = async () => sequentialRuns.push(await timeOnce(async () => { sequential = await callTool(patchTool, { ...sweep, mode: 'sequential' }, ctx); }));
  for (let r = 0; r < rounds; r++) {
    for (const f of r % 2 === 0 ? [runBatched, runSequential] : [runSequential, runBatched]) await f();
  }
  const tBatched = median(batchedRuns);
  const tSequential = median(sequentialRuns);
  const roundRatios = batchedRuns.map((b, i) => sequentialRuns[i] / b);
  const a = batched!.grid.values.flat();
  const b = sequential!.grid.values.flat();
  const maxDiff = Math.max(...a.map((x, i) => Math.abs((x ?? 0) - (b[i] ?? 0))));
  const variants = a.length;

  // Capture throughput: every block hook of the residual family at every position.
  const prompts = manifest.tasks.ioi.examples.map((e) => e.prompt);
  const hooks = ['blocks.*.hook_resid_pre', 'blocks.*.hook_resid_mid', 'blocks.*.hook_resid_post', 'blocks.*.hook_attn_out', 'blocks.*.hook_mlp_out', 'blocks.*.attn.hook_z'];
  let stored = 0;
  let floats = 0;
  const tCapture = await timeOnce(async () => {
    const r = await callTool(captureTool, { prompts, hooks, maxRows: 2_000_000 }, ctx);
    stored = r.rowsStored;
  });
  const q = await ctx.store.query('SELECT sum(len(vec)) FROM activations');
  floats = Number(q.rows[0][0]);
  await close();

  const H = manifest.architecture.hidden_size;
  printTable(['measure', 'value'], [
    ['model', `${size} (${manifest.architecture.num_hidden_layers} layers, hidden ${H})`],
    ['sweep', `${variants} variants (layers x positions) x ${examples.length} IOI examples`],
    ['rounds', `${rounds}, alternating; 1-min load average at the end ${load1().toFixed(1)}`],
    ['batched + cone + prefix reuse', `${tBatched.toFixed(2)} s median (${batchedRuns.map((t) => t.toFixed(2)).join(', ')}), ${batched!.forwards} forwards`],
    ['one forward per variant', `${tSequential.toFixed(2)} s median (${sequentialRuns.map((t) => t.toFixed(2)).join(', ')}), ${sequential!.forwards} forwards`],
    ['speed-up', `${(tSequential / tBatched).toFixed(2)}x of the medians; per round ${roundRatios.map((x) => x.toFixed(2)).join(', ')}`],
    ['max |effect difference|', maxDiff.toExponential(2)],
    ['capture rows', `${stored} rows in ${tCapture.toFixed(2)} s = ${(stored / tCapture).toFixed(0)} rows/s`],
    ['capture MB/s', `${((floats * 4) / 1e6 / tCapture).toFixed(1)} MB/s of float32 (end to end: forward + copy + DuckDB appender)`],
  ]);
  console.log(JSON.stringify({ bench: 'patching', size, variants, examples: examples.length, rounds, batchedS: tBatched, sequentialS: tSequential, batchedRuns, sequentialRuns, speedup: tSequential / tBatched, roundRatios, maxDiff, captureRows: stored, captureS: tCapture, rowsPerS: stored / tCapture, mbPerS: (floats * 4) / 1e6 / tCapture }));
} finally {
  rmSync(root, { recursive: true, force: true });
}
