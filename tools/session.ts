// The loaded model a tool works on: engine, tokenizer, and the model's row in the store.
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GptOssModel, type EngineOptions } from '../engine/model.ts';
import { Tokenizer } from '../engine/tokenizer.ts';
import { ToolError } from './define.ts';

export interface EncodedPrompt {
  prompt: string;
  ids: number[];
  tokens: string[];
}

export class ModelSession {
  private constructor(
    readonly dir: string,
    readonly modelId: string,
    readonly model: GptOssModel,
    readonly tokenizer: Tokenizer,
  ) {}

  static open(dir: string, opts: EngineOptions & { modelId?: string } = {}): ModelSession {
    const tokFile = join(dir, 'tokenizer.json');
    if (!existsSync(tokFile)) throw new ToolError(`model directory ${dir} has no tokenizer.json; NeuroScope needs it to read prompts`);
    const model = GptOssModel.load(dir, opts);
    return new ModelSession(dir, opts.modelId ?? basename(dir), model, Tokenizer.fromFile(tokFile));
  }

  get config() {
    return this.model.config;
  }

  encode(prompt: string): EncodedPrompt {
    if (typeof prompt !== 'string' || prompt.length === 0) throw new ToolError('empty prompt');
    const ids = this.tokenizer.encode(prompt);
    if (ids.length === 0) throw new ToolError(`prompt "${prompt}" has no tokens`);
    if (ids.length > this.model.maxTokens) {
      throw new ToolError(`prompt has ${ids.length} tokens; the limit is ${this.model.maxTokens}`);
    }
    return { prompt, ids, tokens: ids.map((id) => this.tokenizer.tokenString(id)) };
  }

  encodeAll(prompts: readonly string[], what = 'prompts'): EncodedPrompt[] {
    if (prompts.length === 0) throw new ToolError(`${what}: give at least one prompt`);
    return prompts.map((p) => this.encode(p));
  }

  /**
   * A single token id for an answer word (target/distractor); multi-token answers are refused. A word
   * that follows a space in running text is the space-prefixed token in byte-level BPE (o200k: " Mary"),
   * so that form is preferred when it is one token; word-level vocabularies give the same id either way.
   */
  tokenId(word: string, what: string): number {
    if (!/^\s/.test(word)) {
      const spaced = this.tokenizer.encode(` ${word}`);
      if (spaced.length === 1) return spaced[0];
    }
    const ids = this.tokenizer.encode(word);
    if (ids.length !== 1) {
      throw new ToolError(`${what} "${word}" is ${ids.length} tokens (${ids.map((i) => JSON.stringify(this.tokenizer.tokenString(i))).join(' ')}); it must be exactly one token`);
    }
    return ids[0];
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}
