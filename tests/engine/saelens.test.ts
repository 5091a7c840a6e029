// SAELens folders: one written by NeuroScope loads back bit for bit; one laid out by hand the way
// SAELens writes it (cfg.json of SAELens 5 or 6, safetensors written byte by byte here) loads too,
// and the encoder/decoder graphs compute SAELens's formulas for ReLU, JumpReLU and TopK.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DictionaryRunner, type SparseDictionary } from '../../engine/sae/dictionary.ts';
import { readSaeLens, writeSaeLens } from '../../engine/sae/saelens.ts';
import { Rng } from '../../engine/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'saelens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

function randomDict(arch: SparseDictionary['architecture'], seed: number): SparseDictionary {
  const rng = new Rng(seed);
  const dIn = 6;
  const dSae = 10;
  return {
    architecture: arch, dIn, dSae, dOut: dIn, hook: 'blocks.1.hook_resid_post', modelName: 'tiny-s', applyBDecToInput: true,
    k: arch === 'topk' ? 3 : undefined,
    wEnc: randn(rng, dIn * dSae), bEnc: randn(rng, dSae, 0.1), wDec: randn(rng, dSae * dIn), bDec: randn(rng, dIn, 0.1),
    threshold: arch === 'jumprelu' ? Float32Array.from({ length: dSae }, () => Math.abs(rng.normal())) : undefined,
  };
}

/** SAELens's formulas in float64, written out plainly. */
function reference(d: SparseDictionary, x: Float32Array): { acts: number[]; out: number[] } {
  const xc = Array.from(x, (v, i) => (d.applyBDecToInput ? v - d.bDec[i] : v));
  const pre = Array.from({ length: d.dSae }, (_, j) => xc.reduce((s, v, i) => s + v * d.wEnc[i * d.dSae + j], d.bEnc[j]));
  let acts: number[];
  if (d.architecture === 'topk') {
    const top = new Set([...pre.keys()].sort((a, b) => pre[b] - pre[a]).slice(0, d.k));
    acts = pre.map((v, j) => (top.has(j) ? Math.max(v, 0) : 0));
  } else if (d.architecture === 'jumprelu') {
    acts = pre.map((v, j) => (v > d.threshold![j] ? Math.max(v, 0) : 0));
  } else acts = pre.map((v) => Math.max(v, 0));
  const out = Array.from({ length: d.dOut }, (_, o) => acts.reduce((s, a, j) => s + a * d.wDec[j * d.dOut + o], d.bDec[o]));
  return { acts, out };
}

/** A safetensors file written byte by byte (header JSON + raw little-endian data), not by the engine. */
function handWrittenSafetensors(file: string, tensors: { name: string; dtype: 'F32' | 'BF16'; shape: number[]; data: Float32Array }[]): void {
  const parts: Buffer[] = [];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let pos = 0;
  for (const t of tensors) {
    let bytes: Buffer;
    if (t.dtype === 'F32') bytes = Buffer.from(t.data.buffer.slice(0));
    else {
      bytes = Buffer.alloc(t.data.length * 2);
      const u32 = new Uint32Array(t.data.buffer.slice(0));
      u32.forEach((b, i) => bytes.writeUInt16LE(b >>> 16, 2 * i)); // truncation; values below are exact in BF16
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes.length] };
    pos += bytes.length;
    parts.push(bytes);
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, ...parts]));
}

describe('SAELens format', () => {
  for (const arch of ['relu', 'jumprelu', 'topk'] as const) {
    it(`a ${arch} dictionary written by NeuroScope loads back unchanged and encodes as SAELens does`, async () => {
      const d = randomDict(arch, 7);
      const folder = join(dir, `ns-${arch}`);
      writeSaeLens(folder, d, { trained_by: 'test' });
      const back = readSaeLens(folder);
      expect(back.architecture).toBe(arch);
      expect([back.dIn, back.dSae, back.dOut, back.k, back.hook, back.applyBDecToInput]).toEqual([d.dIn, d.dSae, d.dOut, d.k, d.hook, true]);
      for (const key of ['wEnc', 'bEnc', 'wDec', 'bDec'] as const) expect(back[key]).toEqual(d[key]);
      if (arch === 'jumprelu') expect(back.threshold).toEqual(d.threshold);
      const x = randn(new Rng(3), 4 * d.dIn);
      const runner = new DictionaryRunner(back, 1);
      const acts = await runner.encode(x);
      const out = await runner.decode(acts);
      await runner.release();
      for (let n = 0; n < 4; n++) {
        const ref = reference(d, x.subarray(n * d.dIn, (n + 1) * d.dIn));
        ref.acts.forEach((a, j) => expect(acts[n * d.dSae + j]).toBeCloseTo(a, 4));
        ref.out.forEach((o, j) => expect(out[n * d.dIn + j]).toBeCloseTo(o, 4));
      }
      if (arch === 'topk') for (let n = 0; n < 4; n++) expect(acts.subarray(n * 10, n * 10 + 10).filter((a) => a > 0).length).toBeLessThanOrEqual(3);
    });
  }

  it('a folder laid out by hand as SAELens 6 writes it (BF16 weights, metadata block, k at top) loads', () => {
    const d = randomDict('topk', 11);
    // Values exact in BF16 so the comparison is exact.
    const bf = (a: Float32Array) => a.map((v) => Math.round(v * 8) / 8);
    const folder = join(dir, 'hand-v6');
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(folder);
    handWrittenSafetensors(join(folder, 'sae_weights.safetensors'), [
      { name: 'W_dec', dtype: 'BF16', shape: [10, 6], data: bf(d.wDec) },
      { name: 'W_enc', dtype: 'BF16', shape: [6, 10], data: bf(d.wEnc) },
      { name: 'b_dec', dtype: 'F32', shape: [6], data: d.bDec },
      { name: 'b_enc', dtype: 'F32', shape: [10], data: d.bEnc },
    ]);
    writeFileSync(join(folder, 'cfg.json'), JSON.stringify({
      d_in: 6, d_sae: 10, dtype: 'bfloat16', device: 'cuda', apply_b_dec_to_input: true, normalize_activations: 'none',
      reshape_activations: 'none', architecture: 'topk', k: 3,
      metadata: { model_name: 'gpt-oss-20b', hook_name: 'blocks.12.hook_resid_post', hook_head_index: null, prepend_bos: true, context_size: 1024, sae_lens_version: '6.12.1' },
    }));
    const back = readSaeLens(folder);
    expect([back.architecture, back.k, back.hook, back.modelName, back.dIn, back.dSae]).toEqual(['topk', 3, 'blocks.12.hook_resid_post', 'gpt-oss-20b', 6, 10]);
    expect(back.wEnc).toEqual(bf(d.wEnc));
    expect(back.wDec).toEqual(bf(d.wDec));
    expect(back.bDec).toEqual(d.bDec);
  });

  it('a SAELens 5 JumpReLU folder (hook_name at the top, "jumprelu", threshold tensor) loads', () => {
    const d = randomDict('jumprelu', 12);
    const folder = join(dir, 'hand-v5');
    mkdirSync(folder, { recursive: true });
    handWrittenSafetensors(join(folder, 'sae_weights.safetensors'), [
      { name: 'W_enc', dtype: 'F32', shape: [6, 10], data: d.wEnc },
      { name: 'W_dec', dtype: 'F32', shape: [10, 6], data: d.wDec },
      { name: 'b_enc', dtype: 'F32', shape: [10], data: d.bEnc },
      { name: 'b_dec', dtype: 'F32', shape: [6], data: d.bDec },
      { name: 'threshold', dtype: 'F32', shape: [10], data: d.threshold! },
    ]);
    writeFileSync(join(folder, 'cfg.json'), JSON.stringify({
      architecture: 'jumprelu', d_in: 6, d_sae: 10, dtype: 'float32', model_name: 'gemma-2-2b', hook_name: 'blocks.3.hook_resid_post',
      hook_layer: 3, hook_head_index: null, activation_fn_str: 'relu', apply_b_dec_to_input: false, normalize_activations: 'none',
    }));
    const back = readSaeLens(folder);
    expect([back.architecture, back.hook, back.applyBDecToInput]).toEqual(['jumprelu', 'blocks.3.hook_resid_post', false]);
    expect(back.threshold).toEqual(d.threshold);
  });

  it('refuses folders that are not SAELens dictionaries, saying what is wrong', () => {
    expect(() => readSaeLens(join(dir, 'nowhere'))).toThrow(/cfg\.json is missing/);
    const folder = join(dir, 'bad');
    writeSaeLens(folder, randomDict('relu', 1));
    const cfg = JSON.parse(readFileSync(join(folder, 'cfg.json'), 'utf8'));
    writeFileSync(join(folder, 'cfg.json'), JSON.stringify({ ...cfg, normalize_activations: 'expected_average_only_in' }));
    expect(() => readSaeLens(folder)).toThrow(/normalize_activations "expected_average_only_in" is not supported/);
    writeFileSync(join(folder, 'cfg.json'), JSON.stringify({ ...cfg, architecture: 'gated' }));
    expect(() => readSaeLens(folder)).toThrow(/architecture "gated" is not supported; supported: standard/);
    writeFileSync(join(folder, 'cfg.json'), JSON.stringify({ ...cfg, d_sae: 11 }));
    expect(() => readSaeLens(folder)).toThrow(/d_sae = 11 but the weights say 10/);
  });
});
