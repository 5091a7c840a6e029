// A random gpt-oss checkpoint with a word-level tokenizer (words w0..wN), for testing tool
// mechanics independently of the planted models.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wordLevelTokenizerJson } from '../../engine/tokenizer.ts';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';
import type { ToolContext } from '../../tools/define.ts';
import { openWorkspace } from '../../tools/workspace.ts';

export function writeRandomWordModel(dir: string, seed = 3, overrides: Record<string, unknown> = {}): string[] {
  const vocab = 64;
  const words = Array.from({ length: vocab - 1 }, (_, i) => `w${i}`);
  writeRandomCheckpoint(dir, gptOssConfigJson({
    hidden_size: 64, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
    head_dim: 16, vocab_size: vocab, num_local_experts: 4, num_experts_per_tok: 2, sliding_window: 4, ...overrides,
  }), seed);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(wordLevelTokenizerJson(words, ['[UNK]'])));
  return words;
}

/** A workspace (model + store) over a fresh random word model in a temp folder; close() removes it. */
export async function openRandomWordWorkspace(prefix: string): Promise<{ ctx: ToolContext; close: () => Promise<void> }> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  writeRandomWordModel(join(root, 'model'));
  const ws = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 });
  return {
    ctx: ws.ctx,
    close: async () => {
      await ws.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
