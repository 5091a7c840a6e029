// y = a b (or a b^T) for the reverse pass: gradients times the stored [out, in] weights.
import { GraphBuilder, int } from '../onnx/graph-builder.ts';

export function buildMatmulGraph(transB: boolean): Uint8Array {
  const g = new GraphBuilder(transB ? 'matmul_bt' : 'matmul');
  const a = g.input('a', ['M', 'K']);
  const b = g.input('b', transB ? ['N', 'K'] : ['K', 'N']);
  g.output('y', g.op('Gemm', [a, b], { transB: int(transB ? 1 : 0) }));
  return g.build();
}
