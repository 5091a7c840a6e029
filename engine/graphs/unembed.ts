// Final norm and unembedding at the chosen positions: x [B, P, H] -> logits [B, P, V].
import type { GptOssConfig } from '../config.ts';
import { GraphBuilder } from '../onnx/graph-builder.ts';
import { hookPoint, linear, rmsNorm, type HookPlan } from './common.ts';

export function buildUnembedGraph(cfg: GptOssConfig, plan: HookPlan): Uint8Array {
  const { hiddenSize: H, vocabSize: V } = cfg;
  const g = new GraphBuilder('unembed');
  const x = g.input('x', ['B', 'P', H]);
  const norm = g.input('finalNorm', [H]);
  const lm = g.input('lmHead', [V, H]);
  const zeroBias = g.constFloat(new Array(1).fill(0), [1]);
  const n = hookPoint(g, plan, 'ln_final.hook_normalized', rmsNorm(g, x, norm, cfg.rmsNormEps), 3);
  const logits = hookPoint(g, plan, 'hook_logits', linear(g, n, lm, zeroBias, H, V), 3);
  g.output('logits', logits);
  return g.build();
}
