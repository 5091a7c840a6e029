import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint, CheckpointError, expectedTensors } from '../../engine/checkpoint.ts';
import { ConfigError, parseConfig, readConfig } from '../../engine/config.ts';
import {
  readSafetensorsHeader, readTensorBytes, SafetensorsError, toFloat32, writeSafetensors, type TensorInfo, type TensorToWrite,
} from '../../engine/safetensors.ts';
import { readCheckpoint, toFloat32 as refToFloat32, dequantMxfp4 } from '../reference/safetensors.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';

const FIXTURES = 'tests/fixtures/gpt-oss-ref';
const tmp = mkdtempSync(join(tmpdir(), 'ns-checkpoint-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(tmp, `d${n++}`);

/** A copy of fixture ref-b whose model.safetensors is rewritten through `edit`. */
function editedCopy(edit: (tensors: TensorToWrite[]) => TensorToWrite[]): string {
  const src = join(FIXTURES, 'ref-b');
  const dir = freshDir();
  mkdirSync(dir);
  copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
  const tensors = readSafetensorsHeader(join(src, 'model.safetensors')).tensors.map(
    (t): TensorToWrite => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, write: () => readTensorBytes(t) }),
  );
  writeSafetensors(join(dir, 'model.safetensors'), edit(tensors));
  return dir;
}

function readExpected(dir: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of readSafetensorsHeader(join(dir, 'expected.safetensors')).tensors) out.set(t.name, toFloat32(t, readTensorBytes(t)));
  return out;
}

/** Bitwise float equality (0 vs -0 counts); vitest's toEqual is slow on arrays this size. */
function expectSameFloats(got: Float32Array, want: Float32Array, label = ''): void {
  expect(got.length, label).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = a.findIndex((bits, k) => bits !== b[k]);
  expect(i < 0 ? 'equal' : `${label} differs first at ${i}: ${got[i]} vs ${want[i]}`).toBe('equal');
}

describe.each(['ref-a', 'ref-b'])('fixture %s', (name) => {
  const dir = join(FIXTURES, name);
  const ck = Checkpoint.open(dir);
  const c = ck.config;
  const ref = readCheckpoint(dir);

  it('opens with the documented config and every tensor', () => {
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(c.hiddenSize).toBe(raw.hidden_size);
    expect(c.numLayers).toBe(raw.num_hidden_layers);
    expect(c.expertsPerToken).toBe(raw.num_experts_per_tok);
    expect(c.layerTypes).toEqual(raw.layer_types);
    expect(c.rope).toEqual({ factor: 32, betaFast: 32, betaSlow: 1, originalMaxPositionEmbeddings: 4096, truncate: false });
    expect(c.ropeTheta).toBe(150000);
    expect(c.eosTokenIds).toEqual([2]);
    expect(c.padTokenId).toBe(0);
    expect(c.raw).toEqual(raw);
    expect(ck.expertsQuantized).toBe(true);
    expect(ck.tensorNames()).toHaveLength(3 + 19 * c.numLayers);
    expect(ck.tensorNames()).toEqual(expectedTensors(c).map((t) => t.name).sort());
  });

  it('embedRows of every case equals <case>.embed exactly', () => {
    const cases = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).cases as Record<string, { tokens: number[] }>;
    const expected = readExpected(dir);
    for (const [caseName, { tokens }] of Object.entries(cases)) {
      expectSameFloats(ck.embedRows(tokens), expected.get(`${caseName}.embed`)!, caseName);
    }
  });

  it('reads attention, router and head weights with the documented shapes and values', () => {
    const { hiddenSize: H, numHeads, numKvHeads, headDim: d, numExperts: E, vocabSize: V } = c;
    const a = ck.attention(c.numLayers - 1);
    const sizes = {
      inputNorm: H, qW: numHeads * d * H, qB: numHeads * d, kW: numKvHeads * d * H, kB: numKvHeads * d, vW: numKvHeads * d * H,
      vB: numKvHeads * d, oW: H * numHeads * d, oB: H, sinks: numHeads, postNorm: H, routerW: E * H, routerB: E,
    };
    for (const [k, size] of Object.entries(sizes)) expect(a[k as keyof typeof a].length, k).toBe(size);
    const p = `model.layers.${c.numLayers - 1}.`;
    expect(ck.info(`${p}mlp.router.weight`).shape).toEqual([E, H]);
    expect(ck.info(`${p}self_attn.sinks`).shape).toEqual([numHeads]);
    expectSameFloats(a.routerW, refToFloat32(ref.get(`${p}mlp.router.weight`)!));
    expectSameFloats(a.sinks, refToFloat32(ref.get(`${p}self_attn.sinks`)!));
    expectSameFloats(a.oW, refToFloat32(ref.get(`${p}self_attn.o_proj.weight`)!));
    expectSameFloats(ck.lmHead(), refToFloat32(ref.get('lm_head.weight')!));
    expect(ck.lmHead()).toHaveLength(V * H);
    expectSameFloats(ck.finalNorm(), refToFloat32(ref.get('model.norm.weight')!));
  });

  it('dequantises each expert alone, matching the reference decode of the whole tensor', () => {
    const { hiddenSize: H, intermediateSize: I } = c;
    const layer = 1;
    const x = `model.layers.${layer}.mlp.experts.`;
    const gu = dequantMxfp4(ref.get(`${x}gate_up_proj_blocks`)!, ref.get(`${x}gate_up_proj_scales`)!);
    const dn = dequantMxfp4(ref.get(`${x}down_proj_blocks`)!, ref.get(`${x}down_proj_scales`)!);
    const guB = refToFloat32(ref.get(`${x}gate_up_proj_bias`)!);
    const dnB = refToFloat32(ref.get(`${x}down_proj_bias`)!);
    for (const e of [0, c.numExperts - 1]) {
      const w = ck.expert(layer, e);
      expectSameFloats(w.gateUpW, gu.subarray(e * 2 * I * H, (e + 1) * 2 * I * H));
      expectSameFloats(w.downW, dn.subarray(e * H * I, (e + 1) * H * I));
      expectSameFloats(w.gateUpB, guB.subarray(e * 2 * I, (e + 1) * 2 * I));
      expectSameFloats(w.downB, dnB.subarray(e * H, (e + 1) * H));
    }
  });

  it('readRows reads only the asked rows, in the asked order', () => {
    const all = ck.readF32('model.embed_tokens.weight');
    const H = c.hiddenSize;
    expectSameFloats(
      ck.readRows('model.embed_tokens.weight', [5, 0, 5]),
      Float32Array.from([...all.subarray(5 * H, 6 * H), ...all.subarray(0, H), ...all.subarray(5 * H, 6 * H)]),
    );
  });
});

describe('out-of-range access', () => {
  const ck = Checkpoint.open(join(FIXTURES, 'ref-a'));
  it('names the valid range', () => {
    expect(() => ck.attention(4)).toThrow(CheckpointError);
    expect(() => ck.attention(4)).toThrow('layer 4 is out of range: the model has 4 layers (valid 0..3)');
    expect(() => ck.expert(-1, 0)).toThrow('layer -1 is out of range');
    expect(() => ck.expert(0, 8)).toThrow('expert 8 is out of range: the model has 8 experts per layer (valid 0..7)');
    expect(() => ck.embedRows([1, 512])).toThrow('token id 512 is out of range: vocab_size is 512 (valid ids 0..511)');
    expect(() => ck.readRows('model.norm.weight', [0])).toThrow('readRows needs a 2-D tensor, model.norm.weight has shape [128]');
    expect(() => ck.info('nope.weight')).toThrow('no tensor named nope.weight');
    expect(() => ck.readF32('model.layers.0.mlp.experts.down_proj_scales')).toThrow('has dtype U8; only BF16, F16 and F32 decode to float32');
  });
});

describe('config validation', () => {
  const base = () => JSON.parse(readFileSync(join(FIXTURES, 'ref-a', 'config.json'), 'utf8')) as Record<string, unknown>;
  const parse = (edit: (j: Record<string, unknown>) => void) => () => {
    const j = base();
    edit(j);
    return parseConfig(j, '/x/config.json');
  };

  it('rejects a wrong model_type, naming the value and what is valid', () => {
    expect(parse((j) => (j.model_type = 'llama'))).toThrow(ConfigError);
    expect(parse((j) => (j.model_type = 'llama'))).toThrow('/x/config.json: field "model_type" is "llama"; expected "gpt_oss"');
  });

  it('rejects missing and malformed fields', () => {
    expect(parse((j) => delete j.hidden_size)).toThrow('/x/config.json: field "hidden_size" is nothing (field missing); expected a positive integer');
    expect(parse((j) => (j.num_attention_heads = 2.5))).toThrow('field "num_attention_heads" is 2.5; expected a positive integer');
    expect(parse((j) => (j.num_key_value_heads = 3))).toThrow('field "num_key_value_heads" is 3; expected a divisor of num_attention_heads (4)');
    expect(parse((j) => (j.rms_norm_eps = '1e-5'))).toThrow('field "rms_norm_eps" is "1e-5"; expected a positive number');
    expect(parse((j) => (j.num_experts_per_tok = j.experts_per_token = 9))).toThrow('field "num_experts_per_tok" is 9; expected at most num_local_experts (8)');
    expect(parse((j) => (j.experts_per_token = 3))).toThrow('field "experts_per_token" is 3; expected the same value as num_experts_per_tok (4)');
    expect(parse((j) => (j.layer_types = ['sliding_attention']))).toThrow('field "layer_types" is ["sliding_attention"]; expected one entry per layer (num_hidden_layers = 4), found 1');
    expect(parse((j) => (j.layer_types = ['sliding', 'full', 'sliding', 'full']))).toThrow('expected an array of "sliding_attention" / "full_attention"');
    expect(parse((j) => (j.eos_token_id = 'eos'))).toThrow('field "eos_token_id" is "eos"; expected a token id or a non-empty array of token ids');
  });

  it('accepts either spelling of top-k, eos arrays, and derives layer_types', () => {
    const c = parse((j) => {
      delete j.num_experts_per_tok;
      delete j.layer_types;
      j.eos_token_id = [200002, 199999, 200012];
      delete j.pad_token_id;
    })();
    expect(c.expertsPerToken).toBe(4);
    expect(c.layerTypes).toEqual(['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention']);
    expect(c.eosTokenIds).toEqual([200002, 199999, 200012]);
    expect(c.padTokenId).toBeNull();
  });

  it('handles rope_scaling: yarn, absent (plain RoPE), or a clear error for other types', () => {
    expect(parse((j) => delete j.rope_scaling)().rope).toBeNull();
    expect(parse((j) => (j.rope_scaling = null))().rope).toBeNull();
    expect(parse((j) => (j.rope_scaling = { rope_type: 'linear', factor: 2 }))).toThrow(
      '/x/config.json: field "rope_scaling.rope_type" is "linear"; expected "yarn"',
    );
    expect(parse((j) => delete (j.rope_scaling as Record<string, unknown>).beta_fast)).toThrow('field "rope_scaling.beta_fast" is nothing (field missing); expected a positive number');
    // transformers 5 layout: rope_theta inside rope_parameters.
    const v5 = parse((j) => {
      j.rope_parameters = { ...(j.rope_scaling as object), rope_theta: 150000 };
      delete j.rope_scaling;
      delete j.rope_theta;
    })();
    expect(v5.ropeTheta).toBe(150000);
    expect(v5.rope?.factor).toBe(32);
  });

  it('readConfig names the file', () => {
    const dir = freshDir();
    expect(() => readConfig(dir)).toThrow(`${join(dir, 'config.json')}: not found`);
    writeRandomCheckpoint(dir, gptOssConfigJson({ hidden_size: 64, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, vocab_size: 10, num_local_experts: 2, num_experts_per_tok: 1 }), 1);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "gpt_oss",');
    expect(() => readConfig(dir)).toThrow(`${join(dir, 'config.json')}: not valid JSON`);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...gptOssConfigJson({}), model_type: 'mixtral' }));
    expect(() => Checkpoint.open(dir)).toThrow(`${join(dir, 'config.json')}: field "model_type" is "mixtral"`);
  });
});

describe('checkpoint validation', () => {
  const withTensor = (name: string, change: (t: TensorToWrite) => TensorToWrite | null) => (ts: TensorToWrite[]) =>
    ts.flatMap((t) => (t.name === name ? (change(t) ?? []) : [t]));

  it('reports a missing tensor with its expected shape and the file', () => {
    const dir = editedCopy(withTensor('model.layers.2.mlp.router.bias', () => null));
    expect(() => Checkpoint.open(dir)).toThrow(CheckpointError);
    expect(() => Checkpoint.open(dir)).toThrow(`missing tensor model.layers.2.mlp.router.bias (expected BF16/F16/F32 [4]) in ${join(dir, 'model.safetensors')}`);
  });

  it('reports a wrong shape, expected vs found', () => {
    const dir = editedCopy(withTensor('model.layers.0.self_attn.sinks', (t) => ({ ...t, shape: [4], byteLength: 8, write: () => new Uint8Array(8) })));
    expect(() => Checkpoint.open(dir)).toThrow(`${join(dir, 'model.safetensors')}: tensor model.layers.0.self_attn.sinks has shape [4], expected [8]`);
  });

  it('reports a wrong dtype', () => {
    const dir = editedCopy(withTensor('model.layers.1.mlp.experts.down_proj_scales', (t) => ({ ...t, dtype: 'I32', byteLength: 4 * 4 * 96 * 2, write: () => new Uint8Array(4 * 4 * 96 * 2) })));
    expect(() => Checkpoint.open(dir)).toThrow('tensor model.layers.1.mlp.experts.down_proj_scales has dtype I32, expected U8');
    const dir2 = editedCopy(withTensor('lm_head.weight', (t) => ({ ...t, dtype: 'U8', byteLength: t.byteLength / 2, write: () => new Uint8Array(t.byteLength / 2) })));
    expect(() => Checkpoint.open(dir2)).toThrow('tensor lm_head.weight has dtype U8, expected BF16/F16/F32');
  });

  it('ignores unknown extra tensors', () => {
    const dir = editedCopy((ts) => [...ts, { name: 'extra.thing', dtype: 'F32', shape: [2], byteLength: 8, write: () => new Uint8Array(8) }]);
    const ck = Checkpoint.open(dir);
    expect(ck.has('extra.thing')).toBe(true);
    expect(ck.readF32('extra.thing')).toEqual(new Float32Array(2));
  });

  it('reports a directory without weights', () => {
    const dir = editedCopy((ts) => ts);
    rmSync(join(dir, 'model.safetensors'));
    expect(() => Checkpoint.open(dir)).toThrow(`${dir}: no model.safetensors and no model.safetensors.index.json`);
  });

  it('reports an index pointing at a missing shard, and one disagreeing with a shard', () => {
    const dir = freshDir();
    writeRandomCheckpoint(dir, gptOssConfigJson({ hidden_size: 64, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, vocab_size: 10, num_local_experts: 2, num_experts_per_tok: 1 }), 3, { shards: 3 });
    const indexFile = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8'));
    const moved = Object.keys(index.weight_map).find((k) => index.weight_map[k] === 'model-00000-of-00002.safetensors')!;
    index.weight_map[moved] = 'model-00001-of-00002.safetensors';
    writeFileSync(indexFile, JSON.stringify(index));
    expect(() => Checkpoint.open(dir)).toThrow(`weight_map puts ${moved} in model-00001-of-00002.safetensors, but that shard has no such tensor`);
    rmSync(join(dir, 'model-00001-of-00002.safetensors'));
    expect(() => Checkpoint.open(dir)).toThrow(/model.safetensors.index.json: shard model-00001-of-00002.safetensors \(holding \d+ tensors, e.g. .+\) does not exist/);
  });
});

describe('safetensors reader', () => {
  const good = join(FIXTURES, 'ref-b', 'model.safetensors');
  const copy = () => {
    const f = join(freshDir() + '.safetensors');
    copyFileSync(good, f);
    return f;
  };
  const headerLen = Number(readFileSync(good).readBigUInt64LE(0));

  it('gives absolute offsets and metadata', () => {
    const { tensors, metadata } = readSafetensorsHeader(good);
    expect(metadata).toEqual({});
    const lm = tensors.find((t) => t.name === 'lm_head.weight')!;
    expect(lm).toMatchObject({ dtype: 'BF16', shape: [300, 96], offset: 8 + headerLen, byteLength: 300 * 96 * 2, file: good });
  });

  it('reports a truncated file', () => {
    const f = copy();
    truncateSync(f, readFileSync(f).length - 100);
    expect(() => readSafetensorsHeader(f)).toThrow(SafetensorsError);
    expect(() => readSafetensorsHeader(f)).toThrow(/: tensor model\.\S+: data ends at byte \d+ of the data section but the file holds only \d+ bytes of data; the file is truncated/);
  });

  it('reports a file too short and a header length beyond the file', () => {
    const f = copy();
    truncateSync(f, 5);
    expect(() => readSafetensorsHeader(f)).toThrow(`${f}: file too short (5 bytes)`);
    const g = copy();
    const buf = readFileSync(g);
    buf.writeBigUInt64LE(BigInt(buf.length));
    writeFileSync(g, buf);
    expect(() => readSafetensorsHeader(g)).toThrow(`${g}: header length ${buf.length} runs beyond the file (${buf.length} bytes)`);
  });

  it('reports corrupt header JSON', () => {
    const f = copy();
    const buf = readFileSync(f);
    buf[8] = 0x78; // 'x' where the opening '{' was
    writeFileSync(f, buf);
    expect(() => readSafetensorsHeader(f)).toThrow(`${f}: header is not valid JSON`);
  });

  const withHeader = (header: object) => {
    const f = freshDir() + '.safetensors';
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(f, Buffer.concat([len, json, Buffer.alloc(16)]));
    return f;
  };

  it('reports unknown dtypes, wrong byte lengths and overlapping tensors', () => {
    expect(() => readSafetensorsHeader(withHeader({ a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }))).toThrow(
      'tensor a: unknown dtype "F8_E4M3"; supported: BF16, F16, F32, U8, I32, I64, F64',
    );
    expect(() => readSafetensorsHeader(withHeader({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }))).toThrow(
      'tensor a: data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12',
    );
    expect(() => readSafetensorsHeader(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }))).toThrow(
      'tensors a and b have overlapping data_offsets',
    );
    expect(() => readSafetensorsHeader(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [8] } }))).toThrow('tensor a: data_offsets must be [begin, end]');
  });

  it('decodes F16 and F32 exactly and refuses reads outside a tensor', () => {
    const halves = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000]);
    const info: TensorInfo = { name: 'h', dtype: 'F16', shape: [6], file: 'x', offset: 0, byteLength: 12 };
    const got = toFloat32(info, new Uint8Array(halves.buffer));
    expect(Array.from(got)).toEqual([1, -2, 65504, 2 ** -24, Infinity, -0]);
    const f32 = Float32Array.of(1.5, -3.25);
    expect(toFloat32({ ...info, dtype: 'F32', byteLength: 8, shape: [2] }, new Uint8Array(f32.buffer))).toEqual(f32);
    const lm = readSafetensorsHeader(good).tensors[0];
    expect(() => readTensorBytes(lm, lm.byteLength - 2, 4)).toThrow(`byte range [${lm.byteLength - 2}, ${lm.byteLength + 2}) is outside its ${lm.byteLength} bytes`);
  });
});
