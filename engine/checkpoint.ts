// A gpt-oss checkpoint directory in the Hugging Face layout: config.json plus model.safetensors or
// sharded files with model.safetensors.index.json. Opening reads only headers and checks every tensor
// the config implies; weights are read on demand, one layer or one expert at a time, so 20b and 120b
// load through the same code without holding the file in memory.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readConfig, type GptOssConfig } from './config.ts';
import { dequantizeMxfp4, MXFP4_BLOCK } from './mxfp4.ts';
import { DTYPE_SIZE, readSafetensorsHeader, readTensorBytes, readTensorRows, toFloat32, type DType, type TensorInfo } from './safetensors.ts';

/** All [out, in] row-major as stored in HF. */
export interface AttentionWeights {
  inputNorm: Float32Array;
  qW: Float32Array; qB: Float32Array;
  kW: Float32Array; kB: Float32Array;
  vW: Float32Array; vB: Float32Array;
  oW: Float32Array; oB: Float32Array;
  sinks: Float32Array;
  postNorm: Float32Array;
  routerW: Float32Array; routerB: Float32Array;
}

/** gateUpW [2I, H] with rows interleaved as stored (even rows gate, odd rows up); downW [H, I]. */
export interface ExpertWeights {
  gateUpW: Float32Array;
  gateUpB: Float32Array;
  downW: Float32Array;
  downB: Float32Array;
}

/** One expert as stored in an MXFP4 checkpoint: blocks [out, in/32, 16] and scale bytes [out, in/32] per matrix. */
export interface PackedExpert {
  gateUp: { blocks: Uint8Array; scales: Uint8Array };
  gateUpB: Float32Array;
  down: { blocks: Uint8Array; scales: Uint8Array };
  downB: Float32Array;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** 'float' = BF16, F16 or F32 accepted. */
  dtype: DType | 'float';
}

const FLOAT_DTYPES: readonly DType[] = ['BF16', 'F16', 'F32'];

/**
 * Every tensor a checkpoint for `config` must hold. Experts are MXFP4 (*_blocks/*_scales, as published)
 * unless `quantized` is false: then dense `gate_up_proj` [E, H, 2I] and `down_proj` [E, I, H] (HF's
 * dequantised layout, transposed relative to [out, in]).
 */
export function expectedTensors(config: GptOssConfig, quantized = true): ExpectedTensor[] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: d, vocabSize: V, numExperts: E } = config;
  if (quantized && (H % MXFP4_BLOCK !== 0 || I % MXFP4_BLOCK !== 0)) {
    throw new CheckpointError(`MXFP4 experts need hidden_size and intermediate_size to be multiples of 32; the config has ${H} and ${I}`);
  }
  const f = (name: string, shape: number[]): ExpectedTensor => ({ name, shape, dtype: 'float' });
  const u8 = (name: string, shape: number[]): ExpectedTensor => ({ name, shape, dtype: 'U8' });
  const out = [f('model.embed_tokens.weight', [V, H]), f('model.norm.weight', [H]), f('lm_head.weight', [V, H])];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const x = `${p}mlp.experts.`;
    out.push(
      f(`${p}input_layernorm.weight`, [H]),
      f(`${p}self_attn.q_proj.weight`, [numHeads * d, H]),
      f(`${p}self_attn.q_proj.bias`, [numHeads * d]),
      f(`${p}self_attn.k_proj.weight`, [numKvHeads * d, H]),
      f(`${p}self_attn.k_proj.bias`, [numKvHeads * d]),
      f(`${p}self_attn.v_proj.weight`, [numKvHeads * d, H]),
      f(`${p}self_attn.v_proj.bias`, [numKvHeads * d]),
      f(`${p}self_attn.o_proj.weight`, [H, numHeads * d]),
      f(`${p}self_attn.o_proj.bias`, [H]),
      f(`${p}self_attn.sinks`, [numHeads]),
      f(`${p}post_attention_layernorm.weight`, [H]),
      f(`${p}mlp.router.weight`, [E, H]),
      f(`${p}mlp.router.bias`, [E]),
      f(`${x}gate_up_proj_bias`, [E, 2 * I]),
      f(`${x}down_proj_bias`, [E, H]),
      ...(quantized
        ? [
            u8(`${x}gate_up_proj_blocks`, [E, 2 * I, H / 32, 16]),
            u8(`${x}gate_up_proj_scales`, [E, 2 * I, H / 32]),
            u8(`${x}down_proj_blocks`, [E, H, I / 32, 16]),
            u8(`${x}down_proj_scales`, [E, H, I / 32]),
          ]
        : [f(`${x}gate_up_proj`, [E, H, 2 * I]), f(`${x}down_proj`, [E, I, H])]),
    );
  }
  return out;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: GptOssConfig,
    private readonly tensors: Map<string, TensorInfo>,
    readonly expertsQuantized: boolean,
  ) {}

  private readonly scratch = new Map<string, Uint8Array>();

  /** Reads config.json and every safetensors header, and checks all expected tensors; reads no weights. */
  static open(dir: string): Checkpoint {
    const config = readConfig(dir);
    const { tensors, files } = readHeaders(dir);
    const x = 'model.layers.0.mlp.experts.';
    const quantized = !(tensors.has(`${x}gate_up_proj`) && !tensors.has(`${x}gate_up_proj_blocks`));
    for (const want of expectedTensors(config, quantized)) {
      const got = tensors.get(want.name);
      const wantDtype = want.dtype === 'float' ? FLOAT_DTYPES.join('/') : want.dtype;
      if (!got) {
        throw new CheckpointError(`${dir}: missing tensor ${want.name} (expected ${wantDtype} ${fmt(want.shape)}) in ${files.join(', ')}`);
      }
      if (got.shape.length !== want.shape.length || got.shape.some((n, i) => n !== want.shape[i])) {
        throw new CheckpointError(`${got.file}: tensor ${want.name} has shape ${fmt(got.shape)}, expected ${fmt(want.shape)} for ${join(dir, 'config.json')}`);
      }
      if (want.dtype === 'float' ? !FLOAT_DTYPES.includes(got.dtype) : got.dtype !== want.dtype) {
        throw new CheckpointError(`${got.file}: tensor ${want.name} has dtype ${got.dtype}, expected ${wantDtype}`);
      }
    }
    return new Checkpoint(dir, config, tensors, quantized);
  }

  tensorNames(): string[] {
    return [...this.tensors.keys()].sort();
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError(`${this.dir}: no tensor named ${name} (the checkpoint has ${this.tensors.size} tensors)`);
    return t;
  }

  readF32(name: string): Float32Array {
    const info = this.info(name);
    return toFloat32(info, readTensorBytes(info));
  }

  /** Rows of a 2-D tensor as [rows.length, cols], reading only those rows from disk. */
  readRows(name: string, rows: number[]): Float32Array {
    const info = this.info(name);
    if (info.shape.length !== 2) throw new CheckpointError(`${info.file}: readRows needs a 2-D tensor, ${name} has shape ${fmt(info.shape)}`);
    const [n, cols] = info.shape;
    const rowBytes = cols * DTYPE_SIZE[info.dtype];
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= n) throw new CheckpointError(`row ${r} of ${name} is out of range: it has ${n} rows (valid 0..${n - 1})`);
    }
    const bytes = readTensorRows(info, rows, rowBytes);
    return toFloat32({ ...info, shape: [rows.length, cols], byteLength: bytes.length }, bytes);
  }

  /** Token embeddings [ids.length, H]. */
  embedRows(ids: number[]): Float32Array {
    const V = this.config.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new CheckpointError(`token id ${id} is out of range: vocab_size is ${V} (valid ids 0..${V - 1})`);
    }
    return this.readRows('model.embed_tokens.weight', ids);
  }

  /** One layer's non-expert weights, read fresh on each call (the engine decides what to cache). */
  attention(layer: number): AttentionWeights {
    this.checkLayer(layer);
    const p = `model.layers.${layer}.`;
    const r = (n: string) => this.readF32(p + n);
    return {
      inputNorm: r('input_layernorm.weight'),
      qW: r('self_attn.q_proj.weight'), qB: r('self_attn.q_proj.bias'),
      kW: r('self_attn.k_proj.weight'), kB: r('self_attn.k_proj.bias'),
      vW: r('self_attn.v_proj.weight'), vB: r('self_attn.v_proj.bias'),
      oW: r('self_attn.o_proj.weight'), oB: r('self_attn.o_proj.bias'),
      sinks: r('self_attn.sinks'),
      postNorm: r('post_attention_layernorm.weight'),
      routerW: r('mlp.router.weight'), routerB: r('mlp.router.bias'),
    };
  }

  /**
   * One expert's weights in [out, in] layout, reading only that expert's bytes. `out` (MXFP4
   * checkpoints): dequantise into these buffers instead of new ones, and read the packed bytes into
   * buffers this checkpoint reuses, so streaming experts allocates nothing per expert.
   */
  expert(layer: number, e: number, out?: { gateUpW: Float32Array; downW: Float32Array }): ExpertWeights {
    this.checkLayer(layer);
    const E = this.config.numExperts;
    if (!Number.isInteger(e) || e < 0 || e >= E) throw new CheckpointError(`expert ${e} is out of range: the model has ${E} experts per layer (valid 0..${E - 1})`);
    const { hiddenSize: H, intermediateSize: I } = this.config;
    const x = `model.layers.${layer}.mlp.experts.`;
    const gateUpB = this.expertF32(`${x}gate_up_proj_bias`, e);
    const downB = this.expertF32(`${x}down_proj_bias`, e);
    if (this.expertsQuantized) {
      const packed = (name: string) => this.expertBytes(name, e, out !== undefined);
      return {
        gateUpW: dequantizeMxfp4(packed(`${x}gate_up_proj_blocks`), packed(`${x}gate_up_proj_scales`), 2 * I, H, out?.gateUpW),
        gateUpB,
        downW: dequantizeMxfp4(packed(`${x}down_proj_blocks`), packed(`${x}down_proj_scales`), H, I, out?.downW),
        downB,
      };
    }
    return {
      gateUpW: transpose(this.expertF32(`${x}gate_up_proj`, e), H, 2 * I),
      gateUpB,
      downW: transpose(this.expertF32(`${x}down_proj`, e), I, H),
      downB,
    };
  }

  /** One expert's MXFP4 bytes as stored (fresh buffers) and its float32 biases; MXFP4 checkpoints only. */
  packedExpert(layer: number, e: number): PackedExpert {
    this.checkLayer(layer);
    if (!this.expertsQuantized) throw new CheckpointError(`${this.dir}: experts are stored as floats, not MXFP4`);
    const x = `model.layers.${layer}.mlp.experts.`;
    const bytes = (name: string) => this.expertBytes(name, e);
    return {
      gateUp: { blocks: bytes(`${x}gate_up_proj_blocks`), scales: bytes(`${x}gate_up_proj_scales`) },
      gateUpB: this.expertF32(`${x}gate_up_proj_bias`, e),
      down: { blocks: bytes(`${x}down_proj_blocks`), scales: bytes(`${x}down_proj_scales`) },
      downB: this.expertF32(`${x}down_proj_bias`, e),
    };
  }

  finalNorm(): Float32Array {
    return this.readF32('model.norm.weight');
  }

  /** [V, H]. */
  lmHead(): Float32Array {
    return this.readF32('lm_head.weight');
  }

  private checkLayer(layer: number): void {
    const L = this.config.numLayers;
    if (!Number.isInteger(layer) || layer < 0 || layer >= L) throw new CheckpointError(`layer ${layer} is out of range: the model has ${L} layers (valid 0..${L - 1})`);
  }

  /** Expert e's slice of a tensor whose first dim is the expert; `reuse`: into a scratch buffer of that size, valid until the next such read. */
  private expertBytes(name: string, e: number, reuse = false): Uint8Array {
    const info = this.info(name);
    const per = info.byteLength / info.shape[0];
    let into: Uint8Array | undefined;
    if (reuse) {
      // One buffer per tensor role (blocks/scales of gate_up/down), shared by every layer.
      const role = name.slice(name.lastIndexOf('.') + 1);
      into = this.scratch.get(role);
      if (into?.length !== per) this.scratch.set(role, (into = new Uint8Array(per)));
    }
    return readTensorBytes(info, e * per, per, into);
  }

  private expertF32(name: string, e: number): Float32Array {
    return toFloat32(this.info(name), this.expertBytes(name, e));
  }
}

/** [rows, cols] -> [cols, rows]. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j];
  return out;
}

/** Headers of model.safetensors, or of every shard model.safetensors.index.json names. */
function readHeaders(dir: string): { tensors: Map<string, TensorInfo>; files: string[] } {
  const single = join(dir, 'model.safetensors');
  const indexFile = join(dir, 'model.safetensors.index.json');
  const tensors = new Map<string, TensorInfo>();
  const add = (file: string) => {
    for (const t of readSafetensorsHeader(file).tensors) {
      const prev = tensors.get(t.name);
      if (prev) throw new CheckpointError(`tensor ${t.name} appears in both ${prev.file} and ${t.file}`);
      tensors.set(t.name, t);
    }
  };
  if (existsSync(single)) {
    add(single);
    return { tensors, files: [single] };
  }
  if (!existsSync(indexFile)) throw new CheckpointError(`${dir}: no model.safetensors and no model.safetensors.index.json; not a Hugging Face checkpoint directory`);
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${indexFile}: not valid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.values(map).every((v) => typeof v === 'string')) {
    throw new CheckpointError(`${indexFile}: "weight_map" must be an object mapping tensor names to shard file names`);
  }
  const weightMap = map as Record<string, string>;
  const shards = [...new Set(Object.values(weightMap))].sort();
  const files = shards.map((s) => join(dir, s));
  shards.forEach((shard, i) => {
    if (!existsSync(files[i])) {
      const names = Object.keys(weightMap).filter((n) => weightMap[n] === shard);
      throw new CheckpointError(`${indexFile}: shard ${shard} (holding ${names.length} tensors, e.g. ${names[0]}) does not exist in ${dir}`);
    }
    add(files[i]);
  });
  for (const [name, shard] of Object.entries(weightMap)) {
    if (tensors.get(name)?.file !== join(dir, shard)) throw new CheckpointError(`${indexFile}: weight_map puts ${name} in ${shard}, but that shard has no such tensor`);
  }
  return { tensors, files };
}
