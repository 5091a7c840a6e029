// A layer's expert matmuls with the weights as session initializers (onnxruntime prepacks them
// once): x_e [N_e, in] -> y_e = x_e W_e^T + b_e [N_e, out] for a range of experts in one session run.
// Two encodings of W_e, both exact: `pairs`, MXFP4 kept packed as the 4-bit pair form of
// mxfp4ToNibblePairs (a MatMulNBits, block 64, float32 accumulation, on x_e with each 32-column
// chunk repeated: ~1.1 bytes per weight, twice the multiply-adds), and `f32`, the dequantised
// float32 weight (a Gemm with transB: 4 bytes per weight).
import { GraphBuilder, int } from '../onnx/graph-builder.ts';

export type ExpertMatrix =
  | { kind: 'pairs'; q: Uint8Array; scales: Float32Array; bias: Float32Array }
  | { kind: 'f32'; w: Float32Array; bias: Float32Array };

export const packedInput = (e: number): string => `x${e}`;
export const packedOutput = (e: number): string => `y${e}`;

/** Accuracy level 1: onnxruntime dequantises blocks to float32 and accumulates in float32 (never int8). */
const FLOAT32_ACCURACY = 1;

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Experts first..first+experts.length-1 of one layer and one matrix (gate_up or down). */
export function buildLayerExpertsGraph(name: string, inDim: number, outDim: number, first: number, experts: readonly ExpertMatrix[]): Uint8Array {
  const g = new GraphBuilder(name);
  const blocks = inDim / 32;
  experts.forEach((w, j) => {
    const x = g.input(packedInput(first + j), ['N', inDim]);
    const b = g.constRaw('float', bytesOf(w.bias), [outDim]);
    let y: string;
    if (w.kind === 'f32') {
      y = g.op('Gemm', [x, g.constRaw('float', bytesOf(w.w), [outDim, inDim]), b], { transB: int(1) });
    } else {
      const chunks = g.op('Reshape', [x, g.constInt64([-1, blocks, 32])]);
      const doubled = g.op('Reshape', [g.op('Concat', [chunks, chunks], { axis: int(2) }), g.constInt64([-1, 2 * inDim])]);
      const q = g.constRaw('uint8', w.q, [outDim, blocks, 32]);
      const s = g.constRaw('float', bytesOf(w.scales), [outDim * blocks]);
      y = g.op('Add', [g.msOp('MatMulNBits', [doubled, q, s], {
        K: int(2 * inDim), N: int(outDim), bits: int(4), block_size: int(64), accuracy_level: int(FLOAT32_ACCURACY),
      }), b]);
    }
    g.output(packedOutput(first + j), y);
  });
  return g.build();
}

/** Bytes one expert's two matrices hold in an encoding (weights, scales, biases). */
export function expertBytes(kind: ExpertMatrix['kind'], H: number, I: number): number {
  const matrix = (out: number, inDim: number) => (kind === 'f32' ? 4 * out * inDim : out * inDim + 4 * out * (inDim / 32)) + 4 * out;
  return matrix(2 * I, H) + matrix(H, I);
}
