// One expert's clamped SwiGLU on the tokens routed to it: x [N, H] -> y [N, H].
// gate_up rows are interleaved in the checkpoint (even = gate, odd = up), kept as stored.
import type { GptOssConfig } from '../config.ts';
import { GraphBuilder, int } from '../onnx/graph-builder.ts';
import { hookPoint, type HookPlan } from './common.ts';

/** The activation between gate_up and down: h [N, 2I] (interleaved gate/up) -> [N, I], with the neuron hooks. */
export function swiglu(g: GraphBuilder, cfg: GptOssConfig, plan: HookPlan, hIn: string): string {
  const { intermediateSize: I, swigluLimit: limit } = cfg;
  const h = g.op('Reshape', [hIn, g.constInt64([0, I, 2])]);
  const pick = (j: number) =>
    g.op('Squeeze', [g.op('Slice', [h, g.constInt64([j]), g.constInt64([j + 1]), g.constInt64([2])]), g.constInt64([2])]);
  const gatePre = hookPoint(g, plan, 'mlp.hook_pre', pick(0), 2);
  const gate = g.op('Min', [gatePre, g.constFloat([limit], [])]);
  const up = g.op('Clip', [pick(1), g.constFloat([-limit], []), g.constFloat([limit], [])]);
  const glu = g.op('Mul', [gate, g.op('Sigmoid', [g.op('Mul', [gate, g.constFloat([1.702], [])])])]);
  return hookPoint(g, plan, 'mlp.hook_post', g.op('Mul', [glu, g.op('Add', [up, g.constFloat([1], [])])]), 2);
}

export function buildExpertGraph(cfg: GptOssConfig, plan: HookPlan): Uint8Array {
  const { hiddenSize: H, intermediateSize: I } = cfg;
  const g = new GraphBuilder('expert');
  const x = g.input('x', ['N', H]);
  const guW = g.input('gateUpW', [2 * I, H]);
  const guB = g.input('gateUpB', [2 * I]);
  const dW = g.input('downW', [H, I]);
  const dB = g.input('downB', [H]);
  const act = swiglu(g, cfg, plan, g.op('Gemm', [x, guW, guB], { transB: int(1) }));
  g.output('y', g.op('Gemm', [act, dW, dB], { transB: int(1) }));
  return g.build();
}

/** The activation alone, for experts whose matmuls run in per-layer packed sessions: h [N, 2I] -> act [N, I]. */
export function buildExpertActGraph(cfg: GptOssConfig, plan: HookPlan): Uint8Array {
  const g = new GraphBuilder('expert_act');
  g.output('act', swiglu(g, cfg, plan, g.input('h', ['N', 2 * cfg.intermediateSize])));
  return g.build();
}
