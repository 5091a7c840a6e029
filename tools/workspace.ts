// A workspace: one loaded model and one store, shared by every tool call of a process (CLI, MCP
// server, agent). Registers the model in the store so runs and experiments can name it.
import type { EngineOptions } from '../engine/model.ts';
import type { ToolContext } from './define.ts';
import { ModelSession } from './session.ts';
import { ActivationStore } from './store/index.ts';

export interface Workspace {
  ctx: ToolContext;
  close: () => Promise<void>;
}

export async function openWorkspace(modelDir: string, dataDir: string, engine: EngineOptions = {}): Promise<Workspace> {
  const store = await ActivationStore.open({ dataDir });
  try {
    const session = ModelSession.open(modelDir, engine);
    const c = session.config;
    await store.addModel({
      modelId: session.modelId, name: session.modelId, path: modelDir,
      config: { layers: c.numLayers, hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, experts: c.numExperts, topK: c.expertsPerToken, vocab: c.vocabSize },
    });
    return {
      ctx: { session, store },
      close: async () => {
        await session.dispose();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
