// bench/generate: generation with the KV cache vs recomputing the prefix at every step, on
// gpt-oss-tiny (tiny-m) and on a random checkpoint with hidden size 1024, measured in one run.
//
//   npx tsx bench/generate.ts [--prompt N] [--new N] [--runs N] [--threads N] [--seed S] [--hidden H] [--layers L] [--mixed]
//
// Each case generates --new tokens greedily after random --prompt-token prompts (stop tokens off, so
// every row runs to the end), once per mode per run, the modes alternating so both see the same
// competition for the cores; the median is reported with the speed-up and a check that both modes
// gave the same tokens (and how far their logprobs differ). --mixed adds a batch of 4 prompts of 4
// different lengths: the cache runs one group per length, the worst case for it. The last line is
// one JSON object with every figure.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate, type Generation } from '../engine/generate.ts';
import { GptOssModel } from '../engine/model.ts';
import { Rng } from '../engine/rng.ts';
import { buildTinyModel } from '../engine/tiny/index.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../engine/write-checkpoint.ts';
import { load1, median, parseArgs, printTable, seconds, timeOnce } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { prompt: 'number', new: 'number', runs: 'number', threads: 'number', seed: 'number', hidden: 'number', layers: 'number', mixed: 'boolean' });
if (args.help) {
  console.log('usage: npx tsx bench/generate.ts [--prompt 64] [--new 64] [--runs 3] [--threads all] [--seed 1] [--hidden 1024] [--layers 4] [--mixed]');
  process.exit(0);
}
const promptLen = Number(args.prompt ?? 64);
const newTokens = Number(args.new ?? 64);
const runs = Number(args.runs ?? 3);
const threads = Number(args.threads ?? availableParallelism());
const seed = Number(args.seed ?? 1);
const hidden = Number(args.hidden ?? 1024);
const layers = Number(args.layers ?? 4);

interface CaseResult {
  model: string;
  batch: number;
  lengths: number[];
  recomputeS: number;
  cachedS: number;
  speedup: number;
  recomputeTokPerS: number;
  cachedTokPerS: number;
  sameTokens: boolean;
  maxLogprobDiff: number;
}

async function runCase(name: string, model: GptOssModel, prompts: number[][]): Promise<CaseResult> {
  const opts = { maxNewTokens: newTokens, stopTokens: [] as number[] };
  // Warm-up: compiles the sessions of both modes (and fills the weight cache).
  await generate(model, prompts, { maxNewTokens: 2, stopTokens: [], kvCache: false });
  await generate(model, prompts, { maxNewTokens: 2, stopTokens: [], kvCache: true });
  const times = { recompute: [] as number[], cached: [] as number[] };
  let plain: Generation[] = [];
  let cached: Generation[] = [];
  for (let i = 0; i < runs; i++) {
    times.recompute.push(await timeOnce(async () => { plain = await generate(model, prompts, { ...opts, kvCache: false }); }));
    times.cached.push(await timeOnce(async () => { cached = await generate(model, prompts, { ...opts, kvCache: true }); }));
  }
  const sameTokens = plain.every((g, b) => g.tokens.join() === cached[b].tokens.join());
  const maxLogprobDiff = Math.max(...plain.flatMap((g, b) => g.logprobs.map((lp, j) => Math.abs(lp - cached[b].logprobs[j]))));
  const recomputeS = median(times.recompute);
  const cachedS = median(times.cached);
  const generated = prompts.length * newTokens;
  return {
    model: name, batch: prompts.length, lengths: prompts.map((p) => p.length), recomputeS, cachedS, speedup: recomputeS / cachedS,
    recomputeTokPerS: generated / recomputeS, cachedTokPerS: generated / cachedS, sameTokens, maxLogprobDiff,
  };
}

const root = mkdtempSync(join(tmpdir(), 'ns-bench-generate-'));
const results: CaseResult[] = [];
try {
  const rng = new Rng(seed);
  const randomPrompts = (V: number, lengths: number[]) => lengths.map((n) => Array.from({ length: n }, () => rng.int(V)));
  const mixed = [promptLen - 3, promptLen - 2, promptLen - 1, promptLen];

  buildTinyModel('tiny-m', 0, join(root, 'tiny-m'));
  const tiny = GptOssModel.load(join(root, 'tiny-m'), { threads });
  const tinyName = `tiny-m (hidden ${tiny.config.hiddenSize}, ${tiny.config.numLayers} layers)`;
  results.push(await runCase(tinyName, tiny, randomPrompts(tiny.config.vocabSize, [promptLen])));
  if (args.mixed) results.push(await runCase(tinyName, tiny, randomPrompts(tiny.config.vocabSize, mixed)));
  await tiny.dispose();

  const cfg = {
    hidden_size: hidden, intermediate_size: hidden, num_hidden_layers: layers, num_attention_heads: 16, num_key_value_heads: 4,
    head_dim: 64, vocab_size: 8192, num_local_experts: 8, num_experts_per_tok: 4, sliding_window: 32,
  };
  const tWrite = await timeOnce(() => writeRandomCheckpoint(join(root, 'random'), gptOssConfigJson(cfg), seed));
  const big = GptOssModel.load(join(root, 'random'), { threads });
  const bigName = `random (hidden ${hidden}, ${layers} layers, 8 experts top-4, window 32)`;
  results.push(await runCase(bigName, big, randomPrompts(cfg.vocab_size, [promptLen])));
  if (args.mixed) results.push(await runCase(bigName, big, randomPrompts(cfg.vocab_size, mixed)));
  await big.dispose();

  console.log(`${newTokens} new tokens after ${promptLen}-token prompts, greedy, median of ${runs} runs, ${threads} threads, load average ${load1().toFixed(1)}; random checkpoint written in ${tWrite.toFixed(1)} s`);
  printTable(['model', 'rows (prompt lengths)', 'recompute', 'KV cache', 'speed-up', 'tok/s recompute', 'tok/s cached', 'same tokens', 'max |dlogprob|'],
    results.map((r) => [r.model, `${r.batch} (${[...new Set(r.lengths)].join(', ')})`, seconds(r.recomputeS), seconds(r.cachedS), `${r.speedup.toFixed(2)}x`,
      r.recomputeTokPerS.toFixed(1), r.cachedTokPerS.toFixed(1), String(r.sameTokens), r.maxLogprobDiff.toExponential(1)]));
  console.log(JSON.stringify({ bench: 'generate', promptTokens: promptLen, newTokens, runs, threads, loadAvg: load1(), writeS: tWrite, cases: results }));
} finally {
  rmSync(root, { recursive: true, force: true });
}
