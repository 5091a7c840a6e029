// Forward-pass benchmark of the gpt-oss engine on a random checkpoint with gpt-oss-20b's real
// dimensions (hidden 2880, intermediate 2880, 64 q / 8 kv heads x 64, 32 experts top-4, MXFP4
// experts, sliding window 128, vocab 201088) and only a few layers, so it fits on a small machine.
//
//   npx tsx bench/forward.ts [--layers N] [--threads N] [--dir DIR] [--keep] [--vocab V] [--runs N] [--seed S] [--budget GB]
//
// Prints: checkpoint write and load times; tokens/s at 16/128/512 tokens (batch 1, logits for the
// last position, no capture; median of --runs after one warm-up); the analytic FLOPs of one forward
// and the fraction of this machine's float32 matmul FLOP/s, measured in the same run with an
// onnxruntime Gemm of the engine's form (weight as a graph input, transB) and thread count; where the
// time goes (onnxruntime per graph kind vs everything else); the cost of capturing every hook vs
// none at 128 tokens. The last line is one JSON object with every figure.
//
// The anchor: bench/eager_forward.py runs the same checkpoint and tokens the way Hugging Face
// transformers' eager CPU path does (float32 experts dequantised once, looped over their routed
// tokens; numpy on OpenBLAS with the same thread count), interleaved with the engine's runs; the
// report prints engine speed-up over it per token count and checks both give the same logits.
//
// Shared machines: a matmul probe run and an anchor run are interleaved with every timed forward, and
// the capture and no-capture forwards alternate, so each ratio compares runs that saw the same
// competition for the cores; the load average and the CPU share the process got are printed alongside.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { parseConfig, type GptOssConfig } from '../engine/config.ts';
import { allHookNames } from '../engine/hooks.ts';
import { GptOssModel, type EngineOptions } from '../engine/model.ts';
import { Rng } from '../engine/rng.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../engine/write-checkpoint.ts';
import { forwardFlops, matmulProbe, weightBytes } from './machine.ts';
import { bench, cpuSeconds, gib, load1, median, parseArgs, pct, printTable, rss, seconds, timeOnce } from './lib.ts';

const REAL_VOCAB = 201088;
const LENGTHS = [16, 128, 512];
const CAPTURE_T = 128;
const PROBE_M = 512;

const USAGE = `usage: npx tsx bench/forward.ts [options]
  --layers N   decoder layers of the random checkpoint (default 2; each holds ~3 GiB of dequantised experts)
  --threads N  onnxruntime intra-op threads, for the engine and the matmul probe (default: all cores)
  --dir DIR    checkpoint directory: reused if it holds config.json, else written there (never deleted)
  --keep       keep the temporary checkpoint (its path is printed)
  --vocab V    vocabulary size (default ${REAL_VOCAB}, the real one)
  --runs N     timed runs per measurement, after one warm-up (default 3)
  --seed S     seed of the random weights and tokens (default 1)
  --budget GB  the engine's memoryBudgetGb (default: the engine's own default)
  --experts W  how the engine holds expert weights: auto (default), pairs, f32, both or stream (EngineOptions.expertWeights)
  --no-anchor  skip the numpy eager anchor (bench/eager_forward.py)`;

// ---------------------------------------------------------------------------------------------
// Where the time goes: every onnxruntime session.run is timed and attributed to its graph kind
// (recognised by its inputs); the rest of a forward is JS (embedding read, top-k routing, gathering
// and combining expert rows, copies for capture) plus tensor marshalling and GC.
type Kind = 'attention' | 'expert' | 'unembed' | 'other';
const ortTime: Record<Kind, number> = { attention: 0, expert: 0, unembed: 0, other: 0 };
const ortCalls: Record<Kind, number> = { attention: 0, expert: 0, unembed: 0, other: 0 };

function instrumentOrt(): void {
  const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<unknown> } }).prototype;
  const orig = proto.run;
  proto.run = async function (this: { inputNames: readonly string[] }, ...a: unknown[]) {
    const names = this.inputNames;
    const expert = names.includes('gateUpW') || names.includes('x0') || names.includes('h');
    const kind: Kind = expert ? 'expert' : names.includes('lmHead') ? 'unembed' : names.includes('qW') ? 'attention' : 'other';
    const t0 = performance.now();
    try {
      return await orig.apply(this, a);
    } finally {
      ortTime[kind] += (performance.now() - t0) / 1000;
      ortCalls[kind]++;
    }
  };
}

/** One timed call: wall seconds, seconds inside each kind of onnxruntime graph, CPU seconds. */
interface Sample {
  wall: number;
  ort: Record<Kind, number>;
  expertCalls: number;
  cpu: number;
}

async function sample(fn: () => unknown): Promise<Sample> {
  const before = { ...ortTime };
  const calls = ortCalls.expert;
  const c0 = cpuSeconds();
  const wall = await timeOnce(fn);
  const ortSpent = Object.fromEntries((Object.keys(ortTime) as Kind[]).map((k) => [k, ortTime[k] - before[k]])) as Record<Kind, number>;
  return { wall, ort: ortSpent, expertCalls: ortCalls.expert - calls, cpu: cpuSeconds() - c0 };
}

/** Medians over samples: wall, each onnxruntime kind, the rest, and the CPU share of `threads` cores. */
function summarize(samples: Sample[], threads: number) {
  const m = (f: (s: Sample) => number) => median(samples.map(f));
  const ortAll = (s: Sample) => s.ort.attention + s.ort.expert + s.ort.unembed + s.ort.other;
  return {
    wall: m((s) => s.wall),
    min: Math.min(...samples.map((s) => s.wall)),
    attention: m((s) => s.ort.attention),
    expert: m((s) => s.ort.expert),
    unembed: m((s) => s.ort.unembed),
    rest: m((s) => s.wall - ortAll(s)),
    expertCalls: m((s) => s.expertCalls),
    cpuShare: m((s) => s.cpu / (s.wall * threads)),
  };
}

/** Milliseconds per MiB to allocate and first touch fresh memory (page faults), vs rewriting it. */
function firstTouchCost(mib = 64): { freshMsPerMiB: number; warmMsPerMiB: number } {
  const n = (mib * 2 ** 20) / 4;
  const t0 = performance.now();
  const a = new Float32Array(n);
  a.fill(1);
  const t1 = performance.now();
  a.fill(2);
  const t2 = performance.now();
  return { freshMsPerMiB: (t1 - t0) / mib, warmMsPerMiB: (t2 - t1) / mib };
}

// ---------------------------------------------------------------------------------------------

/** bench/eager_forward.py as a child process: load once, then one forward per request. */
interface Anchor {
  loadS: number;
  forward: (tokens: number[]) => Promise<{ seconds: number; logits: number[]; top: number }>;
  close: () => void;
}

async function startAnchor(dir: string, threads: number, timeoutS = 1800): Promise<Anchor> {
  const script = join(import.meta.dirname, 'eager_forward.py');
  const child = spawn('python3', [script, dir], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (what: string) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`eager anchor: no answer to ${what} within ${timeoutS} s`)), timeoutS * 1000);
    });
    try {
      const r = await Promise.race([lines.next(), timeout]);
      if (r.done) throw new Error(`eager anchor exited (code ${child.exitCode}) before answering ${what}`);
      return JSON.parse(r.value) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  };
  const ready = await next('load');
  return {
    loadS: ready.loadS as number,
    forward: async (tokens) => {
      child.stdin.write(JSON.stringify({ tokens }) + '\n');
      return (await next(`a ${tokens.length}-token forward`)) as { seconds: number; logits: number[]; top: number };
    },
    close: () => {
      child.stdin.end();
      child.kill();
    },
  };
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    layers: 'number', threads: 'number', dir: 'string', keep: 'boolean', vocab: 'number', runs: 'number', seed: 'number', budget: 'number',
    experts: 'string', 'no-anchor': 'boolean',
  });
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const threads = (args.threads as number | undefined) ?? availableParallelism();
  const runs = (args.runs as number | undefined) ?? 3;
  const seed = (args.seed as number | undefined) ?? 1;
  for (const [name, v] of [['threads', threads], ['runs', runs]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  const log = (s: string) => console.log(s);
  const loads: number[] = [load1()];

  // 1. The checkpoint: reuse --dir when it holds one, else write a random one.
  const givenDir = args.dir as string | undefined;
  const dir = givenDir ?? mkdtempSync(join(tmpdir(), 'neuroscope-bench-forward-'));
  const temporary = givenDir === undefined;
  let writeS: number | null = null;
  try {
    if (existsSync(join(dir, 'config.json'))) {
      const have = parseConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
      for (const [opt, want, got] of [['layers', args.layers, have.numLayers], ['vocab', args.vocab, have.vocabSize]] as const) {
        if (want !== undefined && want !== got) throw new Error(`--dir ${dir} holds a checkpoint with ${opt} ${got}, but --${opt} ${want} was asked for; use another --dir or drop --${opt}`);
      }
      log(`checkpoint: reusing ${dir}`);
    } else {
      const layers = (args.layers as number | undefined) ?? 2;
      const vocab = (args.vocab as number | undefined) ?? REAL_VOCAB;
      if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers must be a positive integer, got ${layers}`);
      if (!Number.isInteger(vocab) || vocab < 2) throw new Error(`--vocab must be an integer >= 2, got ${vocab}`);
      const overrides: Record<string, unknown> = { num_hidden_layers: layers, vocab_size: vocab };
      if (vocab < REAL_VOCAB) Object.assign(overrides, { eos_token_id: vocab - 1, pad_token_id: vocab - 2 });
      log(`checkpoint: writing ${layers} layer(s), vocab ${vocab}, to ${dir} (random weights; several minutes at the real vocab) ...`);
      writeS = await timeOnce(() => writeRandomCheckpoint(dir, gptOssConfigJson(overrides), seed));
    }
    const sizeOnDisk = dirBytes(dir);

    // 2. Load (headers only), then a cold forward that reads and dequantises every weight it touches.
    instrumentOrt();
    let model!: GptOssModel;
    const loadS = await timeOnce(() => {
      model = GptOssModel.load(dir, {
        threads, cacheWeights: true, expertWeights: (args.experts ?? 'auto') as EngineOptions['expertWeights'],
        ...(args.budget !== undefined ? { memoryBudgetGb: args.budget as number } : {}),
      });
    });
    const cfg = model.config;
    const vocabNote = cfg.vocabSize === REAL_VOCAB
      ? 'real vocab 201088 (the unembedding costs what it does on gpt-oss-20b)'
      : `vocab ${cfg.vocabSize}, SMALLER than the real 201088: the unembedding is cheaper than on gpt-oss-20b`;
    const rng = new Rng(seed + 1000);
    const maxT = Math.max(...LENGTHS);
    const tokens = Array.from({ length: maxT }, () => rng.int(cfg.vocabSize));
    const row = (T: number) => [tokens.slice(0, T)];
    const forward = (T: number, capture?: string[]) => model.run(row(T), { logits: 'last', ...(capture ? { capture } : {}) });
    const firstForwardS = await timeOnce(() => forward(maxT));
    const rssLoaded = rss();
    // Experts held in per-layer sessions live outside the float32 weight cache.
    const expertF32 = cfg.numLayers * cfg.numExperts * 4 * (3 * cfg.hiddenSize * cfg.intermediateSize + 2 * cfg.intermediateSize + cfg.hiddenSize);
    const needWeights = weightBytes(cfg) - (model.expertPath === 'stream' ? 0 : expertF32);
    const cached = model.cachedWeightBytes;
    const allCached = cached >= needWeights * 0.999;

    log(`model: ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, intermediate ${cfg.intermediateSize}, heads ${cfg.numHeads}/${cfg.numKvHeads} x ${cfg.headDim}, ` +
      `experts ${cfg.numExperts} top-${cfg.expertsPerToken}, sliding window ${cfg.slidingWindow}, MXFP4 experts; ${vocabNote}`);
    log(`checkpoint on disk ${gib(sizeOnDisk)}${writeS === null ? ' (reused)' : `, written in ${seconds(writeS)}`}; load (headers) ${seconds(loadS)}; ` +
      `first forward at T=${maxT} (reads + dequantises the weights, builds sessions) ${seconds(firstForwardS)}; RSS ${gib(rssLoaded)}`);
    log(`experts: ${model.expertPath === 'stream' ? 'dequantised to float32 in JS on every use (weights as inputs)' : `per-layer sessions, prepacked initializers, encoding ${model.expertPath}`}; ` +
      `other weights cached in float32: ${gib(cached)} of ${gib(needWeights)} (engine budget ${gib(model.memoryBudgetBytes)})` +
      (allCached ? '' : ' -- NOT ALL CACHED: the timed forwards below re-read and dequantise evicted weights'));

    // 3. This machine: matmul at the forward's sizes, and the cost of fresh memory.
    const probes = [];
    for (const M of LENGTHS) {
      const p = await matmulProbe(M, cfg.hiddenSize, 2 * cfg.intermediateSize, threads);
      const t = await bench(p.run, { warmup: 1, runs: Math.max(runs, 5) });
      probes.push({ M, K: p.K, N: p.N, seconds: t.median, flopPerS: p.flops / t.median });
      await p.release();
    }
    const peak = Math.max(...probes.map((p) => p.flopPerS));
    const touch = firstTouchCost();
    loads.push(load1());

    // 4. Forward throughput; a probe run (M = 512) and an anchor run before every timed forward.
    const anchor = args['no-anchor'] ? null : await startAnchor(dir, threads);
    if (anchor) log(`eager anchor (numpy, bench/eager_forward.py) loaded in ${seconds(anchor.loadS)}`);
    const probe = await matmulProbe(PROBE_M, cfg.hiddenSize, 2 * cfg.intermediateSize, threads);
    await probe.run();
    const results = [];
    for (const T of LENGTHS) {
      const warm = await forward(T); // warm-up
      const fwd: Sample[] = [];
      const pr: number[] = [];
      const eager: number[] = [];
      let anchorErr = NaN;
      let sameTop: boolean | null = null;
      if (anchor) {
        // The anchor computes the same model: its last-position logits match the engine's.
        const a = await anchor.forward(row(T)[0]);
        const mine = Array.from(warm.logits!.data.subarray(0, a.logits.length));
        anchorErr = Math.max(...a.logits.map((v, i) => Math.abs(v - mine[i]))) / Math.max(...mine.map(Math.abs));
        let top = 0;
        warm.logits!.data.forEach((v, i) => { if (v > warm.logits!.data[top]) top = i; });
        sameTop = top === a.top;
      }
      for (let i = 0; i < runs; i++) {
        pr.push(await timeOnce(probe.run));
        if (anchor) eager.push((await anchor.forward(row(T)[0])).seconds);
        fwd.push(await sample(() => forward(T)));
      }
      const s = summarize(fwd, threads);
      const flops = forwardFlops(cfg, T);
      const probeNow = probe.flops / median(pr);
      const eagerS = anchor ? median(eager) : NaN;
      results.push({
        T, ...s, flops, tokensPerS: T / s.wall, flopPerS: flops.total / s.wall, ofPeak: flops.total / s.wall / peak, probeNow, ofProbeNow: flops.total / s.wall / probeNow,
        eagerS, speedup: eagerS / s.wall, anchorErr, sameTop,
      });
      loads.push(load1());
    }
    anchor?.close();
    await probe.release();

    // 5. Capture every hook vs none at T = 128, alternating so both see the same load.
    const everyHook = allHookNames(cfg.numLayers);
    let capturedBytes = 0;
    const withAll = async () => {
      const out = await forward(CAPTURE_T, everyHook);
      capturedBytes = [...out.cache.values()].reduce((n, t) => n + t.data.byteLength, 0);
    };
    await withAll(); // warm-up (builds the sessions with every hook output)
    const none: Sample[] = [];
    const all: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      none.push(await sample(() => forward(CAPTURE_T)));
      all.push(await sample(withAll));
    }
    const capNone = summarize(none, threads);
    const capAll = summarize(all, threads);
    const ratio = capAll.wall / capNone.wall;
    loads.push(load1());
    const rssEnd = rss();
    await model.dispose();

    // Report.
    log(`machine: ${availableParallelism()} cores, onnxruntime threads ${threads}; 1-min load average during the run ${loads.map((x) => x.toFixed(1)).join(' -> ')}` +
      (Math.max(...loads) > availableParallelism() ? ' (OTHER PROCESSES COMPETED FOR THE CORES: absolute times are inflated; the ratios compare interleaved runs)' : ''));
    log(`fresh memory costs ${touch.freshMsPerMiB.toFixed(2)} ms/MiB to allocate and first touch (page faults), vs ${touch.warmMsPerMiB.toFixed(3)} ms/MiB to rewrite it`);
    log('');
    log(`float32 matmul, onnxruntime Gemm with W as an input and transB, ${threads} threads (median of ${Math.max(runs, 5)}); peak = ${(peak / 1e9).toFixed(1)} GFLOP/s:`);
    printTable(['M x K x N', 'time', 'GFLOP/s'], probes.map((p) => [`${p.M} x ${p.K} x ${p.N}`, seconds(p.seconds), (p.flopPerS / 1e9).toFixed(1)]));
    log('');
    log(`forward, 1 row, logits at the last position, no capture (median of ${runs} after 1 warm-up):`);
    printTable(
      ['tokens', 'time', 'tokens/s', 'GFLOP', 'GFLOP/s', 'of peak', 'of probe now', 'cpu share', 'attn ort', 'expert ort', 'unembed ort', 'rest (JS)', 'expert calls'],
      results.map((r) => [
        r.T, seconds(r.wall), r.tokensPerS.toFixed(1), (r.flops.total / 1e9).toFixed(2), (r.flopPerS / 1e9).toFixed(1), pct(r.ofPeak), pct(r.ofProbeNow), pct(r.cpuShare),
        seconds(r.attention), seconds(r.expert), seconds(r.unembed), seconds(r.rest), r.expertCalls,
      ]),
    );
    log(`  "of peak": achieved FLOP/s over the best matmul rate above; "of probe now": over the ${PROBE_M}-row probe run interleaved with these forwards.`);
    if (!args['no-anchor']) {
      log('');
      log(`against the eager anchor (HF transformers' algorithm in numpy/OpenBLAS, ${threads} threads, interleaved runs, median of ${runs}):`);
      printTable(['tokens', 'eager', 'engine', 'speed-up', 'logits rel diff (first 8)', 'same top token'],
        results.map((r) => [r.T, seconds(r.eagerS), seconds(r.wall), `${r.speedup.toFixed(2)}x`, r.anchorErr.toExponential(1), String(r.sameTop)]));
    }
    log(`  FLOPs per forward at T=${maxT}: ` + Object.entries(results[results.length - 1].flops).filter(([k]) => k !== 'total')
      .map(([k, v]) => `${k} ${(v / 1e9).toFixed(2)} G`).join(', '));
    log('');
    log(`capture at T=${CAPTURE_T} (alternating runs, median of ${runs}): no capture ${seconds(capNone.wall)}, all ${everyHook.length} hooks ${seconds(capAll.wall)}: x${ratio.toFixed(2)}, ${gib(capturedBytes)} captured`);
    printTable(
      ['capture', 'time', 'attn ort', 'expert ort', 'unembed ort', 'rest (JS)', 'cpu share'],
      [['none', capNone], [`all ${everyHook.length}`, capAll]].map(([name, s]) => {
        const x = s as typeof capAll;
        return [name as string, seconds(x.wall), seconds(x.attention), seconds(x.expert), seconds(x.unembed), seconds(x.rest), pct(x.cpuShare)];
      }),
    );
    log(`RSS at the end ${gib(rssEnd)}`);

    const r3 = (x: number, n = 4) => Number(x.toPrecision(n));
    const json = {
      bench: 'forward',
      layers: cfg.numLayers, hidden: cfg.hiddenSize, vocab: cfg.vocabSize, realVocab: cfg.vocabSize === REAL_VOCAB,
      threads, cores: availableParallelism(), runs, loadAvg: loads.map((x) => r3(x, 3)),
      checkpoint: { bytes: sizeOnDisk, writeS: writeS === null ? null : r3(writeS) },
      loadS: r3(loadS), firstForwardS: r3(firstForwardS), rssLoadedBytes: rssLoaded,
      weights: { cachedBytes: cached, neededBytes: needWeights, allCached }, expertPath: model.expertPath,
      freshMemoryMsPerMiB: r3(touch.freshMsPerMiB, 3),
      matmul: probes.map((p) => ({ M: p.M, K: p.K, N: p.N, gflopPerS: r3(p.flopPerS / 1e9) })),
      peakGflopPerS: r3(peak / 1e9),
      forward: results.map((r) => ({
        T: r.T, medianS: r3(r.wall), minS: r3(r.min), tokensPerS: r3(r.tokensPerS), gflop: r3(r.flops.total / 1e9), gflopPerS: r3(r.flopPerS / 1e9),
        fractionOfPeak: r3(r.ofPeak, 3), fractionOfProbeNow: r3(r.ofProbeNow, 3), probeNowGflopPerS: r3(r.probeNow / 1e9), cpuShare: r3(r.cpuShare, 3),
        seconds: { attentionOrt: r3(r.attention, 3), expertOrt: r3(r.expert, 3), unembedOrt: r3(r.unembed, 3), rest: r3(r.rest, 3) },
        expertCalls: r.expertCalls,
        eagerS: Number.isNaN(r.eagerS) ? null : r3(r.eagerS), speedupOverEager: Number.isNaN(r.speedup) ? null : r3(r.speedup, 3),
        anchorLogitsRelDiff: Number.isNaN(r.anchorErr) ? null : r3(r.anchorErr, 2), anchorSameTop: r.sameTop,
      })),
      capture: {
        T: CAPTURE_T, hooks: everyHook.length, noneS: r3(capNone.wall), allS: r3(capAll.wall), ratio: r3(ratio, 3), capturedBytes,
        allSeconds: { attentionOrt: r3(capAll.attention, 3), expertOrt: r3(capAll.expert, 3), unembedOrt: r3(capAll.unembed, 3), rest: r3(capAll.rest, 3) },
      },
    };
    console.log(JSON.stringify(json));
  } finally {
    if (temporary) {
      if (args.keep) log(`kept checkpoint: ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
