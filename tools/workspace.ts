// A workspace: one loaded model and one store, shared by every tool call of a process (CLI, MCP
// server, agent). Registers the model in the store so runs and experiments can name it. The model
// can be swapped (load_model): ctx.session always names the current one.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { EngineOptions } from '../engine/model.ts';
import { ensureTinyModel, TINY_SIZES, type TinySize } from '../engine/tiny/index.ts';
import { ToolError, type ToolContext } from './define.ts';
import { ModelSession } from './session.ts';
import { ActivationStore } from './store/index.ts';

export interface Workspace {
  /** The shared context; ctx.session is replaced when the model is switched. */
  ctx: ToolContext;
  /** Absolute data directory (store, findings, built-in models). */
  dataDir: string;
  /** Switch to another model (built-in name or directory); the old one is released. */
  loadModel: (model: string) => Promise<ModelSession>;
  close: () => Promise<void>;
}

/** Built-in model names a workspace understands besides directories. */
export const BUILT_IN_MODELS: readonly string[] = TINY_SIZES;

/** Which built-in model (size and seed) a directory holds, from its manifest.json; null for other checkpoints. */
export function builtInIdentity(dir: string): { model: string; seed: number } | null {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) return null;
  try {
    // Only the name and seed: the manifest's planted-component locations are the answer key.
    const m = JSON.parse(readFileSync(file, 'utf8')) as { model?: unknown; seed?: unknown };
    return typeof m.model === 'string' ? { model: m.model, seed: Number(m.seed ?? 0) } : null;
  } catch {
    return null;
  }
}

/** How reports name a model: "tiny-s seed 0" for a built-in one, else the directory's name ("gpt-oss-20b"). */
export function modelLabel(dir: string): string {
  const b = builtInIdentity(dir);
  return b ? `${b.model} seed ${b.seed}` : basename(resolve(dir));
}

/**
 * A model argument as a checkpoint directory: a built-in name ("tiny-s", "tiny-m"; built under
 * `<dataDir>/models/` on first use) or a directory holding config.json.
 */
export function resolveModel(model: string, dataDir: string): string {
  if (typeof model !== 'string' || model.trim() === '') throw new ToolError(`give a model: one of ${BUILT_IN_MODELS.join(', ')} or a checkpoint directory`);
  const dir = resolve(model);
  if (BUILT_IN_MODELS.includes(model) && !existsSync(dir)) return ensureTinyModel(dataDir, model as TinySize, 0);
  if (!existsSync(dir)) throw new ToolError(`model "${model}" is neither a built-in model (${BUILT_IN_MODELS.join(', ')}) nor an existing directory (${dir})`);
  if (!statSync(dir).isDirectory()) throw new ToolError(`model path ${dir} is not a directory; give a gpt-oss checkpoint directory`);
  if (!existsSync(join(dir, 'config.json'))) throw new ToolError(`model directory ${dir} has no config.json; give a gpt-oss checkpoint directory in the Hugging Face layout`);
  return dir;
}

async function registerModel(store: ActivationStore, session: ModelSession, dir: string): Promise<void> {
  const c = session.config;
  await store.addModel({
    modelId: session.modelId, name: session.modelId, path: dir,
    config: { layers: c.numLayers, hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, experts: c.numExperts, topK: c.expertsPerToken, vocab: c.vocabSize },
  });
}

export async function openWorkspace(modelDir: string, dataDir: string, engine: EngineOptions = {}): Promise<Workspace> {
  const store = await ActivationStore.open({ dataDir });
  try {
    const first = resolveModel(modelDir, store.dataDir);
    const session = ModelSession.open(first, engine);
    await registerModel(store, session, first);
    const ctx: ToolContext = { session, store };
    const loadModel = async (model: string): Promise<ModelSession> => {
      const dir = resolveModel(model, store.dataDir);
      const next = ModelSession.open(dir, engine);
      try {
        await registerModel(store, next, dir);
      } catch (err) {
        await next.dispose();
        throw err;
      }
      const old = ctx.session;
      ctx.session = next;
      if (old !== next) await old.dispose();
      return next;
    };
    ctx.models = { load: loadModel };
    return {
      ctx,
      dataDir: store.dataDir,
      loadModel,
      close: async () => {
        await ctx.session.dispose();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}
