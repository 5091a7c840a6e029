// gpt-oss-tiny: built-in gpt-oss checkpoints with planted circuits (docs/planted-models.md).
// buildTinyModel writes config.json, model.safetensors (BF16 + MXFP4 experts, as gpt-oss-20b),
// tokenizer.json (WordLevel), tokenizer_config.json, generation_config.json and manifest.json, and
// checks every planted behaviour on the stored values before it returns.
import { blockHook } from '../hook-address.ts';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { wordLevelTokenizerJson } from '../tokenizer.ts';
import { writeCheckpoint, type TensorSource } from '../write-checkpoint.ts';
import { construct, featureDirection, subspaceDirection, type Construction, type HeadLoc } from './build.ts';
import { CheckModel, storedValues } from './check.ts';
import { measureTinySync } from './evaluate.ts';
import type { Manifest, Roles, TinyMetrics, TinySize, TinyStyle } from './manifest.ts';
import { generateTasks, IOI_TEMPLATES, TASK_COUNTS, TASK_COUNTS_LARGE } from './tasks.ts';
import { EOS_TOKEN, PAD_TOKEN, SPECIALS, wordLists } from './vocab.ts';

export type { Manifest, TinySize, TinyStyle, TaskExample, TinyMetrics, Roles, FeatureRole } from './manifest.ts';
export { construct, SIZES, TINY_STYLES } from './build.ts';
export * from './evaluate.ts';

export const TINY_SIZES: readonly TinySize[] = ['tiny-s', 'tiny-m', 'tiny-l'];

const head = (h: HeadLoc) => `L${h.layer}.H${h.head}`;

function rolesOf(c: Construction): Roles {
  const { plan } = c;
  const s = plan.successor, e = plan.entanglement;
  const neuron = (layer: number, expert: number, u: number) => `L${layer}.E${expert}.N${u}`;
  const roles: Roles = {
    'ioi.previous_token': plan.ioi.previousToken.map(head),
    'ioi.duplicate_token': plan.ioi.duplicateToken.map(head),
    'ioi.s_inhibition': plan.ioi.sInhibition.map(head),
    'ioi.name_mover': plan.ioi.nameMovers.map(head),
    ...(plan.ioi.backups.length ? { 'ioi.backup_name_mover': plan.ioi.backups.map(head) } : {}),
    ...(plan.ioi.negatives.length ? { 'ioi.negative_name_mover': plan.ioi.negatives.map(head) } : {}),
    'induction.previous_token': [head(plan.induction.previousToken)],
    'induction.induction_head': [head(plan.induction.inductionHead)],
    'sentiment.reader_head': [head(plan.sentiment.reader)],
    'sentiment.direction': { layer: plan.sentiment.reader.layer, vector: Array.from(subspaceDirection(c, 'sentiment')) },
    'successor.expert': [`L${s.layer}.E${s.expert}`],
    // neuron k maps number k to k + 1
    'successor.neurons': s.units.map((u) => neuron(s.layer, s.expert, u)),
    'entanglement.expert': [`L${e.layer}.E${e.expert}`],
    'entanglement.polysemantic': [neuron(e.layer, e.expert, e.poly)],
    'entanglement.math_only': e.mathOnly.map((u) => neuron(e.layer, e.expert, u)),
    'entanglement.code_only': e.codeOnly.map((u) => neuron(e.layer, e.expert, u)),
  };
  if (c.features.length) {
    // stored in the residual from the embedding on; read by the entanglement expert at its layer
    roles['superposition.features'] = c.features.map((f) => ({
      name: f.name, layer: e.layer, hook: blockHook(e.layer, 'hook_resid_pre'), vector: Array.from(featureDirection(c, f)),
    }));
  }
  return roles;
}

/** What the build-time check demands; a model failing it is a generator bug, so the build throws. */
function assertBehaviours(m: TinyMetrics, size: TinySize, seed: number, style: TinyStyle): void {
  const fails: string[] = [];
  const need = (ok: boolean, what: string) => ok || fails.push(what);
  const ioi = m.ioi;
  need(ioi.min_logit_diff > 2, `IOI min logit diff ${ioi.min_logit_diff.toFixed(2)} <= 2`);
  need(ioi.mean_logit_diff_all_ioi_ablated < 0.25 * ioi.mean_logit_diff, 'ablating every IOI head leaves most of IOI');
  if (ioi.mean_logit_diff_name_movers_and_backups_ablated === undefined) {
    need(ioi.mean_logit_diff_name_movers_ablated < 0.25 * ioi.mean_logit_diff, 'ablating the name movers leaves most of IOI');
  } else {
    // self-repair: the backups take over when the name movers are gone, and only both remove IOI
    need(ioi.mean_logit_diff_name_movers_ablated > 0.3 * ioi.mean_logit_diff, 'the backups do not take over when the name movers are ablated');
    need(ioi.mean_logit_diff_name_movers_and_backups_ablated < 0.25 * ioi.mean_logit_diff, 'ablating name movers and backups leaves most of IOI');
  }
  if (ioi.mean_logit_diff_negative_ablated !== undefined) {
    need(ioi.mean_logit_diff_negative_ablated > ioi.mean_logit_diff + 0.5, 'ablating the negative name mover does not raise the logit difference');
  }
  need(m.induction.accuracy >= 0.95, `induction accuracy ${m.induction.accuracy}`);
  need(m.induction.accuracy_induction_head_ablated < 0.5, 'ablating the induction head leaves induction');
  need(m.successor.accuracy >= 0.95, `successor accuracy ${m.successor.accuracy}`);
  need(m.successor.accuracy_expert_ablated < 0.5, 'ablating the successor expert leaves successor');
  need(m.sentiment.accuracy === 1, `sentiment accuracy ${m.sentiment.accuracy}`);
  need(m.sentiment.steering.shift_all_tokens > 2 * m.sentiment.steering.shift_one_token, 'steering at every token is not stronger than at one');
  const en = m.entanglement;
  need(en.polysemantic.math > 0.5 && en.polysemantic.code > 0.5 && Math.abs(en.polysemantic.prose) < 0.05, `polysemantic neuron selectivity ${JSON.stringify(en.polysemantic)}`);
  need(en.math_only.math > 0.5 && Math.abs(en.math_only.code) < 0.05 && Math.abs(en.math_only.prose) < 0.05, `math-only selectivity ${JSON.stringify(en.math_only)}`);
  need(en.code_only.code > 0.5 && Math.abs(en.code_only.math) < 0.05 && Math.abs(en.code_only.prose) < 0.05, `code-only selectivity ${JSON.stringify(en.code_only)}`);
  if (fails.length) throw new Error(`gpt-oss-tiny ${size} (${style}) seed ${seed} failed its build check: ${fails.join('; ')}`);
}

/**
 * Builds gpt-oss-tiny `size` with `seed` into `outDir` (created; existing model files replaced) and
 * returns its manifest. Deterministic: the same size and seed give the same bytes.
 */
export function buildTinyModel(size: TinySize, seed: number, outDir: string, style: TinyStyle = 'realistic'): Manifest {
  const c = construct(size, seed, style);
  const { config, vocab } = c;
  const generated = generateTasks(seed, size === 'tiny-l' ? TASK_COUNTS_LARGE : TASK_COUNTS);
  const placeholder = {} as never;
  const manifest: Manifest = {
    model: size,
    seed,
    style,
    version: 1,
    architecture: {
      hidden_size: config.hiddenSize,
      num_hidden_layers: config.numLayers,
      num_attention_heads: config.numHeads,
      num_key_value_heads: config.numKvHeads,
      head_dim: config.headDim,
      num_local_experts: config.numExperts,
      num_experts_per_tok: config.expertsPerToken,
      intermediate_size: config.intermediateSize,
      vocab_size: config.vocabSize,
      sliding_window: config.slidingWindow,
    },
    roles: rolesOf(c),
    tasks: {
      ioi: { templates: [...IOI_TEMPLATES], examples: generated.ioi, metric: placeholder },
      induction: { examples: generated.induction, metric: placeholder },
      successor: { examples: generated.successor, metric: placeholder },
      sentiment: { examples: generated.sentiment, contrast: generated.contrast, metric: placeholder },
      entanglement: { domains: generated.domains, metric: placeholder },
    },
    words: wordLists(),
    residual: c.rotation ? null : c.layout.describe(),
    checked_by: 'engine/tiny/check.ts (float64 forward over the stored BF16/MXFP4 values)',
  };

  // Check on exactly what gets stored.
  // (clean experts are MXFP4-exact by construction; realistic ones are rounded like any trained checkpoint)
  const model = new CheckModel(config, storedValues(c.tensors, { exactExperts: style === 'clean' }));
  const metrics = measureTinySync(manifest, (w) => vocab.id.get(w), config.vocabSize, (reqs) => model.forwardAll(reqs));
  assertBehaviours(metrics, size, seed, style);
  manifest.tasks.ioi.metric = metrics.ioi;
  manifest.tasks.induction.metric = metrics.induction;
  manifest.tasks.successor.metric = metrics.successor;
  manifest.tasks.sentiment.metric = metrics.sentiment;
  manifest.tasks.entanglement.metric = metrics.entanglement;

  mkdirSync(outDir, { recursive: true });
  const sources: TensorSource[] = c.tensors.map((t) => ({ name: t.name, shape: t.shape, data: () => t.data }));
  writeCheckpoint(outDir, c.configJson, sources);
  const words = vocab.words.slice(SPECIALS.length);
  const json = (name: string, value: unknown) => writeFileSync(join(outDir, name), JSON.stringify(value, null, 2) + '\n');
  json('tokenizer.json', wordLevelTokenizerJson(words, [...SPECIALS]));
  json('tokenizer_config.json', {
    tokenizer_class: 'PreTrainedTokenizerFast',
    eos_token: EOS_TOKEN,
    pad_token: PAD_TOKEN,
    unk_token: '<unk>',
    model_max_length: 131072,
    clean_up_tokenization_spaces: false,
  });
  json('generation_config.json', {
    eos_token_id: [vocab.id.get(EOS_TOKEN), vocab.id.get(PAD_TOKEN)],
    pad_token_id: vocab.id.get(PAD_TOKEN),
    do_sample: false,
  });
  json('manifest.json', manifest);
  return manifest;
}

/** Reads a built model's manifest.json. */
export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

/**
 * The default model: tiny-s seed 0 (realistic) under `<dataDir>/models/tiny-s-seed0/`, built on first use
 * (into a temporary folder renamed into place, so a half-written model is never picked up).
 */
export function ensureDefaultModel(dataDir: string): string {
  return ensureTinyModel(dataDir, 'tiny-s', 0);
}

/** Where ensureTinyModel keeps a built-in model: `<size>-seed<seed>` (realistic) or `<size>-clean-seed<seed>`. */
export function tinyModelDir(dataDir: string, size: TinySize, seed: number, style: TinyStyle = 'realistic'): string {
  return resolve(dataDir, 'models', style === 'realistic' ? `${size}-seed${seed}` : `${size}-${style}-seed${seed}`);
}

/** `<dataDir>/models/<size>-seed<seed>/`, built on first use. manifest.json is written last, so a
 *  directory holding it (for this style) is complete; a model built before styles existed is rebuilt;
 *  concurrent first uses each build privately and the first to finish wins. */
export function ensureTinyModel(dataDir: string, size: TinySize, seed: number, style: TinyStyle = 'realistic'): string {
  const dir = tinyModelDir(dataDir, size, seed, style);
  const complete = () => existsSync(join(dir, 'manifest.json')) && readManifest(dir).style === style;
  if (complete()) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    buildTinyModel(size, seed, tmp, style);
    if (!complete()) {
      rmSync(dir, { recursive: true, force: true }); // an interrupted earlier attempt, or an older build
      renameSync(tmp, dir);
    }
  } catch (e) {
    if (!complete()) throw e;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
