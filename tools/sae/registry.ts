// Where dictionaries live: SAELens folders under <data>/saes/<saeId>/, each with a row in the
// store's saes table. Tools name a dictionary by its saeId.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { saeHooksAt } from '../../engine/hook-address.ts';
import { DictionaryError, DictionaryRunner, type SparseDictionary } from '../../engine/sae/dictionary.ts';
import { readSaeLens, writeSaeLens } from '../../engine/sae/saelens.ts';
import { ToolError, type ToolContext } from '../define.ts';
import { newId, type SaeRecord } from '../store/index.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function saeDir(dataDir: string, saeId: string): string {
  if (!ID.test(saeId) || saeId.includes('..')) throw new ToolError(`sae id "${saeId}" must be 1-64 letters, digits, "_", "-" or "." (no "..")`);
  return join(dataDir, 'saes', saeId);
}

/** Writes the SAELens folder and records it; returns the id and the folder. */
export async function saveDictionary(
  ctx: ToolContext, dict: SparseDictionary, opts: { saeId?: string; metrics?: unknown; cfgExtra?: Record<string, unknown> } = {},
): Promise<{ saeId: string; path: string }> {
  const saeId = opts.saeId ?? newId('sae');
  const path = saeDir(ctx.store.dataDir, saeId);
  writeSaeLens(path, dict, { neuroscope_sae_id: saeId, ...opts.cfgExtra });
  await ctx.store.addSae({
    saeId, modelId: ctx.session.modelId, hook: dict.hook, hookOut: dict.hookOut ?? null, architecture: dict.architecture,
    dIn: dict.dIn, dSae: dict.dSae, k: dict.k ?? null, path, metrics: opts.metrics ?? null,
  });
  return { saeId, path };
}

/** A recorded dictionary's row and weights. */
export async function loadDictionary(ctx: ToolContext, saeId: string): Promise<{ record: SaeRecord; dict: SparseDictionary }> {
  const [record] = await ctx.store.listSaes(saeId);
  if (!record) {
    const known = (await ctx.store.listSaes()).slice(0, 10).map((r) => r.saeId);
    throw new ToolError(`no dictionary "${saeId}" in the store; ${known.length ? `known: ${known.join(', ')}` : 'none yet: train one with train_sae or load a SAELens folder with load_sae'}`);
  }
  try {
    return { record, dict: readSaeLens(record.path) };
  } catch (e) {
    if (e instanceof DictionaryError) throw new ToolError(`dictionary "${saeId}": ${e.message}`);
    throw e;
  }
}

/** Reads a SAELens folder from anywhere and records it (its files stay where they are). */
export async function importDictionary(ctx: ToolContext, folder: string, saeId?: string): Promise<{ saeId: string; path: string; dict: SparseDictionary }> {
  const path = resolve(folder);
  if (!existsSync(path)) throw new ToolError(`no folder ${path}; give a SAELens folder holding cfg.json and sae_weights.safetensors`);
  let dict: SparseDictionary;
  try {
    dict = readSaeLens(path);
  } catch (e) {
    if (e instanceof DictionaryError) throw new ToolError(e.message);
    throw e;
  }
  const id = saeId ?? newId('sae');
  saeDir(ctx.store.dataDir, id); // validates the id
  await ctx.store.addSae({
    saeId: id, modelId: ctx.session.modelId, hook: dict.hook, hookOut: dict.hookOut ?? null, architecture: dict.architecture,
    dIn: dict.dIn, dSae: dict.dSae, k: dict.k ?? null, path, metrics: { imported: path },
  });
  return { saeId: id, path, dict };
}

/** Splices a dictionary into the loaded model at its hook (an SAE replaces one attached there). */
export async function attachDictionary(ctx: ToolContext, saeId: string, dict: SparseDictionary): Promise<{ site: string; hooks: string[] }> {
  const model = ctx.session.model;
  const runner = new DictionaryRunner(dict);
  try {
    const previous = model.detachSae(dict.hook);
    model.attachSae({ site: dict.hook, saeId, runner });
    await previous?.runner.release();
  } catch (e) {
    await runner.release();
    throw new ToolError(`dictionary "${saeId}" cannot be spliced in: ${(e as Error).message}`);
  }
  return { site: dict.hook, hooks: Object.values(saeHooksAt(dict.hook)) };
}

/** The saeId of the dictionary attached at a site, or a clear error. */
export function attachedAt(ctx: ToolContext, site: string): { saeId: string; dict: SparseDictionary } {
  const a = ctx.session.model.attachedSaes.find((x) => x.site === site);
  if (!a) throw new ToolError(`no dictionary is attached at ${site}; attach one with attach_sae`);
  return { saeId: a.saeId, dict: a.runner.dict };
}
