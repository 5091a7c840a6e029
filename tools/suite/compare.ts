// The second model of the circuit-growth experiment: the one the user names (--compare DIR), or for
// a built-in tiny model the other built-in size. One way for the CLI and the chat to open it.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { EngineOptions } from '../../engine/model.ts';
import { TINY_SIZES } from '../../engine/tiny/index.ts';
import { openWorkspace, resolveModel } from '../workspace.ts';
import { loadSuitePrompts } from './prompts.ts';
import type { SuiteEnv } from './types.ts';

/** Why an experiment could not run (reported in its place; the suite goes on). */
export class NotRunnable extends Error {}

/** Which built-in size a model directory holds (its manifest's `model`), if any. */
function builtInSize(modelDir: string): string | null {
  const f = join(modelDir, 'manifest.json');
  if (!existsSync(f)) return null;
  const size = (JSON.parse(readFileSync(f, 'utf8')) as { model?: unknown }).model;
  return typeof size === 'string' && TINY_SIZES.includes(size as never) ? size : null;
}

export function comparisonOpener(opts: { modelDir: string; dataDir: string; compare?: string; engine?: EngineOptions; signal?: AbortSignal }): NonNullable<SuiteEnv['openOther']> {
  return async () => {
    const size = builtInSize(opts.modelDir);
    const target = opts.compare ?? (size ? TINY_SIZES.find((s) => s !== size) : undefined);
    if (!target) throw new NotRunnable('circuit growth compares two sizes of one architecture: give a second checkpoint (neuroscope suite --compare DIR, e.g. gpt-oss-120b next to gpt-oss-20b)');
    const dir = resolveModel(target, opts.dataDir);
    // Its own store, so the two models' runs and experiments stay apart.
    const other = await openWorkspace(dir, join(opts.dataDir, `other-${basename(dir)}`), opts.engine ?? {});
    return { ctx: { ...other.ctx, ...(opts.signal ? { signal: opts.signal } : {}) }, prompts: loadSuitePrompts(dir), modelName: basename(dir), close: other.close };
  };
}
