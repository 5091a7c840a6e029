// The suite's prompt sets for real gpt-oss checkpoints, checked with the real o200k_harmony
// tokenizer: every answer is one token right after its prompt, and prompts that the suite patches
// position by position have one token length per word-count group.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Tokenizer } from '../../engine/tokenizer.ts';
import { byLength } from '../../tools/prompt-sets.ts';
import { GPTOSS_TOKENIZER_JSON } from '../helpers/gptossTokenizer.ts';

const file = join(import.meta.dirname, '..', '..', 'prompts', 'suite', 'gpt-oss.json');

it('answers are single next tokens and position sweeps line up', () => {
  const tok = Tokenizer.fromFile(GPTOSS_TOKENIZER_JSON);
  const p = JSON.parse(readFileSync(file, 'utf8'));
  for (const task of ['ioi', 'induction', 'successor', 'sentiment']) {
    for (const e of p[task] as { prompt: string; target: string; distractor: string }[]) {
      const prompt = tok.encode(e.prompt);
      for (const word of [e.target, e.distractor]) {
        // The answer as the model would continue the prompt: encode(prompt + answer) = prompt + one token.
        const joined = tok.encode(e.prompt.endsWith(' ') ? e.prompt + word : `${e.prompt} ${word}`);
        expect(joined.slice(0, prompt.length), `${task}: "${e.prompt}" + ${word}`).toEqual(prompt);
        expect(joined.length - prompt.length, `${task}: "${word}" after "${e.prompt}"`).toBe(1);
      }
    }
    for (const group of byLength(p[task])) expect(new Set(group.map((e: { prompt: string }) => tok.encode(e.prompt).length)).size).toBe(1);
  }
}, 60_000);
