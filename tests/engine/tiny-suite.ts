// The gpt-oss-tiny test suite for one built model (used by tiny.test.ts and tiny-m.test.ts): every
// planted behaviour measured on the written checkpoint through the engine (the gpt-oss-20b code path)
// and, for IOI, through the independent reference forward in tests/reference. Ablating a planted
// carrier must destroy its behaviour; ablating an unrelated head or expert of the same layer must not.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GptOssModel } from '../../engine/model.ts';
import { Tokenizer } from '../../engine/tokenizer.ts';
import {
  buildTinyModel, measureTiny, parseHead, parseExpert, parseNeuron, encodeWords,
  type Manifest, type TinyMetrics, type TinySize, type ForwardRequest,
} from '../../engine/tiny/index.ts';
import { engineForward } from '../../engine/tiny/engine-forward.ts';
import { loadReferenceModel } from '../reference/forward.ts';
import { readSafetensors } from '../reference/safetensors.ts';

/** A scratch directory removed after the file's tests. */
export function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tiny-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const HEAD_ROLES = [
  'ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition', 'ioi.name_mover',
  'induction.previous_token', 'induction.induction_head', 'sentiment.reader_head',
];

function plantedHeads(m: Manifest): Set<string> {
  return new Set(HEAD_ROLES.flatMap((r) => m.roles[r] as string[]));
}

/** A head of the same layer that carries no role, preferring one that shares the planted head's KV group. */
export function unrelatedHead(m: Manifest, loc: string): { layer: number; head: number } {
  const { layer, head } = parseHead(loc);
  const planted = plantedHeads(m);
  const group = m.architecture.num_attention_heads / m.architecture.num_key_value_heads;
  const candidates = Array.from({ length: m.architecture.num_attention_heads }, (_, h) => h)
    .filter((h) => !planted.has(`L${layer}.H${h}`))
    .sort((a, b) => Number(Math.floor(b / group) === Math.floor(head / group)) - Number(Math.floor(a / group) === Math.floor(head / group)));
  return { layer, head: candidates[0] };
}

export function unrelatedExpert(m: Manifest, loc: string): { layer: number; expert: number } {
  const { layer, expert } = parseExpert(loc);
  const planted = new Set([...(m.roles['successor.expert'] as string[]), ...(m.roles['entanglement.expert'] as string[])]);
  const e = Array.from({ length: m.architecture.num_local_experts }, (_, i) => i).find((i) => i !== expert && !planted.has(`L${layer}.E${i}`))!;
  return { layer, expert: e };
}

/** Builds `size` with `seed` into `scratch` and checks every behaviour. These are the exact mechanics of
 *  the clean construction (thresholds like "the polysemantic neuron is silent on prose to 0.01"), so
 *  the style is pinned to clean; tiny-realistic.test.ts covers the default style. */
export function describeTinyModel(size: TinySize, seed: number, scratch: string): void {
  describe(`${size} (clean) seed ${seed}`, () => {
    let dir: string;
    let manifest: Manifest;
    let model: GptOssModel;
    let tok: Tokenizer;
    let metrics: TinyMetrics;
    let V: number;
    const id = (w: string) => tok.tokenId(w);
    const enc = (p: string) => encodeWords(p, id);
    /** logit(target) - logit(distractor) at the last position of each request, through the engine */
    const diffs = async (reqs: ForwardRequest[], examples: { target: string; distractor: string }[]) => {
      const res = await engineForward(model)(reqs);
      return res.map((r, i) => {
        const off = (reqs[i].tokens.length - 1) * V;
        return r.logits[off + id(examples[i].target)!] - r.logits[off + id(examples[i].distractor)!];
      });
    };

    beforeAll(async () => {
      dir = join(scratch, `${size}-${seed}`);
      manifest = buildTinyModel(size, seed, dir, 'clean');
      model = GptOssModel.load(dir);
      tok = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
      V = model.config.vocabSize;
      metrics = await measureTiny(manifest, id, V, engineForward(model));
    });
    afterAll(async () => {
      await model?.dispose();
    });

    it('is a gpt-oss checkpoint in the Hugging Face layout (BF16 tensors, MXFP4 experts, WordLevel tokenizer)', () => {
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(config.model_type).toBe('gpt_oss');
      expect(config.architectures).toEqual(['GptOssForCausalLM']);
      expect(config.head_dim).toBe(64);
      expect(config.rope_theta).toBe(150000);
      expect(config.rope_scaling).toMatchObject({ rope_type: 'yarn', factor: 32, beta_fast: 32, beta_slow: 1, truncate: false });
      expect(config.quantization_config.quant_method).toBe('mxfp4');
      expect(config.layer_types[0]).toBe('sliding_attention');
      expect(config.num_key_value_heads).toBeLessThan(config.num_attention_heads);
      expect(config.num_hidden_layers).toBe(size === 'tiny-s' ? 4 : 8);
      const tensors = readSafetensors(join(dir, 'model.safetensors'));
      for (const [name, t] of tensors) {
        if (/_blocks$|_scales$/.test(name)) expect(t.dtype, name).toBe('U8');
        else expect(t.dtype, name).toBe('BF16');
      }
      expect(tensors.get('model.layers.0.mlp.experts.gate_up_proj_blocks')!.shape).toEqual([
        config.num_local_experts, 2 * config.intermediate_size, config.hidden_size / 32, 16,
      ]);
      // Every prompt is vocabulary words: the tokenizer and a plain word lookup agree.
      const vocab = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
      const t = manifest.tasks;
      const prompts: string[] = [
        ...[t.ioi, t.induction, t.successor, t.sentiment].flatMap((x) => x.examples.map((e) => e.prompt)),
        ...manifest.tasks.sentiment.contrast.positive, ...manifest.tasks.sentiment.contrast.negative,
        ...Object.values(manifest.tasks.entanglement.domains).flat(),
      ];
      for (const p of prompts) {
        expect(tok.encode(p)).toEqual(p.split(' ').map((w: string) => vocab[w]));
        expect(p.split(' ').length).toBeLessThanOrEqual(config.sliding_window);
      }
      expect(manifest.model).toBe(size);
      expect(manifest.seed).toBe(seed);
      expect(manifest.style).toBe('clean');
      expect(manifest.roles['ioi.name_mover']).toHaveLength(size === 'tiny-s' ? 1 : 3);
    });

    it('IOI: logit diff IO - S > 2 on every example; zero-ablating the name movers removes it', () => {
      const m = metrics.ioi;
      expect(m.min_logit_diff).toBeGreaterThan(2);
      expect(m.top1).toBe(1);
      expect(m.mean_logit_diff_name_movers_ablated).toBeLessThan(0.25 * m.mean_logit_diff);
      if (size === 'tiny-m') {
        // Redundancy: any one name mover alone ablated leaves most of the effect.
        for (const x of m.mean_logit_diff_one_name_mover_ablated) expect(x).toBeGreaterThan(0.5 * m.mean_logit_diff);
      }
    });

    it('IOI: ablating each upstream head destroys it; an unrelated head of each IOI layer does not', async () => {
      // one example per template
      const ex = manifest.tasks.ioi.examples.filter((_, i) => i % 3 === 0);
      const clean = metrics.ioi.mean_logit_diff;
      const upstream = ['ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition'].map((r) => (manifest.roles[r] as string[])[0]);
      for (const loc of upstream) {
        const d = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [parseHead(loc)] })), ex);
        expect(d.reduce((a, b) => a + b, 0) / d.length, loc).toBeLessThan(0.25 * clean);
        const other = unrelatedHead(manifest, loc);
        const d2 = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [other] })), ex);
        expect(Math.min(...d2), `L${other.layer}.H${other.head}`).toBeGreaterThan(2);
      }
      for (const loc of manifest.roles['ioi.name_mover'] as string[]) {
        const other = unrelatedHead(manifest, loc);
        const d = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [other] })), ex);
        expect(Math.min(...d)).toBeGreaterThan(2);
      }
    });

    it('induction: >= 95% on the repeated half; the induction head and its previous-token head carry it', async () => {
      expect(metrics.induction.accuracy).toBeGreaterThanOrEqual(0.95);
      expect(metrics.induction.accuracy_induction_head_ablated).toBeLessThan(0.2);
      const ex = manifest.tasks.induction.examples;
      const pt = parseHead((manifest.roles['induction.previous_token'] as string[])[0]);
      const ih = (manifest.roles['induction.induction_head'] as string[])[0];
      const dPt = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [pt] })), ex);
      expect(Math.max(...dPt)).toBeLessThan(1);
      const dOther = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [unrelatedHead(manifest, ih)] })), ex);
      expect(Math.min(...dOther)).toBeGreaterThan(2);
    });

    it('successor: >= 95%; the successor expert carries it, an unrelated expert of its layer does not', async () => {
      expect(metrics.successor.accuracy).toBeGreaterThanOrEqual(0.95);
      expect(metrics.successor.min_logit_diff).toBeGreaterThan(2);
      expect(metrics.successor.accuracy_expert_ablated).toBeLessThan(0.2);
      const ex = manifest.tasks.successor.examples;
      const other = unrelatedExpert(manifest, (manifest.roles['successor.expert'] as string[])[0]);
      const d = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateExperts: [other] })), ex);
      expect(Math.min(...d)).toBeGreaterThan(2);
      // One neuron per number: neuron k fires (most) on number k.
      const neurons = (manifest.roles['successor.neurons'] as string[]).map(parseNeuron);
      const res = await engineForward(model)([{ tokens: enc('0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18'), captureNeurons: neurons[0] }]);
      const I = manifest.architecture.intermediate_size;
      neurons.forEach((n, k) => {
        let best = 0;
        for (let u = 0; u < I; u++) if (res[0].neurons![k * I + u] > res[0].neurons![k * I + best]) best = u;
        expect(best).toBe(n.unit);
      });
    });

    it('sentiment: the answer follows the context through the reader head; steering every token beats one token', async () => {
      const s = metrics.sentiment;
      expect(s.accuracy).toBe(1);
      expect(s.min_logit_diff).toBeGreaterThan(1);
      expect(s.accuracy_reader_ablated).toBeLessThan(0.2);
      expect(s.steering.shift_all_tokens).toBeGreaterThan(3 * s.steering.shift_one_token);
      expect(s.steering.shift_one_token).toBeGreaterThan(0);
      expect(s.steering.flipped_all_tokens).toBe(1);
      const ex = manifest.tasks.sentiment.examples;
      const other = unrelatedHead(manifest, (manifest.roles['sentiment.reader_head'] as string[])[0]);
      const d = await diffs(ex.map((e) => ({ tokens: enc(e.prompt), ablateHeads: [other] })), ex);
      expect(Math.min(...d)).toBeGreaterThan(1);
    });

    it('entanglement: one neuron fires on math and code, others on one domain only', () => {
      const e = metrics.entanglement;
      expect(e.polysemantic.math).toBeGreaterThan(1);
      expect(e.polysemantic.code).toBeGreaterThan(1);
      expect(Math.abs(e.polysemantic.prose)).toBeLessThan(0.01);
      expect(e.math_only.math).toBeGreaterThan(1);
      expect(Math.abs(e.math_only.code)).toBeLessThan(0.05);
      expect(Math.abs(e.math_only.prose)).toBeLessThan(0.01);
      expect(e.code_only.code).toBeGreaterThan(1);
      expect(Math.abs(e.code_only.math)).toBeLessThan(0.05);
      expect(Math.abs(e.code_only.prose)).toBeLessThan(0.01);
    });

    it('the engine reproduces the metrics the build recorded in the manifest', () => {
      const close = (a: unknown, b: unknown, path: string): void => {
        if (typeof a === 'number') {
          expect(Math.abs(a - (b as number)), path).toBeLessThan(1e-3 * Math.max(1, Math.abs(a)));
        } else if (Array.isArray(a)) a.forEach((x, i) => close(x, (b as unknown[])[i], `${path}[${i}]`));
        else if (a && typeof a === 'object') for (const k of Object.keys(a)) close((a as any)[k], (b as any)[k], `${path}.${k}`);
      };
      for (const k of Object.keys(metrics) as (keyof TinyMetrics)[]) close(manifest.tasks[k].metric, metrics[k], k);
    });

    it('independent reference forward: IOI holds, and zero-ablating the listed name movers removes most of it', async () => {
      const ref = loadReferenceModel(dir);
      const nm = (manifest.roles['ioi.name_mover'] as string[]).map(parseHead);
      // Every other template (the reference is slow), both name orders among them.
      const examples = manifest.tasks.ioi.examples.filter((_, i) => i % 6 === 0);
      const viaEngine = await engineForward(model)(examples.map((e) => ({ tokens: tok.encode(e.prompt) })));
      examples.forEach((ex, k) => {
        const ids = tok.encode(ex.prompt);
        const T = ids.length;
        const d = (logits: Float32Array) => logits[(T - 1) * V + id(ex.target)!] - logits[(T - 1) * V + id(ex.distractor)!];
        const out = ref.forward(ids);
        const clean = d(out.logits);
        const ablated = d(ref.forward(ids, { ablateHeads: nm }).logits);
        expect(clean, ex.prompt).toBeGreaterThan(2);
        expect(Math.abs(ablated), ex.prompt).toBeLessThan(0.25 * clean);
        // and the engine computes the same logits everywhere
        let err = 0;
        for (let i = 0; i < out.logits.length; i++) err = Math.max(err, Math.abs(out.logits[i] - viaEngine[k].logits[i]));
        expect(err).toBeLessThan(1e-3);
      });
    });
  });
}
