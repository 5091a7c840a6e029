// Compiled onnxruntime sessions, one per (graph kind, hook plan), shared by every layer.
import * as ort from 'onnxruntime-node';
import type { GptOssConfig } from './config.ts';
import { buildAttentionGraph } from './graphs/attention.ts';
import type { HookPlan } from './graphs/common.ts';
import { buildExpertActGraph, buildExpertGraph } from './graphs/expert.ts';
import { buildUnembedGraph } from './graphs/unembed.ts';
import { buildMatmulGraph } from './graphs/matmul.ts';

/**
 * `attention-kv`: the attention graph with past/present keys and values (runs with a KV cache).
 * `expert-act`: the expert activation alone, between the packed per-layer matmuls (packed-experts.ts).
 * `matmul` / `matmul-bt`: y = a b / y = a b^T on [M, K] inputs, for the reverse pass (engine/backward).
 */
export type GraphKind = 'attention' | 'attention-kv' | 'expert' | 'expert-act' | 'unembed' | 'matmul' | 'matmul-bt';
export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Intra-op threads for the CPU provider (default: all cores). */
  threads?: number;
  executionProvider?: ExecutionProvider;
}

const BUILDERS: Record<GraphKind, (cfg: GptOssConfig, plan: HookPlan) => Uint8Array> = {
  attention: buildAttentionGraph,
  'attention-kv': (cfg, plan) => buildAttentionGraph(cfg, plan, { kv: true }),
  expert: buildExpertGraph,
  'expert-act': buildExpertActGraph,
  unembed: buildUnembedGraph,
  matmul: () => buildMatmulGraph(false),
  'matmul-bt': () => buildMatmulGraph(true),
};

/** An onnxruntime session on this engine's provider and threads. */
export function createSession(bytes: Uint8Array, opts: SessionOptions): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    executionProviders: opts.executionProvider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    intraOpNumThreads: opts.threads ?? 0,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
}

export class SessionCache {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(private readonly cfg: GptOssConfig, private readonly opts: SessionOptions = {}) {}

  get(kind: GraphKind, plan: HookPlan): Promise<ort.InferenceSession> {
    const key = `${kind}|${[...plan.capture].sort().join(',')}|${[...plan.intervene].sort().join(',')}`;
    let s = this.sessions.get(key);
    if (!s) {
      const bytes = BUILDERS[kind](this.cfg, plan);
      s = createSession(bytes, this.opts);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  get size(): number {
    return this.sessions.size;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map(async (s) => (await s).release()));
  }
}
