// Re-measures a built gpt-oss-tiny directory through the engine (the code path gpt-oss-20b runs on)
// and compares with the metrics its build recorded. For the CLI and for anyone who wants the engine's
// own word on a model; the tests do the same with the independent reference oracle as well.
import { join } from 'node:path';
import { GptOssModel } from '../model.ts';
import { Tokenizer } from '../tokenizer.ts';
import { engineForward } from './engine-forward.ts';
import { measureTiny } from './evaluate.ts';
import { readManifest } from './index.ts';
import type { TinyMetrics } from './manifest.ts';

export interface TinyVerification {
  metrics: TinyMetrics;
  /** largest |engine - recorded| over every metric number */
  maxDeviation: number;
}

export async function verifyTinyModel(dir: string): Promise<TinyVerification> {
  const manifest = readManifest(dir);
  const tok = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
  const model = GptOssModel.load(dir);
  try {
    const metrics = await measureTiny(manifest, (w) => tok.tokenId(w), model.config.vocabSize, engineForward(model));
    let maxDeviation = 0;
    const walk = (a: unknown, b: unknown) => {
      if (typeof a === 'number' && typeof b === 'number') maxDeviation = Math.max(maxDeviation, Math.abs(a - b));
      else if (a && typeof a === 'object' && b && typeof b === 'object') {
        for (const k of Object.keys(a)) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      }
    };
    for (const k of Object.keys(metrics) as (keyof TinyMetrics)[]) walk(metrics[k], manifest.tasks[k].metric);
    return { metrics, maxDeviation };
  } finally {
    await model.dispose();
  }
}
