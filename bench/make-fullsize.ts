// Writes a checkpoint with gpt-oss-20b's exact layout and random weights: the real config.json, 3 shards
// model-00000-of-00002.safetensors .. model-00002-of-00002.safetensors plus model.safetensors.index.json,
// every tensor with its real name, shape and dtype (BF16, MXFP4 experts as U8 blocks/scales). The
// directory must lie outside the repository (default /tmp/gpt-oss-20b-random) and is never committed.
//
//   npx tsx bench/make-fullsize.ts [--dir DIR] [--layers N] [--seed S] [--shards K] [--vocab V]
//
// Values: BF16 tensors are approximately normal (Irwin-Hall sum of 4 random bytes) at the scales
// randomTensors() uses (embeddings std 1, projections 1/sqrt(fan_in), biases 0.02, norms 1 +- 0.1).
// Experts are random FP4 nibbles with E8M0 scale bytes mixed per block between 2^e and 2^(e+1) so
// that the dequantised std is 1/sqrt(fan_in) (a uniform random nibble has E[v^2] = 8.5625). Nothing is
// quantised: the writer takes the MXFP4 bytes as they are (TensorSource.mxfp4). Random bytes come
// from xorshift128 over Uint32Array. Large arrays are allocated once per size and reused (fresh pages
// are expensive on this VM). Memory: the embedding/lm_head as float32 (2.3 GB, one buffer for both)
// plus the writer's BF16 copy (1.16 GB) plus one layer's reused buffers (~0.5 GB): about 4 GB.
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Checkpoint, expectedTensors } from '../engine/checkpoint.ts';
import { parseConfig, type GptOssConfig } from '../engine/config.ts';
import { dequantizeMxfp4 } from '../engine/mxfp4.ts';
import { DTYPE_SIZE, numel } from '../engine/safetensors.ts';
import { gptOssConfigJson, writeCheckpoint, type TensorSource } from '../engine/write-checkpoint.ts';
import { gib, parseArgs, seconds } from './lib.ts';

export const DEFAULT_DIR = '/tmp/gpt-oss-20b-random';
/** From shared/docs/gpt-oss.md: the published gpt-oss-20b totals. */
export const GPT_OSS_20B_TENSORS = 459;
export const GPT_OSS_20B_BYTES = 13_761_264_768;

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `usage: npx tsx bench/make-fullsize.ts [--dir DIR] [--layers N] [--seed S] [--shards K] [--vocab V]
  --dir DIR     where to write (default ${DEFAULT_DIR}); must be outside the repository
  --layers N    decoder layers (default 24, the real model; fewer for quick variants)
  --seed S      seed of the random bytes (default 1)
  --shards K    safetensors shards (default 3, as published)
  --vocab V     vocabulary size (default the real 201088; smaller for bench/forward's cheaper unembedding)`;

// ---------------------------------------------------------------------------------------------
// xorshift128: four 32-bit words of state, one Uint32 per step, no allocation per value.
export class XorShift128 {
  private x: number;
  private y: number;
  private z: number;
  private w: number;

  constructor(seed: number) {
    // splitmix32 to spread the seed over the state (never all zero).
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 16), 0x21f0aaad);
      t = Math.imul(t ^ (t >>> 15), 0x735a2d97);
      return (t ^ (t >>> 15)) >>> 0;
    };
    this.x = next();
    this.y = next();
    this.z = next();
    this.w = next() | 1;
  }

  /** Fills `out` with random 32-bit words (int32 arithmetic throughout: no doubles in the loop). */
  fill(out: Uint32Array): Uint32Array {
    const o = new Int32Array(out.buffer, out.byteOffset, out.length);
    let x = this.x | 0, y = this.y | 0, z = this.z | 0, w = this.w | 0;
    for (let i = 0; i < o.length; i++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = w ^ (w >>> 19) ^ t ^ (t >>> 8);
      o[i] = w;
    }
    this.x = x; this.y = y; this.z = z; this.w = w;
    return out;
  }

  /**
   * `out[i] = mean + std * n_i` with n_i approximately standard normal: the sum of the 4 bytes of
   * one random word (Irwin-Hall, 1021 levels, mean 510, std sqrt(4 * (256^2 - 1) / 12) = 147.8).
   */
  normals(out: Float32Array, std: number, mean = 0): Float32Array {
    const k = std / Math.sqrt((4 * (256 * 256 - 1)) / 12);
    let x = this.x | 0, y = this.y | 0, z = this.z | 0, w = this.w | 0;
    for (let i = 0; i < out.length; i++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = w ^ (w >>> 19) ^ t ^ (t >>> 8);
      out[i] = mean + k * ((w & 255) + ((w >> 8) & 255) + ((w >> 16) & 255) + (w >>> 24) - 510);
    }
    this.x = x; this.y = y; this.z = z; this.w = w;
    return out;
  }
}

/** FNV-1a of `${seed}:${name}`: each tensor its own stream, independent of the writing order. */
function seedFor(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

// ---------------------------------------------------------------------------------------------
// MXFP4 with a target std. A uniform random byte holds two uniform random E2M1 codes; E[v^2] over the
// 16 codes is (0 + .25 + 1 + 2.25 + 4 + 9 + 16 + 36) / 8 = 8.5625. A block with scale 2^e then has
// variance 8.5625 * 4^e; mixing e and e + 1 per block with probability p hits any target exactly.
export const FP4_MEAN_SQUARE = 8.5625;

export function mxfp4ScaleMix(targetStd: number): { eLo: number; p: number } {
  const ratio = (targetStd * targetStd) / FP4_MEAN_SQUARE; // = 4^e for the exact e
  const eLo = Math.floor(Math.log2(ratio) / 2);
  const lo = 4 ** eLo;
  const p = (ratio - lo) / (4 * lo - lo);
  return { eLo, p };
}

/**
 * Buffers reused by byte size. On this kind of VM a fresh page costs ~40 us to fault in (12 s per GiB
 * under load), far more than generating its values, so every large array is allocated once. Only
 * safe when each array is consumed before the next request of the same size, as writeCheckpoint does
 * (it converts/writes each tensor synchronously before asking for the next).
 */
export class BufferPool {
  private readonly buffers = new Map<number, ArrayBuffer>();

  constructor(private readonly minBytes = 1 << 20) {}

  get(bytes: number): ArrayBuffer {
    if (bytes < this.minBytes) return new ArrayBuffer(bytes);
    let b = this.buffers.get(bytes);
    if (!b) this.buffers.set(bytes, (b = new ArrayBuffer(bytes)));
    return b;
  }
}

/** Random MXFP4 bytes for `groups` blocks of 32 values with dequantised std `std`. */
export function randomMxfp4(rng: XorShift128, groups: number, std: number, pool?: BufferPool): { blocks: Uint8Array; scales: Uint8Array } {
  const alloc = (bytes: number) => (pool ? pool.get(bytes) : new ArrayBuffer(bytes));
  const blocks = new Uint8Array(alloc(groups * 16));
  rng.fill(new Uint32Array(blocks.buffer));
  const { eLo, p } = mxfp4ScaleMix(std);
  const cut = Math.round(p * 2 ** 32);
  const scales = new Uint8Array(alloc(groups));
  const words = new Uint32Array(Math.min(groups, 1 << 16));
  for (let g0 = 0; g0 < groups; g0 += words.length) {
    const n = Math.min(words.length, groups - g0);
    rng.fill(words);
    for (let i = 0; i < n; i++) scales[g0 + i] = 127 + eLo + (words[i] < cut ? 1 : 0);
  }
  return { blocks, scales };
}

// ---------------------------------------------------------------------------------------------

/**
 * Every tensor of a gpt-oss checkpoint for `config`, random, with experts given as MXFP4 bytes.
 * With `pool`, large arrays are reused between calls (see BufferPool): consume each before the next.
 */
export function fastRandomTensors(config: GptOssConfig, seed: number, pool?: BufferPool): TensorSource[] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: d, vocabSize: V, numExperts: E } = config;
  const rngFor = (name: string) => new XorShift128(seedFor(seed, name));
  const floats = (n: number) => (pool ? new Float32Array(pool.get(4 * n)) : new Float32Array(n));
  const dense = (name: string, shape: number[], std: number, mean = 0): TensorSource => ({
    name, shape, data: () => rngFor(name).normals(floats(numel(shape)), std, mean),
  });
  const proj = (name: string, shape: number[]) => dense(name, shape, 1 / Math.sqrt(shape[1]));
  const bias = (name: string, shape: number[]) => dense(name, shape, 0.02);
  const norm = (name: string) => dense(name, [H], 0.1, 1);
  const expert = (name: string, shape: [number, number, number]): TensorSource => {
    const [e, rows, cols] = shape;
    const mxfp4 = () => randomMxfp4(rngFor(name), (e * rows * cols) / 32, 1 / Math.sqrt(cols), pool);
    // data() is the dequantised value of the same bytes (never called by the writer when mxfp4 is given).
    return { name, shape, mxfp4, data: () => { const q = mxfp4(); return dequantizeMxfp4(q.blocks, q.scales, e * rows, cols); } };
  };
  const out: TensorSource[] = [
    dense('model.embed_tokens.weight', [V, H], 1),
    norm('model.norm.weight'),
    proj('lm_head.weight', [V, H]),
  ];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      norm(`${p}input_layernorm.weight`),
      proj(`${p}self_attn.q_proj.weight`, [numHeads * d, H]),
      bias(`${p}self_attn.q_proj.bias`, [numHeads * d]),
      proj(`${p}self_attn.k_proj.weight`, [numKvHeads * d, H]),
      bias(`${p}self_attn.k_proj.bias`, [numKvHeads * d]),
      proj(`${p}self_attn.v_proj.weight`, [numKvHeads * d, H]),
      bias(`${p}self_attn.v_proj.bias`, [numKvHeads * d]),
      proj(`${p}self_attn.o_proj.weight`, [H, numHeads * d]),
      bias(`${p}self_attn.o_proj.bias`, [H]),
      dense(`${p}self_attn.sinks`, [numHeads], 1),
      norm(`${p}post_attention_layernorm.weight`),
      proj(`${p}mlp.router.weight`, [E, H]),
      bias(`${p}mlp.router.bias`, [E]),
      expert(`${p}mlp.experts.gate_up_proj`, [E, 2 * I, H]),
      bias(`${p}mlp.experts.gate_up_proj_bias`, [E, 2 * I]),
      expert(`${p}mlp.experts.down_proj`, [E, H, I]),
      bias(`${p}mlp.experts.down_proj_bias`, [E, H]),
    );
  }
  return out;
}

export interface MakeResult {
  dir: string;
  layers: number;
  tensors: number;
  /** Tensor data bytes (the index's total_size). */
  dataBytes: number;
  /** Bytes of the weight files on disk (data + headers). */
  fileBytes: number;
  files: string[];
  seconds: number;
  /** Time spent producing values (random bytes / normals), the rest is BF16 conversion and writing. */
  generateSeconds: number;
  /** Expected tensor count and data bytes for this layer count (from the engine's tensor list). */
  expected: { tensors: number; dataBytes: number };
  /** Std of one dequantised expert (layer 0, expert 0, gate_up) and its target 1/sqrt(H). */
  expertStd: { got: number; want: number };
}

/** Refuses a directory inside this repository: multi-GB checkpoints must never be committed. */
export function checkOutsideRepo(dir: string): string {
  const abs = resolve(dir);
  const rel = relative(REPO_ROOT, abs);
  if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
    throw new Error(`--dir ${abs} is inside the repository (${REPO_ROOT}); write the checkpoint elsewhere, e.g. ${DEFAULT_DIR}`);
  }
  return abs;
}

export function makeFullsize(dir: string, opts: { layers?: number; seed?: number; shards?: number; vocab?: number; log?: (s: string) => void } = {}): MakeResult {
  const layers = opts.layers ?? 24;
  const seed = opts.seed ?? 1;
  const shards = opts.shards ?? 3;
  const log = opts.log ?? (() => {});
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers must be a positive integer, got ${layers}`);
  const abs = checkOutsideRepo(dir);
  const vocab = opts.vocab;
  if (vocab !== undefined && (!Number.isInteger(vocab) || vocab < 2)) throw new Error(`--vocab must be an integer >= 2, got ${vocab}`);
  // A smaller vocabulary moves the special tokens inside it, as bench/forward does.
  const json = gptOssConfigJson({ num_hidden_layers: layers, ...(vocab === undefined ? {} : { vocab_size: vocab, eos_token_id: vocab - 1, pad_token_id: vocab - 2 }) });
  const config = parseConfig(json);
  const want = expectedTensors(config, true);
  const expected = {
    tensors: want.length,
    dataBytes: want.reduce((s, t) => s + numel(t.shape) * (t.dtype === 'float' ? DTYPE_SIZE.BF16 : DTYPE_SIZE[t.dtype]), 0),
  };
  mkdirSync(abs, { recursive: true });
  let generateS = 0;
  let done = 0;
  let written = 0;
  const t0 = performance.now();
  const timed = <T>(name: string, bytes: number, f: () => T): T => {
    const s = performance.now();
    const v = f();
    generateS += (performance.now() - s) / 1000;
    written += bytes;
    if (++done % 50 === 0) log(`  ${done} sources, ${gib(written)} produced, ${seconds((performance.now() - t0) / 1000)} (${name})`);
    return v;
  };
  const sources = fastRandomTensors(config, seed, new BufferPool()).map((t): TensorSource => ({
    ...t,
    data: () => timed(t.name, 2 * numel(t.shape), t.data),
    ...(t.mxfp4 ? { mxfp4: () => timed(t.name, (numel(t.shape) * 17) / 32, t.mxfp4!) } : {}),
  }));
  writeCheckpoint(abs, json, sources, { shards });
  const secondsTotal = (performance.now() - t0) / 1000;
  const files = readdirSync(abs).filter((f) => f.endsWith('.safetensors')).sort();
  const fileBytes = files.reduce((s, f) => s + statSync(join(abs, f)).size, 0);
  const ck = Checkpoint.open(abs);
  const names = ck.tensorNames();
  const dataBytes = names.reduce((s, n) => s + ck.info(n).byteLength, 0);
  const w = ck.expert(0, 0).gateUpW;
  let ss = 0;
  for (let i = 0; i < w.length; i++) ss += w[i] * w[i];
  return {
    dir: abs, layers, tensors: names.length, dataBytes, fileBytes, files, seconds: secondsTotal, generateSeconds: generateS,
    expected, expertStd: { got: Math.sqrt(ss / w.length), want: 1 / Math.sqrt(config.hiddenSize) },
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), { dir: 'string', layers: 'number', seed: 'number', shards: 'number', vocab: 'number' });
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const dir = (args.dir as string | undefined) ?? DEFAULT_DIR;
  const layers = (args.layers as number | undefined) ?? 24;
  console.log(`writing a random gpt-oss-20b-shaped checkpoint (${layers} layers) to ${resolve(dir)} ...`);
  const r = makeFullsize(dir, { layers, seed: args.seed as number | undefined, shards: args.shards as number | undefined, vocab: args.vocab as number | undefined, log: console.log });
  const ok = r.tensors === r.expected.tensors && r.dataBytes === r.expected.dataBytes;
  console.log(`wrote ${r.files.length} shards + index: ${r.tensors} tensors, ${r.dataBytes.toLocaleString('en-US')} data bytes (${gib(r.dataBytes)}), ` +
    `${r.fileBytes.toLocaleString('en-US')} bytes on disk, in ${seconds(r.seconds)} (${(r.fileBytes / 2 ** 20 / r.seconds).toFixed(0)} MiB/s; values ${seconds(r.generateSeconds)}, BF16 conversion + writing the rest)`);
  console.log(`expected for ${layers} layers: ${r.expected.tensors} tensors, ${r.expected.dataBytes.toLocaleString('en-US')} bytes: ${ok ? 'match' : 'MISMATCH'}`);
  if (layers === 24) {
    const doc = r.tensors === GPT_OSS_20B_TENSORS && r.dataBytes === GPT_OSS_20B_BYTES;
    console.log(`gpt-oss.md for gpt-oss-20b: ${GPT_OSS_20B_TENSORS} tensors, ${GPT_OSS_20B_BYTES.toLocaleString('en-US')} bytes: ${doc ? 'match' : 'MISMATCH'}`);
  }
  console.log(`dequantised expert std (layer 0, expert 0, gate_up): ${r.expertStd.got.toFixed(5)}, target 1/sqrt(2880) = ${r.expertStd.want.toFixed(5)}`);
  console.log(`peak RSS ${gib(Number(/VmHWM:\s+(\d+)/.exec(await import('node:fs').then((fs) => fs.readFileSync('/proc/self/status', 'utf8')))?.[1] ?? 0) * 1024)}`);
  console.log(JSON.stringify({ bench: 'make-fullsize', ...r, files: r.files.length, matchesExpected: ok }));
  if (!ok) process.exit(1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
