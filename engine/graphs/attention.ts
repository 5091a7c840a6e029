// The attention half of a block, plus the second norm and the router logits: everything up to the
// discrete expert choice, which the engine makes in JS (routing interventions act there).
// Weights are graph inputs, so one compiled session serves every layer with the same hook plan.
// The `kv` variant also takes the cached post-RoPE keys and values of earlier positions (past_k,
// past_v, [B, nKV, P, d]) and returns them with the new positions appended (present_k, present_v);
// the variant without it is built exactly as before, so uncached runs keep their graphs.
import type { GptOssConfig } from '../config.ts';
import { GraphBuilder, int, ints } from '../onnx/graph-builder.ts';
import { hookPoint, linear, rmsNorm, rope, type HookPlan } from './common.ts';

export const ATTENTION_WEIGHT_INPUTS = [
  'inputNorm', 'qW', 'qB', 'kW', 'kB', 'vW', 'vB', 'oW', 'oB', 'sinks', 'postNorm', 'routerW', 'routerB',
] as const;

export function buildAttentionGraph(cfg: GptOssConfig, plan: HookPlan, opts: { kv?: boolean } = {}): Uint8Array {
  const kv = opts.kv === true;
  const { hiddenSize: H, numHeads: nH, numKvHeads: nKV, headDim: d, numExperts: E } = cfg;
  const g = new GraphBuilder('attention');
  const x = g.input('x', ['B', 'T', H]);
  const w = {
    inputNorm: g.input('inputNorm', [H]),
    qW: g.input('qW', [nH * d, H]), qB: g.input('qB', [nH * d]),
    kW: g.input('kW', [nKV * d, H]), kB: g.input('kB', [nKV * d]),
    vW: g.input('vW', [nKV * d, H]), vB: g.input('vB', [nKV * d]),
    oW: g.input('oW', [H, nH * d]), oB: g.input('oB', [H]),
    sinks: g.input('sinks', [nH]),
    postNorm: g.input('postNorm', [H]),
    routerW: g.input('routerW', [E, H]), routerB: g.input('routerB', [E]),
  };
  const cos = g.input('cos', ['T', d / 2]);
  const sin = g.input('sin', ['T', d / 2]);
  // S = P + T keys: the past, then the new positions.
  const mask = g.input('mask', ['T', kv ? 'S' : 'T']);
  const pastK = kv ? g.input('past_k', ['B', nKV, 'P', d]) : '';
  const pastV = kv ? g.input('past_v', ['B', nKV, 'P', d]) : '';
  const hook = (local: string, v: string, rank: number) => hookPoint(g, plan, local, v, rank);

  const n1 = hook('ln1.hook_normalized', rmsNorm(g, x, w.inputNorm, cfg.rmsNormEps), 3);
  const heads = (v: string, n: number) => g.op('Reshape', [v, g.constInt64([0, 0, n, d])]);
  const q = hook('attn.hook_q', heads(linear(g, n1, w.qW, w.qB, H, nH * d), nH), 4);
  const k = hook('attn.hook_k', heads(linear(g, n1, w.kW, w.kB, H, nKV * d), nKV), 4);
  const v = hook('attn.hook_v', heads(linear(g, n1, w.vW, w.vB, H, nKV * d), nKV), 4);
  const rq = hook('attn.hook_rot_q', rope(g, q, cos, sin, d), 4);
  const rk = hook('attn.hook_rot_k', rope(g, k, cos, sin, d), 4);

  // GQA without copying K/V: group the G query heads of each KV head along the query axis.
  const qh = g.op('Reshape', [g.op('Transpose', [rq], { perm: ints([0, 2, 1, 3]) }), g.constInt64([0, nKV, -1, d])]); // [B, nKV, G*T, d]
  let presentK = '';
  let kt: string;
  if (kv) {
    presentK = g.op('Concat', [pastK, g.op('Transpose', [rk], { perm: ints([0, 2, 1, 3]) })], { axis: int(2) }); // [B, nKV, S, d]
    kt = g.op('Transpose', [presentK], { perm: ints([0, 1, 3, 2]) }); // [B, nKV, d, S]
  } else {
    kt = g.op('Transpose', [rk], { perm: ints([0, 2, 3, 1]) }); // [B, nKV, d, T]
  }
  const raw = g.op('Reshape', [g.op('MatMul', [qh, kt]), g.constInt64([0, nH, -1, 0])]); // [B, nH, T, T] (S keys with kv)
  const scaled = g.op('Mul', [raw, g.constFloat([1 / Math.sqrt(d)], [])]);
  const scores = hook('attn.hook_attn_scores', g.op('Add', [scaled, mask]), 4);

  // The sink is one more softmax column per head, dropped before V.
  const lead = g.op('Shape', [scores], { start: int(0), end: int(3) });
  const sinkShape = g.op('Concat', [lead, g.constInt64([1])], { axis: int(0) });
  const sinkCol = g.op('Expand', [g.op('Reshape', [w.sinks, g.constInt64([1, nH, 1, 1])]), sinkShape]);
  const probs = g.op('Softmax', [g.op('Concat', [scores, sinkCol], { axis: int(3) })], { axis: int(3) });
  const last = g.constInt64([3]);
  const pattern = hook('attn.hook_pattern', g.op('Slice', [probs, g.constInt64([0]), g.constInt64([-1]), last]), 4);
  if (plan.capture.has('attn.hook_sink')) {
    const sink = g.op('Slice', [probs, g.constInt64([-1]), g.constInt64([2 ** 62]), last]);
    hook('attn.hook_sink', g.op('Squeeze', [sink, last]), 3);
  }

  let vt = g.op('Transpose', [v], { perm: ints([0, 2, 1, 3]) }); // [B, nKV, T, d]
  if (kv) vt = g.op('Concat', [pastV, vt], { axis: int(2) }); // [B, nKV, S, d]
  const pg = g.op('Reshape', [pattern, g.constInt64([0, nKV, -1, 0])]); // [B, nKV, G*T, T]
  const zh = g.op('Reshape', [g.op('MatMul', [pg, vt]), g.constInt64([0, nH, -1, d])]); // [B, nH, T, d]
  const z = hook('attn.hook_z', g.op('Transpose', [zh], { perm: ints([0, 2, 1, 3]) }), 4); // [B, T, nH, d]

  // Per-head writes z[b,t,h,:] @ W_O[:, h*d:(h+1)*d]^T, as one batched MatMul over heads. When they
  // are only captured, the output itself still comes from the o_proj Gemm, so capturing changes nothing.
  const perHeadResult = () => {
    const wo = g.op('Unsqueeze', [g.op('Transpose', [g.op('Reshape', [w.oW, g.constInt64([H, nH, d])])], { perm: ints([1, 2, 0]) }), g.constInt64([1])]); // [nH, 1, d, H]
    const zt = g.op('Transpose', [z], { perm: ints([2, 0, 1, 3]) }); // [nH, B, T, d]
    return g.op('Transpose', [g.op('MatMul', [zt, wo])], { perm: ints([1, 2, 0, 3]) }); // [B, T, nH, H]
  };
  let attnOut: string;
  if (plan.intervene.has('attn.hook_result')) {
    const result = hook('attn.hook_result', perHeadResult(), 4);
    attnOut = g.op('Add', [g.op('ReduceSum', [result, g.constInt64([2])], { keepdims: int(0) }), w.oB]);
  } else {
    if (plan.capture.has('attn.hook_result')) hook('attn.hook_result', perHeadResult(), 4);
    attnOut = linear(g, g.op('Reshape', [z, g.constInt64([0, 0, nH * d])]), w.oW, w.oB, nH * d, H);
  }
  attnOut = hook('hook_attn_out', attnOut, 3);
  const mid = hook('hook_resid_mid', g.op('Add', [x, attnOut]), 3);
  const n2 = hook('ln2.hook_normalized', rmsNorm(g, mid, w.postNorm, cfg.rmsNormEps), 3);
  const router = hook('mlp.hook_router_logits', linear(g, n2, w.routerW, w.routerB, H, E), 3);
  g.output('resid_mid', mid);
  g.output('ln2', n2);
  g.output('router_logits', router);
  if (kv) {
    g.output('present_k', presentK);
    g.output('present_v', vt);
  }
  return g.build();
}
