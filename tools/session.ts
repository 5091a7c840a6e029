// The loaded model a tool works on: engine, tokenizer, and the model's row in the store.
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GptOssModel, type EngineOptions } from '../engine/model.ts';
import { Tokenizer } from '../engine/tokenizer.ts';
import { ToolError } from './define.ts';
import { nearestNames } from './names.ts';

export interface EncodedPrompt {
  prompt: string;
  ids: number[];
  tokens: string[];
}

/** What one call does with text outside the vocabulary: refuse it, or (allowUnknown) note it as a warning. */
interface UnknownPolicy {
  allow: boolean;
  warnings: string[];
}

export class ModelSession {
  private unknown: UnknownPolicy = { allow: false, warnings: [] };

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

  /**
   * This session for one tool call: text outside the vocabulary is refused, or with `allowUnknown`
   * accepted and listed in `warnings` (which the call's result carries).
   */
  forCall(allowUnknown: boolean): { session: ModelSession; warnings: string[] } {
    const view = Object.create(this) as ModelSession;
    view.unknown = { allow: allowUnknown, warnings: [] };
    return { session: view, warnings: view.unknown.warnings };
  }

  /** Refuses (or, with allowUnknown, notes) the words of `text` that become the unknown token. */
  checkVocabulary(text: string, what: string, ids = this.tokenizer.encode(text)): void {
    const unk = this.tokenizer.unknownId;
    if (unk === undefined || !ids.includes(unk)) return;
    const words = [...new Set(this.tokenizer.encodeWithOffsets(text).filter((t) => t.id === unk).map((t) => text.slice(t.start, t.end).trim() || t.text))];
    const vocab = this.tokenizer.vocabSize <= 200_000 ? this.tokenizer.words() : [];
    const hints = words.map((w) => {
      const near = nearestNames(w, vocab, 3);
      return `"${w}"${near.length ? ` (nearest in the vocabulary: ${near.join(', ')})` : ''}`;
    });
    const message = `${what} has words outside the model's vocabulary, which all become the unknown token ${JSON.stringify(this.tokenizer.tokenString(unk))}: ${hints.join('; ')}`;
    if (!this.unknown.allow) throw new ToolError(`${message}. Use words of the vocabulary (tokenize shows how text splits), or pass allowUnknown: true to run anyway`);
    if (!this.unknown.warnings.includes(message)) this.unknown.warnings.push(message);
  }

  /** A prompt's tokens; words outside the vocabulary are refused (see checkVocabulary) unless the
   *  caller already checked the text it was made from (`checked`, e.g. a chat template around it). */
  encode(prompt: string, opts: { checked?: boolean } = {}): EncodedPrompt {
    if (typeof prompt !== 'string' || prompt.length === 0) throw new ToolError('empty prompt');
    const ids = this.tokenizer.encode(prompt);
    if (ids.length === 0) throw new ToolError(`prompt "${prompt}" has no tokens`);
    if (!opts.checked) this.checkVocabulary(prompt, `prompt "${prompt.length > 80 ? `${prompt.slice(0, 80)}…` : prompt}"`, ids);
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
      if (spaced.length === 1 && spaced[0] !== this.tokenizer.unknownId) return spaced[0];
    }
    const ids = this.tokenizer.encode(word);
    if (ids.length !== 1) {
      throw new ToolError(`${what} "${word}" is ${ids.length} tokens (${ids.map((i) => JSON.stringify(this.tokenizer.tokenString(i))).join(' ')}); it must be exactly one token`);
    }
    this.checkVocabulary(word, `${what} "${word}"`, ids);
    return ids[0];
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}
