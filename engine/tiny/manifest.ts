// manifest.json of a gpt-oss-tiny model: where every planted role lives, the task prompt sets, and the
// metric each behaviour reaches. Ground truth for tests and scoring only; analysis code never reads it.

export type TinySize = 'tiny-s' | 'tiny-m' | 'tiny-l';

/** `clean`: circuits exact and everything else (almost) zero, for debugging. `realistic` (default):
 *  trained-scale background, a rotated residual basis, superposition and self-repair. */
export type TinyStyle = 'clean' | 'realistic';

/** One scored prompt: `prompt` is space-separated vocabulary words, the next word should be `target`. */
export interface TaskExample {
  prompt: string;
  target: string;
  distractor: string;
}

/** A residual-stream direction and the layer whose input (blocks.L.hook_resid_pre) it is read at. */
export interface DirectionRole {
  layer: number;
  vector: number[];
}

/** A sparse feature of the superposition layer: a residual direction, capturable at `hook`. */
export interface FeatureRole {
  name: string;
  layer: number;
  /** hook name whose activation holds the feature (blocks.L.hook_resid_pre) */
  hook: string;
  vector: number[];
}

/**
 * Role name -> locations. Heads are `L<layer>.H<head>`, experts `L<layer>.E<expert>`, neurons
 * `L<layer>.E<expert>.N<unit>`. Names: ioi.previous_token, ioi.duplicate_token, ioi.s_inhibition,
 * ioi.name_mover, induction.previous_token, induction.induction_head, sentiment.reader_head,
 * sentiment.direction, successor.expert, successor.neurons, entanglement.expert,
 * entanglement.polysemantic, entanglement.math_only, entanglement.code_only; realistic style also
 * ioi.backup_name_mover, ioi.negative_name_mover and superposition.features.
 */
export type Roles = Record<string, string[] | DirectionRole | FeatureRole[]>;

export interface IoiMetric {
  /** logit(IO) - logit(S) at the last position. */
  min_logit_diff: number;
  mean_logit_diff: number;
  /** share of examples whose argmax over the whole vocabulary is the IO name */
  top1: number;
  /** mean logit difference with every listed name mover zero-ablated */
  mean_logit_diff_name_movers_ablated: number;
  /** mean logit difference with each name mover alone zero-ablated (tiny-m: redundancy) */
  mean_logit_diff_one_name_mover_ablated: number[];
  /** realistic style, with backups: name movers and backups zero-ablated (self-repair removed) */
  mean_logit_diff_name_movers_and_backups_ablated?: number;
  /** realistic style: the negative name movers zero-ablated (the logit difference grows) */
  mean_logit_diff_negative_ablated?: number;
  /** every ioi.* head zero-ablated */
  mean_logit_diff_all_ioi_ablated: number;
}

export interface InductionMetric {
  /** argmax accuracy over the whole vocabulary at every position of the repeated half */
  accuracy: number;
  /** the same with the induction head zero-ablated */
  accuracy_induction_head_ablated: number;
  /** logit(target) - logit(distractor) at the last position, minimum over examples */
  min_logit_diff: number;
}

export interface SuccessorMetric {
  accuracy: number;
  min_logit_diff: number;
  accuracy_expert_ablated: number;
}

export interface SentimentMetric {
  /** share of examples with logit(target) > logit(distractor) */
  accuracy: number;
  /** minimum over examples of logit(target) - logit(distractor) */
  min_logit_diff: number;
  accuracy_reader_ablated: number;
  /** mean change of logit(positive) - logit(negative) when `steering.coefficient` times the unit
   *  direction is added at blocks.L.hook_resid_pre at the last token only, and at every token */
  steering: { coefficient: number; shift_one_token: number; shift_all_tokens: number; flipped_one_token: number; flipped_all_tokens: number };
}

export interface EntanglementMetric {
  /** mean activation (mlp.hook_post) over tokens of prompts of each domain */
  polysemantic: Record<'math' | 'code' | 'prose', number>;
  math_only: Record<'math' | 'code' | 'prose', number>;
  code_only: Record<'math' | 'code' | 'prose', number>;
}

export interface TinyMetrics {
  ioi: IoiMetric;
  induction: InductionMetric;
  successor: SuccessorMetric;
  sentiment: SentimentMetric;
  entanglement: EntanglementMetric;
}

export interface TinyTasks {
  ioi: { templates: string[]; examples: TaskExample[]; metric: IoiMetric };
  /** Each prompt is a random letter sequence followed by its repeat minus the last letter; every
   *  position of the repeated half is scored (its next word is known from the first half). */
  induction: { examples: TaskExample[]; metric: InductionMetric };
  successor: { examples: TaskExample[]; metric: SuccessorMetric };
  sentiment: {
    examples: TaskExample[];
    /** Matched pairs: positive[i] and negative[i] differ only in the sentiment word. */
    contrast: { positive: string[]; negative: string[] };
    metric: SentimentMetric;
  };
  entanglement: { domains: { math: string[]; code: string[]; prose: string[] }; metric: EntanglementMetric };
}

export interface Manifest {
  model: TinySize;
  seed: number;
  style: TinyStyle;
  /** manifest format version */
  version: 1;
  architecture: {
    hidden_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim: number;
    num_local_experts: number;
    num_experts_per_tok: number;
    intermediate_size: number;
    vocab_size: number;
    sliding_window: number;
  };
  roles: Roles;
  tasks: TinyTasks;
  /** Word lists of the vocabulary by class. */
  words: Record<string, string[]>;
  /** Clean style: named residual subspaces (physical dims, with the sign each logical axis carries).
   *  Realistic style: null (the basis is rotated; planted directions are listed in roles). */
  residual: Record<string, { dims: number[]; signs: number[] }> | null;
  /** What computed the metrics at build time. */
  checked_by: string;
}
