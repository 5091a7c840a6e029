// gpt-oss-20b at full size on this machine: the random checkpoint from bench/make-fullsize.ts (the
// real layout and sizes, 13.76 GB), loaded through the engine as a real download would be.
//
//   npx tsx bench/fullsize.ts [--dir DIR] [--layers N] [--threads N] [--budget GB] [--tokens T]
//                             [--positions P] [--sweep-layers LIST] [--max-rss-gb G] [--recycle] [--seed S]
//                             [--experts W] [--generate N] [--rounds N]
//
// Measures: load time (headers); the refusal of a run whose activations cannot fit; a T-token forward
// (default 32) with capture of every blocks.*.hook_resid_post; the clean + corrupted run capturing
// every blocks.*.hook_resid_pre; and a layers x positions residual patching sweep as ONE batch (row r
// joins at its layer from the corrupted residual, an intervention per layer on blocks.L.hook_resid_pre
// with per-row masks restores one clean position; plus one unpatched control row), metric = logit
// difference of two tokens at the last position. Every variant passes layer L while L is loaded, so the
// sweep reads the weights once.
//
// Where the time goes, per phase, without engine edits: the checkpoint object's methods are wrapped
// (expert() = disk read of the MXFP4 bytes + dequantisation; attention()/lmHead() via readF32 = disk
// read + BF16 -> float32), every onnxruntime session.run is timed by graph kind (compute), and the
// rest is JS (routing, dispatch, combining, copies, interventions, GC).
// Memory: a worker thread samples process RSS every 100 ms (it keeps sampling while the main thread
// is busy) and kills the process past --max-rss-gb; VmHWM from /proc/self/status is read per phase
// (reset through /proc/self/clear_refs where the kernel allows) and at the end.
//
// Physical limits, measured in the same run: memory copy bandwidth and onnxruntime's matmul peak.
// Each phase prints the time reading its expert bytes at that bandwidth would take (for the MXFP4
// bytes as stored and for the bytes the engine actually reads in its encoding) and the time its
// FLOPs would take at the peak, as fractions of its wall time. When the engine holds experts in
// per-layer sessions (they fit the budget, e.g. --layers 4), the capture forward is also run with
// experts streamed in float32 (the previous path) in the same process, steady state against steady
// state, and the ratio is printed. --generate N decodes N tokens with the KV cache after the prompt.
//
// --recycle demonstrates the fix recommended in docs/gpu-and-memory.md: cacheWeights false and
// every expert dequantised into the same two reused buffers (and lm_head read into reused buffers),
// so no run allocates fresh pages for weights.
import { closeSync, existsSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { Checkpoint, type ExpertWeights } from '../engine/checkpoint.ts';
import { generate } from '../engine/generate.ts';
import { expertBytes } from '../engine/graphs/packed-experts.ts';
import { GptOssModel, type EngineOptions, type Progress, type RunResult } from '../engine/model.ts';
import { copyBandwidth, forwardFlops, matmulProbe } from './machine.ts';
import { dequantizeMxfp4 } from '../engine/mxfp4.ts';
import { readTensorBytes, toFloat32, type TensorInfo } from '../engine/safetensors.ts';
import type { Tensor } from '../engine/tensor.ts';
import type { Intervention } from '../engine/intervention.ts';
import { gib, median, parseArgs, pct, printTable, seconds } from './lib.ts';
import { DEFAULT_DIR, makeFullsize, XorShift128 } from './make-fullsize.ts';

const USAGE = `usage: npx tsx bench/fullsize.ts [--dir DIR] [--layers N] [--threads N] [--budget GB] [--tokens T]
                             [--positions P] [--sweep-layers LIST] [--max-rss-gb G] [--recycle] [--seed S]
  --dir DIR           checkpoint (default ${DEFAULT_DIR}, or ${DEFAULT_DIR}-L<N> with --layers N < 24);
                      written with bench/make-fullsize.ts first if it holds no config.json
  --layers N          layers of the checkpoint to write when --dir has none (default 24)
  --threads N         onnxruntime intra-op threads (default: all cores)
  --budget GB         the engine's memoryBudgetGb (default: the engine's, 75% of RAM)
  --tokens T          prompt length (default 32)
  --positions P       patched positions per layer, evenly spaced ending at the last (default 8)
  --sweep-layers LIST layers of the sweep, e.g. 0-23 or 0,6,12,18 (default: all)
  --max-rss-gb G      kill the bench if RSS passes G GiB (default 20)
  --recycle           cacheWeights false + experts/lm_head dequantised into reused buffers (see above)
  --skip-forward      skip the capture forward (phase 2)
  --seed S            seed of the prompts (default 1)
  --experts W         the engine's expertWeights: auto (default), pairs, f32, both or stream
  --generate N        greedy decoding of N tokens with the KV cache after the T-token prompt (default 0)
  --rounds N          rounds of the packed vs float32 comparison, alternating the two (default 3; medians)`;

// ---------------------------------------------------------------------------------------------
// Memory: a sampler thread and VmHWM.
const SAMPLER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const s = new Float64Array(workerData.sab); // 0 peak, 1 phase peak, 2 samples, 3 limit, 4 last
setInterval(() => {
  const r = process.memoryUsage.rss();
  s[4] = r; s[2]++;
  if (r > s[0]) s[0] = r;
  if (r > s[1]) s[1] = r;
  if (s[3] > 0 && r > s[3]) {
    fs.writeSync(2, '\\nfullsize: RSS ' + (r / 2 ** 30).toFixed(2) + ' GiB passed --max-rss-gb; killing the bench\\n');
    process.kill(process.pid, 'SIGKILL');
  }
}, workerData.intervalMs);
`;

function statusKb(field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resets VmHWM to the current RSS (Linux >= 4.0); false where not allowed. */
function resetHwm(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Time accounting.
type Kind = 'attention' | 'expert' | 'unembed';
interface Counters {
  readS: number;
  readBytes: number;
  dequantS: number;
  convertS: number;
  ort: Record<Kind, number>;
  ortCalls: Record<Kind, number>;
  expertLoads: number;
  attentionLoads: number;
  lmHeadLoads: number;
}
const fresh = (): Counters => ({
  readS: 0, readBytes: 0, dequantS: 0, convertS: 0,
  ort: { attention: 0, expert: 0, unembed: 0 }, ortCalls: { attention: 0, expert: 0, unembed: 0 },
  expertLoads: 0, attentionLoads: 0, lmHeadLoads: 0,
});
let C = fresh();
const now = () => performance.now() / 1000;

function instrumentOrt(): void {
  const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<unknown> } }).prototype;
  const orig = proto.run;
  proto.run = async function (this: { inputNames: readonly string[] }, ...a: unknown[]) {
    const names = this.inputNames;
    if (names.includes('w')) return orig.apply(this, a); // the matmul probe, not a phase's compute
    const expert = names.includes('gateUpW') || names.includes('x0') || names.includes('h');
    const kind: Kind = expert ? 'expert' : names.includes('lmHead') ? 'unembed' : 'attention';
    const t0 = now();
    try {
      return await orig.apply(this, a);
    } finally {
      C.ort[kind] += now() - t0;
      C.ortCalls[kind]++;
    }
  };
}

/** The checkpoint's private helpers, wrapped from outside (TS privacy is compile-time only). */
interface CheckpointInternals {
  info(name: string): TensorInfo;
  readF32(name: string): Float32Array;
  readRows(name: string, rows: number[]): Float32Array;
  expertBytes(name: string, e: number, reuse?: boolean): Uint8Array;
  expertF32(name: string, e: number): Float32Array;
  expert(layer: number, e: number, out?: { gateUpW: Float32Array; downW: Float32Array }): ExpertWeights;
  attention(layer: number): unknown;
  lmHead(): Float32Array;
}

function instrumentCheckpoint(checkpoint: Checkpoint, recycle: boolean): void {
  const ck = checkpoint as unknown as CheckpointInternals;
  const cfg = checkpoint.config;
  const { hiddenSize: H, intermediateSize: I } = cfg;
  // Disk reads of expert bytes.
  const expertBytes = ck.expertBytes.bind(ck);
  ck.expertBytes = (name, e, reuse) => {
    const t0 = now();
    const b = expertBytes(name, e, reuse);
    C.readS += now() - t0;
    C.readBytes += b.byteLength;
    return b;
  };
  // readF32 as the engine's (read, then toFloat32), with the two halves timed apart.
  ck.readF32 = (name) => {
    const info = ck.info(name);
    const t0 = now();
    const bytes = readTensorBytes(info);
    const t1 = now();
    const out = toFloat32(info, bytes);
    C.readS += t1 - t0;
    C.convertS += now() - t1;
    C.readBytes += bytes.byteLength;
    return out;
  };
  const readRows = ck.readRows.bind(ck);
  ck.readRows = (name, rows) => {
    const t0 = now();
    const out = readRows(name, rows);
    C.readS += now() - t0;
    C.readBytes += out.byteLength / 2;
    return out;
  };
  const expert = ck.expert.bind(ck);
  if (!recycle) {
    ck.expert = (layer, e, out) => {
      const r0 = C.readS;
      const t0 = now();
      const w = expert(layer, e, out);
      C.dequantS += now() - t0 - (C.readS - r0);
      C.expertLoads++;
      return w;
    };
  } else {
    // The same values as Checkpoint.expert, dequantised into two buffers reused for every expert. Safe
    // only with cacheWeights false: the engine then drops each expert's weights before the next.
    if (!checkpoint.expertsQuantized) throw new Error('--recycle needs MXFP4 experts');
    const gateUpW = new Float32Array(2 * I * H);
    const downW = new Float32Array(H * I);
    ck.expert = (layer, e) => {
      const x = `model.layers.${layer}.mlp.experts.`;
      const r0 = C.readS;
      const t0 = now();
      const w: ExpertWeights = {
        gateUpW: dequantizeMxfp4(ck.expertBytes(`${x}gate_up_proj_blocks`, e), ck.expertBytes(`${x}gate_up_proj_scales`, e), 2 * I, H, gateUpW),
        gateUpB: ck.expertF32(`${x}gate_up_proj_bias`, e),
        downW: dequantizeMxfp4(ck.expertBytes(`${x}down_proj_blocks`, e), ck.expertBytes(`${x}down_proj_scales`, e), H, I, downW),
        downB: ck.expertF32(`${x}down_proj_bias`, e),
      };
      C.dequantS += now() - t0 - (C.readS - r0);
      C.expertLoads++;
      return w;
    };
  }
  const attention = ck.attention.bind(ck);
  ck.attention = (layer) => {
    C.attentionLoads++;
    return attention(layer);
  };
  if (!recycle) {
    const lmHead = ck.lmHead.bind(ck);
    ck.lmHead = () => {
      C.lmHeadLoads++;
      return lmHead();
    };
  } else {
    // lm_head read into one reused byte buffer and converted into one reused float buffer.
    const info = ck.info('lm_head.weight');
    if (info.dtype !== 'BF16') throw new Error('--recycle expects a BF16 lm_head');
    let bytes: Uint8Array | null = null;
    let out: Float32Array | null = null;
    ck.lmHead = () => {
      C.lmHeadLoads++;
      bytes ??= new Uint8Array(info.byteLength);
      out ??= new Float32Array(info.byteLength / 2);
      const t0 = now();
      const fd = openSync(info.file, 'r');
      try {
        for (let done = 0; done < info.byteLength; ) done += readSync(fd, bytes, done, Math.min(info.byteLength - done, 1 << 30), info.offset + done);
      } finally {
        closeSync(fd);
      }
      const t1 = now();
      const src = new Uint16Array(bytes.buffer, 0, out.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      C.readS += t1 - t0;
      C.convertS += now() - t1;
      C.readBytes += info.byteLength;
      return out;
    };
  }
}

// ---------------------------------------------------------------------------------------------

interface Phase {
  name: string;
  rows: number;
  tokens: number;
  wallS: number;
  counters: Counters;
  /** Max of the 100 ms RSS samples during the phase, and VmHWM at its end (reset at its start if allowed). */
  peakRssSampled: number;
  vmHwm: number;
  rssEnd: number;
  cachedWeightBytes: number;
  /** Seconds from the phase start to the end of each layer / the unembedding. */
  progress: { stage: string; done: number; atS: number }[];
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function parseLayers(spec: string, L: number): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`--sweep-layers: cannot read "${part}"; use e.g. 0-23 or 0,6,12`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let l = a; l <= b; l++) {
      if (l >= L) throw new Error(`--sweep-layers: layer ${l} is out of range; the model has ${L} layers`);
      out.add(l);
    }
  }
  return [...out].sort((x, y) => x - y);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    dir: 'string', layers: 'number', threads: 'number', budget: 'number', tokens: 'number', positions: 'number',
    'sweep-layers': 'string', 'max-rss-gb': 'number', recycle: 'boolean', 'skip-forward': 'boolean', seed: 'number', rounds: 'number',
    experts: 'string', generate: 'number',
  });
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const threads = (args.threads as number | undefined) ?? availableParallelism();
  const T = (args.tokens as number | undefined) ?? 32;
  const P = (args.positions as number | undefined) ?? 8;
  const seed = (args.seed as number | undefined) ?? 1;
  const maxRssGb = (args['max-rss-gb'] as number | undefined) ?? 20;
  const recycle = args.recycle === true;
  const budget = args.budget as number | undefined;
  for (const [name, v] of [['threads', threads], ['tokens', T], ['positions', P]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  if (P > T) throw new Error(`--positions ${P} is more than --tokens ${T}`);
  const layersArg = args.layers as number | undefined;
  const dir = (args.dir as string | undefined) ?? (layersArg === undefined || layersArg === 24 ? DEFAULT_DIR : `${DEFAULT_DIR}-L${layersArg}`);
  const log = (s: string) => console.log(s);

  // Memory watch from the first moment.
  const sab = new SharedArrayBuffer(5 * 8);
  const mem = new Float64Array(sab);
  mem[3] = maxRssGb * 2 ** 30;
  const sampler = new Worker(SAMPLER, { eval: true, workerData: { sab, intervalMs: 100 } });
  sampler.unref();
  const hwmResettable = resetHwm();

  let made: ReturnType<typeof makeFullsize> | null = null;
  if (!existsSync(`${dir}/config.json`)) {
    log(`no checkpoint in ${dir}: writing one with bench/make-fullsize.ts (${layersArg ?? 24} layers) ...`);
    made = makeFullsize(dir, { layers: layersArg ?? 24, log });
    log(`written in ${seconds(made.seconds)}`);
  }

  instrumentOrt();
  const phases: Phase[] = [];
  const runPhase = async <R>(name: string, rows: number, tokens: number, fn: (onProgress: (p: Progress) => void) => Promise<R>, model?: GptOssModel): Promise<R> => {
    C = fresh();
    if (hwmResettable) resetHwm();
    mem[1] = 0;
    const progress: Phase['progress'] = [];
    const t0 = now();
    const onProgress = (p: Progress) => progress.push({ stage: p.stage, done: p.done, atS: now() - t0 });
    const r = await fn(onProgress);
    const wallS = now() - t0;
    const rssEnd = process.memoryUsage.rss();
    phases.push({
      name, rows, tokens, wallS, counters: C, peakRssSampled: Math.max(mem[1], rssEnd), vmHwm: statusKb('VmHWM'), rssEnd,
      cachedWeightBytes: model?.cachedWeightBytes ?? 0, progress,
    });
    const ph = phases[phases.length - 1];
    log(`  ${name}: ${seconds(wallS)}, peak RSS ${gib(ph.peakRssSampled)} (VmHWM ${gib(ph.vmHwm)}), weights cached ${gib(ph.cachedWeightBytes)}`);
    return r;
  };

  // This machine's cost of fresh memory (page faults + zeroing), which every new weight array pays.
  const pageProbe = (() => {
    const bytes = 256 * 2 ** 20;
    const t0 = now();
    const a = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i += 4096) a[i] = 1;
    const fresh = now() - t0;
    const t1 = now();
    for (let i = 0; i < bytes; i += 4096) a[i] = 2;
    return { usPerPage: (fresh / (bytes / 4096)) * 1e6, secondsPerGiB: fresh * 4, touchedAgainSecondsPerGiB: (now() - t1) * 4 };
  })();
  log(`fresh memory on this machine: ${pageProbe.usPerPage.toFixed(1)} us per 4 KiB page = ${pageProbe.secondsPerGiB.toFixed(2)} s per GiB first touch`);

  // 1. Load: config + safetensors headers; no weights.
  log(`machine: ${availableParallelism()} cores, ${gib(totalmem())} RAM (${gib(freemem())} free), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; onnxruntime threads ${threads}`);
  let model!: GptOssModel;
  await runPhase('load (headers)', 0, 0, async () => {
    model = GptOssModel.load(dir, {
      threads, cacheWeights: !recycle, expertWeights: (args.experts ?? 'auto') as EngineOptions['expertWeights'],
      ...(budget !== undefined ? { memoryBudgetGb: budget } : {}),
    });
  });
  const cfg = model.config;
  instrumentCheckpoint(model.checkpoint, recycle);
  const H = cfg.hiddenSize;
  const V = cfg.vocabSize;
  const L = cfg.numLayers;
  log(`model: ${L} layers, vocab ${V}, ${cfg.numExperts} experts top-${cfg.expertsPerToken}; memory budget ${gib(model.memoryBudgetBytes)} (weights cache up to half)${recycle ? '; --recycle: cacheWeights false, reused dequantisation buffers' : ''}; experts held: ${model.expertPath}`);
  const E = cfg.numExperts;
  const allPairs = L * E * expertBytes('pairs', H, cfg.intermediateSize);
  if (model.expertPath === 'stream') {
    log(`  (per-layer expert sessions need ${gib(allPairs)} for the MXFP4 pair form alone, over the weight cache of ${gib(model.memoryBudgetBytes / 2)}: experts are streamed and dequantised to float32 per use)`);
  }
  // Physical limits on this machine, measured now.
  const bandwidth = copyBandwidth();
  const probe = await matmulProbe(512, H, 2 * cfg.intermediateSize, threads);
  await probe.run();
  const probeS = Math.min(...await Promise.all([0, 1, 2].map(async () => { const t0 = now(); await probe.run(); return now() - t0; })));
  const peakFlops = probe.flops / probeS;
  await probe.release();
  log(`physical limits: memory copy bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s (read + write); float32 matmul peak ${(peakFlops / 1e9).toFixed(1)} GFLOP/s (onnxruntime Gemm 512 x ${H} x ${2 * cfg.intermediateSize})`);
  // A phase over `rows` x T touches (nearly) every expert of every layer: bytes as stored (MXFP4) and as held.
  const mxfp4PerExpert = 2 * cfg.intermediateSize * (H / 2 + H / 32) + H * (cfg.intermediateSize / 2 + cfg.intermediateSize / 32);
  const limits = (rows: number, tokens: number, wallS: number, layers = L) => {
    const f = forwardFlops(cfg, tokens);
    const flops = rows * (f.total - f.unembed) * (layers / L) + rows * f.unembed;
    const mx = layers * E * mxfp4PerExpert;
    return { flopS: flops / peakFlops, mxfp4S: mx / bandwidth, ofWallFlops: flops / peakFlops / wallS, ofWallBytes: mx / bandwidth / wallS };
  };

  // 2. The refusal of a run whose activations cannot fit (checked before anything is allocated).
  let refusal = '';
  const refusalS = await (async () => {
    const t0 = now();
    try {
      await model.run([new Array(Math.min(4096, model.maxTokens)).fill(0)], { capture: ['blocks.*.attn.hook_pattern', 'blocks.*.mlp.hook_post'] });
      refusal = '(not refused!)';
    } catch (e) {
      refusal = (e as Error).message;
    }
    return now() - t0;
  })();
  log(`refusal check (${seconds(refusalS)}): ${refusal}`);

  // Prompts: two random T-token rows.
  const rng = new XorShift128(seed * 7919 + 13);
  const words = rng.fill(new Uint32Array(2 * T));
  const clean = Array.from(words.subarray(0, T), (w) => w % V);
  const corrupted = Array.from(words.subarray(T), (w) => w % V);

  // 3. A T-token forward with capture of every hook_resid_post.
  let fwd: RunResult | null = null;
  if (!args['skip-forward']) {
    fwd = await runPhase(`forward ${T} tokens, capture blocks.*.hook_resid_post`, 1, T, (onProgress) =>
      model.run([clean], { capture: ['blocks.*.hook_resid_post'], logits: 'last', onProgress }), model);
    const got = [...fwd.cache.keys()].filter((k) => k.endsWith('hook_resid_post')).length;
    if (got !== L) throw new Error(`forward captured ${got} hook_resid_post tensors, expected ${L}`);
  }

  // 3b. Packed vs float32 in one run: the same forward with experts held (steady state) and with
  // experts streamed in float32 by a second model in this process (its first run caches attention),
  // alternating for --rounds rounds so both see the same competition for the cores; medians compared.
  const runForward = (m: GptOssModel) => (onProgress: (p: Progress) => void) =>
    m.run([clean], { capture: ['blocks.*.hook_resid_post'], logits: 'last', onProgress });
  let comparison: { heldS: number; streamS: number; ratio: number; maxLogitDiff: number; heldRuns: number[]; streamRuns: number[] } | null = null;
  if (fwd && model.expertPath !== 'stream') {
    const rounds = (args.rounds as number | undefined) ?? 3;
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${rounds}`);
    // As on gpt-oss-20b: attention and lm_head cached, experts dequantised on every use (a budget
    // whose weight cache holds the other weights but not the float32 experts).
    const streamBudgetGb = (4 * model.cachedWeightBytes) / 2 ** 30;
    const streamModel = GptOssModel.load(dir, { threads, cacheWeights: true, expertWeights: 'stream', memoryBudgetGb: streamBudgetGb });
    instrumentCheckpoint(streamModel.checkpoint, false);
    await runPhase('forward, experts dequantised to float32 per use (first: caches attention)', 1, T, runForward(streamModel), streamModel);
    const heldRuns: number[] = [];
    const streamRuns: number[] = [];
    let held: RunResult | null = null;
    let streamed: RunResult | null = null;
    const timeHeld = async () => {
      held = await runPhase(`forward again (steady), experts ${model.expertPath}`, 1, T, runForward(model), model);
      heldRuns.push(phases[phases.length - 1].wallS);
    };
    const timeStream = async () => {
      streamed = await runPhase('forward, experts dequantised to float32 per use (steady)', 1, T, runForward(streamModel), streamModel);
      streamRuns.push(phases[phases.length - 1].wallS);
    };
    for (let r = 0; r < rounds; r++) for (const f of r % 2 === 0 ? [timeHeld, timeStream] : [timeStream, timeHeld]) await f();
    await streamModel.dispose();
    const heldS = median(heldRuns);
    const streamS = median(streamRuns);
    comparison = { heldS, streamS, ratio: streamS / heldS, maxLogitDiff: maxAbsDiff(held!.logits!.data, streamed!.logits!.data), heldRuns, streamRuns };
    log(`  packed vs float32 in one run, ${rounds} alternating rounds: median ${seconds(heldS)} (${model.expertPath}; ${heldRuns.map((x) => x.toFixed(2)).join(', ')} s) vs ${seconds(streamS)} (stream; ${streamRuns.map((x) => x.toFixed(2)).join(', ')} s) = ${comparison.ratio.toFixed(2)}x; max |logit diff| ${comparison.maxLogitDiff.toExponential(2)}`);
  }

  // 3c. Generation with the KV cache.
  const genN = (args.generate as number | undefined) ?? 0;
  let generation: { tokens: number; seconds: number; tokensPerS: number } | null = null;
  if (genN > 0) {
    const g = await runPhase(`generate ${genN} tokens (KV cache) after ${T}`, 1, T, () => generate(model, [clean], { maxNewTokens: genN, stopTokens: [], kvCache: true }), model);
    const s = phases[phases.length - 1].wallS;
    generation = { tokens: g[0].tokens.length, seconds: s, tokensPerS: g[0].tokens.length / s };
    log(`  generation: ${generation.tokens} tokens in ${seconds(s)} (prefill included) = ${generation.tokensPerS.toFixed(3)} tokens/s`);
  }

  // 4. Clean and corrupted, capturing the residual entering every layer.
  const base = await runPhase(`clean + corrupted, capture blocks.*.hook_resid_pre`, 2, T, (onProgress) =>
    model.run([clean, corrupted], { capture: ['blocks.*.hook_resid_pre'], logits: 'last', onProgress }), model);
  const cleanLogits = base.logits!.data.subarray(0, V);
  const corrLogits = base.logits!.data.subarray(V, 2 * V);
  const argmax = (x: Float32Array, skip = -1) => x.reduce((best, v, i) => (i !== skip && v > x[best] ? i : best), skip === 0 ? 1 : 0);
  const tokA = argmax(cleanLogits);
  let tokB = argmax(corrLogits);
  if (tokB === tokA) tokB = argmax(cleanLogits, tokA);
  const metric = (l: Float32Array, off = 0) => l[off + tokA] - l[off + tokB];
  const cleanM = metric(cleanLogits);
  const corrM = metric(corrLogits);
  const fwdVsBase = fwd ? maxAbsDiff(cleanLogits, fwd.logits!.data) : null;

  // 5. The sweep: one batch, row (layer, position) joins at its layer; plus one control row.
  const sweepLayers = args['sweep-layers'] ? parseLayers(args['sweep-layers'] as string, L) : [...Array(L).keys()];
  const step = Math.floor(T / P);
  const positions = Array.from({ length: P }, (_, i) => T - 1 - (P - 1 - i) * step);
  const variants = sweepLayers.flatMap((layer) => positions.map((pos) => ({ layer, pos })));
  const B = variants.length + 1;
  const control = variants.length;
  const residPre = (layer: number) => base.cache.get(`blocks.${layer}.hook_resid_pre`)!; // [2, T, H]
  const startLayer = [...variants.map((v) => v.layer), sweepLayers[0]];
  const startResid: Tensor = { data: new Float32Array(B * T * H), dims: [B, T, H] };
  startLayer.forEach((layer, r) => startResid.data.set(residPre(layer).data.subarray(T * H, 2 * T * H), r * T * H));
  const interventions: Intervention[] = sweepLayers.map((layer) => {
    const mask = new Float32Array(B * T);
    variants.forEach((v, r) => {
      if (v.layer === layer) mask[r * T + v.pos] = 1;
    });
    return {
      hook: `blocks.${layer}.hook_resid_pre`,
      mask: { data: mask, dims: [B, T, 1] },
      value: { data: residPre(layer).data.slice(0, T * H), dims: [1, T, H] }, // the clean residual, broadcast over rows
    };
  });
  const rows = new Array(B).fill(corrupted);
  log(`sweep: ${sweepLayers.length} layers x ${P} positions [${positions.join(', ')}] = ${variants.length} variants + 1 control row, one batch of ${B} x ${T}; ` +
    `activations estimate ${gib(model.estimateRunBytes(B, T, [], 1))}`);
  const sweep = await runPhase(`patching sweep ${sweepLayers.length} layers x ${P} positions (+1 control), one batch`, B, T, (onProgress) =>
    model.run(rows, { startLayer, startResid, interventions, logits: 'last', onProgress }), model);
  const values = variants.map((_, r) => metric(sweep.logits!.data, r * V));
  const effects = values.map((v) => (v - corrM) / (cleanM - corrM));
  const controlDiff = maxAbsDiff(corrLogits, sweep.logits!.data.subarray(control * V, (control + 1) * V));

  // Report.
  const vmHwmEnd = statusKb('VmHWM');
  const peakSampled = mem[0];
  await model.dispose();
  await sampler.terminate();

  log('');
  log(`checkpoint ${dir}: ${L} layers${made ? `, written in ${seconds(made.seconds)}` : ''}`);
  log(`metric: logit(${tokA}) - logit(${tokB}) at the last position: clean ${cleanM.toFixed(4)}, corrupted ${corrM.toFixed(4)}`);
  log(`checks: control row (start at layer ${sweepLayers[0]} from the corrupted residual, no patch) vs the corrupted run: max |logit diff| ${controlDiff.toExponential(2)}` +
    (fwdVsBase === null ? '' : `; clean logits batch 1 vs batch 2: max |diff| ${fwdVsBase.toExponential(2)}`));
  log('');
  log('normalised effect (patched - corrupted) / (clean - corrupted), layer x position:');
  printTable(['layer', ...positions.map((p) => `P${p}`)], sweepLayers.map((layer) => [
    `L${layer}`, ...positions.map((pos) => effects[variants.findIndex((v) => v.layer === layer && v.pos === pos)].toFixed(3)),
  ]));
  log('');
  const compute = (c: Counters) => c.ort.attention + c.ort.expert + c.ort.unembed;
  printTable(
    ['phase', 'rows x T', 'wall', 'read', 'dequant', 'bf16->f32', 'ort (compute)', 'other JS', 'read %', 'dequant %', 'compute %', 'experts loaded', 'GiB read', 'peak RSS', 'VmHWM'],
    phases.map((p) => {
      const c = p.counters;
      const other = p.wallS - c.readS - c.dequantS - c.convertS - compute(c);
      return [
        p.name, p.rows ? `${p.rows} x ${p.tokens}` : '-', seconds(p.wallS), seconds(c.readS), seconds(c.dequantS), seconds(c.convertS), seconds(compute(c)),
        seconds(other), pct(c.readS / p.wallS), pct((c.dequantS + c.convertS) / p.wallS), pct(compute(c) / p.wallS),
        c.expertLoads, (c.readBytes / 2 ** 30).toFixed(2), gib(p.peakRssSampled), gib(p.vmHwm),
      ];
    }),
  );
  log('physical limits per phase (fraction of its wall time that reading the experts\' MXFP4 bytes at the measured bandwidth, and its FLOPs at the measured peak, would take):');
  printTable(['phase', 'wall', 'MXFP4 read at bandwidth', 'of wall', 'FLOPs at peak', 'of wall'], phases.filter((p) => p.rows).map((p) => {
    const lim = limits(p.rows, p.tokens, p.wallS);
    return [p.name, seconds(p.wallS), seconds(lim.mxfp4S), pct(lim.ofWallBytes), seconds(lim.flopS), pct(lim.ofWallFlops)];
  }));
  log(`compute split: ${phases.filter((p) => p.rows).map((p) => `${p.name.split(',')[0]}: attention ${seconds(p.counters.ort.attention)}, experts ${seconds(p.counters.ort.expert)} (${p.counters.ortCalls.expert} calls), unembed ${seconds(p.counters.ort.unembed)}`).join('; ')}`);
  log(`peak RSS: sampled every 100 ms ${gib(peakSampled)}; VmHWM at the end ${gib(vmHwmEnd)}${hwmResettable ? ' (reset per phase)' : ''}; limit ${maxRssGb} GiB`);

  const round = (x: number, n = 4) => Number(x.toPrecision(n));
  const json = {
    bench: 'fullsize', dir, layers: L, vocab: V, threads, cores: availableParallelism(), loadavg: loadavg().map((x) => round(x, 3)),
    memoryBudgetBytes: model.memoryBudgetBytes, recycle, tokens: T, freshMemory: pageProbe,
    made: made ? { seconds: round(made.seconds), dataBytes: made.dataBytes, tensors: made.tensors } : null,
    refusal: { seconds: round(refusalS), message: refusal },
    phases: phases.map((p) => ({
      name: p.name, rows: p.rows, tokens: p.tokens, wallS: round(p.wallS),
      readS: round(p.counters.readS), dequantS: round(p.counters.dequantS), convertS: round(p.counters.convertS),
      ortS: { attention: round(p.counters.ort.attention), expert: round(p.counters.ort.expert), unembed: round(p.counters.ort.unembed) },
      ortCalls: p.counters.ortCalls, expertLoads: p.counters.expertLoads, attentionLoads: p.counters.attentionLoads, lmHeadLoads: p.counters.lmHeadLoads,
      readBytes: p.counters.readBytes, peakRssSampled: p.peakRssSampled, vmHwm: p.vmHwm, rssEnd: p.rssEnd, cachedWeightBytes: p.cachedWeightBytes,
      layerEndS: p.progress.filter((x) => x.stage === 'layer').map((x) => round(x.atS)),
    })),
    sweep: {
      layers: sweepLayers, positions, rows: B, metric: { tokA, tokB, clean: round(cleanM, 6), corrupted: round(corrM, 6) },
      effects: sweepLayers.map((layer) => positions.map((pos) => round(effects[variants.findIndex((v) => v.layer === layer && v.pos === pos)], 4))),
      controlMaxAbsDiff: controlDiff, forwardVsBatch2MaxAbsDiff: fwdVsBase,
    },
    peakRssSampled: peakSampled, vmHwmEnd, hwmResetPerPhase: hwmResettable,
    expertPath: model.expertPath, bandwidthBytesPerS: round(bandwidth), peakGflopPerS: round(peakFlops / 1e9),
    limits: phases.filter((p) => p.rows).map((p) => ({ name: p.name, ...limits(p.rows, p.tokens, p.wallS) })),
    comparison, generation,
  };
  console.log(JSON.stringify(json));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
