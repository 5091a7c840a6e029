// SAELens's on-disk layout: a folder with cfg.json and sae_weights.safetensors holding
// W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in] (+ threshold [d_sae] for
// JumpReLU). Both cfg layouts are read: SAELens 6 (hook/model names under "metadata", "k" at the
// top) and SAELens 5 and earlier (hook_name at the top, activation_fn_kwargs.k). We write the
// SAELens 6 layout with the 5-era names repeated at the top, so either version loads it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { f32ToBytes, readSafetensorsHeader, readTensorBytes, toFloat32, writeSafetensors, type TensorInfo } from '../safetensors.ts';
import { HookError, parseHookName } from '../hook-address.ts';
import { checkDictionary, DictionaryError, type SaeArchitecture, type SparseDictionary } from './dictionary.ts';

export const CFG_FILE = 'cfg.json';
export const WEIGHTS_FILE = 'sae_weights.safetensors';

/** SAELens architecture names -> ours ("standard" is the plain ReLU SAE). */
const ARCH_IN: Record<string, SaeArchitecture> = { standard: 'relu', relu: 'relu', jumprelu: 'jumprelu', topk: 'topk', batchtopk: 'topk' };
const ARCH_OUT: Record<SaeArchitecture, string> = { relu: 'standard', jumprelu: 'jumprelu', topk: 'topk' };

type Cfg = Record<string, unknown>;

const isObj = (x: unknown): x is Cfg => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Reads a SAELens folder; every missing or inconsistent piece is an error naming the file and field. */
export function readSaeLens(dir: string): SparseDictionary {
  const cfgFile = join(dir, CFG_FILE);
  const wFile = join(dir, WEIGHTS_FILE);
  for (const f of [cfgFile, wFile]) if (!existsSync(f)) throw new DictionaryError(`${dir} is not a SAELens dictionary: ${f} is missing (a SAELens folder holds ${CFG_FILE} and ${WEIGHTS_FILE})`);
  let cfg: unknown;
  try {
    cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new DictionaryError(`${cfgFile} is not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(cfg)) throw new DictionaryError(`${cfgFile} must hold a JSON object`);
  const meta = isObj(cfg.metadata) ? cfg.metadata : {};
  const field = (name: string): unknown => cfg[name] ?? meta[name];
  const archName = String(cfg.architecture ?? (cfg.activation_fn_str === 'topk' ? 'topk' : 'standard'));
  const architecture = ARCH_IN[archName];
  if (!architecture) throw new DictionaryError(`${cfgFile}: architecture "${archName}" is not supported; supported: ${Object.keys(ARCH_IN).join(', ')}`);
  const norm = cfg.normalize_activations ?? 'none';
  if (norm !== 'none' && norm !== null) {
    throw new DictionaryError(`${cfgFile}: normalize_activations "${String(norm)}" is not supported (it rescales inputs by a dataset statistic not stored in the folder); only "none" is`);
  }
  const hook = field('hook_name');
  if (typeof hook !== 'string' || !hook) throw new DictionaryError(`${cfgFile}: hook_name (top level or under metadata) is missing; it names the hook the dictionary reads`);
  const hookOut = field('hook_name_out');
  const kwargs = isObj(cfg.activation_fn_kwargs) ? cfg.activation_fn_kwargs : {};
  const k = cfg.k ?? kwargs.k;

  const { tensors } = readSafetensorsHeader(wFile);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const tensor = (name: string, rank: number): { info: TensorInfo; data: Float32Array } => {
    const info = byName.get(name);
    if (!info) throw new DictionaryError(`${wFile}: tensor ${name} is missing; found ${[...byName.keys()].join(', ')}`);
    if (info.shape.length !== rank) throw new DictionaryError(`${wFile}: ${name} has shape [${info.shape}], expected rank ${rank}`);
    return { info, data: toFloat32(info, readTensorBytes(info)) };
  };
  const wEnc = tensor('W_enc', 2);
  const wDec = tensor('W_dec', 2);
  const [dIn, dSae] = wEnc.info.shape;
  const dOut = wDec.info.shape[1];
  if (wDec.info.shape[0] !== dSae) throw new DictionaryError(`${wFile}: W_enc is [${wEnc.info.shape}] but W_dec is [${wDec.info.shape}]; W_dec must be [d_sae = ${dSae}, d_in]`);
  for (const [name, want] of [['d_in', dIn], ['d_sae', dSae]] as const) {
    if (cfg[name] !== undefined && cfg[name] !== want) throw new DictionaryError(`${cfgFile}: ${name} = ${String(cfg[name])} but the weights say ${want}`);
  }
  const dict: SparseDictionary = {
    architecture, dIn, dSae, dOut, hook,
    k: architecture === 'topk' ? Number(k) : undefined,
    hookOut: typeof hookOut === 'string' && hookOut ? hookOut : undefined,
    modelName: String(field('model_name') ?? ''),
    applyBDecToInput: cfg.apply_b_dec_to_input === true,
    wEnc: wEnc.data, bEnc: tensor('b_enc', 1).data, wDec: wDec.data, bDec: tensor('b_dec', 1).data,
    threshold: architecture === 'jumprelu' ? tensor('threshold', 1).data : undefined,
  };
  checkDictionary(dict, dir);
  return dict;
}

/** SAELens's hook_layer: the block of a hook name (0 for names outside the blocks or not ours). */
function hookLayer(hook: string): number {
  try {
    const a = parseHookName(hook);
    return a.kind === 'global' ? 0 : a.layer;
  } catch (e) {
    if (e instanceof HookError) return 0;
    throw e;
  }
}

/** Writes `dict` as a SAELens folder (created if missing); `extra` lands in cfg.json's metadata. */
export function writeSaeLens(dir: string, dict: SparseDictionary, extra: Record<string, unknown> = {}): void {
  checkDictionary(dict);
  mkdirSync(dir, { recursive: true });
  const layer = hookLayer(dict.hook);
  const metadata: Cfg = {
    model_name: dict.modelName, hook_name: dict.hook, hook_head_index: null, prepend_bos: false,
    ...(dict.hookOut ? { hook_name_out: dict.hookOut } : {}),
    ...extra,
  };
  const cfg: Cfg = {
    architecture: ARCH_OUT[dict.architecture],
    d_in: dict.dIn, d_sae: dict.dSae, ...(dict.dOut !== dict.dIn || dict.hookOut ? { d_out: dict.dOut } : {}),
    dtype: 'float32', device: 'cpu',
    apply_b_dec_to_input: dict.applyBDecToInput, normalize_activations: 'none', reshape_activations: 'none',
    ...(dict.architecture === 'topk' ? { k: dict.k, activation_fn_str: 'topk', activation_fn_kwargs: { k: dict.k } } : { activation_fn_str: 'relu' }),
    // The SAELens 5 names, for older loaders.
    model_name: dict.modelName, hook_name: dict.hook, hook_layer: layer, hook_head_index: null,
    metadata,
  };
  const t = (name: string, shape: number[], data: Float32Array) => ({ name, dtype: 'F32' as const, shape, byteLength: data.byteLength, write: () => f32ToBytes(data) });
  const tensors = [
    t('W_enc', [dict.dIn, dict.dSae], dict.wEnc), t('b_enc', [dict.dSae], dict.bEnc),
    t('W_dec', [dict.dSae, dict.dOut], dict.wDec), t('b_dec', [dict.dOut], dict.bDec),
  ];
  if (dict.threshold) tensors.push(t('threshold', [dict.dSae], dict.threshold));
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors);
  writeFileSync(join(dir, CFG_FILE), JSON.stringify(cfg, null, 2) + '\n');
}
