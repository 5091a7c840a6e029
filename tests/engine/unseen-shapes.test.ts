// The engine and the CLI against the independent reference implementation on random checkpoints
// whose shapes neither was written for: other hidden sizes, GQA groupings (MHA, MQA), top-k
// values, expert counts and sliding windows, single-file and sharded.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GptOssModel } from '../../engine/model.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';
import { loadReferenceModel } from '../reference/forward.ts';
import { relErr } from '../helpers/fixtures.ts';
import { Rng } from '../../engine/rng.ts';

const SHAPES = [
  { name: 'gqa-3x2', seed: 11, shards: 1, cfg: { hidden_size: 64, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 6, num_key_value_heads: 3, head_dim: 16, vocab_size: 97, num_local_experts: 5, num_experts_per_tok: 3, sliding_window: 3 } },
  { name: 'mha-top1', seed: 23, shards: 3, cfg: { hidden_size: 96, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 32, vocab_size: 50, num_local_experts: 3, num_experts_per_tok: 1, sliding_window: 2 } },
  { name: 'mqa-8', seed: 5, shards: 2, cfg: { hidden_size: 160, intermediate_size: 96, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 1, head_dim: 24, vocab_size: 130, num_local_experts: 6, num_experts_per_tok: 2, sliding_window: 7 } },
];

const root = mkdtempSync(join(tmpdir(), 'ns-unseen-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('unseen shapes agree with the independent reference', () => {
  for (const s of SHAPES) {
    it(`${s.name}: logits within 1e-4 relative, expert choices equal`, async () => {
      const dir = join(root, s.name);
      writeRandomCheckpoint(dir, gptOssConfigJson(s.cfg), s.seed, { shards: s.shards });
      const rng = new Rng(s.seed + 1);
      const prompts = [17, 9, 12].map((n) => Array.from({ length: n }, () => rng.int(s.cfg.vocab_size)));
      const model = GptOssModel.load(dir, { threads: 1 });
      const ref = loadReferenceModel(dir);
      const ours = await model.run(prompts, { logits: 'all', capture: ['blocks.*.mlp.hook_expert_indices'] });
      const V = s.cfg.vocab_size;
      const T = ours.length;
      const k = s.cfg.num_experts_per_tok;
      let worst = 0;
      for (const [b, tokens] of prompts.entries()) {
        const r = ref.forward(tokens);
        const mine = ours.logits!.data.subarray(b * T * V, (b * T + tokens.length) * V);
        const err = relErr(mine, r.logits);
        worst = Math.max(worst, err);
        expect(err).toBeLessThanOrEqual(1e-4);
        for (let l = 0; l < s.cfg.num_hidden_layers; l++) {
          const idx = ours.cache.get(`blocks.${l}.mlp.hook_expert_indices`)!.data.subarray(b * T * k, (b * T + tokens.length) * k);
          expect(Array.from(idx)).toEqual(Array.from(r.expertIndices[l]));
        }
      }
      console.log(`${s.name}: worst logits rel err vs the independent reference ${worst.toExponential(2)}`);
      await model.dispose();
    });
  }

  it('`neuroscope forward --json` prints the same logits as the reference', () => {
    const dir = join(root, 'cli');
    writeRandomCheckpoint(dir, gptOssConfigJson(SHAPES[0].cfg), 99);
    const ids = [3, 14, 15, 92, 65, 35];
    const out = execFileSync('node', ['bin/neuroscope.js', 'forward', '--model', dir, '--ids', ids.join(','), '--all-positions', '--json'], { encoding: 'utf8' });
    const parsed = JSON.parse(out) as { tokens: number[]; logits: number[][] };
    expect(parsed.tokens).toEqual(ids);
    expect(parsed.logits).toHaveLength(ids.length);
    expect(relErr(parsed.logits.flat(), loadReferenceModel(dir).forward(ids).logits)).toBeLessThanOrEqual(1e-4);
  });
});
