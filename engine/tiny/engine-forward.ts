// The engine as a TinyForward: answers measurement requests in batches through GptOssModel.run, with
// per-row interventions (zero hook_z for head ablation, zero hook_expert_out for expert ablation, an
// add on hook_resid_pre for steering) and hook_post capture for neurons.
import { blockHook } from '../hook-address.ts';
import type { Intervention } from '../intervention.ts';
import type { GptOssModel } from '../model.ts';
import type { Tensor } from '../tensor.ts';
import type { ForwardRequest, ForwardResult, TinyForward } from './evaluate.ts';

export function engineForward(model: GptOssModel, batchSize = 64): TinyForward {
  return async (requests: ForwardRequest[]): Promise<ForwardResult[]> => {
    // Requests touching the same hooks share a batch, so plain runs pay for no intervention graphs.
    const groups = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const sig = [
        ...(r.ablateHeads ?? []).map((h) => `z${h.layer}`),
        ...(r.ablateExperts ?? []).map((x) => `e${x.layer}`),
        r.steer ? `s${r.steer.layer}` : '',
        r.captureNeurons ? `c${r.captureNeurons.layer}` : '',
      ].sort().join(',');
      groups.set(sig, [...(groups.get(sig) ?? []), i]);
    });
    const out = new Array<ForwardResult>(requests.length);
    for (const idx of groups.values()) {
      for (let i = 0; i < idx.length; i += batchSize) {
        const part = idx.slice(i, i + batchSize);
        const res = await runBatch(model, part.map((j) => requests[j]));
        part.forEach((j, n) => (out[j] = res[n]));
      }
    }
    return out;
  };
}

async function runBatch(model: GptOssModel, reqs: ForwardRequest[]): Promise<ForwardResult[]> {
  const { hiddenSize: H, numHeads: nH, numExperts: E, intermediateSize: I, vocabSize: V } = model.config;
  const B = reqs.length;
  const T = Math.max(...reqs.map((r) => r.tokens.length));
  const ivs = new Map<string, Intervention>();
  const zeroMask = (hook: string, width: number, b: number, index: number) => {
    let iv = ivs.get(hook);
    if (!iv) {
      iv = { hook, mask: { data: new Float32Array(B * width), dims: [B, 1, width, 1] }, value: { data: new Float32Array(1), dims: [1] } };
      ivs.set(hook, iv);
    }
    iv.mask!.data[b * width + index] = 1;
  };
  const capture = new Set<string>();
  reqs.forEach((r, b) => {
    for (const h of r.ablateHeads ?? []) zeroMask(blockHook(h.layer, 'attn.hook_z'), nH, b, h.head);
    for (const x of r.ablateExperts ?? []) zeroMask(blockHook(x.layer, 'mlp.hook_expert_out'), E, b, x.expert);
    if (r.steer) {
      const hook = blockHook(r.steer.layer, 'hook_resid_pre');
      let iv = ivs.get(hook);
      if (!iv) {
        iv = { hook, add: { data: new Float32Array(B * T * H), dims: [B, T, H] } };
        ivs.set(hook, iv);
      }
      const add = iv.add as Tensor;
      const n = r.tokens.length;
      const positions = r.steer.positions === 'all' ? [...Array(n).keys()] : [n - 1];
      for (const p of positions) for (let c = 0; c < H; c++) add.data[(b * T + p) * H + c] += r.steer.vector[c];
    }
    if (r.captureNeurons) capture.add(blockHook(r.captureNeurons.layer, 'mlp.hook_post'));
  });
  const res = await model.run(reqs.map((r) => r.tokens), { logits: 'all', interventions: [...ivs.values()], capture: [...capture] });
  const logits = res.logits!;
  return reqs.map((r, b) => {
    const n = r.tokens.length;
    const result: ForwardResult = { logits: logits.data.slice(b * T * V, (b * T + n) * V) };
    if (r.captureNeurons) {
      const post = res.cache.get(blockHook(r.captureNeurons.layer, 'mlp.hook_post'))!;
      const e = r.captureNeurons.expert;
      const a = new Float32Array(n * I);
      for (let t = 0; t < n; t++) a.set(post.data.subarray(((b * T + t) * E + e) * I, ((b * T + t) * E + e + 1) * I), t * I);
      result.neurons = a;
    }
    return result;
  });
}
