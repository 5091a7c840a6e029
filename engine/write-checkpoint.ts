// Writes gpt-oss checkpoints in exactly the published layout (config.json, BF16 tensors, MXFP4 experts,
// optional shards + index) so planted and random models load through the same path as gpt-oss-20b.
// Tensors are produced one at a time while writing, so memory stays bounded by the largest tensor.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from './checkpoint.ts';
import { parseConfig, type GptOssConfig } from './config.ts';
import { MXFP4_BLOCK, quantizeMxfp4 } from './mxfp4.ts';
import { Rng } from './rng.ts';
import { f32ToBf16Bytes, numel, writeSafetensors, type TensorToWrite } from './safetensors.ts';

export interface GptOssConfigOverrides {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  num_local_experts: number;
  num_experts_per_tok: number;
  experts_per_token: number;
  sliding_window: number;
  layer_types: string[];
  rope_theta: number;
  rope_scaling: Record<string, unknown> | null;
  rms_norm_eps: number;
  swiglu_limit: number;
  eos_token_id: number | number[];
  pad_token_id: number | null;
}

/** openai/gpt-oss-20b's config.json (layer_types is derived per layer count). */
const GPT_OSS_20B: Record<string, unknown> = {
  architectures: ['GptOssForCausalLM'],
  attention_bias: true,
  attention_dropout: 0.0,
  eos_token_id: 200002,
  experts_per_token: 4,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2880,
  initial_context_length: 4096,
  initializer_range: 0.02,
  intermediate_size: 2880,
  max_position_embeddings: 131072,
  model_type: 'gpt_oss',
  num_attention_heads: 64,
  num_experts_per_tok: 4,
  num_hidden_layers: 24,
  num_key_value_heads: 8,
  num_local_experts: 32,
  output_router_logits: false,
  pad_token_id: 199999,
  quantization_config: {
    modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'],
    quant_method: 'mxfp4',
  },
  rms_norm_eps: 1e-5,
  rope_scaling: { beta_fast: 32.0, beta_slow: 1.0, factor: 32.0, original_max_position_embeddings: 4096, rope_type: 'yarn', truncate: false },
  rope_theta: 150000,
  router_aux_loss_coef: 0.9,
  sliding_window: 128,
  swiglu_limit: 7.0,
  tie_word_embeddings: false,
  transformers_version: '4.55.0.dev0',
  use_cache: true,
  vocab_size: 201088,
};

/** A full HF config.json object: gpt-oss-20b's values with `overrides` applied, keys sorted as HF writes them. */
export function gptOssConfigJson(overrides: Partial<GptOssConfigOverrides> & Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { ...structuredClone(GPT_OSS_20B), ...structuredClone(overrides) };
  // The two spellings of top-k must agree; an override of either sets both.
  if (overrides.num_experts_per_tok !== undefined && overrides.experts_per_token === undefined) c.experts_per_token = overrides.num_experts_per_tok;
  if (overrides.experts_per_token !== undefined && overrides.num_experts_per_tok === undefined) c.num_experts_per_tok = overrides.experts_per_token;
  if (overrides.layer_types === undefined) {
    c.layer_types = Array.from({ length: c.num_hidden_layers as number }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  }
  return Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * float32 values in HF [out, in] layout. Experts are passed dense: `...mlp.experts.gate_up_proj`
 * [E, 2I, H] (rows interleaved gate/up) and `...mlp.experts.down_proj` [E, H, I]; the writer stores
 * them as MXFP4 *_blocks/*_scales. Everything else is stored BF16.
 */
export interface TensorSource {
  name: string;
  shape: number[];
  data: () => Float32Array;
  /**
   * Dense experts only: the MXFP4 bytes themselves (blocks [E, out, in/32, 16], scales [E, out, in/32]),
   * written as given instead of quantising data(), which is then never called. At gpt-oss-20b size this
   * skips a 2.1 GB float array and the quantisation per expert tensor.
   */
  mxfp4?: () => { blocks: Uint8Array; scales: Uint8Array };
}

const DENSE_EXPERT = /\.mlp\.experts\.(gate_up_proj|down_proj)$/;

function toWritable(src: TensorSource): TensorToWrite[] {
  const n = numel(src.shape);
  const data = () => {
    const d = src.data();
    if (d.length !== n) throw new CheckpointError(`tensor ${src.name}: data() gave ${d.length} values, shape [${src.shape.join(', ')}] needs ${n}`);
    return d;
  };
  if (!DENSE_EXPERT.test(src.name)) {
    if (src.mxfp4) throw new CheckpointError(`tensor ${src.name}: mxfp4 bytes are only for dense expert tensors (...mlp.experts.gate_up_proj / down_proj)`);
    return [{ name: src.name, dtype: 'BF16', shape: src.shape, byteLength: 2 * n, write: () => f32ToBf16Bytes(data()) }];
  }
  const [E, rows, cols] = src.shape;
  if (src.shape.length !== 3 || cols % MXFP4_BLOCK !== 0) {
    throw new CheckpointError(`tensor ${src.name}: dense experts must be [experts, out, in] with in a multiple of 32 for MXFP4, got [${src.shape.join(', ')}]`);
  }
  const given = (q: { blocks: Uint8Array; scales: Uint8Array }) => {
    if (q.blocks.length !== n / 2 || q.scales.length !== n / MXFP4_BLOCK) {
      throw new CheckpointError(`tensor ${src.name}: mxfp4() gave ${q.blocks.length} block bytes and ${q.scales.length} scales, shape [${src.shape.join(', ')}] needs ${n / 2} and ${n / MXFP4_BLOCK}`);
    }
    return { blocks: q.blocks, scales: q.scales };
  };
  // Blocks and scales come from one quantisation (or one mxfp4() call); whichever is written first runs it, the other takes the rest.
  let pending: { blocks: Uint8Array | null; scales: Uint8Array | null } | null = null;
  const take = (part: 'blocks' | 'scales'): Uint8Array => {
    pending ??= src.mxfp4 ? given(src.mxfp4()) : quantizeMxfp4(data(), E * rows, cols);
    const out = pending[part]!;
    pending[part] = null;
    return out;
  };
  const groups = cols / MXFP4_BLOCK;
  return [
    { name: `${src.name}_blocks`, dtype: 'U8', shape: [E, rows, groups, 16], byteLength: n / 2, write: () => take('blocks') },
    { name: `${src.name}_scales`, dtype: 'U8', shape: [E, rows, groups], byteLength: n / MXFP4_BLOCK, write: () => take('scales') },
  ];
}

const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$|^model\.safetensors\.index\.json$/;

/**
 * Writes config.json and the weights into `dir`, replacing any weights already there. With shards > 1
 * the files are named like gpt-oss-20b's (model-00000-of-00002.safetensors .. for 3 shards) and
 * model.safetensors.index.json maps each tensor to its shard.
 */
export function writeCheckpoint(dir: string, configJson: Record<string, unknown>, tensors: TensorSource[], opts: { shards?: number } = {}): void {
  const shards = opts.shards ?? 1;
  const items = tensors.flatMap(toWritable).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (!Number.isInteger(shards) || shards < 1 || shards > Math.max(1, items.length)) {
    throw new CheckpointError(`shards must be an integer from 1 to the number of tensors (${items.length}), got ${shards}`);
  }
  items.forEach((t, i) => {
    if (i > 0 && items[i - 1].name === t.name) throw new CheckpointError(`tensor ${t.name} is given twice`);
  });
  mkdirSync(dir, { recursive: true });
  // Stale weights would shadow or mix with the new ones (model.safetensors wins over an index).
  for (const f of readdirSync(dir)) if (WEIGHT_FILE.test(f)) rmSync(join(dir, f));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson, null, 2) + '\n');
  const metadata = { format: 'pt' };
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), items, metadata);
    return;
  }
  const assign = assignShards(items.map((t) => t.byteLength), shards);
  const pad = (k: number) => String(k).padStart(5, '0');
  const fileOf = (k: number) => `model-${pad(k)}-of-${pad(shards - 1)}.safetensors`;
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const mine = items.filter((_, i) => assign[i] === k);
    for (const t of mine) weightMap[t.name] = fileOf(k);
    writeSafetensors(join(dir, fileOf(k)), mine, metadata);
  }
  const totalSize = items.reduce((s, t) => s + t.byteLength, 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
}

/** Contiguous runs of tensors (in name order) of roughly equal bytes, none empty. */
function assignShards(sizes: number[], shards: number): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  let start = 0;
  let prev = 0;
  sizes.forEach((size, i) => {
    let k = total === 0 ? 0 : Math.min(shards - 1, Math.floor((start * shards) / total));
    k = Math.min(k, i === 0 ? 0 : prev + 1); // never skip a shard
    k = Math.max(k, prev, shards - (sizes.length - i)); // leave a tensor for every later shard
    out.push(k);
    prev = k;
    start += size;
  });
  return out;
}

/** FNV-1a of the text: gives each tensor its own stream, so values do not depend on generation order. */
function seedFor(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** Every tensor of the model with random values at realistic scales; deterministic per (seed, name). */
export function randomTensors(config: GptOssConfig, seed: number): TensorSource[] {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: d, vocabSize: V, numExperts: E } = config;
  const src = (name: string, shape: number[], init: (rng: Rng, n: number) => Float32Array): TensorSource => ({
    name,
    shape,
    data: () => init(new Rng(seedFor(seed, name)), numel(shape)),
  });
  const normal = (scale: number) => (rng: Rng, n: number) => rng.normals(n, scale);
  const nearOne = (rng: Rng, n: number) => rng.normals(n, 0.1).map((x) => 1 + x);
  const bias = normal(0.02);
  const proj = (fanIn: number) => normal(1 / Math.sqrt(fanIn));
  const out = [
    src('model.embed_tokens.weight', [V, H], normal(1)),
    src('model.norm.weight', [H], nearOne),
    src('lm_head.weight', [V, H], proj(H)),
  ];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      src(`${p}input_layernorm.weight`, [H], nearOne),
      src(`${p}self_attn.q_proj.weight`, [numHeads * d, H], proj(H)),
      src(`${p}self_attn.q_proj.bias`, [numHeads * d], bias),
      src(`${p}self_attn.k_proj.weight`, [numKvHeads * d, H], proj(H)),
      src(`${p}self_attn.k_proj.bias`, [numKvHeads * d], bias),
      src(`${p}self_attn.v_proj.weight`, [numKvHeads * d, H], proj(H)),
      src(`${p}self_attn.v_proj.bias`, [numKvHeads * d], bias),
      src(`${p}self_attn.o_proj.weight`, [H, numHeads * d], proj(numHeads * d)),
      src(`${p}self_attn.o_proj.bias`, [H], bias),
      src(`${p}self_attn.sinks`, [numHeads], normal(1)),
      src(`${p}post_attention_layernorm.weight`, [H], nearOne),
      src(`${p}mlp.router.weight`, [E, H], proj(H)),
      src(`${p}mlp.router.bias`, [E], bias),
      src(`${p}mlp.experts.gate_up_proj`, [E, 2 * I, H], proj(H)),
      src(`${p}mlp.experts.gate_up_proj_bias`, [E, 2 * I], bias),
      src(`${p}mlp.experts.down_proj`, [E, H, I], proj(I)),
      src(`${p}mlp.experts.down_proj_bias`, [E, H], bias),
    );
  }
  return out;
}

export function writeRandomCheckpoint(dir: string, configJson: Record<string, unknown>, seed: number, opts: { shards?: number } = {}): void {
  const config = parseConfig(configJson, join(dir, 'config.json'));
  writeCheckpoint(dir, configJson, randomTensors(config, seed), opts);
}
