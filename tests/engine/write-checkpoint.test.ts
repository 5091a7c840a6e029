import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../engine/checkpoint.ts';
import { parseConfig } from '../../engine/config.ts';
import { dequantizeMxfp4, quantizeMxfp4 } from '../../engine/mxfp4.ts';
import {
  f32ToBf16Bytes, f32ToBytes, readSafetensorsHeader, readTensorBytes, toFloat32, writeSafetensors, type TensorInfo,
} from '../../engine/safetensors.ts';
import { gptOssConfigJson, randomTensors, writeCheckpoint, writeRandomCheckpoint, type TensorSource } from '../../engine/write-checkpoint.ts';

const tmp = mkdtempSync(join(tmpdir(), 'ns-write-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(tmp, `d${n++}`);

const TINY = {
  hidden_size: 64, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 16, vocab_size: 50, num_local_experts: 4, num_experts_per_tok: 2, sliding_window: 4,
};
const tinyJson = gptOssConfigJson(TINY);
const tiny = parseConfig(tinyJson);

const bf16 = (x: Float32Array): Float32Array => {
  const info: TensorInfo = { name: 'x', dtype: 'BF16', shape: [x.length], file: '', offset: 0, byteLength: 2 * x.length };
  return toFloat32(info, f32ToBf16Bytes(x));
};

/** Bitwise float equality (0 vs -0 counts); vitest's toEqual is slow on arrays this size. */
function expectSameFloats(got: Float32Array, want: Float32Array, label = ''): void {
  expect(got.length, label).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = a.findIndex((bits, k) => bits !== b[k]);
  expect(i < 0 ? 'equal' : `${label} differs first at ${i}: ${got[i]} vs ${want[i]}`).toBe('equal');
}

describe('gptOssConfigJson', () => {
  it('defaults to gpt-oss-20b with every real key', () => {
    const c = gptOssConfigJson({});
    const fixture = JSON.parse(readFileSync('tests/fixtures/gpt-oss-ref/ref-a/config.json', 'utf8'));
    for (const key of Object.keys(fixture)) expect(c, key).toHaveProperty(key);
    for (const key of ['initializer_range', 'output_router_logits', 'router_aux_loss_coef', 'transformers_version', 'use_cache']) expect(c).toHaveProperty(key);
    expect(Object.keys(c)).toEqual(Object.keys(c).slice().sort());
    const cfg = parseConfig(c);
    expect(cfg).toMatchObject({
      hiddenSize: 2880, intermediateSize: 2880, numLayers: 24, numHeads: 64, numKvHeads: 8, headDim: 64, vocabSize: 201088,
      numExperts: 32, expertsPerToken: 4, slidingWindow: 128, ropeTheta: 150000, rmsNormEps: 1e-5, swigluLimit: 7,
      eosTokenIds: [200002], padTokenId: 199999,
    });
    expect(cfg.layerTypes).toHaveLength(24);
    expect(cfg.rope).toEqual({ factor: 32, betaFast: 32, betaSlow: 1, originalMaxPositionEmbeddings: 4096, truncate: false });
  });

  it('applies overrides, derives layer_types and mirrors top-k', () => {
    expect(tinyJson.layer_types).toEqual(['sliding_attention', 'full_attention', 'sliding_attention']);
    expect(tinyJson.experts_per_token).toBe(2);
    expect(gptOssConfigJson({ experts_per_token: 3 }).num_experts_per_tok).toBe(3);
    const custom = gptOssConfigJson({ num_hidden_layers: 2, layer_types: ['full_attention', 'full_attention'], rope_scaling: null });
    expect(custom.layer_types).toEqual(['full_attention', 'full_attention']);
    expect(parseConfig(custom).rope).toBeNull();
    // Nested defaults are copies, not shared objects.
    (gptOssConfigJson({}).rope_scaling as Record<string, unknown>).factor = 1;
    expect((gptOssConfigJson({}).rope_scaling as Record<string, unknown>).factor).toBe(32);
  });
});

describe('randomTensors', () => {
  it('is deterministic per (seed, name), whatever the order', () => {
    const a = randomTensors(tiny, 5);
    const b = randomTensors(tiny, 5).reverse();
    const byName = new Map(b.map((t) => [t.name, t]));
    for (const t of a) expectSameFloats(t.data(), byName.get(t.name)!.data(), t.name);
    const other = randomTensors(tiny, 6);
    expect(other[0].data()).not.toEqual(a[0].data());
    // Same shape, different names: different streams.
    expect(byName.get('model.layers.0.self_attn.q_proj.bias')!.data()).not.toEqual(byName.get('model.layers.1.self_attn.q_proj.bias')!.data());
  });

  it('covers every tensor at realistic scales', () => {
    const ts = new Map(randomTensors(tiny, 1).map((t) => [t.name, t.data()]));
    const std = (x: Float32Array, mean = 0) => Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
    const avg = (x: Float32Array) => x.reduce((s, v) => s + v, 0) / x.length;
    expect(std(ts.get('model.embed_tokens.weight')!)).toBeCloseTo(1, 1);
    expect(avg(ts.get('model.layers.0.input_layernorm.weight')!)).toBeCloseTo(1, 1);
    expect(std(ts.get('model.layers.1.self_attn.q_proj.weight')!)).toBeCloseTo(1 / 8, 2);
    expect(std(ts.get('model.layers.1.mlp.experts.down_proj')!)).toBeCloseTo(1 / Math.sqrt(32), 2);
    expect(std(ts.get('model.layers.2.mlp.router.bias')!)).toBeLessThan(0.1);
    expect(ts.get('model.layers.2.mlp.experts.gate_up_proj')).toHaveLength(4 * 64 * 64);
  });
});

describe('writeCheckpoint', () => {
  it('writes 3 shards + index that reopen to exactly the BF16/MXFP4-rounded values', () => {
    const dir = freshDir();
    writeRandomCheckpoint(dir, tinyJson, 11, { shards: 3 });
    const files = readdirSync(dir).sort();
    expect(files).toEqual(['config.json', 'model-00000-of-00002.safetensors', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const ck = Checkpoint.open(dir);
    expect(Object.keys(index.weight_map).sort()).toEqual(ck.tensorNames());
    expect(new Set(Object.values(index.weight_map)).size).toBe(3);
    expect(index.metadata.total_size).toBe(ck.tensorNames().reduce((s, name) => s + ck.info(name).byteLength, 0));
    expect(readSafetensorsHeader(join(dir, files[1])).metadata).toEqual({ format: 'pt' });
    expect(ck.config.raw).toEqual(tinyJson);
    expect(ck.expertsQuantized).toBe(true);

    const { hiddenSize: H, intermediateSize: I, numExperts: E } = tiny;
    for (const src of randomTensors(tiny, 11)) {
      const data = src.data();
      if (src.name.endsWith('.mlp.experts.gate_up_proj') || src.name.endsWith('.mlp.experts.down_proj')) {
        const [, rows, cols] = src.shape;
        const q = quantizeMxfp4(data, E * rows, cols);
        const want = dequantizeMxfp4(q.blocks, q.scales, E * rows, cols);
        const layer = Number(src.name.split('.')[2]);
        for (let e = 0; e < E; e++) {
          const w = ck.expert(layer, e);
          const got = src.name.endsWith('gate_up_proj') ? w.gateUpW : w.downW;
          expectSameFloats(got, want.subarray(e * rows * cols, (e + 1) * rows * cols), `${src.name} expert ${e}`);
        }
      } else {
        expectSameFloats(ck.readF32(src.name), bf16(data), src.name);
        expect(ck.info(src.name).dtype).toBe('BF16');
      }
    }
    const w = ck.expert(2, 3);
    expect(w.gateUpB).toEqual(bf16(randomTensors(tiny, 11).find((t) => t.name === 'model.layers.2.mlp.experts.gate_up_proj_bias')!.data().subarray(3 * 2 * I, 4 * 2 * I)));
    expect(w.downB).toHaveLength(H);
  });

  it('gives identical tensors single-file and sharded', () => {
    const single = freshDir();
    const sharded = freshDir();
    writeRandomCheckpoint(single, tinyJson, 2);
    writeRandomCheckpoint(sharded, tinyJson, 2, { shards: 3 });
    expect(readdirSync(single).sort()).toEqual(['config.json', 'model.safetensors']);
    const a = Checkpoint.open(single);
    const b = Checkpoint.open(sharded);
    expect(b.tensorNames()).toEqual(a.tensorNames());
    for (const name of a.tensorNames()) expect(Buffer.from(readTensorBytes(b.info(name))).equals(readTensorBytes(a.info(name))), name).toBe(true);
  });

  it('replaces weights already in the directory', () => {
    const dir = freshDir();
    writeRandomCheckpoint(dir, tinyJson, 3, { shards: 3 });
    writeRandomCheckpoint(dir, tinyJson, 4);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    writeRandomCheckpoint(dir, tinyJson, 4, { shards: 2 });
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(Checkpoint.open(dir).tensorNames()).toHaveLength(3 + 19 * 3);
  });

  it('calls each data() exactly once (streaming)', () => {
    const calls = new Map<string, number>();
    const sources = randomTensors(tiny, 9).map((t): TensorSource => ({
      ...t,
      data: () => {
        calls.set(t.name, (calls.get(t.name) ?? 0) + 1);
        return t.data();
      },
    }));
    writeCheckpoint(freshDir(), tinyJson, sources, { shards: 3 });
    expect(calls.size).toBe(sources.length);
    for (const [name, count] of calls) expect(count, name).toBe(1);
  });

  it('writes MXFP4 bytes given by mxfp4() as they are, without calling data()', () => {
    const { hiddenSize: H, intermediateSize: I, numExperts: E } = tiny;
    const given = new Map<string, { blocks: Uint8Array; scales: Uint8Array }>();
    const dataCalls: string[] = [];
    const sources = randomTensors(tiny, 12).map((t): TensorSource => {
      if (!/\.mlp\.experts\.(gate_up_proj|down_proj)$/.test(t.name)) return t;
      const n = t.shape.reduce((a, b) => a * b, 1);
      // Arbitrary bytes (not what quantising data() would give) and scale bytes around 2^-4.
      const blocks = Uint8Array.from({ length: n / 2 }, (_, i) => (i * 37 + t.name.length) & 0xff);
      const scales = Uint8Array.from({ length: n / 32 }, (_, i) => 121 + (i % 5));
      given.set(t.name, { blocks, scales });
      return { ...t, data: () => (dataCalls.push(t.name), t.data()), mxfp4: () => ({ blocks, scales }) };
    });
    const dir = freshDir();
    writeCheckpoint(dir, tinyJson, sources, { shards: 3 });
    expect(dataCalls).toEqual([]);
    const ck = Checkpoint.open(dir);
    expect(ck.expertsQuantized).toBe(true);
    for (const [name, q] of given) {
      expect(Buffer.from(readTensorBytes(ck.info(`${name}_blocks`))).equals(q.blocks), name).toBe(true);
      expect(Buffer.from(readTensorBytes(ck.info(`${name}_scales`))).equals(q.scales), name).toBe(true);
    }
    const q = given.get('model.layers.1.mlp.experts.down_proj')!;
    const per = H * I;
    expectSameFloats(ck.expert(1, 2).downW, dequantizeMxfp4(q.blocks.subarray(2 * per / 2, 3 * per / 2), q.scales.subarray(2 * per / 32, 3 * per / 32), H, I));
    const gu = given.get('model.layers.0.mlp.experts.gate_up_proj')!;
    expectSameFloats(ck.expert(0, E - 1).gateUpW, dequantizeMxfp4(gu.blocks.subarray((E - 1) * per, E * per), gu.scales.subarray((E - 1) * 2 * per / 32), 2 * I, H));
    // Into reused buffers (dequantised and packed bytes): the same values, expert after expert and layer after layer.
    const out = { gateUpW: new Float32Array(2 * I * H), downW: new Float32Array(H * I) };
    for (const [layer, e] of [[0, E - 1], [1, 2], [0, 0], [1, 2]]) {
      const fresh = ck.expert(layer, e);
      const reused = ck.expert(layer, e, out);
      expect(reused.gateUpW).toBe(out.gateUpW);
      expectSameFloats(reused.gateUpW, fresh.gateUpW, `L${layer}.E${e} gate_up`);
      expectSameFloats(reused.downW, fresh.downW, `L${layer}.E${e} down`);
    }
    // Other tensors are unaffected.
    expectSameFloats(ck.readF32('lm_head.weight'), bf16(randomTensors(tiny, 12).find((t) => t.name === 'lm_head.weight')!.data()));

    const name = 'model.layers.0.mlp.experts.down_proj';
    const bad = (mxfp4: () => { blocks: Uint8Array; scales: Uint8Array }, n = name) => () =>
      writeCheckpoint(freshDir(), tinyJson, [{ name: n, shape: [E, H, I], data: () => new Float32Array(E * H * I), mxfp4 }]);
    expect(bad(() => ({ blocks: new Uint8Array(3), scales: new Uint8Array(E * H * I / 32) }))).toThrow(
      `tensor ${name}: mxfp4() gave 3 block bytes and ${E * H * I / 32} scales, shape [${E}, ${H}, ${I}] needs ${E * H * I / 2} and ${E * H * I / 32}`,
    );
    expect(bad(() => given.get(name)!, 'model.layers.0.mlp.router.weight')).toThrow('mxfp4 bytes are only for dense expert tensors');
  });

  it('rejects bad sources and shard counts', () => {
    const t = (name: string, shape: number[], len = shape.reduce((a, b) => a * b, 1)): TensorSource => ({ name, shape, data: () => new Float32Array(len) });
    expect(() => writeCheckpoint(freshDir(), tinyJson, [t('a', [2, 3], 5)])).toThrow('tensor a: data() gave 5 values, shape [2, 3] needs 6');
    expect(() => writeCheckpoint(freshDir(), tinyJson, [t('model.layers.0.mlp.experts.down_proj', [2, 4, 48])])).toThrow(
      'tensor model.layers.0.mlp.experts.down_proj: dense experts must be [experts, out, in] with in a multiple of 32 for MXFP4, got [2, 4, 48]',
    );
    expect(() => writeCheckpoint(freshDir(), tinyJson, [t('a', [1]), t('b', [1])], { shards: 3 })).toThrow('shards must be an integer from 1 to the number of tensors (2), got 3');
    expect(() => writeCheckpoint(freshDir(), tinyJson, [t('a', [1]), t('a', [1])])).toThrow('tensor a is given twice');
  });
});

describe('un-quantised experts (HF dequantised layout)', () => {
  it('loads dense gate_up_proj [E, H, 2I] / down_proj [E, I, H] into [out, in]', () => {
    const dir = freshDir();
    writeRandomCheckpoint(dir, tinyJson, 8);
    const q = Checkpoint.open(dir);
    const { hiddenSize: H, intermediateSize: I, numExperts: E } = tiny;
    // Rebuild the file with dense F32 experts, transposed the way HF stores them after dequantising.
    const kept = q.tensorNames().filter((name) => !name.includes('_blocks') && !name.includes('_scales'));
    const dense = (layer: number, which: 'gateUpW' | 'downW', rows: number, cols: number) => {
      const out = new Float32Array(E * rows * cols);
      for (let e = 0; e < E; e++) {
        const w = q.expert(layer, e)[which]; // [rows, cols] = [out, in]
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[e * rows * cols + c * rows + r] = w[r * cols + c];
      }
      return out;
    };
    const tensors = kept.map((name) => ({ name, dtype: q.info(name).dtype, shape: q.info(name).shape, byteLength: q.info(name).byteLength, write: () => readTensorBytes(q.info(name)) }));
    for (let l = 0; l < tiny.numLayers; l++) {
      const x = `model.layers.${l}.mlp.experts.`;
      tensors.push(
        { name: `${x}gate_up_proj`, dtype: 'F32', shape: [E, H, 2 * I], byteLength: 4 * E * H * 2 * I, write: () => f32ToBytes(dense(l, 'gateUpW', 2 * I, H)) },
        { name: `${x}down_proj`, dtype: 'F32', shape: [E, I, H], byteLength: 4 * E * I * H, write: () => f32ToBytes(dense(l, 'downW', H, I)) },
      );
    }
    const denseDir = freshDir();
    mkdirSync(denseDir);
    writeFileSync(join(denseDir, 'config.json'), JSON.stringify(tinyJson));
    writeSafetensors(join(denseDir, 'model.safetensors'), tensors);
    const d = Checkpoint.open(denseDir);
    expect(d.expertsQuantized).toBe(false);
    for (const [l, e] of [[0, 0], [2, 3]]) {
      const got = d.expert(l, e);
      const want = q.expert(l, e);
      for (const k of ['gateUpW', 'gateUpB', 'downW', 'downB'] as const) expectSameFloats(got[k], want[k], `L${l}.E${e}.${k}`);
    }
  });
});

describe('writeSafetensors / BF16 rounding', () => {
  it('pads the header to 8 bytes, sorts by name, and round-trips', () => {
    const f = join(freshDir() + '.safetensors');
    const x = Float32Array.of(1, 2, 3);
    writeSafetensors(f, [
      { name: 'zeta', dtype: 'F32', shape: [3], byteLength: 12, write: () => f32ToBytes(x) },
      { name: 'alpha', dtype: 'U8', shape: [1, 5], byteLength: 5, write: () => Uint8Array.of(1, 2, 3, 4, 5) },
    ], { format: 'pt' });
    const buf = readFileSync(f);
    const len = Number(buf.readBigUInt64LE(0));
    expect(len % 8).toBe(0);
    expect(Object.keys(JSON.parse(buf.subarray(8, 8 + len).toString()))).toEqual(['__metadata__', 'alpha', 'zeta']);
    const { tensors, metadata } = readSafetensorsHeader(f);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.map((t) => [t.name, t.offset])).toEqual([['alpha', 8 + len], ['zeta', 8 + len + 5]]);
    expect(toFloat32(tensors[1], readTensorBytes(tensors[1]))).toEqual(x);
    expect(() => writeSafetensors(f, [{ name: 'a', dtype: 'F32', shape: [2], byteLength: 8, write: () => new Uint8Array(4) }])).toThrow('tensor a produced 4 bytes, expected 8');
  });

  it('rounds to nearest even', () => {
    // ties go to the even mantissa; above-tie rounds up; the largest float32 overflows to Infinity as in torch.
    const x = Float32Array.of(1 + 2 ** -8, 1 + 2 ** -7 + 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -3.140625, 3.4028235e38, NaN, -0);
    expect(Array.from(bf16(x))).toEqual([1, 1 + 2 ** -6, 1 + 2 ** -7, -3.140625, Infinity, NaN, -0]);
  });
});
