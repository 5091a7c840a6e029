// Which checkpoint a command means: a directory, or a built-in model name built on first use.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** The user's data directory (models, store, findings): NEUROSCOPE_DATA or ./.neuroscope. */
export const dataDir = (): string => resolve(process.env.NEUROSCOPE_DATA ?? '.neuroscope');

export function resolveModelDir(model: string | undefined): string {
  if (model === undefined) throw new Error('give --model DIR (a gpt-oss checkpoint directory)');
  const dir = resolve(model);
  if (!existsSync(dir)) throw new Error(`model directory ${dir} does not exist`);
  return dir;
}
