// Which checkpoint a command means: a directory, or a built-in model name built on first use.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ensureTinyModel, TINY_SIZES, type TinySize } from '../engine/tiny/index.ts';

/** The user's data directory (models, store, findings): NEUROSCOPE_DATA or ./.neuroscope. */
export const dataDir = (): string => resolve(process.env.NEUROSCOPE_DATA ?? '.neuroscope');

/** `tiny-s` / `tiny-m` (seed 0, built into the data directory on first use), or a checkpoint directory; default tiny-s. */
export function resolveModelDir(model: string | undefined, data = dataDir()): string {
  const name = model ?? 'tiny-s';
  if ((TINY_SIZES as readonly string[]).includes(name)) return ensureTinyModel(data, name as TinySize, 0);
  const dir = resolve(name);
  if (!existsSync(dir)) throw new Error(`model "${name}" is neither a built-in model (${TINY_SIZES.join(', ')}) nor an existing directory`);
  return dir;
}
