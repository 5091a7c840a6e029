// Per-layer sessions that hold a layer's experts packed (MXFP4 as exact 4-bit pairs, prepacked by
// onnxruntime once): the expert matmuls read ~1.06 bytes per weight instead of dequantising to
// float32 (4 bytes) in JS on every use, and the E experts of a layer run in one session call each
// for gate_up and down. Used when every layer's packed experts fit the weight budget.
import type * as ort from 'onnxruntime-node';
import type { Checkpoint } from './checkpoint.ts';
import { buildPackedExpertsGraph, type PackedMatrix } from './graphs/packed-experts.ts';
import { mxfp4ToNibblePairs } from './mxfp4.ts';
import { createSession, type SessionOptions } from './sessions.ts';

export interface PackedLayer {
  gateUp: ort.InferenceSession;
  down: ort.InferenceSession;
}

export class PackedExperts {
  private readonly layers = new Map<number, Promise<PackedLayer>>();

  constructor(private readonly checkpoint: Checkpoint, private readonly opts: SessionOptions) {}

  layer(layer: number): Promise<PackedLayer> {
    let s = this.layers.get(layer);
    if (!s) {
      s = this.build(layer);
      this.layers.set(layer, s);
      s.catch(() => this.layers.delete(layer));
    }
    return s;
  }

  private async build(layer: number): Promise<PackedLayer> {
    const { hiddenSize: H, intermediateSize: I, numExperts: E } = this.checkpoint.config;
    const gateUp: PackedMatrix[] = [];
    const down: PackedMatrix[] = [];
    for (let e = 0; e < E; e++) {
      const w = this.checkpoint.packedExpert(layer, e);
      gateUp.push({ ...mxfp4ToNibblePairs(w.gateUp.blocks, w.gateUp.scales, 2 * I, H), bias: w.gateUpB });
      down.push({ ...mxfp4ToNibblePairs(w.down.blocks, w.down.scales, H, I), bias: w.downB });
    }
    const [g, d] = await Promise.all([
      createSession(buildPackedExpertsGraph(`experts_${layer}_gate_up`, H, 2 * I, gateUp), this.opts),
      createSession(buildPackedExpertsGraph(`experts_${layer}_down`, I, H, down), this.opts),
    ]);
    return { gateUp: g, down: d };
  }

  async release(): Promise<void> {
    const all = [...this.layers.values()];
    this.layers.clear();
    await Promise.all(all.map(async (p) => {
      const l = await p;
      await Promise.all([l.gateUp.release(), l.down.release()]);
    }));
  }
}
