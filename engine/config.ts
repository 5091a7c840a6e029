// gpt-oss config.json (Hugging Face layout) -> a validated, typed config. Every error names the file,
// the field, what was found and what is valid: a bad config must fail here, not as a shape error later.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface YarnRope {
  factor: number;
  betaFast: number;
  betaSlow: number;
  originalMaxPositionEmbeddings: number;
  truncate: boolean;
}

export type LayerType = 'sliding_attention' | 'full_attention';

export interface GptOssConfig {
  modelType: 'gpt_oss';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  numExperts: number;
  expertsPerToken: number;
  slidingWindow: number;
  layerTypes: LayerType[];
  ropeTheta: number;
  /** null = plain RoPE (no rope_scaling). */
  rope: YarnRope | null;
  rmsNormEps: number;
  swigluLimit: number;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The config.json object as read. */
  raw: Record<string, unknown>;
}

const LAYER_TYPES: readonly LayerType[] = ['sliding_attention', 'full_attention'];

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isPosInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
const isInt = (x: unknown): x is number => Number.isSafeInteger(x);
const isPosNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;
const show = (x: unknown): string => (x === undefined ? 'nothing (field missing)' : JSON.stringify(x));

export function parseConfig(json: unknown, source = 'config.json'): GptOssConfig {
  const fail = (field: string, found: unknown, valid: string): never => {
    throw new ConfigError(`${source}: field "${field}" is ${show(found)}; expected ${valid}`);
  };
  if (!isObject(json)) throw new ConfigError(`${source}: must hold a JSON object, found ${show(json)}`);
  const j = json;
  if (j.model_type !== 'gpt_oss') fail('model_type', j.model_type, '"gpt_oss" (only gpt-oss checkpoints are supported)');
  const posInt = (field: string): number => (isPosInt(j[field]) ? (j[field] as number) : fail(field, j[field], 'a positive integer'));
  const posNum = (field: string, obj = j, prefix = ''): number =>
    isPosNum(obj[field]) ? (obj[field] as number) : fail(prefix + field, obj[field], 'a positive number');

  const hiddenSize = posInt('hidden_size');
  const intermediateSize = posInt('intermediate_size');
  const numLayers = posInt('num_hidden_layers');
  const numHeads = posInt('num_attention_heads');
  const numKvHeads = posInt('num_key_value_heads');
  const headDim = posInt('head_dim');
  const vocabSize = posInt('vocab_size');
  const numExperts = posInt('num_local_experts');
  const slidingWindow = posInt('sliding_window');
  if (numHeads % numKvHeads !== 0) {
    fail('num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads}) so query heads share KV heads evenly`);
  }
  if (headDim % 2 !== 0) fail('head_dim', headDim, 'an even number (RoPE rotates pairs of dimensions)');

  const kField = j.num_experts_per_tok !== undefined ? 'num_experts_per_tok' : 'experts_per_token';
  const expertsPerToken = isPosInt(j[kField]) ? (j[kField] as number) : fail(kField, j[kField], 'a positive integer (num_experts_per_tok or experts_per_token)');
  if (j.num_experts_per_tok !== undefined && j.experts_per_token !== undefined && j.num_experts_per_tok !== j.experts_per_token) {
    fail('experts_per_token', j.experts_per_token, `the same value as num_experts_per_tok (${show(j.num_experts_per_tok)})`);
  }
  if (expertsPerToken > numExperts) fail(kField, expertsPerToken, `at most num_local_experts (${numExperts})`);

  let layerTypes: LayerType[];
  if (j.layer_types === undefined || j.layer_types === null) {
    layerTypes = Array.from({ length: numLayers }, (_, i) => LAYER_TYPES[i % 2]);
  } else {
    const lt = j.layer_types;
    if (!Array.isArray(lt) || !lt.every((t) => LAYER_TYPES.includes(t as LayerType))) {
      fail('layer_types', lt, `an array of ${LAYER_TYPES.map((t) => `"${t}"`).join(' / ')}`);
    }
    if ((lt as unknown[]).length !== numLayers) fail('layer_types', lt, `one entry per layer (num_hidden_layers = ${numLayers}), found ${(lt as unknown[]).length}`);
    layerTypes = (lt as LayerType[]).slice();
  }

  // transformers >= 5 folds rope_theta into rope_parameters; older files have rope_theta + rope_scaling.
  const ropeParams = isObject(j.rope_parameters) ? j.rope_parameters : undefined;
  const ropeTheta = isPosNum(j.rope_theta) ? j.rope_theta : ropeParams && isPosNum(ropeParams.rope_theta) ? ropeParams.rope_theta : fail('rope_theta', j.rope_theta, 'a positive number');
  const scalingField = j.rope_scaling !== undefined ? 'rope_scaling' : ropeParams ? 'rope_parameters' : 'rope_scaling';
  const rope = parseRope(j[scalingField], scalingField, fail, posNum);

  const rmsNormEps = posNum('rms_norm_eps');
  const swigluLimit = posNum('swiglu_limit');

  const eos = j.eos_token_id;
  const eosTokenIds = isInt(eos) && eos >= 0 ? [eos] : Array.isArray(eos) && eos.length > 0 && eos.every((x) => isInt(x) && x >= 0) ? (eos as number[]).slice() : fail('eos_token_id', eos, 'a token id or a non-empty array of token ids (non-negative integers)');
  const pad = j.pad_token_id;
  const padTokenId = pad === undefined || pad === null ? null : isInt(pad) && pad >= 0 ? pad : fail('pad_token_id', pad, 'a non-negative integer token id or null');

  return {
    modelType: 'gpt_oss',
    hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, vocabSize,
    numExperts, expertsPerToken, slidingWindow, layerTypes,
    ropeTheta, rope, rmsNormEps, swigluLimit, eosTokenIds, padTokenId,
    raw: j,
  };
}

function parseRope(
  s: unknown,
  field: string,
  fail: (field: string, found: unknown, valid: string) => never,
  posNum: (f: string, obj: Record<string, unknown>, prefix: string) => number,
): YarnRope | null {
  if (s === undefined || s === null) return null;
  if (!isObject(s)) return fail(field, s, 'null or an object with rope_type "yarn"');
  // Older configs spell rope_type as "type".
  const type = s.rope_type ?? s.type;
  if (type === 'default' && field === 'rope_parameters') return null;
  if (type !== 'yarn') return fail(`${field}.rope_type`, type, '"yarn" (the only RoPE scaling gpt-oss uses), or no rope_scaling at all for plain RoPE');
  const p = `${field}.`;
  const orig = s.original_max_position_embeddings;
  if (!isPosInt(orig)) fail(`${p}original_max_position_embeddings`, orig, 'a positive integer');
  // transformers defaults truncate to true when absent; gpt-oss sets it false explicitly.
  const truncate = s.truncate ?? true;
  if (typeof truncate !== 'boolean') fail(`${p}truncate`, truncate, 'true or false');
  return {
    factor: posNum('factor', s, p),
    betaFast: posNum('beta_fast', s, p),
    betaSlow: posNum('beta_slow', s, p),
    originalMaxPositionEmbeddings: orig as number,
    truncate: truncate as boolean,
  };
}

/** Reads and validates `dir`/config.json. */
export function readConfig(dir: string): GptOssConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new ConfigError(`${file}: not found; a gpt-oss checkpoint directory needs its config.json`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}
