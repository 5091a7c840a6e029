// The closed list of hook points, named like TransformerLens. Every captured or patched tensor in
// NeuroScope is addressed by one of these names; anything else is an error listing the valid ones.
import type { GptOssConfig } from './config.ts';

/** Where a hook's tensor is computed: inside the attention graph, the expert graph, the unembed graph or in JS. */
export type HookStage = 'embed' | 'attn' | 'route' | 'expert' | 'combine' | 'unembed';

export interface HookSpec {
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

export const BLOCK_HOOKS: readonly HookSpec[] = [
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
];

export const GLOBAL_HOOKS: readonly HookSpec[] = [
  { local: 'hook_embed', stage: 'embed', shape: '[B, T, H]', doc: 'token embeddings', writable: true },
  { local: 'ln_final.hook_normalized', stage: 'unembed', shape: '[B, P, H]', doc: 'final RMSNorm output at the unembedded positions', writable: true },
  { local: 'hook_logits', stage: 'unembed', shape: '[B, P, V]', doc: 'logits at the unembedded positions (last token of each row unless all positions are asked for)', writable: true },
];

export interface ResolvedHook {
  name: string;
  /** null for global hooks. */
  layer: number | null;
  spec: HookSpec;
}

export class HookError extends Error {}

const BLOCK_BY_LOCAL = new Map(BLOCK_HOOKS.map((h) => [h.local, h]));
const GLOBAL_BY_NAME = new Map(GLOBAL_HOOKS.map((h) => [h.local, h]));

/** Every valid hook name for a model, in forward order. */
export function allHookNames(numLayers: number): string[] {
  const names = ['hook_embed'];
  for (let l = 0; l < numLayers; l++) for (const h of BLOCK_HOOKS) names.push(`blocks.${l}.${h.local}`);
  names.push('ln_final.hook_normalized', 'hook_logits');
  return names;
}

export interface HookListing {
  name: string;
  shape: string;
  doc: string;
  writable: boolean;
}

/** The documented list, with `blocks.L.` standing for every layer 0..numLayers-1. */
export function listHooks(config: Pick<GptOssConfig, 'numLayers'>): HookListing[] {
  const range = `L in 0..${config.numLayers - 1}`;
  return [
    ...GLOBAL_HOOKS.slice(0, 1).map((h) => ({ name: h.local, shape: h.shape, doc: h.doc, writable: h.writable })),
    ...BLOCK_HOOKS.map((h) => ({ name: `blocks.L.${h.local}`, shape: h.shape, doc: `${h.doc} (${range})`, writable: h.writable })),
    ...GLOBAL_HOOKS.slice(1).map((h) => ({ name: h.local, shape: h.shape, doc: h.doc, writable: h.writable })),
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
export const SAE_SITES: readonly string[] = ['hook_resid_pre', 'hook_mlp_out', 'hook_resid_post'];
export const SAE_HOOKS = ['hook_sae_acts', 'hook_sae_error'] as const;

/** The site and part of a dictionary hook name, or null for any other name. */
export function parseSaeHook(name: string): { site: string; layer: number; local: string; part: (typeof SAE_HOOKS)[number] } | null {
  const m = /^blocks\.(\d+)\.(.+)\.sae\.(hook_sae_acts|hook_sae_error)$/.exec(name);
  return m ? { site: `blocks.${m[1]}.${m[2]}`, layer: Number(m[1]), local: m[2], part: m[3] as (typeof SAE_HOOKS)[number] } : null;
}

function resolveSaeHook(name: string, sae: NonNullable<ReturnType<typeof parseSaeHook>>, numLayers: number): ResolvedHook {
  if (!SAE_SITES.includes(sae.local)) {
    throw new HookError(`hook "${name}": dictionaries splice in at blocks.L.{${SAE_SITES.join(', ')}} only, not at "${sae.local}"`);
  }
  if (sae.layer >= numLayers) throw new HookError(`hook "${name}": layer ${sae.layer} is out of range; this model has layers 0..${numLayers - 1}`);
  const acts = sae.part === 'hook_sae_acts';
  const spec: HookSpec = {
    local: `${sae.local}.sae.${sae.part}`, stage: 'combine', shape: acts ? '[B, T, S]' : '[B, T, H]', writable: true,
    doc: acts ? `latent activations of the dictionary attached at ${sae.site}` : `what the dictionary at ${sae.site} does not reconstruct (input - decode(encode(input)))`,
  };
  return { name, layer: sae.layer, spec };
}

/** Resolves one exact hook name. */
export function resolveHook(name: string, numLayers: number): ResolvedHook {
  const sae = parseSaeHook(name);
  if (sae) return resolveSaeHook(name, sae, numLayers);
  const global = GLOBAL_BY_NAME.get(name);
  if (global) return { name, layer: null, spec: global };
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const layer = Number(m[1]);
    const spec = BLOCK_BY_LOCAL.get(m[2]);
    if (!spec) throw new HookError(`unknown hook "${name}": no block hook "${m[2]}"; ${validList(numLayers)}`);
    if (layer >= numLayers) {
      throw new HookError(`hook "${name}": layer ${layer} is out of range; this model has layers 0..${numLayers - 1}`);
    }
    return { name, layer, spec };
  }
  throw new HookError(`unknown hook "${name}"; ${validList(numLayers)}`);
}

/** Expands names and `*` patterns into exact hooks, in forward order, without duplicates. */
export function expandHooks(patterns: readonly string[], numLayers: number): ResolvedHook[] {
  const all = allHookNames(numLayers);
  const chosen = new Set<string>();
  for (const p of patterns) {
    if (p.includes('*')) {
      const re = new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^]*?')}$`);
      const hits = all.filter((n) => re.test(n));
      if (hits.length === 0) throw new HookError(`hook pattern "${p}" matches nothing; ${validList(numLayers)}`);
      hits.forEach((h) => chosen.add(h));
    } else {
      chosen.add(resolveHook(p, numLayers).name);
    }
  }
  // Dictionary hooks are named exactly (patterns never reach them) and follow their site.
  const saeHooks = [...chosen].filter((n) => parseSaeHook(n));
  const order = all.flatMap((n) => [n, ...saeHooks.filter((h) => parseSaeHook(h)!.site === n)]);
  return order.filter((n) => chosen.has(n)).map((n) => resolveHook(n, numLayers));
}
