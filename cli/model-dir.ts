// Which checkpoint a command means, and where the user's data lives.
import { resolve } from 'node:path';
import { resolveModel } from '../tools/workspace.ts';

/** The user's data directory (models, store, findings): NEUROSCOPE_DATA or ./.neuroscope. */
export const dataDir = (): string => resolve(process.env.NEUROSCOPE_DATA ?? '.neuroscope');

/** A checkpoint directory or a built-in name (built into the data directory on first use); default tiny-s. */
export function resolveModelDir(model: string | undefined, data = dataDir()): string {
  return resolveModel(model ?? 'tiny-s', data);
}
