// bench/sae: TopK SAE training throughput (tokens/s) and memory, on tiny-m's residual stream
// (activations of its built-in corpus) and at gpt-oss-20b's full hidden size (2880, random rows).
// Run: npx tsx bench/sae.ts [--steps N] [--batch N] [--threads N] [--full-steps N] [--full-expansion N] [--skip-full]
//
// Each configuration trains `steps` optimiser steps through engine/sae/trainer.ts (the onnxruntime
// graph of forward, backward and Adam). The anchor, measured in the same run between the trainings,
// is one onnxruntime MatMul of the encoder's shape [batch, d] x [d, dSae]: the ratio says how many
// encoder-sized matmuls one training step costs (a step does about 6 of that size), so it reads
// the same on a busy or a quiet machine. Memory: the analytic bytes of parameters + Adam moments,
// and the process's peak RSS growth during training.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GptOssModel } from '../engine/model.ts';
import { GraphBuilder } from '../engine/onnx/graph-builder.ts';
import { Rng } from '../engine/rng.ts';
import { trainTopK } from '../engine/sae/trainer.ts';
import { buildTinyModel } from '../engine/tiny/index.ts';
import { Tokenizer } from '../engine/tokenizer.ts';
import { builtInCorpus } from '../tools/sae/corpus.ts';
import { bench, gib, load1, parseArgs, printTable, rss } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { steps: 'number', batch: 'number', threads: 'number', 'full-steps': 'number', 'full-expansion': 'number', 'skip-full': 'boolean' });
if (args.help) {
  console.log('usage: npx tsx bench/sae.ts [--steps N (default 200)] [--batch N (default 256)] [--threads N (default 0 = all)] [--full-steps N (default 3)] [--full-expansion N (default 4)] [--skip-full]');
  process.exit(0);
}
const steps = Number(args.steps ?? 200);
const batch = Number(args.batch ?? 256);
const threads = Number(args.threads ?? 0);

async function matmulProbe(B: number, d: number, S: number): Promise<number> {
  const g = new GraphBuilder('probe');
  g.output('y', g.op('MatMul', [g.input('x', [B, d]), g.input('w', [d, S])]));
  const s = await ort.InferenceSession.create(g.build(), { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 });
  const rng = new Rng(1);
  const x = new ort.Tensor('float32', Float32Array.from({ length: B * d }, () => rng.normal()), [B, d]);
  const w = new ort.Tensor('float32', Float32Array.from({ length: d * S }, () => rng.normal()), [d, S]);
  const t = await bench(() => s.run({ x, w }), { warmup: 1, runs: 5 });
  await s.release();
  return t.median;
}

interface Row { name: string; d: number; dSae: number; k: number; batch: number; steps: number; seconds: number; tokensPerS: number; probeS: number; stepOverProbe: number; stateGiB: number; rssGrowthGiB: number }

async function measure(name: string, x: Float32Array, d: number, dSae: number, k: number, B: number, n: number): Promise<Row> {
  const probeBefore = await matmulProbe(B, d, dSae);
  const rss0 = rss();
  let peak = rss0;
  const t0 = performance.now();
  await trainTopK(x, d, null, d, { dSae, k, steps: n, batchSize: B, threads, onProgress: () => (peak = Math.max(peak, rss())) });
  const seconds = (performance.now() - t0) / 1000;
  peak = Math.max(peak, rss());
  const probeAfter = await matmulProbe(B, d, dSae);
  const probeS = (probeBefore + probeAfter) / 2;
  return {
    name, d, dSae, k, batch: B, steps: n, seconds, tokensPerS: (n * B) / seconds, probeS, stepOverProbe: seconds / n / probeS,
    stateGiB: (3 * 4 * (2 * d * dSae + dSae + d)) / 2 ** 30, rssGrowthGiB: (peak - rss0) / 2 ** 30,
  };
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'bench-sae-'));
try {
  buildTinyModel('tiny-m', 0, dir);
  const model = GptOssModel.load(dir, { threads });
  const tok = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  const hook = `blocks.${model.config.numLayers / 2}.hook_resid_post`;
  const ids = builtInCorpus(dir).map((p) => tok.encode(p));
  const parts: Float32Array[] = [];
  for (let i = 0; i < ids.length; i += 32) {
    const b = ids.slice(i, i + 32);
    const r = await model.run(b, { capture: [hook], logits: 'none' });
    const t = r.cache.get(hook)!;
    const [, T, H] = t.dims;
    b.forEach((row, j) => parts.push(t.data.slice(j * T * H, (j * T + row.length) * H)));
  }
  await model.dispose();
  const H = model.config.hiddenSize;
  const x = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (x.set(p, o), o + p.length), 0);
  rows.push(await measure(`tiny-m ${hook} (${x.length / H} tokens)`, x, H, 4 * H, 16, batch, steps));
  if (!args['skip-full']) {
    const d = 2880;
    const exp = Number(args['full-expansion'] ?? 4);
    const rng = new Rng(2);
    const xf = Float32Array.from({ length: 4 * batch * d }, () => rng.normal());
    rows.push(await measure('full width (gpt-oss-20b hidden 2880, random rows)', xf, d, exp * d, 64, batch, Number(args['full-steps'] ?? 3)));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

printTable(
  ['configuration', 'd', 'dSae', 'k', 'batch', 'steps', 'tokens/s', 'step / matmul probe', 'params+Adam', 'peak RSS growth'],
  rows.map((r) => [r.name, r.d, r.dSae, r.k, r.batch, r.steps, r.tokensPerS.toFixed(0), `x${r.stepOverProbe.toFixed(1)}`, gib(r.stateGiB * 2 ** 30), gib(r.rssGrowthGiB * 2 ** 30)]),
);
console.log(`load average ${load1().toFixed(2)} (shared machines: compare the step / probe ratio, not tokens/s)`);
console.log(JSON.stringify({ bench: 'sae', rows }));
