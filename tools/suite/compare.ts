// The second model of the circuit-growth experiment: the one the user names (--compare DIR), or for
// a built-in tiny model the other built-in size. One way for the CLI and the chat to open it.
import { basename, join } from 'node:path';
import type { EngineOptions } from '../../engine/model.ts';
import { TINY_SIZES } from '../../engine/tiny/index.ts';
import { builtInIdentity, modelLabel, openWorkspace, resolveModel } from '../workspace.ts';
import { loadSuitePrompts } from './prompts.ts';
import type { SuiteEnv } from './types.ts';

/** Why an experiment could not run (reported in its place; the suite goes on). */
export class NotRunnable extends Error {}

export function comparisonOpener(opts: { modelDir: string; dataDir: string; compare?: string; engine?: EngineOptions; signal?: AbortSignal }): NonNullable<SuiteEnv['openOther']> {
  return async () => {
    const size = builtInIdentity(opts.modelDir)?.model;
    const target = opts.compare ?? (size ? TINY_SIZES.find((s) => s !== size) : undefined);
    if (!target) throw new NotRunnable('circuit growth compares two sizes of one architecture: give a second checkpoint (neuroscope suite --compare DIR, e.g. gpt-oss-120b next to gpt-oss-20b)');
    const dir = resolveModel(target, opts.dataDir);
    // Its own store, so the two models' runs and experiments stay apart.
    const other = await openWorkspace(dir, join(opts.dataDir, `other-${basename(dir)}`), opts.engine ?? {});
    return { ctx: { ...other.ctx, ...(opts.signal ? { signal: opts.signal } : {}) }, prompts: loadSuitePrompts(dir), modelName: modelLabel(dir), modelDir: dir, close: other.close };
  };
}
