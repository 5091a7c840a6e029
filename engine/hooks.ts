// The closed list of hook points, named like TransformerLens. Every captured or patched tensor in
// NeuroScope is addressed by one of these names; anything else is an error listing the valid ones.
import type { GptOssConfig } from './config.ts';
import {
  blockHook, GLOBAL_LOCALS, HookError, hookName, parseHookName, SAE_SITES, saeHooksAt,
  type BlockHookLocal, type GlobalHookLocal, type HookAddress, type SaePart, type SaeSiteLocal,
} from './hook-address.ts';

export { HookError };

/** Where a hook's tensor is computed: inside the attention graph, the expert graph, the unembed graph or in JS. */
export type HookStage = 'embed' | 'attn' | 'route' | 'expert' | 'combine' | 'unembed';

/**
 * What one axis of a hook's tensor indexes. `pos`: prompt positions (T); `out_pos`: the unembedded
 * positions (P); `key_pos`: attended positions (past + T).
 */
export type HookAxis = 'batch' | 'pos' | 'out_pos' | 'key_pos' | 'head' | 'kv_head' | 'd_head' | 'd_model' | 'expert' | 'top_k' | 'neuron' | 'vocab' | 'latent';

const AXIS_OF_SYMBOL: Record<string, HookAxis> = {
  B: 'batch', T: 'pos', P: 'out_pos', nH: 'head', nKV: 'kv_head', d: 'd_head', H: 'd_model', E: 'expert', k: 'top_k', I: 'neuron', V: 'vocab', S: 'latent',
};

/** The axes of a symbolic shape: `[B, nH, T, T]` -> batch, head, pos, key_pos (a second T is the key axis). */
function axesOf(shape: string): HookAxis[] {
  const symbols = shape.slice(1, -1).split(', ');
  return symbols.map((s, i) => (s === 'T' && symbols.indexOf('T') < i ? 'key_pos' : AXIS_OF_SYMBOL[s]));
}

/** An axis that names components one can pick by index (heads, KV heads, experts), when it is not the vector axis. */
export function componentAxis(axes: readonly HookAxis[]): number | null {
  const i = axes.findIndex((a) => a === 'head' || a === 'kv_head' || a === 'expert');
  return i >= 0 && i < axes.length - 1 ? i : null;
}

/** The size of an axis for this model (batch and position axes depend on the run). */
export function axisSize(axis: HookAxis, c: GptOssConfig, run: { B: number; T: number; P: number; past: number; dSae?: number }): number {
  switch (axis) {
    case 'batch': return run.B;
    case 'pos': return run.T;
    case 'out_pos': return run.P;
    case 'key_pos': return run.past + run.T;
    case 'head': return c.numHeads;
    case 'kv_head': return c.numKvHeads;
    case 'd_head': return c.headDim;
    case 'd_model': return c.hiddenSize;
    case 'expert': return c.numExperts;
    case 'top_k': return c.expertsPerToken;
    case 'neuron': return c.intermediateSize;
    case 'vocab': return c.vocabSize;
    case 'latent':
      if (run.dSae === undefined) throw new HookError('a latent axis needs the attached dictionary\'s width');
      return run.dSae;
  }
}

interface HookDoc {
  /** Name within a block (`attn.hook_z`) or the full name for non-block hooks (`hook_embed`). */
  local: string;
  stage: HookStage;
  /**
   * Symbolic shape, batch first; T = padded prompt length, P = unembedded positions. In a run with a
   * KV cache of C positions (RunOptions.past) T counts the new tokens only, and the key axis of
   * attn.hook_attn_scores and attn.hook_pattern is C + T: [B, nH, T, C + T].
   */
  shape: string;
  doc: string;
  /** False for hooks that are outputs of a discrete choice (indices) or dropped values (sink). */
  writable: boolean;
  readOnlyReason?: string;
}

export interface HookSpec extends HookDoc {
  /** The shape's axes, batch first: what code dispatches on (the shape string is for reading). */
  axes: readonly HookAxis[];
}

const withAxes = <D extends HookDoc>(d: D): D & HookSpec => ({ ...d, axes: axesOf(d.shape) });

export const BLOCK_HOOKS: readonly (HookSpec & { local: BlockHookLocal })[] = ([
  { local: 'hook_resid_pre', stage: 'embed', shape: '[B, T, H]', doc: 'residual stream entering the block', writable: true },
  { local: 'ln1.hook_normalized', stage: 'attn', shape: '[B, T, H]', doc: 'RMSNorm output (times its weight) feeding attention', writable: true },
  { local: 'attn.hook_q', stage: 'attn', shape: '[B, T, nH, d]', doc: 'queries before RoPE (with bias)', writable: true },
  { local: 'attn.hook_k', stage: 'attn', shape: '[B, T, nKV, d]', doc: 'keys before RoPE (with bias), one per KV head', writable: true },
  { local: 'attn.hook_v', stage: 'attn', shape: '[B, T, nKV, d]', doc: 'values (with bias), one per KV head', writable: true },
  { local: 'attn.hook_rot_q', stage: 'attn', shape: '[B, T, nH, d]', doc: 'queries after YaRN RoPE', writable: true },
  { local: 'attn.hook_rot_k', stage: 'attn', shape: '[B, T, nKV, d]', doc: 'keys after YaRN RoPE', writable: true },
  { local: 'attn.hook_attn_scores', stage: 'attn', shape: '[B, nH, T, T]', doc: 'scaled scores q.k/sqrt(d) with the causal/sliding mask applied (masked = -1e9); with a KV cache of C positions, [B, nH, T, C + T] over the new queries', writable: true },
  { local: 'attn.hook_pattern', stage: 'attn', shape: '[B, nH, T, T]', doc: 'attention probabilities over keys, sink column dropped (rows sum to 1 - sink mass); with a KV cache of C positions, [B, nH, T, C + T] over the new queries', writable: true },
  { local: 'attn.hook_sink', stage: 'attn', shape: '[B, nH, T]', doc: 'probability each query gives to the attention sink', writable: false, readOnlyReason: 'the sink column is dropped before V; intervene on attn.hook_pattern or attn.hook_attn_scores instead' },
  { local: 'attn.hook_z', stage: 'attn', shape: '[B, T, nH, d]', doc: 'per-head attention output (pattern @ V), input to o_proj', writable: true },
  { local: 'attn.hook_result', stage: 'attn', shape: '[B, T, nH, H]', doc: "each head's write to the residual stream (o_proj slice, bias excluded)", writable: true },
  { local: 'hook_attn_out', stage: 'attn', shape: '[B, T, H]', doc: 'attention output (sum of head results + o_proj bias)', writable: true },
  { local: 'hook_resid_mid', stage: 'attn', shape: '[B, T, H]', doc: 'residual stream after the attention add', writable: true },
  { local: 'ln2.hook_normalized', stage: 'attn', shape: '[B, T, H]', doc: 'RMSNorm output feeding the router and experts', writable: true },
  { local: 'mlp.hook_router_logits', stage: 'attn', shape: '[B, T, E]', doc: 'router logits (linear with bias), before top-k', writable: true },
  { local: 'mlp.hook_expert_indices', stage: 'route', shape: '[B, T, k]', doc: 'chosen experts in descending logit order', writable: false, readOnlyReason: 'use a routing intervention (force/forbid experts) to change the choice' },
  { local: 'mlp.hook_expert_weights', stage: 'route', shape: '[B, T, k]', doc: 'softmax over the k chosen router logits', writable: true },
  { local: 'mlp.hook_pre', stage: 'expert', shape: '[B, T, E, I]', doc: 'per-expert gate pre-activations (before the clamp); zero for experts not chosen', writable: true },
  { local: 'mlp.hook_post', stage: 'expert', shape: '[B, T, E, I]', doc: 'per-expert neuron activations (clamped SwiGLU output, input to down_proj); zero for experts not chosen', writable: true },
  { local: 'mlp.hook_expert_out', stage: 'combine', shape: '[B, T, E, H]', doc: "each expert's weighted contribution to the MoE output; zero for experts not chosen", writable: true },
  { local: 'hook_mlp_out', stage: 'combine', shape: '[B, T, H]', doc: 'MoE output (sum of expert contributions)', writable: true },
  { local: 'hook_resid_post', stage: 'combine', shape: '[B, T, H]', doc: 'residual stream after the MoE add', writable: true },
] as const satisfies readonly (HookDoc & { local: BlockHookLocal })[]).map(withAxes);

export const GLOBAL_HOOKS: readonly (HookSpec & { local: GlobalHookLocal })[] = ([
  { local: 'hook_embed', stage: 'embed', shape: '[B, T, H]', doc: 'token embeddings', writable: true },
  { local: 'ln_final.hook_normalized', stage: 'unembed', shape: '[B, P, H]', doc: 'final RMSNorm output at the unembedded positions', writable: true },
  { local: 'hook_logits', stage: 'unembed', shape: '[B, P, V]', doc: 'logits at the unembedded positions (last token of each row unless all positions are asked for)', writable: true },
] as const satisfies readonly (HookDoc & { local: GlobalHookLocal })[]).map(withAxes);

export interface ResolvedHook {
  name: string;
  /** The parsed name: what code dispatches on. */
  address: HookAddress;
  /** null for global hooks. */
  layer: number | null;
  spec: HookSpec;
}

const BLOCK_BY_LOCAL = new Map<string, HookSpec>(BLOCK_HOOKS.map((h) => [h.local, h]));
const GLOBAL_BY_NAME = new Map<string, HookSpec>(GLOBAL_HOOKS.map((h) => [h.local, h]));

/** Every valid hook name for a model, in forward order (dictionary hooks are not listed: they exist while one is attached). */
export function allHookNames(numLayers: number): string[] {
  const names: string[] = [GLOBAL_LOCALS[0]];
  for (let l = 0; l < numLayers; l++) for (const h of BLOCK_HOOKS) names.push(blockHook(l, h.local));
  names.push(GLOBAL_LOCALS[1], GLOBAL_LOCALS[2]);
  return names;
}

export interface HookListing {
  name: string;
  shape: string;
  doc: string;
  writable: boolean;
}

const listing = (name: string, h: HookDoc, doc = h.doc): HookListing => ({ name, shape: h.shape, doc, writable: h.writable });

/** The documented list, with `blocks.L.` standing for every layer 0..numLayers-1. */
export function listHooks(config: Pick<GptOssConfig, 'numLayers'>): HookListing[] {
  const range = `L in 0..${config.numLayers - 1}`;
  return [
    ...GLOBAL_HOOKS.slice(0, 1).map((h) => listing(h.local, h)),
    ...BLOCK_HOOKS.map((h) => listing(`blocks.L.${h.local}`, h, `${h.doc} (${range})`)),
    ...GLOBAL_HOOKS.slice(1).map((h) => listing(h.local, h)),
  ];
}

function validList(numLayers: number): string {
  return `valid hooks: hook_embed, blocks.L.{${BLOCK_HOOKS.map((h) => h.local).join(', ')}} for L in 0..${numLayers - 1}, ln_final.hook_normalized, hook_logits (patterns may use * for a layer or name part, e.g. blocks.*.hook_resid_post)`;
}

// ---- dictionary hooks ----------------------------------------------------------------------
// A sparse dictionary spliced in at a block hook adds two hooks under it:
// `blocks.L.<site>.sae.hook_sae_acts` (its latents, [B, T, S]) and `.sae.hook_sae_error` (the input
// minus its reconstruction, [B, T, H]); the hook then carries decode(acts) + error. They exist only
// while a dictionary is attached (GptOssModel.attachSae), and only at hooks computed in JS.
export { SAE_SITES };

function saeSpec(layer: number, site: SaeSiteLocal, part: SaePart): HookSpec {
  const at = blockHook(layer, site);
  const acts = part === 'hook_sae_acts';
  return withAxes({
    local: `${site}.sae.${part}`, stage: 'combine', shape: acts ? '[B, T, S]' : '[B, T, H]', writable: true,
    doc: acts ? `latent activations of the dictionary attached at ${at}` : `what the dictionary at ${at} does not reconstruct (input - decode(encode(input)))`,
  });
}

/** The two hooks a dictionary attached at `site` (a block hook name) adds, for list_hooks. */
export function saeHookListings(site: string): HookListing[] {
  return Object.values(saeHooksAt(site)).map((name) => {
    const a = parseHookName(name) as Extract<HookAddress, { kind: 'sae' }>;
    return listing(name, saeSpec(a.layer, a.site, a.part));
  });
}

/** Resolves one exact hook name. */
export function resolveHook(name: string, numLayers: number): ResolvedHook {
  let address: HookAddress;
  try {
    address = parseHookName(name);
  } catch (e) {
    throw e instanceof HookError ? new HookError(`${e.message}; ${validList(numLayers)}`) : e;
  }
  if (address.kind === 'global') return { name, address, layer: null, spec: GLOBAL_BY_NAME.get(address.local)! };
  if (address.layer >= numLayers) throw new HookError(`hook "${name}": layer ${address.layer} is out of range; this model has layers 0..${numLayers - 1}`);
  const spec = address.kind === 'block' ? BLOCK_BY_LOCAL.get(address.local)! : saeSpec(address.layer, address.site, address.part);
  return { name: hookName(address), address, layer: address.layer, spec };
}

/** Expands names and `*` patterns into exact hooks, in forward order, without duplicates. */
export function expandHooks(patterns: readonly string[], numLayers: number): ResolvedHook[] {
  const all = allHookNames(numLayers);
  const chosen = new Map<string, ResolvedHook>();
  for (const p of patterns) {
    if (p.includes('*')) {
      const re = new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^]*?')}$`);
      const hits = all.filter((n) => re.test(n));
      if (hits.length === 0) throw new HookError(`hook pattern "${p}" matches nothing; ${validList(numLayers)}`);
      for (const h of hits) chosen.set(h, resolveHook(h, numLayers));
    } else {
      const h = resolveHook(p, numLayers);
      chosen.set(h.name, h);
    }
  }
  // Dictionary hooks are named exactly (patterns never reach them) and follow their site.
  const saeHooks = [...chosen.values()].filter((h) => h.address.kind === 'sae');
  const siteOf = (h: ResolvedHook) => (h.address.kind === 'sae' ? blockHook(h.address.layer, h.address.site) : h.name);
  const order = all.flatMap((n) => [n, ...saeHooks.filter((h) => siteOf(h) === n).map((h) => h.name)]);
  return order.filter((n) => chosen.has(n)).map((n) => chosen.get(n)!);
}

